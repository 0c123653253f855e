/* kernels/cuda/conv_kernels.cuh — im2col and the k2s2 transposed-conv scatter around the GEMMs of
 * conv2d and conv_transpose2d_k2s2 (launchers: kernels/cuda/gemm.cu). Grid-stride, any block size. */
#ifndef LISA_KERNELS_CUDA_CONV_KERNELS_CUH
#define LISA_KERNELS_CUDA_CONV_KERNELS_CUH

#include "kernels/cuda/prims.cuh"

/* ---- im2col for conv2d as GEMM ------------------------------------------------------------------ */
/* col[b, (ci, ky, kx), (oy, ox)] = x[b, ci, oy·s − pad + ky, ox·s − pad + kx] (0 outside):
 * col is [B, Cin·kh·kw, Ho·Wo] row-major, so y_b[Cout, P] = w[Cout, K] · col_b[K, P]. */
LISA_GLOBAL void lk_im2col(void *col, int cdt, const void *x, int xdt, int32_t B, int32_t Cin, int32_t H, int32_t W,
                           int32_t kh, int32_t kw, int32_t stride, int32_t pad, int32_t Ho, int32_t Wo) {
    const int64_t P = (int64_t)Ho * Wo, K = (int64_t)Cin * kh * kw;
    const int64_t n = (int64_t)B * K * P;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t pidx = i % P, kidx = (i / P) % K, b = i / (P * K);
        int ox = (int)(pidx % Wo), oy = (int)(pidx / Wo);
        int kx = (int)(kidx % kw), ky = (int)((kidx / kw) % kh), ci = (int)(kidx / ((int64_t)kh * kw));
        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
        float v = 0.0f;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = lk_load(x, xdt, (((int64_t)b * Cin + ci) * H + iy) * W + ix);
        lk_store(col, cdt, i, v);
    }
}

/* ---- ConvTranspose2d k2 s2: scatter of the GEMM result --------------------------------------- */
/* z[b, o·4 + dy·2 + dx, i·W + j] (F32, = Σ_c w[c, o, dy, dx]·x[b, c, i, j]) ->
 * y[b, o, 2i+dy, 2j+dx] = z + bias[o]. grid-stride over y. */
LISA_GLOBAL void lk_convt_scatter(void *y, int ydt, const float *z, const void *bias, int bdt, int32_t B, int32_t Cout,
                                  int32_t H, int32_t W) {
    const int64_t Wo = 2 * (int64_t)W, Ho = 2 * (int64_t)H, n = (int64_t)B * Cout * Ho * Wo;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t ox = i % Wo, oy = (i / Wo) % Ho, o = (i / (Wo * Ho)) % Cout, b = i / (Wo * Ho * Cout);
        int64_t q = (oy & 1) * 2 + (ox & 1), pix = (oy >> 1) * W + (ox >> 1);
        float v = z[((b * Cout + o) * 4 + q) * ((int64_t)H * W) + pix];
        if (bias) v += lk_load(bias, bdt, o);
        lk_store(y, ydt, i, v);
    }
}

#endif
