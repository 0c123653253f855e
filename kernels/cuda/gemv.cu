/* kernels/cuda/gemv.cu — the small-M linear (kernels/cuda/gemv_kernels.cuh): when it applies, and its
 * launch. Called by the LINEAR op and lisa_cuda_linear_ex (gemm.cu) before cuBLASLt. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/gemv_kernels.cuh"

extern "C" {

bool lisa_cuda_gemv_applies(const lisa_backend *be, const lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                            int64_t M, int64_t lda, int64_t ldy) {
    const lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const int64_t K = w->shape[1], N = w->shape[0];
    return M >= 1 && M <= im->gemv_max_rows && M <= LK_GEMV_MAXM && x->dtype == LISA_DTYPE_BF16 &&
           w->dtype == LISA_DTYPE_BF16 && (y->dtype == LISA_DTYPE_BF16 || y->dtype == LISA_DTYPE_F32) && K % 8 == 0 &&
           lda % 8 == 0 && ((uintptr_t)x->data & 15u) == 0 && ((uintptr_t)w->data & 15u) == 0 && N <= INT32_MAX &&
           K <= INT32_MAX && ldy >= N && (N + LK_GEMV_ROWS - 1) / LK_GEMV_ROWS <= im->gemv_tickets_cap;
}

lisa_status lisa_cuda_gemv(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                           const lisa_tensor *b, const lisa_tensor *residual, int32_t act, int64_t M, int64_t lda,
                           int64_t ldy, int64_t ldr) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    const int64_t K = w->shape[1], N = w->shape[0];
    lk_gemv_params p = {};
    p.x = (const lisa_bf16_t *)x->data, p.lda = lda;
    p.w = (const lisa_bf16_t *)w->data;
    p.y = y->data, p.ydt = y->dtype, p.ldy = ldy;
    p.bias = b ? b->data : nullptr, p.bdt = b ? b->dtype : 0;
    p.res = residual ? residual->data : nullptr, p.ldr = ldr;
    p.act = act;
    p.M = (int32_t)M, p.N = (int32_t)N, p.K = (int32_t)K;
    p.S = (int32_t)((K + LK_GEMV_KC - 1) / LK_GEMV_KC);
    p.tickets = im->gemv_tickets;
    const size_t mark = lisa_arena_mark(&be->scratch);
    if (p.S > 1) {
        void *part = nullptr;
        LISA_TRY(lisa_cuda_scratch(be, (size_t)p.S * (size_t)M * (size_t)N * sizeof(float), &part));
        p.part = (float *)part;
    }
    const dim3 grid((unsigned)((N + LK_GEMV_ROWS - 1) / LK_GEMV_ROWS), (unsigned)p.S);
    cudaError_t e;
    if (M <= 8) {
        lk_gemv<8><<<grid, LK_GEMV_WARPS * 32, lk_gemv_smem_bytes(8), im->stream>>>(p);
        e = cudaGetLastError();
    } else {
        lk_gemv<16><<<grid, LK_GEMV_WARPS * 32, lk_gemv_smem_bytes(16), im->stream>>>(p);
        e = cudaGetLastError();
    }
    lisa_arena_reset(&be->scratch, mark); /* later work on the stream runs after the kernel */
    if (e != cudaSuccess) return lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "lk_gemv launch", cudaGetErrorString(e));
    return LISA_OK;
}

void lisa_cuda_set_gemv_max_rows(lisa_backend *be, int32_t max_rows) {
    lisa_cuda_impl_of(be)->gemv_max_rows = max_rows < 0 ? 0 : max_rows > LK_GEMV_MAXM ? LK_GEMV_MAXM : max_rows;
}

} /* extern "C" */
