/* kernels/compose.h — the mask decoder's fused ops (ops.def TWOWAY_ATTENTION, TWOWAY_MLP, MLP3) as
 * the very compositions ops.def names, run through a backend's own ops table.
 *
 * The CPU backend runs them this way (so a graph calling the fused op gets the unfused ops' bits:
 * the CPU backend is the bitwise reference, docs/architecture.md "Numerics"); a device backend runs
 * them this way for the shapes and dtypes its fused kernels do not take (F32 exact-check runs), and
 * lisa-check compares both there. The argument checks are shared too, so that every backend rejects
 * the same calls with the same messages.
 *
 * Temporaries: the caller passes `tmp`, lisa_twoway_*_tmp_bytes() bytes in the backend's memory
 * (host heap on the CPU, device scratch on CUDA); intermediate tensors are of dtype `dt` (the
 * activation dtype: F32 on the CPU). Nothing else is allocated.
 */
#ifndef LISA_KERNELS_COMPOSE_H
#define LISA_KERNELS_COMPOSE_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The dims of a TWOWAY_ATTENTION call: xq [N, Tq, C], xk [N, Tk, C], internal dim Ci = H·D. */
typedef struct lisa_twoway_dims {
    int64_t N, Tq, Tk, C, Ci, H, D;
    bool qpe_bcast, kpe_bcast; /* the PE has a batch of 1 */
} lisa_twoway_dims;

/* Checks a TWOWAY_ATTENTION call (shapes, contiguity, y overlapping an input); `op` names the op in
 * messages. Dtypes are left to the component ops / kernels. */
lisa_status lisa_twoway_attention_check(lisa_twoway_dims *d, const lisa_tensor *y, const lisa_tensor *xq,
                                        const lisa_tensor *qpe, const lisa_tensor *xk, const lisa_tensor *kpe,
                                        const lisa_tensor *xv, const lisa_twoway_attn *a, const lisa_tensor *g,
                                        const lisa_tensor *b);
size_t lisa_twoway_attention_tmp_bytes(const lisa_twoway_dims *d, bool has_qpe, bool has_kpe, bool residual,
                                       lisa_dtype dt);
lisa_status lisa_compose_twoway_attention(lisa_backend *be, void *tmp, lisa_dtype dt, lisa_tensor *y,
                                          const lisa_tensor *xq, const lisa_tensor *qpe, const lisa_tensor *xk,
                                          const lisa_tensor *kpe, const lisa_tensor *xv, const lisa_twoway_attn *a,
                                          bool residual, const lisa_tensor *g, const lisa_tensor *b, float eps);

/* TWOWAY_MLP: rows R = numel(x) / C, hidden Hm. */
lisa_status lisa_twoway_mlp_check(int64_t *R, int64_t *C, int64_t *Hm, const lisa_tensor *y, const lisa_tensor *x,
                                  const lisa_tensor *w1, const lisa_tensor *b1, const lisa_tensor *w2,
                                  const lisa_tensor *b2, const lisa_tensor *g, const lisa_tensor *b);
size_t lisa_twoway_mlp_tmp_bytes(int64_t R, int64_t C, int64_t Hm, lisa_dtype dt);
lisa_status lisa_compose_twoway_mlp(lisa_backend *be, void *tmp, lisa_dtype dt, lisa_tensor *y, const lisa_tensor *x,
                                    const lisa_tensor *w1, const lisa_tensor *b1, const lisa_tensor *w2,
                                    const lisa_tensor *b2, const lisa_tensor *g, const lisa_tensor *b, float eps);

/* MLP3: rows R = numel(x) / C, layer widths H0, H1 and O. */
lisa_status lisa_mlp3_check(int64_t *R, int64_t *C, int64_t *H0, int64_t *H1, int64_t *O, const lisa_tensor *y,
                            const lisa_tensor *x, const lisa_tensor *w0, const lisa_tensor *b0, const lisa_tensor *w1,
                            const lisa_tensor *b1, const lisa_tensor *w2, const lisa_tensor *b2);
size_t lisa_mlp3_tmp_bytes(int64_t R, int64_t C, int64_t H0, int64_t H1, lisa_dtype dt);
lisa_status lisa_compose_mlp3(lisa_backend *be, void *tmp, lisa_dtype dt, lisa_tensor *y, const lisa_tensor *x,
                              const lisa_tensor *w0, const lisa_tensor *b0, const lisa_tensor *w1, const lisa_tensor *b1,
                              const lisa_tensor *w2, const lisa_tensor *b2);

#ifdef __cplusplus
}
#endif

#endif
