/* loader/checkpoint_open.c — opening a checkpoint by path: a single safetensors or .bin file, an HF
 * shard index of either, or a model directory; and in-memory images (fuzzers, tests). Calls the
 * format parsers, which fill the container (checkpoint.c). */
#include "loader/checkpoint_impl.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_JSON_MAX (64u << 20)

/* ---- opening by path ---------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *read_small_file(const char *path, size_t limit, size_t *len, lisa_status *st) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *st = lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= limit) {
                fclose(f);
                free(buf);
                *st = lisa_fail(LISA_ERR_LIMIT, "%s: larger than %zu bytes", path, limit);
                return NULL;
            }
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                fclose(f);
                free(buf);
                *st = lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        *st = lisa_fail(LISA_ERR_IO, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    *st = LISA_OK;
    return buf;
}

/* Format by name, then by content: `.safetensors` is safetensors; a zip signature or a PyTorch
 * extension is a torch.save archive; anything else is tried as safetensors (whose parser gives
 * the more specific errors for arbitrary bytes). */
static lisa_status parse_file(lisa_checkpoint *ck, int32_t idx) {
    lisa_ckpt_file *f = &ck->files[idx];
    bool zip = f->size >= 4 && memcmp(f->data, "PK\x03\x04", 4) == 0;
    if (!ends_with(f->path, ".safetensors") &&
        (zip || ends_with(f->path, ".bin") || ends_with(f->path, ".pt") || ends_with(f->path, ".pth"))) {
        f->format = LISA_CKPT_TORCH_BIN;
        return lisa_pytorch_bin_parse(ck, idx);
    }
    f->format = LISA_CKPT_SAFETENSORS;
    return lisa_safetensors_parse(ck, idx);
}

static lisa_status open_single(lisa_checkpoint *ck, const char *file) {
    int32_t idx;
    LISA_TRY(lisa_ckpt_map_file(ck, file, &idx));
    return parse_file(ck, idx);
}

/* HF shard index: {"metadata": {...}, "weight_map": {"tensor": "file", ...}}. */
static lisa_status open_index(lisa_checkpoint *ck, const char *index_path) {
    size_t len = 0;
    lisa_status s;
    char *text = read_small_file(index_path, INDEX_JSON_MAX, &len, &s);
    if (!text) return s;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return lisa_fail(LISA_ERR_FORMAT, "%s: not valid JSON", index_path);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return lisa_fail(LISA_ERR_FORMAT, "%s: missing object 'weight_map'", index_path);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");

    s = LISA_OK;
    int32_t first_file = ck->n_files;
    const cJSON *item;
    cJSON_ArrayForEach(item, map) {
        if (!cJSON_IsString(item) || !item->valuestring[0]) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: weight_map['%s'] is not a file name", index_path, item->string);
            break;
        }
        const char *shard = item->valuestring;
        if (shard[0] == '/' || strstr(shard, "..")) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: weight_map['%s'] = '%s' leaves the checkpoint directory", index_path,
                          item->string, shard);
            break;
        }
        bool seen = false;
        for (int32_t f = first_file; f < ck->n_files && !seen; f++) {
            const char *p = ck->files[f].path;
            size_t dl = strlen(dir);
            seen = strncmp(p, dir, dl) == 0 && p[dl] == '/' && strcmp(p + dl + 1, shard) == 0;
        }
        if (seen) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, shard);
        if (!is_file(path)) {
            s = lisa_fail(LISA_ERR_NOT_FOUND, "%s: shard '%s' (for tensor '%s') does not exist", index_path, shard,
                          item->string);
            break;
        }
        s = open_single(ck, path);
        if (s != LISA_OK) break;
    }
    if (s == LISA_OK) s = lisa_ckpt_finalize(ck);
    /* Every tensor the index names must be in the shard it names. */
    if (s == LISA_OK) {
        cJSON_ArrayForEach(item, map) {
            const lisa_ckpt_tensor *t = lisa_checkpoint_find(ck, item->string);
            const char *fp = t ? ck->files[t->file].path : NULL;
            const char *base = fp ? strrchr(fp, '/') : NULL;
            base = base ? base + 1 : fp;
            if (!t || strcmp(base, item->valuestring) != 0) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s' is listed in shard '%s' but %s", index_path, item->string,
                              item->valuestring, t ? "found in another shard" : "is not in it");
                break;
            }
        }
    }
    cJSON_Delete(root);
    return s;
}

