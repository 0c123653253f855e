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

/* Ops that validate device data need a host sync (embedding's id range check). Off: they skip it,
 * so that a step can be captured into a CUDA graph; ids out of range then read as zero rows.
 * Default on. */
void lisa_cuda_set_sync_checks(lisa_backend *be, bool on);

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

#ifdef __cplusplus
}
#endif

#include "kernels/cuda/attention.h"

#endif
