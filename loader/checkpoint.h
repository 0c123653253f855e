/* loader/checkpoint.h — one read-only interface over tensor checkpoints.
 *
 * A checkpoint is a set of files (one safetensors file, one PyTorch .bin (torch.save zip), or the
 * shards named by a `model.safetensors.index.json` / `pytorch_model.bin.index.json`) mapped
 * read-only, plus a name-sorted table of tensor entries pointing into those mappings (zero copy
 * wherever the stored bytes are usable as they are).
 *
 * Ownership: a lisa_checkpoint owns its mappings, its entry table, the name strings, the one
 * buffer holding copies of tensors whose stored bytes are not aligned to their element size, and
 * one buffer per .bin shard holding inflated (deflate-compressed) storages and contiguous copies
 * of strided tensors; all pointers handed out (entry names, data) live until lisa_checkpoint_close.
 */
#ifndef LISA_LOADER_CHECKPOINT_H
#define LISA_LOADER_CHECKPOINT_H

#include "core/tensor.h"

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
#define LISA_TORCH_MAX_PICKLE (256u << 20)       /* data.pkl of a .bin shard (LISA-13B: ~100 kB) */

typedef enum lisa_ckpt_format {
    LISA_CKPT_SAFETENSORS = 0,
    LISA_CKPT_TORCH_BIN = 1, /* torch.save zip: archive/data.pkl + archive/data/<key> */
} lisa_ckpt_format;

typedef struct lisa_checkpoint_options {
    /* Skip the CRC-32 check of large stored .bin entries at open (deflated and small entries are
     * always checked; see loader/zip.h for the policy and its cost). */
    bool skip_crc;
} lisa_checkpoint_options;

/* Opens `path`, which may be:
 *  - a `.safetensors` file, or a PyTorch `.bin`/`.pt`/`.pth` file (recognised by its zip
 *    signature or extension);
 *  - a `*.safetensors.index.json` or `pytorch_model.bin.index.json` shard index (HF
 *    {"weight_map": {tensor: shard}}; shards of either format);
 *  - a directory holding, in this order of preference, `model.safetensors.index.json`,
 *    `model.safetensors`, `pytorch_model.bin.index.json` or `pytorch_model.bin` (HF layout).
 * Every header, offset, dtype and shape is validated against the file sizes; errors name the file
 * and the tensor or field. Duplicate tensor names (within a file or across shards) are errors.
 * .bin files are read by a restricted unpickler that never executes code (loader/pickle.h).
 * Non-contiguous .bin tensors are copied to contiguous memory at open (real checkpoints have
 * none); deflated storages are inflated; everything else is a view of the mapped file. */
lisa_status lisa_checkpoint_open(lisa_checkpoint **out, const char *path);
/* Same with options (NULL = defaults). */
lisa_status lisa_checkpoint_open_ex(lisa_checkpoint **out, const char *path, const lisa_checkpoint_options *opt);

/* Parses a safetensors image already in memory (for fuzzing and tests). `name` is used in error
 * messages. The checkpoint borrows `data`, which must outlive it. */
lisa_status lisa_checkpoint_open_safetensors_memory(lisa_checkpoint **out, const void *data, size_t size,
                                                    const char *name);
/* Same for a torch.save zip image. */
lisa_status lisa_checkpoint_open_bin_memory(lisa_checkpoint **out, const void *data, size_t size, const char *name);

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
lisa_ckpt_format lisa_checkpoint_file_format(const lisa_checkpoint *ck, int32_t file);
/* Bytes of the checkpoint's tensors stored in `dtype` (sum of nbytes). */
uint64_t lisa_checkpoint_bytes(const lisa_checkpoint *ck, lisa_dtype dtype);
/* A `__metadata__` string value of the (first) safetensors header; NULL if absent. */
const char *lisa_checkpoint_metadata(const lisa_checkpoint *ck, const char *key);

/* ---- names: what is missing, what is unexpected ------------------------------------------- */

/* Result of comparing the checkpoint's names with an expected list. `missing` points into the
 * caller's `expected` array, `unexpected` into the checkpoint's entry names; both arrays are owned
 * by the diff (lisa_ckpt_name_diff_free) and live no longer than the checkpoint and `expected`. */
typedef struct lisa_ckpt_name_diff {
    const char **missing;    /* expected names the checkpoint lacks, in `expected` order */
    int64_t n_missing;
    const char **unexpected; /* checkpoint names not expected and not allowed, in name order */
    int64_t n_unexpected;
} lisa_ckpt_name_diff;

/* `allow` (may be NULL, n_allow entries): patterns of names that may be present without being
 * expected; a pattern ending in '*' matches any name with that prefix, otherwise names match
 * exactly. Duplicates in `expected` count once. */
lisa_status lisa_checkpoint_diff_names(const lisa_checkpoint *ck, const char *const *expected, int64_t n_expected,
                                       const char *const *allow, int64_t n_allow, lisa_ckpt_name_diff *out);
void lisa_ckpt_name_diff_free(lisa_ckpt_name_diff *d);
/* The pattern rule above, for other callers (manifest). */
bool lisa_name_matches(const char *pattern, const char *name);

/* LISA_OK when `b` holds exactly the tensors of `a` (same names, shapes, and bytes; with `cast` !=
 * LISA_DTYPE_COUNT, a's float tensors cast to `cast` as the writers cast them); otherwise
 * LISA_ERR_FORMAT naming the first difference. */
lisa_status lisa_checkpoint_compare(const lisa_checkpoint *a, const lisa_checkpoint *b, lisa_dtype cast);

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

/* Same, casting every F32/F16/BF16 tensor to `cast` on the way out (streamed through a small
 * buffer: nothing is converted in memory as a whole). cast = LISA_DTYPE_COUNT keeps dtypes. */
lisa_status lisa_safetensors_write_cast(const char *path, const lisa_st_write_item *items, int64_t n,
                                        const char *const *meta_kv, int32_t n_meta, lisa_dtype cast);

/* Writes what torch.save(OrderedDict(name -> tensor)) writes (torch 1.13, zip format, pickle
 * protocol 2): `archive/data.pkl`, `archive/data/<i>` (one storage per tensor, stored, data
 * 64-byte aligned as torch's writer does), `archive/version` = "3"; ZIP64 end records always and
 * ZIP64 extra fields where a size or offset needs them. Float tensors are cast to `cast` unless it
 * is LISA_DTYPE_COUNT. Loadable by torch.load (checked: tests/golden/gen_bin.py). Writes
 * "<path>.tmp" then renames. */
lisa_status lisa_torch_save_write(const char *path, const lisa_st_write_item *items, int64_t n, lisa_dtype cast);

/* Writes an HF model directory's weights: one file (`model.safetensors` / `pytorch_model.bin`)
 * when everything fits in `shard_size` bytes (0 = no limit), else shards
 * `model-0000K-of-0000N.safetensors` / `pytorch_model-0000K-of-0000N.bin` plus the
 * `*.index.json` weight map (HF's greedy split, in item order). `dir` must exist. */
typedef struct lisa_ckpt_write_params {
    lisa_ckpt_format format;
    uint64_t shard_size;
    lisa_dtype cast; /* LISA_DTYPE_COUNT: keep */
} lisa_ckpt_write_params;
lisa_status lisa_checkpoint_write_dir(const char *dir, const lisa_st_write_item *items, int64_t n,
                                      const lisa_ckpt_write_params *p);

#ifdef __cplusplus
}
#endif

#endif