lisa_status lisa_checkpoint_open_ex(lisa_checkpoint **out, const char *path, const lisa_checkpoint_options *opt) {
    *out = NULL;
    lisa_checkpoint *ck = NULL;
    LISA_TRY(lisa_ckpt_new(&ck, path));
    if (opt) ck->opt = *opt;
    lisa_status s;
    char buf[8192];
    if (is_dir(path)) {
        /* HF's own order of preference (transformers modeling_utils: safetensors first). */
        static const char *const names[] = {"model.safetensors.index.json", "model.safetensors",
                                            "pytorch_model.bin.index.json", "pytorch_model.bin"};
        int found = -1;
        for (int i = 0; i < 4 && found < 0; i++) {
            snprintf(buf, sizeof buf, "%s/%s", path, names[i]);
            if (is_file(buf)) found = i;
        }
        if (found < 0) {
            s = lisa_fail(LISA_ERR_NOT_FOUND,
                          "%s: no model.safetensors.index.json, model.safetensors, pytorch_model.bin.index.json or "
                          "pytorch_model.bin in this directory",
                          path);
        } else if (found == 0 || found == 2) {
            s = open_index(ck, buf);
        } else {
            s = open_single(ck, buf);
            if (s == LISA_OK) s = lisa_ckpt_finalize(ck);
        }
    } else if (ends_with(path, ".json")) {
        s = open_index(ck, path);
    } else if (is_file(path)) {
        s = open_single(ck, path);
        if (s == LISA_OK) s = lisa_ckpt_finalize(ck);
    } else {
        s = lisa_fail(LISA_ERR_NOT_FOUND, "%s: no such file or directory", path);
    }
    if (s != LISA_OK) {
        lisa_checkpoint_close(ck);
        return s;
    }
    *out = ck;
    return LISA_OK;
}

lisa_status lisa_checkpoint_open(lisa_checkpoint **out, const char *path) { return lisa_checkpoint_open_ex(out, path, NULL); }

static lisa_status open_memory(lisa_checkpoint **out, const void *data, size_t size, const char *name,
                               lisa_ckpt_format format) {
    *out = NULL;
    lisa_checkpoint *ck = NULL;
    LISA_TRY(lisa_ckpt_new(&ck, name));
    int32_t idx;
    lisa_status s = lisa_ckpt_add_borrowed_file(ck, name, data, size, &idx);
    if (s == LISA_OK) {
        ck->files[idx].format = format;
        s = format == LISA_CKPT_TORCH_BIN ? lisa_pytorch_bin_parse(ck, idx) : lisa_safetensors_parse(ck, idx);
    }
    if (s == LISA_OK) s = lisa_ckpt_finalize(ck);
    if (s != LISA_OK) {
        lisa_checkpoint_close(ck);
        return s;
    }
    *out = ck;
    return LISA_OK;
}

lisa_status lisa_checkpoint_open_bin_memory(lisa_checkpoint **out, const void *data, size_t size, const char *name) {
    return open_memory(out, data, size, name, LISA_CKPT_TORCH_BIN);
}

lisa_status lisa_checkpoint_open_safetensors_memory(lisa_checkpoint **out, const void *data, size_t size,
                                                    const char *name) {
    return open_memory(out, data, size, name, LISA_CKPT_SAFETENSORS);
}

/* ---- name diffs ------------------------------------------------------------------------------ */
