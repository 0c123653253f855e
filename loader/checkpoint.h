/* loader/checkpoint.h — one read-only interface over tensor checkpoints.
 *
 * A checkpoint is a set of files (one safetensors file, or the shards named by a
 * `model.safetensors.index.json`; PyTorch .bin shards plug in behind the same interface) mapped
 * read-only, plus a name-sorted table of tensor entries pointing into those mappings (zero copy).
 *
 * Ownership: a lisa_checkpoint owns its mappings, its entry table, the name strings and the one
 * buffer holding copies of tensors whose stored bytes are not aligned to their element size; all
 * pointers handed out (entry names, data) live until lisa_checkpoint_close.
 */
#ifndef LISA_LOADER_CHECKPOINT_H
#define LISA_LOADER_CHECKPOINT_H

#include "runtime/tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_ckpt_tensor {
    const char *name;
    lisa_dtype dtype;
    int32_t n_dims;
    int64_t shape[LISA_MAX_DIMS];
    const void *data; /* aligned to the element size */
    size_t nbytes;
    int32_t file;     /* index of the file (shard) it came from */
} lisa_ckpt_tensor;

typedef struct lisa_checkpoint lisa_checkpoint;

/* Limits that protect against hostile files. */
#define LISA_SAFETENSORS_MAX_HEADER (100u << 20) /* as the reference implementation */

/* Opens `path`, which may be:
 *  - a `.safetensors` file;
 *  - a `*.safetensors.index.json` shard index;
 *  - a directory holding `model.safetensors.index.json` or `model.safetensors` (HF layout).
 * Every header, offset, dtype and shape is validated against the file sizes; errors name the file
 * and the tensor or field. Duplicate tensor names (within a file or across shards) are errors. */
lisa_status lisa_checkpoint_open(lisa_checkpoint **out, const char *path);

/* Parses a safetensors image already in memory (for fuzzing and tests). `name` is used in error
 * messages. The checkpoint borrows `data`, which must outlive it. */
lisa_status lisa_checkpoint_open_safetensors_memory(lisa_checkpoint **out, const void *data, size_t size,
                                                    const char *name);

void lisa_checkpoint_close(lisa_checkpoint *ck);

int64_t lisa_checkpoint_count(const lisa_checkpoint *ck);
/* Entries sorted by name (strcmp order). */
const lisa_ckpt_tensor *lisa_checkpoint_at(const lisa_checkpoint *ck, int64_t i);
/* NULL when absent (no error recorded). */
const lisa_ckpt_tensor *lisa_checkpoint_find(const lisa_checkpoint *ck, const char *name);
/* View of a tensor as lisa_tensor; LISA_ERR_NOT_FOUND naming the tensor and the checkpoint path. */
lisa_status lisa_checkpoint_get(const lisa_checkpoint *ck, const char *name, lisa_tensor *out);
lisa_tensor lisa_ckpt_tensor_view(const lisa_ckpt_tensor *t);

const char *lisa_checkpoint_path(const lisa_checkpoint *ck);
int32_t lisa_checkpoint_file_count(const lisa_checkpoint *ck);
const char *lisa_checkpoint_file_path(const lisa_checkpoint *ck, int32_t file);
/* A `__metadata__` string value of the (first) safetensors header; NULL if absent. */
const char *lisa_checkpoint_metadata(const lisa_checkpoint *ck, const char *key);

/* ---- writing ------------------------------------------------------------------------------- */

typedef struct lisa_st_write_item {
    const char *name;
    lisa_tensor tensor; /* contiguous host tensor */
} lisa_st_write_item;

/* Writes a safetensors file (header keys in the given order, data 8-byte aligned, metadata as
 * string pairs; `meta` may be NULL). Writes to "<path>.tmp" then renames, so a failure never leaves
 * a partial file at `path`. */
lisa_status lisa_safetensors_write(const char *path, const lisa_st_write_item *items, int64_t n,
                                   const char *const *meta_kv, int32_t n_meta);

#ifdef __cplusplus
}
#endif

#endif
