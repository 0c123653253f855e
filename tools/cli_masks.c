/* tools/cli_masks.c — see cli_masks.h. */
#include "tools/cli_masks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool cli_numbered_path(char *out, size_t cap, const char *path, int32_t i) {
    if (i == 0) return (size_t)snprintf(out, cap, "%s", path) < cap;
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && (slash && dot < slash)) dot = NULL;
    if (dot && (dot == path || (slash && dot == slash + 1))) dot = NULL; /* ".png" alone is a name */
    const size_t stem = dot ? (size_t)(dot - path) : strlen(path);
    return (size_t)snprintf(out, cap, "%.*s_%d%s", (int)stem, path, i, dot ? dot : "") < cap;
}

bool cli_output_dir_ok(const char *cmd, const char *path) {
    char dir[CLI_PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) return true;
    if ((size_t)(slash - path) >= sizeof dir) {
        fprintf(stderr, "lisa %s: output path too long: %.200s\n", cmd, path);
        return false;
    }
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (!dir[0]) return true; /* "/x.png" */
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "lisa %s: LISA_ERR_IO: output directory %s does not exist\n", cmd, dir);
        return false;
    }
    return true;
}

void cli_written_remove_all(cli_written *w) {
    for (int32_t i = 0; i < w->n; i++)
        unlink(w->paths[i]);
    w->n = 0;
}

void cli_written_free(cli_written *w) {
    free(w->paths);
    memset(w, 0, sizeof *w);
}

static lisa_status remember(cli_written *w, const char *path) {
    if (w->n == w->cap) {
        const int32_t cap = w->cap ? 2 * w->cap : 8;
        char(*np)[CLI_PATH_MAX] = realloc(w->paths, (size_t)cap * sizeof *np);
        if (!np) return lisa_fail(LISA_ERR_OOM, "out of memory");
        w->paths = np;
        w->cap = cap;
    }
    snprintf(w->paths[w->n++], CLI_PATH_MAX, "%s", path);
    return LISA_OK;
}

lisa_status cli_write_mask(cli_written *w, const char *out, const char *overlay, const lisa_result *r, int32_t i,
                           const uint8_t *rgb, char *mask_path, char *overlay_path) {
    char path[CLI_PATH_MAX];
    if (mask_path) mask_path[0] = '\0';
    if (overlay_path) overlay_path[0] = '\0';
    if (out) {
        if (!cli_numbered_path(path, sizeof path, out, i))
            return lisa_fail(LISA_ERR_INVALID_ARG, "path too long: %.200s", out);
        lisa_status s = lisa_result_write_mask_png(r, i, path);
        if (s == LISA_OK && (s = remember(w, path)) != LISA_OK) unlink(path);
        if (s != LISA_OK) return s;
        if (mask_path) snprintf(mask_path, CLI_PATH_MAX, "%s", path);
    }
    if (overlay && rgb) {
        if (!cli_numbered_path(path, sizeof path, overlay, i))
            return lisa_fail(LISA_ERR_INVALID_ARG, "path too long: %.200s", overlay);
        lisa_status s = lisa_result_write_overlay_png(r, i, rgb, path);
        if (s == LISA_OK && (s = remember(w, path)) != LISA_OK) unlink(path);
        if (s != LISA_OK) return s;
        if (overlay_path) snprintf(overlay_path, CLI_PATH_MAX, "%s", path);
    }
    return LISA_OK;
}
