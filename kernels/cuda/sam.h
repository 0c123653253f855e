/* kernels/cuda/sam.h — SAM launchers beyond the ops table (kernels/cuda/sam.cu). */
#ifndef LISA_KERNELS_CUDA_SAM_H
#define LISA_KERNELS_CUDA_SAM_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[B, H, W, C] = residual + unpartition(x[B·nh·nw, S, S, C]) (crop of the padding): the ViT
 * block's "x = shortcut + attn" after windowed attention. y may alias residual. */
lisa_status lisa_cuda_window_unpartition_add(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x,
                                             const lisa_tensor *residual, int32_t window);

/* Dense positional encoding (spec §5.2, get_dense_pe): y[2F, h, w] from G[2, F]. With
 * bf16_reference true the grid, the projection and the trig arguments are rounded to bf16 where
 * the bf16 reference rounds them (spec §8); otherwise fp32. */
lisa_status lisa_cuda_dense_pe(lisa_backend *be, lisa_tensor *y, const lisa_tensor *gauss, bool bf16_reference);

#ifdef __cplusplus
}
#endif

#endif
