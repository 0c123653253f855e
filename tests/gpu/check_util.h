/* tests/gpu/check_util.h — the harness behind lisa-check: host/device tensor helpers, the generic
 * "same op on the CPU and the CUDA backend" runner, comparisons, and the result log.
 *
 * A case describes an op call by its tensors (ck_tspec: activations, parameters, integer inputs)
 * and a callback that issues the call on a given backend. ck_run_case then:
 *   1. builds random F32 host inputs and runs the CPU backend: the fp32 reference `ref`;
 *   2. for each dtype (F32, BF16): converts the inputs for the GPU (activations and parameters
 *      in that dtype, integers unchanged; input 0 optionally as a strided view or aliased with the
 *      output for an in-place call), poisons the outputs (NaN) and runs the CUDA backend;
 *   3. F32: |got − ref| <= atol32 + rtol32·|ref| everywhere, no NaN/Inf;
 *   4. BF16: the kernel's own error, |got − ref16| <= atol16 + rtol16·|ref16| where ref16 is the
 *      CPU op on the same bf16-rounded inputs (so input quantization is not charged to the
 *      kernel), and overall quality, max|got − ref| <= 2·max|naive − ref| + a floor with
 *      naive = bf16(ref16), the naive bf16 version (docs/style.md §2).
 * Ownership: device buffers of a case are recorded in the context and freed when the case ends.
 */
#ifndef LISA_CHECK_UTIL_H
#define LISA_CHECK_UTIL_H

#include "kernels/cuda/cuda.h"
#include "kernels/ops.h"
#include "core/tensor.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ck_rng {
    uint64_t s;
} ck_rng;
double ck_uniform(ck_rng *r, double lo, double hi);
uint64_t ck_next(ck_rng *r);

typedef struct ck_result {
    char op[32];
    char name[112];
    char dtype[8];
    int status; /* 0 pass, 1 fail, 2 skipped; 3 "case started" (only in a section's record file) */
    double max_abs_err, tol_err, naive_err;
    char note[200];
} ck_result;

#define CK_MAX_RESULTS 4096
#define CK_MAX_DEV 64

typedef struct ck_ctx ck_ctx;
struct ck_ctx {
    lisa_backend *cpu, *gpu;
    ck_rng rng;
    bool quick, verbose;
    bool self_test; /* `gpu` is a second CPU backend: exercises the harness without a GPU (F32 only) */
    bool full;      /* --full: also the whole LISA-7B (32 layers) end to end, CUDA BF16 vs CUDA F32 */
    bool real_dims; /* --real-dims: the real-dims model checks in a self-test too (slow on a CPU) */
    const char *data_dir; /* tests/data (tiny models, golden files, images, tokenizer) */
    const char *filter;
    ck_result results[CK_MAX_RESULTS];
    int n_results, failures, skipped, passed;
    void *dev[CK_MAX_DEV]; /* device buffers of the current case */
    int n_dev;
    void (*on_record)(ck_ctx *c); /* called after every result (lisa_check.c: the partial --json) */
    /* Sections (lisa_check.c): a section runs in a child process that appends every record, and a
     * "case started" record (status 3) before each selected case, to rec_out (binary ck_result), so
     * that the parent keeps the results of a child that crashed or hung and knows which case was
     * running. stop_first: the child exits after its first failure (the CUDA_LAUNCH_BLOCKING rerun). */
    FILE *rec_out;
    bool stop_first;
};

/* ---- tensors ---------------------------------------------------------------------------------- */
enum ck_kind {
    CK_ACT = 0,   /* activation: converted to the run dtype */
    CK_PARAM,     /* parameter: converted to the run dtype (weights are bf16 in bf16 runs) */
    CK_PARAM_F32, /* parameter that stays F32 in every run (e.g. the F32 additive attention bias) */
    CK_INT32,     /* integer input, uniform in [lo, hi), copied as is */
    CK_INT64,
};

typedef struct ck_tspec {
    int kind;
    int32_t n_dims;
    int64_t shape[4];
    double lo, hi;
} ck_tspec;

