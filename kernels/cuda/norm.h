/* kernels/cuda/norm.h — fused norm launchers (kernels/cuda/norm.cu; bodies in norm_kernels.cuh). */
#ifndef LISA_KERNELS_CUDA_NORM_H
#define LISA_KERNELS_CUDA_NORM_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sum = x + r (stored in sum's dtype), y = LayerNorm(sum) over the last dim (g, b may be NULL).
 * The ViT block's "x = s + attn; n = LN2(x)" in one pass. sum may alias x or r. */
lisa_status lisa_cuda_add_layernorm(lisa_backend *be, lisa_tensor *sum, lisa_tensor *y, const lisa_tensor *x,
                                    const lisa_tensor *r, const lisa_tensor *g, const lisa_tensor *b, float eps);

/* sum = x + r, y = RMSNorm(sum) (ops.def RMSNORM): LLaMA's residual + post-attention norm. */
lisa_status lisa_cuda_add_rmsnorm(lisa_backend *be, lisa_tensor *sum, lisa_tensor *y, const lisa_tensor *x,
                                  const lisa_tensor *r, const lisa_tensor *g, float eps);

/* SAM LN1 fused with the window partition: x[B, H, W, C] -> y[B·nh·nw, S, S, C] holding
 * LayerNorm(x) in the windows and zeros in the bottom/right padding (spec §5.1). */
lisa_status lisa_cuda_layernorm_window_partition(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x,
                                                 const lisa_tensor *g, const lisa_tensor *b, float eps, int32_t window);

#ifdef __cplusplus
}
#endif

#endif
