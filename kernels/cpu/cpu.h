/* kernels/cpu/cpu.h — the CPU reference backend's op implementations (one function per ops.def
 * entry, named lisa_cpu_<name>) and helpers shared by its files.
 *
 * CPU numerics (DESIGN.md "Numerics"): F32 activations; parameters F32/BF16/F16 widened on the
 * fly; reductions accumulate in double unless a comment says otherwise (sgemm via OpenBLAS).
 */
#ifndef LISA_KERNELS_CPU_H
#define LISA_KERNELS_CPU_H

#include "kernels/ops.h"

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

/* Widens `n` contiguous elements of a parameter tensor starting at element `offset` into dst. */
void lisa_cpu_load_f32(float *dst, const lisa_tensor *t, int64_t offset, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
