/* loader/eval_records.c — see eval_records.h. */
#include "loader/eval_records.h"

#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORDS_MAX_BYTES ((size_t)4 << 30)

static lisa_status keep(lisa_eval_records *r, cJSON *rec) {
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 1024;
        cJSON **nr = realloc(r->recs, nc * sizeof *nr);
        char **ni = realloc(r->ids, nc * sizeof *ni);
        if (nr) r->recs = nr;
        if (ni) r->ids = ni;
        if (!nr || !ni) {
            cJSON_Delete(rec);
            return lisa_fail(LISA_ERR_OOM, "out of memory");
        }
        r->cap = nc;
    }
    r->recs[r->n++] = rec;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    if (cJSON_IsString(id)) {
        r->ids[r->n_ids++] = id->valuestring;
        r->ids_sorted = false;
    }
    return LISA_OK;
}

/* Parses the file's lines; sets *good_len to the byte length of the complete, valid prefix. */
static lisa_status parse_all(lisa_eval_records *r, const char *buf, size_t len, size_t *good_len) {
    size_t pos = 0, line_no = 0;
    *good_len = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        line_no++;
        if (!nl) break; /* torn: no newline */
        const size_t ll = (size_t)(nl - (buf + pos));
        char *line = malloc(ll + 1);
        if (!line) return lisa_fail(LISA_ERR_OOM, "out of memory");
        memcpy(line, buf + pos, ll);
        line[ll] = '\0';
        cJSON *j = cJSON_Parse(line);
        free(line);
        const bool last = (size_t)(nl - buf) + 1 >= len;
        if (!j || !cJSON_IsObject(j)) {
            cJSON_Delete(j);
            if (last) break; /* a torn last line that happens to end in '\n' */
            return lisa_fail(LISA_ERR_FORMAT, "%s: line %zu is not a JSON object (corrupt record file)", r->path,
                             line_no);
        }
        if (line_no == 1) {
            if (!cJSON_GetObjectItemCaseSensitive(j, "lisa_eval_records")) {
                cJSON_Delete(j);
                return lisa_fail(LISA_ERR_FORMAT, "%s: not a lisa eval record file (no header line)", r->path);
            }
            r->header = j;
        } else {
            LISA_TRY(keep(r, j));
        }
        pos = (size_t)(nl - buf) + 1;
        *good_len = pos;
    }
    return LISA_OK;
}

static lisa_status read_file(const char *path, char **buf, size_t *len) {
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (size_t)st.st_size > RECORDS_MAX_BYTES) {
        fclose(f);
        return lisa_fail(LISA_ERR_LIMIT, "%s: cannot stat, or larger than 4 GiB", path);
    }
    *buf = malloc((size_t)st.st_size + 1);
    if (!*buf) {
        fclose(f);
        return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    *len = fread(*buf, 1, (size_t)st.st_size, f);
    const bool err = ferror(f);
    fclose(f);
    if (err) {
        free(*buf);
        *buf = NULL;
        return lisa_fail(LISA_ERR_IO, "%s: read error", path);
    }
    return LISA_OK;
}

