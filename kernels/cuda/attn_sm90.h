/* kernels/cuda/attn_sm90.h — the Hopper (sm_90a) attention kernel's launcher, internal to the CUDA
 * backend (kernels/cuda/attention.cu validates the tensors, builds lk_fa3_args and calls here).
 *
 * Kernel and plan: kernels/cuda/attn_sm90.cuh. Variants compiled (template parameters, one kernel
 * per combination, no runtime feature branch in the inner loop):
 *   rel-pos 0 (none):                  head dim 64 / 80 / 128 x causal x varlen, 128-key tiles
 *                                      (112 at head dim 128);
 *   rel-pos 1 (terms) / 2 (fused):     head dim 64 / 80, dense, 128-key tiles, or 208-key tiles when
 *                                      Tk <= 208 (SAM's 14x14 windows in one tile).
 * Only on a device of compute capability 9.0 whose loaded module carries the sm_90a code (a fat
 * binary without 90a, or a card other than H100/H200, reports unavailable).
 */
#ifndef LISA_KERNELS_CUDA_ATTN_SM90_H
#define LISA_KERNELS_CUDA_ATTN_SM90_H

#include "kernels/cuda/attn_sm90.cuh"
#include "kernels/cuda/cuda_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when the backend's device can run the sm_90a kernels (probed once, never during a graph
 * capture: while capturing an unprobed backend reports false). */
bool lisa_cuda_fa3_available(lisa_backend *be);

/* Launches the variant for a (a->BN, a->smem_max and a->n_sms are filled here). LISA_ERR_UNSUPPORTED
 * names why when no variant takes the problem or the device cannot run it. */
lisa_status lisa_cuda_fa3_run(lisa_backend *be, lk_fa3_args *a);

#ifdef __cplusplus
}
#endif

#endif
