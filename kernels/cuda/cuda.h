/* kernels/cuda/cuda.h — the CUDA backend's C interface (no CUDA types; C and C++).
 *
 * The backend implements the ops table of kernels/ops.def on one GPU: bf16 (or f16) storage with
 * fp32 accumulation, fp32 norms and softmax, and F32 activations for exact checks. Tensors passed
 * to its ops must live on the device (device == LISA_DEVICE_CUDA, memory from be->mem_alloc or an
 * arena over it). Extra launchers for fused paths the model graphs use are declared in the family
 * headers included below.
 */
#ifndef LISA_KERNELS_CUDA_H
#define LISA_KERNELS_CUDA_H

#include "kernels/ops.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Creates the backend on CUDA device `device` with `scratch_bytes` of device scratch (0: 256 MiB)
 * and makes that device current on the calling thread. Returns LISA_ERR_UNSUPPORTED with a message
 * starting "no CUDA device" when the driver or the device is missing (callers skip cleanly),
 * LISA_ERR_INVALID_ARG for a device index out of range, LISA_ERR_BACKEND/OOM on CUDA failures.
 * Free with lisa_backend_free. */
lisa_status lisa_backend_cuda_create(lisa_backend **out, int32_t device, size_t scratch_bytes);

/* Number of usable CUDA devices; 0 when there is no driver or no device. Never fails. */
int32_t lisa_cuda_device_count(void);

/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)". Valid while the backend lives. */
const char *lisa_cuda_device_name(const lisa_backend *be);

/* Ops that validate device data need a host sync (embedding's id range check). Off: they skip it,
 * so that a step can be captured into a CUDA graph; ids out of range then read as zero rows.
 * Default on. */
void lisa_cuda_set_sync_checks(lisa_backend *be, bool on);

/* The CUDA backend's ops table (static; for coverage tests — every entry is non-NULL). */
const lisa_ops *lisa_cuda_ops_table(void);

/* The backend's stream as an opaque handle (a cudaStream_t), for benchmarks and graph capture. */
void *lisa_cuda_stream(const lisa_backend *be);

#ifdef __cplusplus
}
#endif

#include "kernels/cuda/attention.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/sam.h"

#endif
