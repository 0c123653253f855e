/* kernels/cpu/cpu.h — the CPU reference backend's op implementations (one function per ops.def
 * entry, named lisa_cpu_<name>) and helpers shared by its files.
 *
 * CPU numerics (docs/architecture.md "Numerics"): F32 activations; parameters F32/BF16/F16 widened on the
 * fly; reductions accumulate in double unless a comment says otherwise (sgemm via OpenBLAS).
 */
#ifndef LISA_KERNELS_CPU_H
#define LISA_KERNELS_CPU_H

#include "kernels/ops.h"

#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_OP(E, n, params, args) lisa_status lisa_cpu_##n(lisa_backend *be, LISA_UNPAREN params);
#include "kernels/ops.def"
#undef LISA_OP

/* ---- argument checks shared by the CPU ops; each returns LISA_ERR_SHAPE naming op + tensor ---- */
lisa_status lisa_cpu_check_f32(const char *op, const char *what, const lisa_tensor *t, bool need_contiguous);
/* Parameter tensors: F32, BF16 or F16, contiguous. */
lisa_status lisa_cpu_check_param(const char *op, const char *what, const lisa_tensor *t);
lisa_status lisa_cpu_check_same_shape(const char *op, const lisa_tensor *y, const lisa_tensor *x);

/* e^x for the CPU ops' softmax and sigmoids, inline and branch-free so that loops over it
 * vectorize (libm's exp is a call per element: ~20 % of the SAM encoder's time went there).
 * x = n·ln2 + r with n = round(x/ln2) (the 1.5·2^52 shift rounds to nearest and leaves n in the low
 * mantissa bits: no float-to-int conversion, so NaN passes through defined behaviour), |r| <= ln2/2;
 * e^r by its degree-9 Taylor polynomial (truncation < 2e-12 relative); 2^n built in the exponent
 * field. Relative error < 1e-11: far below F32 rounding (6e-8), so callers that round the
 * result to F32 get what exp() gave them. Below -708 (where 2^n would leave the normal range) the
 * result stays 3e-308 instead of underflowing (0 once rounded to F32; 1 + it is 1); above 709 it
 * is +inf as exp's overflow; NaN gives NaN. */
static inline double lisa_cpu_exp(double x_in) {
    double x = x_in < -708.0 ? -708.0 : x_in;
    x = x > 709.0 ? 709.0 : x;
    const double shift = 0x1.8p52;
    const double kd = x * 0x1.71547652b82fep0 + shift; /* x/ln2 + shift */
    const double n = kd - shift;
    const double r = (x - n * 0x1.62e42fee00000p-1) - n * 0x1.a39ef35793c76p-33; /* Cody-Waite ln2 */
    double p = 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* a union, not memcpy: GCC 12 vectorizes the loops around it only this way */
    union {
        double d;
        uint64_t u;
    } k = {kd}, bits;
    bits.u = (k.u + 1023u) << 52; /* low bits of k hold n (mod 2^12): exponent field n + 1023 */
    const double scale = bits.d;  /* (read into a local first: GCC 12 vectorizes only then) */
    return x_in > 709.0 ? (double)INFINITY : p * scale;
}

/* Attention's softmax over one score row s[0..n): the first n_vis entries (max-subtracted, exp in
 * double rounded to F32, sum in double), zeros for the masked rest (causal). Shared by ATTENTION,
 * PAGED_ATTENTION and SOFTMAX so that all compute the same bits (kernels/cpu/norm.c). */
void lisa_cpu_softmax_row(float *s, int64_t n_vis, int64_t n);

/* Widens `n` contiguous elements of a parameter tensor starting at element `offset` into dst. */
void lisa_cpu_load_f32(float *dst, const lisa_tensor *t, int64_t offset, int64_t n);

/* Integer dtypes the ops accept as indices (I32 or I64), contiguous, any shape. */
lisa_status lisa_cpu_check_ids(const char *op, const char *what, const lisa_tensor *t);
/* The output must not share memory with an input (ops that read inputs after writing outputs).
 * Compares the byte ranges the two tensors span; overlap is LISA_ERR_INVALID_ARG naming op + tensor. */
lisa_status lisa_cpu_check_no_overlap(const char *op, const char *what, const lisa_tensor *y, const lisa_tensor *x);
/* Bytes still free in the backend's scratch arena (the ops size their tiles from it). */
size_t lisa_cpu_scratch_free(const lisa_backend *be);
/* Scratch slice of n floats (LISA_ERR_OOM naming the op when the arena is exhausted). */
lisa_status lisa_cpu_scratch_f32(lisa_backend *be, const char *op, int64_t n, float **out);

/* Element offset of the logical index idx[0..n_dims) (strides in elements). */
static inline int64_t lisa_cpu_offset(const lisa_tensor *t, const int64_t *idx) {
    int64_t o = 0;
    for (int d = 0; d < t->n_dims; d++)
        o += idx[d] * t->stride[d];
    return o;
}

/* Threads for a loop of about `work` element-operations (a transcendental counts ~8): 1 below
 * LISA_CPU_MIN_PARALLEL_WORK (~2 ms of serial work). With OpenBLAS's pthread build (the fallback;
 * the OpenMP build is preferred, FindOpenBLASLib.cmake) its worker threads keep spinning for
 * up to ~0.1 s after every sgemm; an OpenMP team started meanwhile shares cores with them, and
 * one preempted member stalls the whole short region for a scheduler quantum. Measured on 2 cores:
 * SAM window attention (per-head softmax regions of ~0.3 ms) ran 5-25x slower with a parallel
 * softmax. Long regions are at worst as slow as serial, so they stay parallel. */
#define LISA_CPU_MIN_PARALLEL_WORK ((int64_t)1 << 21)
static inline int lisa_cpu_threads(const lisa_backend *be, int64_t work) {
    return work < LISA_CPU_MIN_PARALLEL_WORK ? 1 : (int)be->n_threads;
}

/* OpenMP loops without -Wunknown-pragmas noise when the build has no OpenMP. Never put a
 * cblas_sgemm call inside one of these regions (OpenBLAS has its own threads). */
#define LISA_CPU_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define LISA_CPU_PARALLEL_FOR(nt) LISA_CPU_PRAGMA(omp parallel for num_threads(nt) schedule(static))
#else
#define LISA_CPU_PARALLEL_FOR(nt)
#endif

#ifdef __cplusplus
}
#endif

#endif
