/* kernels/cuda/twoway.cu — ops TWOWAY_ATTENTION and TWOWAY_MLP (SAM's two-way transformer) on the
 * GPU. Kernel bodies: twoway_kernels.cuh. Shapes and dtypes the fused kernels do not take run as
 * the composition of this backend's ops (kernels/compose.c). */
#include "kernels/compose.h"
#include "kernels/cuda/cuda_internal.h"

namespace {

/* The composition on this backend, its temporaries in device scratch. */
static lisa_status composed_attention(lisa_backend *be, const lisa_twoway_dims &d, lisa_tensor *y, const lisa_tensor *xq,
                                      const lisa_tensor *qpe, const lisa_tensor *xk, const lisa_tensor *kpe,
                                      const lisa_tensor *xv, const lisa_twoway_attn *a, bool residual,
                                      const lisa_tensor *g, const lisa_tensor *b, float eps) {
    const size_t mark = lisa_arena_mark(&be->scratch);
    void *tmp = nullptr;
    lisa_status s = lisa_cuda_scratch(be, lisa_twoway_attention_tmp_bytes(&d, qpe, kpe, residual, y->dtype), &tmp);
    if (s == LISA_OK) s = lisa_compose_twoway_attention(be, tmp, y->dtype, y, xq, qpe, xk, kpe, xv, a, residual, g, b, eps);
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

} // namespace

extern "C" {

lisa_status lisa_cuda_twoway_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *xq, const lisa_tensor *qpe,
                                       const lisa_tensor *xk, const lisa_tensor *kpe, const lisa_tensor *xv,
                                       const lisa_twoway_attn *a, bool residual, const lisa_tensor *g,
                                       const lisa_tensor *b, float eps) {
    lisa_twoway_dims d;
    LISA_TRY(lisa_twoway_attention_check(&d, y, xq, qpe, xk, kpe, xv, a, g, b));
    return composed_attention(be, d, y, xq, qpe, xk, kpe, xv, a, residual, g, b, eps);
}

lisa_status lisa_cuda_twoway_mlp(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w1,
                                 const lisa_tensor *b1, const lisa_tensor *w2, const lisa_tensor *b2, const lisa_tensor *g,
                                 const lisa_tensor *b, float eps) {
    int64_t R, C, Hm;
    LISA_TRY(lisa_twoway_mlp_check(&R, &C, &Hm, y, x, w1, b1, w2, b2, g, b));
    const size_t mark = lisa_arena_mark(&be->scratch);
    void *tmp = nullptr;
    lisa_status s = lisa_cuda_scratch(be, lisa_twoway_mlp_tmp_bytes(R, C, Hm, y->dtype), &tmp);
    if (s == LISA_OK) s = lisa_compose_twoway_mlp(be, tmp, y->dtype, y, x, w1, b1, w2, b2, g, b, eps);
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

} /* extern "C" */
