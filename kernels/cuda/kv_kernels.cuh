/* kernels/cuda/kv_kernels.cuh — what the paged KV cache's writers share (KV_APPEND in
 * attn_kernels.cuh, ROPE_QK_KV_APPEND in ew_kernels.cuh): the slot check the launchers enqueue
 * before the writing kernel, which does nothing once the flag is raised, so that a bad slot leaves
 * the pool untouched (ops.def). */
#ifndef LISA_KERNELS_CUDA_KV_KERNELS_CUH
#define LISA_KERNELS_CUDA_KV_KERNELS_CUH

#include "kernels/cuda/prims.cuh"

/* Raises the device flag (prims.cuh lk_flag_raise) for a slot outside [-1, n_slots), without a
 * host wait (grid-stride over T). */
LISA_GLOBAL void lk_kv_slots_check(const int32_t *slots, int32_t T, int64_t n_slots, int64_t *flag) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < T; t += (int64_t)gridDim.x * blockDim.x)
        if (slots[t] < -1 || slots[t] >= n_slots) lk_flag_raise(flag, LK_FLAG_KV_SLOT, slots[t], n_slots);
}

#endif
