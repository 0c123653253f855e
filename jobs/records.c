/* jobs/records.c — see records.h. */
#include "jobs/records.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Called per complete record line; may take ownership of *rec (set it to NULL). */
typedef lisa_status (*visit_fn)(void *ctx, const char *line, size_t len, cJSON **rec, int64_t line_no);

/* Streams f from its current position (the start of the file). *good_len: bytes of the complete,
 * valid prefix (header included); a torn last line is left out of it. */
static lisa_status scan_stream(FILE *f, const char *path, const char *magic, cJSON **header, visit_fn fn, void *ctx,
                               size_t *good_len) {
    char *line = NULL;
    size_t cap = 0, pos = 0;
    int64_t line_no = 0;
    lisa_status s = LISA_OK;
    *good_len = 0;
    for (;;) {
        errno = 0;
        const ssize_t got = getline(&line, &cap, f);
        if (got < 0) {
            if (ferror(f)) s = lisa_fail(LISA_ERR_IO, "%s: read error: %s", path, strerror(errno));
            break;
        }
        line_no++;
        size_t len = (size_t)got;
        if (line[len - 1] != '\n') break; /* torn: no newline */
        line[--len] = '\0';
        cJSON *j = cJSON_ParseWithLength(line, len);
        if (!j || !cJSON_IsObject(j)) {
            cJSON_Delete(j);
            const int c = getc(f);
            if (c == EOF) break; /* a torn last line that happens to end in '\n' */
            s = lisa_fail(LISA_ERR_FORMAT, "%s: line %lld is not a JSON object (corrupt record file)", path,
                          (long long)line_no);
            break;
        }
        if (line_no == 1) {
            if (!cJSON_GetObjectItemCaseSensitive(j, magic)) {
                cJSON_Delete(j);
                s = lisa_fail(LISA_ERR_FORMAT, "%s: not a record file of this tool (line 1 has no \"%s\")", path,
                              magic);
                break;
            }
            if (header)
                *header = j;
            else
                cJSON_Delete(j);
        } else {
            s = fn ? fn(ctx, line, len, &j, line_no) : LISA_OK;
            cJSON_Delete(j);
            if (s != LISA_OK) break;
        }
        pos += (size_t)got;
        *good_len = pos;
    }
    free(line);
    return s;
}

static lisa_status keep(lisa_records *r, const char *line_txt, cJSON **rec) {
    char key[LISA_RECORDS_KEY_MAX];
    const size_t kl = r->kind->key ? r->kind->key(key, sizeof key, *rec) : 0;
    if (kl >= sizeof key)
        return lisa_fail(LISA_ERR_LIMIT, "%s: record key longer than %d bytes: %.80s", r->path, LISA_RECORDS_KEY_MAX,
                         line_txt);
    if (kl) LISA_TRY(lisa_keyset_add(&r->keys, key, kl, NULL));
    if (r->kind->keep) {
        if (r->n == r->cap) {
            const size_t nc = r->cap ? r->cap * 2 : 1024;
            cJSON **nr = realloc(r->recs, nc * sizeof *nr);
            if (!nr) return lisa_fail(LISA_ERR_OOM, "out of memory");
            r->recs = nr;
            r->cap = nc;
        }
        r->recs[r->n] = *rec;
        *rec = NULL;
    }
    r->n++;
    return LISA_OK;
}

static lisa_status keep_visit(void *ctx, const char *line, size_t len, cJSON **rec, int64_t line_no) {
    (void)len;
    (void)line_no;
    return keep(ctx, line, rec);
}

