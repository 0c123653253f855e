/* kernels/cuda/device_flag.h — the kinds of the CUDA backend's device error flag, shared by the
 * kernels that raise it (prims.cuh: lk_flag_raise) and the host code that reports it
 * (cuda_common.c: lisa_cuda_wait). Plain C: the emulator and the host compiler include it too. */
#ifndef LISA_KERNELS_CUDA_DEVICE_FLAG_H
#define LISA_KERNELS_CUDA_DEVICE_FLAG_H

enum { LK_FLAG_NONE = 0, LK_FLAG_EMBEDDING_ID = 1, LK_FLAG_KV_SLOT = 2 };

#endif
