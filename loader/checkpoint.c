/* loader/checkpoint.c — the checkpoint container: files, entries, lookup and name diffs. The
 * format parsers (safetensors.c, pytorch_bin.c) fill it; checkpoint_open.c picks the parser by
 * path; ckpt_write.c writes checkpoints out. */
#include "loader/checkpoint_impl.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

lisa_status lisa_ckpt_new(lisa_checkpoint **out, const char *path) {
    lisa_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck || !(ck->path = strdup(path))) {
        free(ck);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    *out = ck;
    return LISA_OK;
}

static lisa_status push_file(lisa_checkpoint *ck, lisa_ckpt_file f, int32_t *file_index) {
    if (ck->n_files == ck->cap_files) {
        int32_t cap = ck->cap_files ? ck->cap_files * 2 : 4;
        lisa_ckpt_file *nf = realloc(ck->files, (size_t)cap * sizeof *nf);
        if (!nf) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", f.path);
        ck->files = nf;
        ck->cap_files = cap;
    }
    ck->files[ck->n_files] = f;
    *file_index = ck->n_files++;
    return LISA_OK;
}

lisa_status lisa_ckpt_map_file(lisa_checkpoint *ck, const char *path, int32_t *file_index) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lisa_fail(LISA_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lisa_fail(LISA_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return lisa_fail(LISA_ERR_FORMAT, "%s: empty file", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lisa_fail(LISA_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    lisa_ckpt_file f = {.path = strdup(path), .data = map, .size = (size_t)st.st_size, .mapped = true};
    if (!f.path) {
        munmap(map, f.size);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    lisa_status s = push_file(ck, f, file_index);
    if (s != LISA_OK) {
        munmap(map, f.size);
        free(f.path);
    }
    return s;
}

lisa_status lisa_ckpt_add_borrowed_file(lisa_checkpoint *ck, const char *name, const void *data, size_t size,
                                        int32_t *file_index) {
    lisa_ckpt_file f = {.path = strdup(name), .data = data, .size = size, .mapped = false};
    if (!f.path) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", name);
    lisa_status s = push_file(ck, f, file_index);
    if (s != LISA_OK) free(f.path);
    return s;
}

lisa_status lisa_ckpt_add_entry(lisa_checkpoint *ck, const char *name, lisa_dtype dtype, int32_t n_dims,
                                const int64_t *shape, const void *data, size_t nbytes, int32_t file) {
    LISA_ASSERT(n_dims >= 0 && n_dims <= LISA_MAX_DIMS);
    if (ck->n_entries == ck->cap_entries) {
        int64_t cap = ck->cap_entries ? ck->cap_entries * 2 : 64;
        lisa_ckpt_tensor *ne = realloc(ck->entries, (size_t)cap * sizeof *ne);
        if (!ne) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", ck->path);
        ck->entries = ne;
        ck->cap_entries = cap;
    }
    lisa_ckpt_tensor *t = &ck->entries[ck->n_entries];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", ck->path);
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (int d = 0; d < LISA_MAX_DIMS; d++) t->shape[d] = d < n_dims ? shape[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    t->file = file;
    ck->n_entries++;
    return LISA_OK;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const lisa_ckpt_tensor *)a)->name, ((const lisa_ckpt_tensor *)b)->name);
}

lisa_status lisa_ckpt_finalize(lisa_checkpoint *ck) {
    if (ck->n_entries > 1) qsort(ck->entries, (size_t)ck->n_entries, sizeof *ck->entries, cmp_entry);
    for (int64_t i = 1; i < ck->n_entries; i++) {
        const lisa_ckpt_tensor *a = &ck->entries[i - 1], *b = &ck->entries[i];
        if (strcmp(a->name, b->name) == 0)
            return lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s' appears twice (in %s and %s)", ck->path, a->name,
                             ck->files[a->file].path, ck->files[b->file].path);
    }
    /* safetensors does not promise alignment; reading an F32 through a misaligned pointer is UB,
     * so such tensors get copied (once, at load) into one aligned buffer. */
    size_t total = 0;
    for (int64_t i = 0; i < ck->n_entries; i++) {
        const lisa_ckpt_tensor *t = &ck->entries[i];
        if ((uintptr_t)t->data % lisa_dtype_size(t->dtype) != 0) total += (t->nbytes + 63) & ~(size_t)63;
    }
    if (total) {
        ck->copies = aligned_alloc(64, total);
        if (!ck->copies) return lisa_fail(LISA_ERR_OOM, "%s: cannot allocate %zu bytes", ck->path, total);
        unsigned char *p = ck->copies;
        for (int64_t i = 0; i < ck->n_entries; i++) {
            lisa_ckpt_tensor *t = &ck->entries[i];
            if ((uintptr_t)t->data % lisa_dtype_size(t->dtype) == 0) continue;
            memcpy(p, t->data, t->nbytes);
            t->data = p;
            p += (t->nbytes + 63) & ~(size_t)63;
        }
    }
    return LISA_OK;
}

lisa_status lisa_ckpt_alloc(lisa_checkpoint *ck, size_t size, void **out) {
    *out = NULL;
    void **no = realloc(ck->owned, (size_t)(ck->n_owned + 1) * sizeof *no);
    if (!no) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", ck->path);
    ck->owned = no;
    size_t rounded = (size + 63) & ~(size_t)63;
    void *p = rounded >= size ? aligned_alloc(64, rounded ? rounded : 64) : NULL;
    if (!p) return lisa_fail(LISA_ERR_OOM, "%s: cannot allocate %zu bytes", ck->path, size);
    ck->owned[ck->n_owned++] = p;
    *out = p;
    return LISA_OK;
}

void lisa_checkpoint_close(lisa_checkpoint *ck) {
    if (!ck) return;
    for (int32_t i = 0; i < ck->n_owned; i++) free(ck->owned[i]);
    free(ck->owned);
    for (int32_t i = 0; i < ck->n_files; i++) {
        if (ck->files[i].mapped) munmap((void *)ck->files[i].data, ck->files[i].size);
        free(ck->files[i].path);
    }
    for (int64_t i = 0; i < ck->n_entries; i++) free((void *)ck->entries[i].name);
    free(ck->files);
    free(ck->entries);
    free(ck->copies);
    cJSON_Delete(ck->meta);
    free(ck->path);
    free(ck);
}

int64_t lisa_checkpoint_count(const lisa_checkpoint *ck) { return ck->n_entries; }

const lisa_ckpt_tensor *lisa_checkpoint_at(const lisa_checkpoint *ck, int64_t i) {
    LISA_ASSERT(i >= 0 && i < ck->n_entries);
    return &ck->entries[i];
}

const lisa_ckpt_tensor *lisa_checkpoint_find(const lisa_checkpoint *ck, const char *name) {
    int64_t lo = 0, hi = ck->n_entries - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ck->entries[mid].name, name);
        if (c == 0) return &ck->entries[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

lisa_tensor lisa_ckpt_tensor_view(const lisa_ckpt_tensor *t) {
    return lisa_tensor_view((void *)t->data, t->dtype, t->n_dims, t->shape);
}

lisa_status lisa_checkpoint_get(const lisa_checkpoint *ck, const char *name, lisa_tensor *out) {
    const lisa_ckpt_tensor *t = lisa_checkpoint_find(ck, name);
    if (!t) return lisa_fail(LISA_ERR_NOT_FOUND, "%s: no tensor named '%s'", ck->path, name);
    *out = lisa_ckpt_tensor_view(t);
    return LISA_OK;
}

const char *lisa_checkpoint_path(const lisa_checkpoint *ck) { return ck->path; }
int32_t lisa_checkpoint_file_count(const lisa_checkpoint *ck) { return ck->n_files; }

const char *lisa_checkpoint_file_path(const lisa_checkpoint *ck, int32_t file) {
    LISA_ASSERT(file >= 0 && file < ck->n_files);
    return ck->files[file].path;
}

lisa_ckpt_format lisa_checkpoint_file_format(const lisa_checkpoint *ck, int32_t file) {
    LISA_ASSERT(file >= 0 && file < ck->n_files);
    return ck->files[file].format;
}

uint64_t lisa_checkpoint_bytes(const lisa_checkpoint *ck, lisa_dtype dtype) {
    uint64_t b = 0;
    for (int64_t i = 0; i < ck->n_entries; i++)
        if (ck->entries[i].dtype == dtype) b += ck->entries[i].nbytes;
    return b;
}

const char *lisa_checkpoint_metadata(const lisa_checkpoint *ck, const char *key) {
    const cJSON *v = ck->meta ? cJSON_GetObjectItemCaseSensitive(ck->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool lisa_name_matches(const char *pattern, const char *name) {
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*') return strncmp(pattern, name, n - 1) == 0;
    return strcmp(pattern, name) == 0;
}

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

lisa_status lisa_checkpoint_diff_names(const lisa_checkpoint *ck, const char *const *expected, int64_t n_expected,
                                       const char *const *allow, int64_t n_allow, lisa_ckpt_name_diff *out) {
    memset(out, 0, sizeof *out);
    out->missing = malloc((size_t)(n_expected ? n_expected : 1) * sizeof *out->missing);
    out->unexpected = malloc((size_t)(ck->n_entries ? ck->n_entries : 1) * sizeof *out->unexpected);
    const char **sorted = malloc((size_t)(n_expected ? n_expected : 1) * sizeof *sorted);
    if (!out->missing || !out->unexpected || !sorted) {
        free(sorted);
        lisa_ckpt_name_diff_free(out);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", ck->path);
    }
    for (int64_t i = 0; i < n_expected; i++) {
        sorted[i] = expected[i];
        if (!lisa_checkpoint_find(ck, expected[i])) {
            bool dup = false; /* report a repeated expected name once */
            for (int64_t j = 0; j < out->n_missing && !dup; j++) dup = strcmp(out->missing[j], expected[i]) == 0;
            if (!dup) out->missing[out->n_missing++] = expected[i];
        }
    }
    if (n_expected > 1) qsort(sorted, (size_t)n_expected, sizeof *sorted, cmp_str_ptr);
    for (int64_t i = 0; i < ck->n_entries; i++) {
        const char *name = ck->entries[i].name;
        if (n_expected && bsearch(&name, sorted, (size_t)n_expected, sizeof *sorted, cmp_str_ptr)) continue;
        bool ok = false;
        for (int64_t a = 0; a < n_allow && !ok; a++) ok = lisa_name_matches(allow[a], name);
        if (!ok) out->unexpected[out->n_unexpected++] = name;
    }
    free(sorted);
    return LISA_OK;
}

void lisa_ckpt_name_diff_free(lisa_ckpt_name_diff *d) {
    if (!d) return;
    free(d->missing);
    free(d->unexpected);
    memset(d, 0, sizeof *d);
}
