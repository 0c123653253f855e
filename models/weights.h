/* models/weights.h — binding checkpoint tensors to model structs, on any backend.
 *
 * A model's load function asks for each weight by name (with the shape it expects, -1 = any) via
 * lisa_w_get(), or walks its tensor table (models/tensors.h) with lisa_w_bind; failures (missing tensor, wrong shape, unsupported dtype) are recorded, all of them,
 * and reported together once the load function returns, so a user sees every mismatch at once.
 *
 * Placement: on the CPU backend a weight is a zero-copy view of the mapped checkpoint (any float
 * dtype; ops widen per tile), except column slices (lisa_w_get_slice), copied once into an owned
 * block. On a device backend lisa_weights_load() runs the load function twice: a counting pass
 * that sums the bytes, one device allocation, then a pass that uploads each weight (converted to
 * `device_dtype` for float weights of 2+ dims; norms/biases keep F32). The CPU runs the counting
 * pass too, for the column slices.
 *
 * Synthetic checkpoints (`lisa make-tiny --synthetic`, models/tiny.h): the safetensors metadata
 * holds "lisa_synthetic" (the seed) and "lisa_synthetic_init" (a JSON object: tensor name ->
 * [mean, std]); the file's data region is a hole and is never read. Every backend then gets one
 * owned block (F32 on the CPU), and each weight is generated in place by backend ops: a copy from
 * a 2^20-value N(0, 1) pattern (seeded; the start offset hashed from the name; repeated), then
 * x·std and x + mean (two SCALE ops, so the CPU and CUDA backends round alike). Deterministic and
 * fast at any size (LLaMA-7B in well under a second on a GPU): for benchmarks and real-dims checks.
 *
 * Ownership: a lisa_weights owns the block holding uploaded or generated weights (on the CPU: the
 * column slices of tensor parallelism, if any, or the generated synthetic weights) and borrows the
 * checkpoint, which must outlive it on the CPU backend (views point into its mapping).
 */
#ifndef LISA_MODELS_WEIGHTS_H
#define LISA_MODELS_WEIGHTS_H

#include "kernels/ops.h"
#include "loader/checkpoint.h"
#include "models/tensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_WEIGHTS_MAX_ERRORS 64

typedef struct lisa_weights {
    lisa_backend *be;
    const lisa_checkpoint *ck;
    lisa_dtype device_dtype;  /* storage dtype for matrices on device backends */
    bool counting;            /* counting pass (device backends): sizes only */
    size_t bytes_needed;
    uint64_t bound_bytes;     /* bytes of every weight bound by the last load, as the model uses them
                                 (views of the mapping on the CPU, uploads on a device) */
    void *device_block;       /* owned (be->mem_free) */
    lisa_arena device_arena;  /* over device_block */
    const char *prefix;       /* prepended to every name, e.g. "model.visual_model." */
    bool force_f32;           /* device backends: keep the next weights F32 (see lisa_w_get_act) */
    bool in_reserved;         /* the next weight goes into a reserved matrix (lisa_w_bind_slice_into)... */
    void *place;              /* ...here (NULL while counting) */
    void *synth_init;         /* synthetic checkpoint: its parsed "lisa_synthetic_init" (cJSON *), else NULL */
    lisa_tensor synth_pattern;/* synthetic: [2 * 2^20] F32 N(0, 1) values in the backend's memory (owned
                                 during lisa_weights_load) */
    uint64_t synth_seed;
    int32_t n_errors;
    lisa_status first_error;
    char errors[1024 * 8];    /* one line per problem, reported together */
} lisa_weights;

void lisa_weights_init(lisa_weights *w, lisa_backend *be, const lisa_checkpoint *ck, lisa_dtype device_dtype);
void lisa_weights_free(lisa_weights *w);

/* Binds weight `name` (printf format, prefixed) into *out; shape entries -1 match anything, and
 * n_dims < 0 skips the shape check. Returns true when bound; on failure records the problem
 * (*out becomes an empty tensor) and returns false. */
bool lisa_w_get(lisa_weights *w, lisa_tensor *out, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                const char *fmt, ...) __attribute__((format(printf, 8, 9)));
/* Same for the slice [start, start+len) along dim `dim` of the weight (whose full shape is checked
 * as above): tensor parallelism. A contiguous slice (rows of a [N, K] matrix) stays a view of the
 * mapping on the CPU; a strided one (columns) is copied once into the weights' own block, in the
 * stored dtype, so that a rank materializes only its share. */
bool lisa_w_get_slice(lisa_weights *w, lisa_tensor *out, int32_t dim, int64_t start, int64_t len, int32_t n_dims,
                      int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
    __attribute__((format(printf, 11, 12)));
/* As lisa_w_get, for weights used as activations (added, copied or concatenated: positional
 * embeddings, learned tokens): kept F32 on device backends instead of device_dtype. */
#define lisa_w_get_act(w, ...)                                                                      \
    ((w)->force_f32 = true, lisa_w_get_act_done_((w), lisa_w_get((w), __VA_ARGS__)))
static inline bool lisa_w_get_act_done_(lisa_weights *w, bool ok) {
    w->force_f32 = false;
    return ok;
}
/* True when the (prefixed) name exists. */
bool lisa_w_has(const lisa_weights *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a model-level problem (e.g. inconsistent hyper-parameters). */
void lisa_w_error(lisa_weights *w, lisa_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A tensor-table visitor (models/tensors.h; ctx = the lisa_weights) for the load functions: binds
 * a row into its slot as lisa_w_get does (lisa_w_get_act for LISA_TF_ACT rows) with the row's full
 * shape; rows without a slot are skipped. Problems are recorded, so it always returns LISA_OK and
 * the walk goes on. */
lisa_status lisa_w_bind(void *w, const lisa_tensor_spec *s);
/* Same for the slice [start, start+len) along `dim` (tensor parallelism, lisa_w_get_slice). */
void lisa_w_bind_slice(lisa_weights *w, const lisa_tensor_spec *s, int32_t dim, int64_t start, int64_t len);

/* Reserves a [rows, cols] matrix in the weights' block (device_dtype on device backends, F32 on the
 * CPU; counted by the counting pass) and returns it in *out; weights bound into its rows with
 * lisa_w_bind_slice_into are converted and copied there side by side, so that one GEMM multiplies
 * them all (LLaMA's q/k/v and gate/up projections, concatenated once at load). False (recorded)
 * when it does not fit. */
bool lisa_w_reserve(lisa_weights *w, lisa_tensor *out, int64_t rows, int64_t cols);
/* lisa_w_bind_slice into rows [row0, row0 + its rows) of a reserved matrix. */
void lisa_w_bind_slice_into(lisa_weights *w, const lisa_tensor_spec *s, int32_t dim, int64_t start, int64_t len,
                            lisa_tensor *reserved, int64_t row0);

/* Runs load(w, ctx) as described above and returns LISA_OK or the first error, with every recorded
 * problem in lisa_last_error() (prefixed by `what`, e.g. "SAM"). */
typedef void (*lisa_weights_fn)(lisa_weights *w, void *ctx);
lisa_status lisa_weights_load(lisa_weights *w, const char *what, lisa_weights_fn load, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