static lisa_status write_all(int fd, const char *p, size_t n, const char *path) {
    while (n > 0) {
        const ssize_t w = write(fd, p, n);
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

static lisa_status init(lisa_records *r, const char *path, const lisa_records_kind *kind) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->kind = kind;
    if (!(r->path = strdup(path))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    return LISA_OK;
}

lisa_status lisa_records_read(lisa_records *r, const char *path, const lisa_records_kind *kind) {
    LISA_TRY(init(r, path, kind));
    FILE *f = fopen(path, "rb");
    if (!f) {
        lisa_status s = lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        lisa_records_close(r);
        return s;
    }
    size_t good = 0;
    lisa_status s = scan_stream(f, path, kind->magic, &r->header, keep_visit, r, &good);
    struct stat st;
    if (s == LISA_OK && fstat(fileno(f), &st) == 0 && (size_t)st.st_size > good)
        r->torn_bytes = (size_t)st.st_size - good;
    fclose(f);
    if (s == LISA_OK && !r->header) s = lisa_fail(LISA_ERR_FORMAT, "%s: empty record file (no header line)", path);
    if (s != LISA_OK) lisa_records_close(r);
    return s;
}

static lisa_status write_header(lisa_records *r, const cJSON *header) {
    char *h = cJSON_PrintUnformatted(header);
    if (!h) return lisa_fail(LISA_ERR_OOM, "out of memory");
    const size_t n = strlen(h);
    char *line = realloc(h, n + 2);
    if (!line) {
        free(h);
        return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    line[n] = '\n';
    lisa_status s = write_all(r->fd, line, n + 1, r->path);
    free(line);
    return s;
}

/* The old header must agree with `header` on every key of `header`: the run is the same one. */
static lisa_status same_run(const lisa_records *r, const cJSON *header) {
    const cJSON *k;
    cJSON_ArrayForEach(k, header) {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(r->header, k->string);
        if (old && cJSON_Compare(old, k, true)) continue;
        char *a = cJSON_PrintUnformatted(k), *b = old ? cJSON_PrintUnformatted(old) : NULL;
        lisa_status s = lisa_fail(LISA_ERR_INVALID_ARG, "%s: was written by another run (%s: %s, now %s)", r->path,
                                  k->string, b ? b : "absent", a ? a : "?");
        free(a);
        free(b);
        return s;
    }
    return LISA_OK;
}

static lisa_status open_impl(lisa_records *r, const char *path, const cJSON *header, bool resume) {
    if (!cJSON_GetObjectItemCaseSensitive(header, r->kind->magic))
        return lisa_fail(LISA_ERR_INVALID_ARG, "records: the header lacks \"%s\"", r->kind->magic);
    r->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->fd < 0) return lisa_fail(LISA_ERR_IO, "%s: cannot open or create: %s", path, strerror(errno));
    if (flock(r->fd, LOCK_EX | LOCK_NB) != 0)
        return lisa_fail(errno == EWOULDBLOCK ? LISA_ERR_BUSY : LISA_ERR_IO,
                         "%s: another process is writing this file (flock: %s)", path, strerror(errno));
    struct stat st;
    if (fstat(r->fd, &st) != 0) return lisa_fail(LISA_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    size_t good = 0;
    if (st.st_size > 0) {
        if (!resume)
            return lisa_fail(LISA_ERR_INVALID_ARG, "%s exists: pass --resume to continue that run, or remove it", path);
        const int fd2 = dup(r->fd);
        FILE *f = fd2 >= 0 ? fdopen(fd2, "rb") : NULL;
        if (!f) {
            if (fd2 >= 0) close(fd2);
            return lisa_fail(LISA_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        }
        rewind(f);
        lisa_status s = scan_stream(f, path, r->kind->magic, &r->header, keep_visit, r, &good);
        fclose(f);
        LISA_TRY(s);
        r->torn_bytes = (size_t)st.st_size - good;
        if (r->header) LISA_TRY(same_run(r, header));
        if (r->torn_bytes && ftruncate(r->fd, (off_t)good) != 0)
            return lisa_fail(LISA_ERR_IO, "%s: cannot cut the torn last line: %s", path, strerror(errno));
    }
    if (r->header) return LISA_OK;
    /* new (or only a torn header line): write the header */
    if (!(r->header = cJSON_Duplicate(header, 1))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    return write_header(r, header);
}

lisa_status lisa_records_open(lisa_records *r, const char *path, const lisa_records_kind *kind, const cJSON *header,
                              bool resume) {
    LISA_TRY(init(r, path, kind));
    lisa_status s = open_impl(r, path, header, resume);
    if (s != LISA_OK) lisa_records_close(r);
    return s;
}

lisa_status lisa_records_append(lisa_records *r, const char *lines, size_t len) {
    LISA_ASSERT(r->fd >= 0 && (len == 0 || lines[len - 1] == '\n'));
    LISA_TRY(write_all(r->fd, lines, len, r->path));
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(lines + pos, '\n', len - pos);
        const size_t ll = (size_t)(nl - (lines + pos));
        cJSON *j = cJSON_ParseWithLength(lines + pos, ll);
        LISA_ASSERT(j && cJSON_IsObject(j)); /* the tools write valid JSON objects, one per line */
        lisa_status s = keep(r, lines + pos, &j);
        cJSON_Delete(j);
        LISA_TRY(s);
        pos += ll + 1;
    }
    return LISA_OK;
}

bool lisa_records_has(const lisa_records *r, const char *key, size_t len) {
    return lisa_keyset_has(&r->keys, key, len);
}

void lisa_records_close(lisa_records *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd); /* releases the flock */
    if (r->recs)
        for (size_t i = 0; i < r->n; i++)
            cJSON_Delete(r->recs[i]);
    free(r->recs);
    lisa_keyset_free(&r->keys);
    cJSON_Delete(r->header);
    free(r->path);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

typedef struct pub_visit {
    lisa_records_visit_fn fn;
    void *ctx;
} pub_visit;

static lisa_status pub_visit_fn(void *ctx, const char *line, size_t len, cJSON **rec, int64_t line_no) {
    const pub_visit *p = ctx;
    return p->fn ? p->fn(p->ctx, line, len, *rec, line_no) : LISA_OK;
}

lisa_status lisa_records_scan(const char *path, const char *magic, cJSON **header, lisa_records_visit_fn fn, void *ctx,
                              size_t *torn) {
    if (header) *header = NULL;
    if (torn) *torn = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    pub_visit p = {fn, ctx};
    cJSON *h = NULL;
    size_t good = 0;
    lisa_status s = scan_stream(f, path, magic, &h, pub_visit_fn, &p, &good);
    struct stat st;
    if (s == LISA_OK && torn && fstat(fileno(f), &st) == 0 && (size_t)st.st_size > good)
        *torn = (size_t)st.st_size - good;
    fclose(f);
    if (s == LISA_OK && !h) s = lisa_fail(LISA_ERR_FORMAT, "%s: empty record file (no header line)", path);
    if (s == LISA_OK && header)
        *header = h;
    else
        cJSON_Delete(h);
    return s;
}
