/* jobs/annotate_input.c — see annotate_input.h. */
#include "jobs/annotate_input.h"

#include "core/error.h"
#include "core/path.h"
#include "loader/json.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void lisa_ann_item_free(lisa_ann_item *it) {
    free(it->id);
    free(it->image);
    free(it->image_field);
    for (int32_t i = 0; i < it->n_queries; i++)
        free(it->queries[i]);
    free(it->queries);
    memset(it, 0, sizeof *it);
}

static void bad(lisa_ann_item *it, lisa_status s, const char *where, int64_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void bad(lisa_ann_item *it, lisa_status s, const char *where, int64_t line, const char *fmt, ...) {
    it->status = s;
    int n = snprintf(it->error, sizeof it->error, "%s line %lld: ", where, (long long)line);
    if (n < 0 || (size_t)n >= sizeof it->error) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->error + n, sizeof it->error - (size_t)n, fmt, ap);
    va_end(ap);
}

static bool all_space(const char *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)t[i])) return false;
    return true;
}

static lisa_status set_queries(lisa_ann_item *it, const cJSON *q, const char *where, int64_t line) {
    if (cJSON_IsString(q)) {
        if (!(it->queries = malloc(sizeof *it->queries)) || !(it->queries[0] = strdup(q->valuestring)))
            return lisa_fail(LISA_ERR_OOM, "out of memory");
        it->n_queries = 1;
        return LISA_OK;
    }
    if (!cJSON_IsArray(q)) {
        bad(it, LISA_ERR_FORMAT, where, line, "\"queries\" must be an array of strings (or give \"query\": \"...\")");
        return LISA_OK;
    }
    const int n = cJSON_GetArraySize(q);
    if (n == 0) {
        bad(it, LISA_ERR_FORMAT, where, line, "\"queries\" is empty");
        return LISA_OK;
    }
    if (n > LISA_ANN_MAX_QUERIES) {
        bad(it, LISA_ERR_LIMIT, where, line, "%d queries (at most %d per item)", n, LISA_ANN_MAX_QUERIES);
        return LISA_OK;
    }
    const cJSON *e;
    int k = 0;
    cJSON_ArrayForEach(e, q) {
        if (!cJSON_IsString(e)) {
            bad(it, LISA_ERR_FORMAT, where, line, "queries[%d] is not a string", k);
            return LISA_OK;
        }
        k++;
    }
    if (!(it->queries = calloc((size_t)n, sizeof *it->queries))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    cJSON_ArrayForEach(e, q) {
        if (!(it->queries[it->n_queries] = strdup(e->valuestring))) return lisa_fail(LISA_ERR_OOM, "out of memory");
        it->n_queries++;
    }
    return LISA_OK;
}

static lisa_status parse_obj(lisa_ann_item *it, const cJSON *j, const char *base_dir, const char *where, int64_t line) {
    if (!cJSON_IsObject(j)) {
        bad(it, LISA_ERR_FORMAT, where, line, "not a JSON object");
        return LISA_OK;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    char num[32];
    const char *ids = NULL;
    if (cJSON_IsString(id)) {
        ids = id->valuestring;
    } else if (cJSON_IsNumber(id) && id->valuedouble == (double)(long long)id->valuedouble &&
               id->valuedouble >= -9e15 && id->valuedouble <= 9e15) {
        snprintf(num, sizeof num, "%lld", (long long)id->valuedouble);
        ids = num;
    }
    if (!ids || !ids[0]) {
        bad(it, LISA_ERR_FORMAT, where, line, "no \"id\" (a non-empty string or an integer)");
        return LISA_OK;
    }
    if (strlen(ids) > LISA_ANN_MAX_ID_BYTES) {
        bad(it, LISA_ERR_LIMIT, where, line, "\"id\" of %zu bytes (at most %d)", strlen(ids), LISA_ANN_MAX_ID_BYTES);
        return LISA_OK;
    }
    if (!(it->id = strdup(ids))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(j, "image");
    if (im && !cJSON_IsString(im)) {
        bad(it, LISA_ERR_FORMAT, where, line, "id %.200s: \"image\" must be a string (a path relative to the manifest)",
            ids);
        return LISA_OK;
    }
    if (!cJSON_IsString(im) || !im->valuestring[0]) {
        bad(it, LISA_ERR_FORMAT, where, line, "id %.200s: no \"image\" (a path relative to the manifest)", ids);
        return LISA_OK;
    }
    if (!(it->image_field = strdup(im->valuestring))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    const size_t cap = strlen(base_dir) + strlen(im->valuestring) + 2;
    if (!(it->image = malloc(cap))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    lisa_path_join(it->image, cap, im->valuestring[0] == '/' ? "" : base_dir, im->valuestring);
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(j, "queries"),
                *q1 = cJSON_GetObjectItemCaseSensitive(j, "query");
    if (qs && q1) {
        bad(it, LISA_ERR_FORMAT, where, line, "id %.200s: give \"queries\" or \"query\", not both", ids);
        return LISA_OK;
    }
    if (!qs && !q1) {
        bad(it, LISA_ERR_FORMAT, where, line, "id %.200s: no \"queries\" (an array of strings) or \"query\"", ids);
        return LISA_OK;
    }
    if (q1 && !cJSON_IsString(q1)) {
        bad(it, LISA_ERR_FORMAT, where, line, "id %.200s: \"query\" is not a string", ids);
        return LISA_OK;
    }
    return set_queries(it, qs ? qs : q1, where, line);
}

lisa_status lisa_ann_parse_line(lisa_ann_item *it, const char *text, size_t len, const char *base_dir,
                                const char *where, int64_t line) {
    it->line = line;
    it->status = LISA_OK;
    it->error[0] = '\0';
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) {
        bad(it, LISA_ERR_FORMAT, where, line, "not valid JSON (near byte %td)",
            cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - text : (ptrdiff_t)0);
        return LISA_OK;
    }
    lisa_status s = parse_obj(it, j, base_dir, where, line);
    cJSON_Delete(j);
    size_t at = 0;
    if (s == LISA_OK && lisa_json_has_nul_string(text, len, &at)) {
        /* "\u0000" in a query would cut it short (strings end at NUL), in the id or the image
         * name it would name something else: the line is refused, and without the id, which may be
         * the cut one */
        free(it->id);
        it->id = NULL;
        bad(it, LISA_ERR_FORMAT, where, line,
            "a NUL character (\\u0000) in a string at byte %zu: refused (the text would end there)", at);
    }
    if (s == LISA_OK && it->status != LISA_OK) { /* keep the id (for the error record), drop the rest */
        free(it->image);
        free(it->image_field);
        for (int32_t i = 0; i < it->n_queries; i++)
            free(it->queries[i]);
        free(it->queries);
        it->image = it->image_field = NULL;
        it->queries = NULL;
        it->n_queries = 0;
    }
    return s;
}

lisa_status lisa_ann_source_open_manifest(lisa_ann_source *s, const char *path) {
    memset(s, 0, sizeof *s);
    if (!(s->f = fopen(path, "rb")))
        return lisa_fail(LISA_ERR_IO, "%s: cannot open the manifest: %s", path, strerror(errno));
    s->path = strdup(path);
    const char *slash = strrchr(path, '/');
    s->base_dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup("");
    if (!s->path || !s->base_dir) {
        lisa_ann_source_close(s);
        return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    return LISA_OK;
}

static bool is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    return dot && dot != n && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

lisa_status lisa_ann_source_open_dir(lisa_ann_source *s, const char *dir, const char *query) {
    memset(s, 0, sizeof *s);
    DIR *d = opendir(dir);
    if (!d) return lisa_fail(LISA_ERR_IO, "%s: cannot open the image folder: %s", dir, strerror(errno));
    lisa_status st = LISA_OK;
    size_t cap = 0;
    if (!(s->dir = strdup(dir)) || !(s->query = strdup(query))) st = lisa_fail(LISA_ERR_OOM, "out of memory");
    size_t cap_skipped = 0;
    for (struct dirent *e; st == LISA_OK && (e = readdir(d));) {
        char p[4096];
        struct stat sb;
        if (e->d_name[0] == '.' || !lisa_path_join(p, sizeof p, dir, e->d_name) || stat(p, &sb) != 0 ||
            !S_ISREG(sb.st_mode))
            continue;
        if (!is_image_name(e->d_name)) { /* listed, so that a folder of .webp files does not look empty */
            if (s->n_skipped == cap_skipped) {
                cap_skipped = cap_skipped ? 2 * cap_skipped : 16;
                char **ns = realloc(s->skipped, cap_skipped * sizeof *ns);
                if (!ns) {
                    st = lisa_fail(LISA_ERR_OOM, "out of memory");
                    break;
                }
                s->skipped = ns;
            }
            if (!(s->skipped[s->n_skipped] = strdup(e->d_name))) st = lisa_fail(LISA_ERR_OOM, "out of memory");
            else s->n_skipped++;
            continue;
        }
        if (s->n_files == cap) {
            cap = cap ? 2 * cap : 256;
            char **nf = realloc(s->files, cap * sizeof *nf);
            if (!nf) {
                st = lisa_fail(LISA_ERR_OOM, "out of memory");
                break;
            }
            s->files = nf;
        }
        if (!(s->files[s->n_files] = strdup(e->d_name)))
            st = lisa_fail(LISA_ERR_OOM, "out of memory");
        else
            s->n_files++;
    }
    closedir(d);
    if (st == LISA_OK && s->n_files == 0)
        st = lisa_fail(LISA_ERR_NOT_FOUND, "%s: no .png / .jpg / .jpeg files in the folder (%zu other files)", dir,
                       s->n_skipped);
    if (st != LISA_OK) {
        lisa_ann_source_close(s);
        return st;
    }
    qsort(s->files, s->n_files, sizeof *s->files, cmp_names);
    if (s->n_skipped) qsort(s->skipped, s->n_skipped, sizeof *s->skipped, cmp_names);
    return LISA_OK;
}

static lisa_status next_file(lisa_ann_source *s, lisa_ann_item *it, bool *end) {
    if (s->pos >= s->n_files) {
        *end = true;
        return LISA_OK;
    }
    const char *name = s->files[s->pos++];
    const size_t cap = strlen(s->dir) + strlen(name) + 2;
    it->index = s->index++;
    it->id = strdup(name);
    it->image_field = strdup(name);
    it->image = malloc(cap);
    it->queries = malloc(sizeof *it->queries);
    if (it->queries) it->queries[0] = strdup(s->query);
    if (!it->id || !it->image_field || !it->image || !it->queries || !it->queries[0]) {
        if (it->queries && !it->queries[0]) {
            free(it->queries);
            it->queries = NULL;
        }
        if (it->queries) it->n_queries = 1;
        return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    it->n_queries = 1;
    lisa_path_join(it->image, cap, s->dir, name);
    return LISA_OK;
}

lisa_status lisa_ann_source_next(lisa_ann_source *s, lisa_ann_item *it, bool *end) {
    lisa_ann_item_free(it);
    *end = false;
    if (!s->f) return next_file(s, it, end);
    for (;;) {
        errno = 0;
        const ssize_t got = getline(&s->buf, &s->buf_cap, s->f);
        if (got < 0) {
            if (ferror(s->f)) return lisa_fail(LISA_ERR_IO, "%s: read error: %s", s->path, strerror(errno));
            *end = true;
            return LISA_OK;
        }
        s->line++;
        size_t len = (size_t)got;
        if (len && s->buf[len - 1] == '\n') len--;
        if (len && s->buf[len - 1] == '\r') len--;
        if (all_space(s->buf, len)) continue;
        it->index = s->index++;
        return lisa_ann_parse_line(it, s->buf, len, s->base_dir, s->path, s->line);
    }
}

lisa_status lisa_ann_source_rewind(lisa_ann_source *s) {
    s->index = 0;
    s->line = 0;
    s->pos = 0;
    if (s->f && fseek(s->f, 0, SEEK_SET) != 0)
        return lisa_fail(LISA_ERR_IO, "%s: cannot rewind: %s", s->path, strerror(errno));
    if (s->f) clearerr(s->f);
    return LISA_OK;
}

void lisa_ann_source_close(lisa_ann_source *s) {
    if (s->f) fclose(s->f);
    free(s->path);
    free(s->base_dir);
    free(s->buf);
    free(s->dir);
    free(s->query);
    for (size_t i = 0; i < s->n_files; i++)
        free(s->files[i]);
    free(s->files);
    for (size_t i = 0; i < s->n_skipped; i++)
        free(s->skipped[i]);
    free(s->skipped);
    memset(s, 0, sizeof *s);
}
