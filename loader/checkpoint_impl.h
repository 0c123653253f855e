/* loader/checkpoint_impl.h — internals shared by the checkpoint formats (safetensors, .bin).
 * Format parsers add files and entries through these helpers; lisa_ckpt_finalize() sorts, checks
 * duplicates and fixes alignment. Not part of any public interface. */
#ifndef LISA_LOADER_CHECKPOINT_IMPL_H
#define LISA_LOADER_CHECKPOINT_IMPL_H

#include "loader/checkpoint.h"

#include <cjson/cJSON.h>
#include <stdio.h>

typedef struct lisa_ckpt_file {
    char *path;          /* owned */
    const unsigned char *data;
    size_t size;
    bool mapped;         /* munmap at close (else borrowed memory) */
    lisa_ckpt_format format;
} lisa_ckpt_file;

/* Owns everything listed in checkpoint.h; `meta` is the first safetensors __metadata__ object. */
struct lisa_checkpoint {
    char *path;
    lisa_ckpt_file *files;
    int32_t n_files, cap_files;
    lisa_ckpt_tensor *entries;
    int64_t n_entries, cap_entries;
    cJSON *meta;
    void *copies; /* one buffer for misaligned tensors */
    void **owned; /* buffers from lisa_ckpt_alloc (one per .bin shard at most) */
    int32_t n_owned;
    lisa_checkpoint_options opt;
};

lisa_status lisa_ckpt_new(lisa_checkpoint **out, const char *path);
/* Maps `path` read-only and appends it; *file_index receives its index. */
lisa_status lisa_ckpt_map_file(lisa_checkpoint *ck, const char *path, int32_t *file_index);
lisa_status lisa_ckpt_add_borrowed_file(lisa_checkpoint *ck, const char *name, const void *data, size_t size,
                                        int32_t *file_index);
/* Appends an entry; `name` is copied. */
lisa_status lisa_ckpt_add_entry(lisa_checkpoint *ck, const char *name, lisa_dtype dtype, int32_t n_dims,
                                const int64_t *shape, const void *data, size_t nbytes, int32_t file);
/* Sorts by name, rejects duplicates (naming both files), copies misaligned tensors into one buffer. */
lisa_status lisa_ckpt_finalize(lisa_checkpoint *ck);
/* A 64-byte aligned buffer of `size` bytes owned by the checkpoint (freed at close). */
lisa_status lisa_ckpt_alloc(lisa_checkpoint *ck, size_t size, void **out);

/* Safetensors: parse the image of file `file` (already added) and append its entries. */
lisa_status lisa_safetensors_parse(lisa_checkpoint *ck, int32_t file);
/* PyTorch zip (.bin): same. */
lisa_status lisa_pytorch_bin_parse(lisa_checkpoint *ck, int32_t file);

/* Writing: the dtype an item is written in (floats cast to `cast` unless it is LISA_DTYPE_COUNT),
 * element conversion between float dtypes, and streaming one tensor's bytes as dtype `out` to f
 * (f may be NULL) while folding them into *crc (crc may be NULL). Returns false on a write error
 * or when out of memory. */
lisa_dtype lisa_ckpt_out_dtype(lisa_dtype src, lisa_dtype cast);
void lisa_ckpt_cast(void *dst, lisa_dtype dt, const void *src, lisa_dtype st, size_t n);
bool lisa_ckpt_emit(FILE *f, const lisa_tensor *t, lisa_dtype out, uint32_t *crc);

/* Checked arithmetic for sizes from untrusted files. */
static inline bool lisa_mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

#endif