/* Host owner tensor (aborts on OOM). */
lisa_tensor ck_host(lisa_dtype dt, int32_t n_dims, const int64_t *shape);
void ck_fill(ck_ctx *c, lisa_tensor *t, double lo, double hi, bool integer);
/* Host F32 copy of t with every value rounded as storing it in dt would. */
lisa_tensor ck_round_copy(const lisa_tensor *t, lisa_dtype dt);

/* Device tensor of h's shape in dtype dt holding h's values (converted on the host). With
 * `strided`, the tensor is a view with a padded row stride (last dim + 8, the padding NaN) for
 * 2+-D shapes. Freed at the end of the case. */
lisa_tensor ck_dev_from(ck_ctx *c, const lisa_tensor *h, lisa_dtype dt, bool strided);
/* Device tensor filled with 0xFF bytes (NaN in every float format). */
lisa_tensor ck_dev_poison(ck_ctx *c, lisa_dtype dt, int32_t n_dims, const int64_t *shape);
/* Downloads a (possibly strided) device tensor into a new host F32 (or I32) tensor. */
lisa_tensor ck_download(ck_ctx *c, const lisa_tensor *d);
void ck_free_case(ck_ctx *c);

/* ---- comparisons and results ------------------------------------------------------------------ */
/* Records a result line (and prints it). */
void ck_record(ck_ctx *c, const char *op, const char *name, const char *dtype, int status, double err, double tol,
               double naive, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

/* Elementwise |got − ref| <= atol + rtol|ref| (and no NaN/Inf in got where ref is finite). When
 * ref32 and naive are given (bf16 runs: ref is then the CPU op on the same bf16-rounded inputs,
 * ref32 the CPU op on the original fp32 inputs, naive = bf16(ref)), also
 * max|got − ref32| <= 2·max|naive − ref32| + floor. Records the result. */
bool ck_compare(ck_ctx *c, const char *op, const char *name, const char *dtype, const lisa_tensor *got,
                const lisa_tensor *ref, double atol, double rtol, const lisa_tensor *ref32, const lisa_tensor *naive);

/* True when the case name passes --filter. */
bool ck_selected(const ck_ctx *c, const char *op, const char *name);

/* ---- the generic op runner -------------------------------------------------------------------- */
typedef lisa_status (*ck_call_fn)(lisa_backend *be, lisa_tensor *out, lisa_tensor *in, const void *arg);

#define CK_MAX_IN 16 /* inputs of one case (TWOWAY_ATTENTION takes 15) */
#define CK_MAX_OUT 3 /* outputs (ROPE_QK_KV_APPEND: both pools and q) */

typedef struct ck_case {
    const char *op;    /* ops.def name */
    const char *label; /* shape description */
    ck_call_fn call;
    const void *arg;
    int n_in, n_out;
    ck_tspec in[CK_MAX_IN];
    ck_tspec out[CK_MAX_OUT];
    int out_int; /* outputs are I32 (argmax): exact comparison */
    bool strided_in0; /* input 0 as a strided view on the GPU */
    bool inplace;     /* output 0 aliases input 0 on the GPU (same shape and dtype) */
    bool no_bf16;     /* F32 run only */
    bool no_f32;      /* BF16 run only (paths that take 16-bit activations only) */
    double atol32, rtol32, atol16, rtol16;
} ck_case;

void ck_run_case(ck_ctx *c, const ck_case *cs);

/* The case lists, one per lisa-check section (check_cases.c, check_attn.c, check_models.c). */
void ck_cases_ops(ck_ctx *c);
void ck_cases_casts_and_errors(ck_ctx *c);
void ck_cases_smoke(ck_ctx *c);          /* a few cases of every kernel family (suite.sh's smoke step) */
void ck_cases_attention(ck_ctx *c);      /* check_attn.c (with --self-test: the planted-bug self-check) */
void ck_cases_models_tiny(ck_ctx *c);    /* check_models.c: the tiny LISA golden cases and the engine */
void ck_cases_models_real(ck_ctx *c);    /* check_models.c: LISA-7B dims (and --full) */

#endif