static lisa_status write_all(int fd, const char *p, size_t n, const char *path) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return lisa_fail(LISA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    if (fsync(fd) != 0) return lisa_fail(LISA_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    return LISA_OK;
}

lisa_status lisa_eval_records_read(lisa_eval_records *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (!(r->path = strdup(path))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    char *buf;
    size_t len = 0, good = 0;
    lisa_status s = read_file(path, &buf, &len);
    if (s == LISA_OK) {
        s = parse_all(r, buf, len, &good);
        r->torn_bytes = len - good;
        free(buf);
    }
    if (s == LISA_OK && !r->header) s = lisa_fail(LISA_ERR_FORMAT, "%s: empty record file", path);
    if (s != LISA_OK) lisa_eval_records_close(r);
    return s;
}

lisa_status lisa_eval_records_open(lisa_eval_records *r, const char *path, const cJSON *header, bool resume) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) {
        if (!resume)
            return lisa_fail(LISA_ERR_INVALID_ARG, "%s exists: pass --resume to continue that run, or remove it", path);
        LISA_TRY(lisa_eval_records_read(r, path));
        const cJSON *k;
        cJSON_ArrayForEach(k, header) { /* the run must be the same one */
            const cJSON *old = cJSON_GetObjectItemCaseSensitive(r->header, k->string);
            if (!old || !cJSON_Compare(old, k, true)) {
                char *a = cJSON_PrintUnformatted(k), *b = old ? cJSON_PrintUnformatted(old) : NULL;
                lisa_status s = lisa_fail(LISA_ERR_INVALID_ARG, "%s: was written by another run (%s: %s, now %s)", path,
                                          k->string, b ? b : "absent", a ? a : "?");
                free(a);
                free(b);
                lisa_eval_records_close(r);
                return s;
            }
        }
        r->fd = open(path, O_WRONLY | O_CLOEXEC);
        lisa_status s = LISA_OK;
        if (r->fd < 0)
            s = lisa_fail(LISA_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
        else if (r->torn_bytes && ftruncate(r->fd, st.st_size - (off_t)r->torn_bytes) != 0)
            s = lisa_fail(LISA_ERR_IO, "%s: cannot cut the torn last line: %s", path, strerror(errno));
        else if (lseek(r->fd, 0, SEEK_END) < 0)
            s = lisa_fail(LISA_ERR_IO, "%s: seek failed: %s", path, strerror(errno));
        if (s != LISA_OK) lisa_eval_records_close(r);
        return s;
    }
    if (!(r->path = strdup(path)) || !(r->header = cJSON_Duplicate(header, 1))) {
        lisa_eval_records_close(r);
        return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    r->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (r->fd < 0) {
        lisa_status s = lisa_fail(LISA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        lisa_eval_records_close(r);
        return s;
    }
    char *h = cJSON_PrintUnformatted(header);
    lisa_status s = h ? LISA_OK : lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) {
        size_t n = strlen(h);
        char *line = malloc(n + 2);
        if (!line) {
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
        } else {
            memcpy(line, h, n);
            line[n] = '\n';
            s = write_all(r->fd, line, n + 1, path);
            free(line);
        }
    }
    free(h);
    if (s != LISA_OK) lisa_eval_records_close(r);
    return s;
}

lisa_status lisa_eval_records_append(lisa_eval_records *r, const char *lines, size_t len) {
    LISA_ASSERT(r->fd >= 0 && (len == 0 || lines[len - 1] == '\n'));
    LISA_TRY(write_all(r->fd, lines, len, r->path));
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(lines + pos, '\n', len - pos);
        const size_t ll = (size_t)(nl - (lines + pos));
        char *line = malloc(ll + 1);
        if (!line) return lisa_fail(LISA_ERR_OOM, "out of memory");
        memcpy(line, lines + pos, ll);
        line[ll] = '\0';
        cJSON *j = cJSON_Parse(line);
        free(line);
        LISA_ASSERT(j); /* the tool writes valid JSON */
        LISA_TRY(keep(r, j));
        pos += ll + 1;
    }
    return LISA_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

bool lisa_eval_records_has(lisa_eval_records *r, const char *id) {
    if (!r->ids_sorted) {
        if (r->n_ids) qsort(r->ids, r->n_ids, sizeof *r->ids, cmp_str);
        r->ids_sorted = true;
    }
    return r->n_ids && bsearch(&id, r->ids, r->n_ids, sizeof *r->ids, cmp_str) != NULL;
}

void lisa_eval_records_close(lisa_eval_records *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    for (size_t i = 0; i < r->n; i++)
        cJSON_Delete(r->recs[i]);
    free(r->recs);
    free(r->ids);
    cJSON_Delete(r->header);
    free(r->path);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}
