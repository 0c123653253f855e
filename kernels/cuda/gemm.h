/* kernels/cuda/gemm.h — GEMM launchers with fused epilogues (kernels/cuda/gemm.cu).
 *
 * lisa_cuda_linear_ex is ops.def LINEAR plus what the model graphs fuse into the GEMM:
 *   y = act(x · wᵀ + b) + residual
 * through cuBLASLt epilogues (bias; ReLU; GELU-tanh) and its C operand (residual, beta = 1), with
 * the matmul descriptors and the heuristic's algorithm cached per shape. cuBLASLt's GELU epilogue
 * is the tanh approximation, while SAM and CLIP-free paths need exact erf GELU (spec §5.1), so
 * LISA_CUDA_ACT_GELU_ERF runs the bias epilogue and then an in-place erf-GELU pass (room for
 * speed: a custom epilogue). Numerics: BF16/F16 operands use tensor cores with fp32 accumulation;
 * F32 operands use an fp32 GEMM (CUBLAS_COMPUTE_32F, no TF32) so that checks are exact to fp32.
 * Operands of different dtypes are widened/narrowed to x's dtype in scratch, in row chunks.
 */
#ifndef LISA_KERNELS_CUDA_GEMM_H
#define LISA_KERNELS_CUDA_GEMM_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lisa_cuda_act {
    LISA_CUDA_ACT_NONE = 0,
    LISA_CUDA_ACT_RELU,      /* cuBLASLt RELU_BIAS epilogue */
    LISA_CUDA_ACT_GELU_ERF,  /* exact GELU (PyTorch default): bias epilogue + erf pass */
    LISA_CUDA_ACT_GELU_TANH, /* cuBLASLt GELU_BIAS epilogue (tanh approximation) */
} lisa_cuda_act;

/* y[.., N] = act(x[.., K] · w[N, K]ᵀ + b[N]) (+ residual[.., N]); b and residual may be NULL;
 * residual (same shape and dtype as y) may alias y; residual requires act NONE. */
lisa_status lisa_cuda_linear_ex(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                const lisa_tensor *b, const lisa_tensor *residual, lisa_cuda_act act);

/* Linears with at most max_rows rows (default 16, at most 16; 0 = never) and BF16 x and w (K a
 * multiple of 8, 16-byte aligned rows) run in the small-M kernel (kernels/cuda/gemv_kernels.cuh:
 * tensor cores, weights streamed once with 16-byte loads, deterministic split-K) instead of cuBLASLt:
 * the decode step's projections. For benchmarks and A/B checks. */
void lisa_cuda_set_gemv_max_rows(lisa_backend *be, int32_t max_rows);

#ifdef __cplusplus
}
#endif

#endif
