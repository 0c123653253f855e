/* kernels/cuda/cuda.h — the CUDA backend's C interface (no CUDA types; C and C++).
 *
 * The backend implements the ops table of kernels/ops.def on one GPU: bf16 (or f16) storage with
 * fp32 accumulation, fp32 norms and softmax, and F32 activations for exact checks. Tensors passed
 * to its ops must live on the device (device == LISA_DEVICE_CUDA, memory from be->mem_alloc or an
 * arena over it). Its fused ops (LINEAR_EX, ADD_RMSNORM, ...) are ops of that table too; the
 * attention launchers that force one kernel (lisa-check, benchmarks) are in attention.h.
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

/* Kept for callers of the old switch; does nothing. Ops that validate device data (embedding ids,
 * KV slots) no longer wait for the device: a check kernel raises a device flag, the op's kernel then
 * writes nothing, and the error (LISA_ERR_INVALID_ARG naming the value) is returned by the
 * backend's next wait — upload, download or synchronize — so a step holds no host wait and can be
 * captured into a CUDA graph with its checks. */
void lisa_cuda_set_sync_checks(lisa_backend *be, bool on);

/* How many times the host has waited for the backend's stream (every upload, download and
 * synchronize outside a capture; nothing else waits: tools/check_syncs.py). */
int64_t lisa_cuda_host_waits(const lisa_backend *be);

/* The CUDA backend's ops table (static; for coverage tests — every entry is non-NULL). */
const lisa_ops *lisa_cuda_ops_table(void);

/* The backend's stream as an opaque handle (a cudaStream_t), for benchmarks and graph capture. */
void *lisa_cuda_stream(const lisa_backend *be);

/* ---- CUDA graphs (kernels/cuda/graph.c): capture a step once, replay it ------------------------
 * A step that is re-run with the same shapes (the engine's decode step at a given batch size) is
 * captured into a graph and replayed, which removes the ~400 launches' CPU cost per LLaMA-7B step.
 * Requirements, all met by the model graphs on this backend: the step's device addresses are the
 * same at every replay (arenas reset to the same mark, deterministic allocation), its host buffers
 * are pinned (lisa_cuda_host_alloc) and stay valid (every replay reads the uploads' sources and
 * writes the downloads' destinations again), and nothing in it waits on the host. */
lisa_status lisa_cuda_capture_begin(lisa_backend *be, int64_t max_kv_keys);
/* Ends the capture and instantiates the graph (*out, owned by the caller: lisa_cuda_graph_free). */
lisa_status lisa_cuda_capture_end(lisa_backend *be, lisa_backend_graph **out);
/* Ends a capture whose step failed, discarding it; the stream is usable afterwards. */
void lisa_cuda_capture_abort(lisa_backend *be);
/* Enqueues one replay on the backend's stream (does not wait). */
lisa_status lisa_cuda_graph_launch(lisa_backend *be, const lisa_backend_graph *g);
void lisa_cuda_graph_free(lisa_backend *be, lisa_backend_graph *g);
/* Nodes of a captured graph: its kernel launches, copies and memsets (launch counts per step). */
int64_t lisa_cuda_graph_nodes(const lisa_backend_graph *g);
/* Pinned (page-locked) host memory: what captured copies may read and write. */
lisa_status lisa_cuda_host_alloc(lisa_backend *be, size_t bytes, void **out);
void lisa_cuda_host_free(lisa_backend *be, void *p);

/* LINEAR / LINEAR_EX with at most max_rows rows (default 16, at most 16; 0 = never) and BF16 x and w
 * (K a multiple of 8, 16-byte aligned rows) run in the small-M kernel (kernels/cuda/
 * gemv_kernels.cuh: tensor cores, weights streamed once with 16-byte loads, deterministic split-K)
 * instead of cuBLASLt: the decode step's projections. For benchmarks and A/B checks. */
void lisa_cuda_set_gemv_max_rows(lisa_backend *be, int32_t max_rows);

/* How CONV2D with a kernel larger than 1x1 (transposed = false: SAM's neck 3x3 conv, the patch
 * embedding) or CONV_TRANSPOSE2D_K2S2 (transposed = true: the mask decoder's upscaling) run on
 * 16-bit activations: im2col + cuBLAS GEMM (the default, until a GPU run shows cuDNN faster:
 * bench_gpu_kernels conv_* rows) or cuDNN (loaded at run time, kernels/cuda/conv_cudnn.c; a call
 * cuDNN cannot take falls back to im2col). LISA_ERR_UNSUPPORTED when cuDNN is not available. The
 * environment variable LISA_CUDA_CONV=cudnn selects cuDNN for both at backend creation. */
typedef enum lisa_cuda_conv_path { LISA_CUDA_CONV_IM2COL = 0, LISA_CUDA_CONV_CUDNN = 1 } lisa_cuda_conv_path;
lisa_status lisa_cuda_set_conv_path(lisa_backend *be, bool transposed, lisa_cuda_conv_path path);
/* The cuDNN paths themselves (ops.def CONV2D / CONV_TRANSPOSE2D_K2S2 semantics; tensors as the
 * ops check them), without the fallback: LISA_ERR_UNSUPPORTED when cuDNN cannot be loaded or does
 * not take the call (F32 activations, y not in x's dtype, no algorithm within the scratch). */
lisa_status lisa_cuda_conv2d_cudnn(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                   const lisa_tensor *b, int32_t stride, int32_t pad);
lisa_status lisa_cuda_convt_k2s2_cudnn(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                       const lisa_tensor *b);

#ifdef __cplusplus
}
#endif

#include "kernels/cuda/attention.h"

#endif
