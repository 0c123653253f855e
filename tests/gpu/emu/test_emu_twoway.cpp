/* tests/gpu/emu/test_emu_twoway.cpp — the two-way transformer kernels of
 * kernels/cuda/twoway_kernels.cuh (ops TWOWAY_ATTENTION, TWOWAY_MLP) run in the host emulator
 * against a double-precision reference of the op's composition (ops.def).
 *
 * Each path is run as its launcher (kernels/cuda/twoway.cu) runs it, kernel after kernel: the
 * tokens' self-attention (lk_tw_heads + lk_tw_out_ln), tokens -> image (lk_tw_kv_rows +
 * lk_tw_split + lk_tw_out_ln; several 256-key splits, a partial last one and a partial last 32-row
 * tile), image -> tokens (lk_tw_kv_tokens + lk_tw_i2t_rows; rows not a multiple of 32) and the MLP
 * (lk_tw_mlp_partial + lk_tw_mlp_ln; a partial last hidden chunk, two row groups) and the heads'
 * MLP3 (lk_mlp3; strided token rows), at SAM's decoder
 * dims (C 256, Ci 128 or 256, 8 heads, MLP 2048) with few rows, and at awkward small dims (C 48,
 * Ci 32 in 4 heads of 8, internal dims smaller than a 64-feature weight chunk), the PE as a
 * batch of one (broadcast) or per prompt, no PE / no residual / no biases (layer 0), mixed
 * parameter dtypes.
 *
 * The reference rounds exactly where the kernels feed tensor cores (the bf16 A operand: x + pe on
 * the image side, the attention output before i2t's output projection); everything else is double.
 * Tolerance: bf16 outputs (LayerNorm'd, O(1)), |err| <= 2e-3 + |ref|/128 (the atol: an fp32
 * difference may flip one bf16 rounding of a tensor-core operand, which moves an output by
 * ~|w|·ulp) and a relative L2 error within twice that of storing the exact result in bf16
 * (docs/style.md §2) plus 2e-4 for the fp32 accumulation order. */
#include "emu_util.hpp"
#include "kernels/cuda/twoway_kernels.cuh"

#include <chrono>

static bool tw_check(const char *what, size_t n, const std::function<double(size_t)> &got,
                       const std::function<double(size_t)> &ref) {
    return check_close(what, n, got, ref, 2e-3, 1.0 / 128, 2.0 * bf16_store_l2(n, ref) + 2e-4);
}

/* Activations bf16, weights bf16, biases f32 (q, v, out) / bf16 (k), norm g f32, b bf16. */
struct Attn {
    int N, Tq, Tk, C, Ci, H, D;
    bool qpe_b1, kpe_b1, has_qpe, has_kpe, residual, biases;
    Buf<lisa_bf16_t> xq, xk, xv, qpe, wq, wk, wv, wo, y;
    Buf<float> kpe, bq, bv, bo, g;
    Buf<lisa_bf16_t> bk, b;
    std::vector<double> vxq, vxk, vxv, vqpe, vkpe, vwq, vwk, vwv, vwo, vbq, vbk, vbv, vbo, vg, vb;
    Attn(int N_, int Tq_, int Tk_, int C_, int Ci_, int H_, int qpe_mode, int kpe_mode, bool res, bool bias, uint64_t seed)
        : N(N_), Tq(Tq_), Tk(Tk_), C(C_), Ci(Ci_), H(H_), D(Ci_ / H_), qpe_b1(qpe_mode == 2), kpe_b1(kpe_mode == 2),
          has_qpe(qpe_mode != 0), has_kpe(kpe_mode != 0), residual(res), biases(bias), xq((size_t)N * Tq * C),
          xk((size_t)N * Tk * C), xv((size_t)N * Tk * C), qpe((size_t)(qpe_b1 ? 1 : N) * Tq * C), wq((size_t)Ci * C),
          wk((size_t)Ci * C), wv((size_t)Ci * C), wo((size_t)C * Ci), y((size_t)N * Tq * C),
          kpe((size_t)(kpe_b1 ? 1 : N) * Tk * C), bq(Ci), bv(Ci), bo(C), g(C), bk(Ci), b(C) {
        Rng r(seed);
        vxq = fill_bf16(xq, r, -2, 2), vxk = fill_bf16(xk, r, -2, 2), vxv = fill_bf16(xv, r, -2, 2);
        vqpe = fill_bf16(qpe, r, -1, 1), vkpe = fill_f32(kpe, r, -1, 1);
        const double sc = 1.7 / sqrt((double)C), so = 1.7 / sqrt((double)Ci);
        vwq = fill_bf16(wq, r, -sc, sc), vwk = fill_bf16(wk, r, -sc, sc), vwv = fill_bf16(wv, r, -sc, sc);
        vwo = fill_bf16(wo, r, -so, so);
        vbq = fill_f32(bq, r, -0.3, 0.3), vbk = fill_bf16(bk, r, -0.3, 0.3), vbv = fill_f32(bv, r, -0.3, 0.3);
        vbo = fill_f32(bo, r, -0.3, 0.3), vg = fill_f32(g, r, 0.5, 1.5), vb = fill_bf16(b, r, -1, 1);
    }

    lk_tw_params params() {
        lk_tw_params p = {};
        p.xq = xq.p, p.qpe = has_qpe ? (const void *)qpe.p : nullptr, p.xk = xk.p, p.kpe = has_kpe ? (const void *)kpe.p : nullptr;
        p.xv = xv.p, p.xq_dt = LK_BF16, p.qpe_dt = LK_BF16, p.xk_dt = LK_BF16, p.kpe_dt = LK_F32, p.xv_dt = LK_BF16;
        p.qpe_b1 = qpe_b1, p.kpe_b1 = kpe_b1, p.wq = wq.p, p.wk = wk.p, p.wv = wv.p, p.wo = wo.p;
        if (biases) p.bq = bq.p, p.bk = bk.p, p.bv = bv.p, p.bo = bo.p;
        p.bq_dt = LK_F32, p.bk_dt = LK_BF16, p.bv_dt = LK_F32, p.bo_dt = LK_F32;
        p.ln_g = g.p, p.ln_b = b.p, p.g_dt = LK_F32, p.b_dt = LK_BF16, p.eps = 1e-5f, p.residual = residual;
        p.y = y.p, p.y_dt = LK_BF16, p.N = N, p.Tq = Tq, p.Tk = Tk, p.C = C, p.Ci = Ci, p.H = H, p.D = D;
        p.scale_log2 = (1.0f / sqrtf((float)D)) * 1.4426950408889634f;
        return p;
    }

    /* The composition in double; round_k: the key input x + pe is the bf16 tensor-core operand;
     * round_q: the query input likewise, and the attention output before the output projection. */
    std::vector<double> reference(bool round_k, bool round_q) const {
        std::vector<double> out((size_t)N * Tq * C);
        auto lin = [](const std::vector<double> &in, int T, int K, const std::vector<double> &w, const std::vector<double> *bias,
                      int O) {
            std::vector<double> r((size_t)T * O);
            for (int t = 0; t < T; t++)
                for (int o = 0; o < O; o++) {
                    double s = bias ? (*bias)[o] : 0.0;
                    for (int k = 0; k < K; k++) s += in[(size_t)t * K + k] * w[(size_t)o * K + k];
                    r[(size_t)t * O + o] = s;
                }
            return r;
        };
        for (int n = 0; n < N; n++) {
            std::vector<double> tq((size_t)Tq * C), tk((size_t)Tk * C), tv((size_t)Tk * C);
            for (int t = 0; t < Tq; t++)
                for (int c = 0; c < C; c++) {
                    float v = (float)vxq[((size_t)n * Tq + t) * C + c];
                    if (has_qpe) v += (float)vqpe[((size_t)(qpe_b1 ? 0 : n) * Tq + t) * C + c];
                    tq[(size_t)t * C + c] = round_q ? bf16_round(v) : (double)v;
                }
            for (int t = 0; t < Tk; t++)
                for (int c = 0; c < C; c++) {
                    float v = (float)vxk[((size_t)n * Tk + t) * C + c];
                    if (has_kpe) v += (float)vkpe[((size_t)(kpe_b1 ? 0 : n) * Tk + t) * C + c];
                    tk[(size_t)t * C + c] = round_k ? bf16_round(v) : (double)v;
                    tv[(size_t)t * C + c] = vxv[((size_t)n * Tk + t) * C + c];
                }
            auto Q = lin(tq, Tq, C, vwq, biases ? &vbq : nullptr, Ci), K = lin(tk, Tk, C, vwk, biases ? &vbk : nullptr, Ci);
            auto V = lin(tv, Tk, C, vwv, biases ? &vbv : nullptr, Ci);
            std::vector<double> O((size_t)Tq * Ci);
            for (int i = 0; i < Tq; i++)
                for (int h = 0; h < H; h++) {
                    std::vector<double> s(Tk);
                    double mx = -INFINITY, sum = 0;
                    for (int j = 0; j < Tk; j++) {
                        double a = 0;
                        for (int d = 0; d < D; d++) a += Q[(size_t)i * Ci + h * D + d] * K[(size_t)j * Ci + h * D + d];
                        s[j] = a / sqrt((double)D);
                        mx = std::max(mx, s[j]);
                    }
                    for (int j = 0; j < Tk; j++) sum += (s[j] = exp(s[j] - mx));
                    for (int d = 0; d < D; d++) {
                        double a = 0;
                        for (int j = 0; j < Tk; j++) a += s[j] * V[(size_t)j * Ci + h * D + d];
                        a /= sum;
                        O[(size_t)i * Ci + h * D + d] = round_q ? bf16_round((float)a) : a;
                    }
                }
            auto A = lin(O, Tq, Ci, vwo, biases ? &vbo : nullptr, C);
            for (int t = 0; t < Tq; t++) {
                double *row = &A[(size_t)t * C], mean = 0, var = 0;
                for (int c = 0; c < C; c++) {
                    if (residual) row[c] += vxq[((size_t)n * Tq + t) * C + c];
                    mean += row[c];
                }
                mean /= C;
                for (int c = 0; c < C; c++) var += (row[c] - mean) * (row[c] - mean);
                const double rstd = 1.0 / sqrt(var / C + 1e-5);
                for (int c = 0; c < C; c++) out[((size_t)n * Tq + t) * C + c] = (row[c] - mean) * rstd * vg[c] + vb[c];
            }
        }
        return out;
    }

    void check(const char *what, const std::vector<double> &ref) {
        tw_check(what, ref.size(), [&](size_t i) { return (double)lk_bf16_to_f32(y[i].bits); },
                   [&](size_t i) { return ref[i]; });
    }
};

/* tokens' self-attention: lk_tw_heads + lk_tw_out_ln */
static void self_attn(int N, int T, int C, int H, bool pe, uint64_t seed) {
    Attn a(N, T, T, C, C, H, pe ? 1 : 0, pe ? 1 : 0, pe, true, seed);
    /* the self form: xk = xv = xq, kpe = qpe */
    memcpy(a.xk.p, a.xq.p, sizeof(lisa_bf16_t) * a.xq.n), memcpy(a.xv.p, a.xq.p, sizeof(lisa_bf16_t) * a.xq.n);
    a.vxk = a.vxv = a.vxq;
    for (size_t i = 0; i < a.kpe.n; i++) a.kpe[i] = (float)(a.vkpe[i] = a.vqpe[i]);
    Buf<float> o((size_t)N * T * C);
    lk_tw_params p = a.params();
    p.o = o.p;
    emu_launch(dim3(H, N), dim3(128), lk_tw_heads_smem(T, T, C, a.D), lk_tw_heads, p);
    emu_launch(dim3(N), dim3(256), lk_tw_out_ln_smem(T, C, C), lk_tw_out_ln, p);
    char what[128];
    snprintf(what, sizeof what, "self-attention N%d T%d C%d H%d%s", N, T, C, H, pe ? "" : " (layer 0: no PE/residual)");
    a.check(what, a.reference(false, false));
}

/* tokens -> image: lk_tw_kv_rows + lk_tw_split + lk_tw_out_ln */
static void t2i(int N, int Tq, int Tk, int C, int Ci, int H, int kpe_mode, bool biases, EmuCopyMode mode, uint64_t seed) {
    Attn a(N, Tq, Tk, C, Ci, H, 1, kpe_mode, true, biases, seed);
    const int S = (Tk + LK_TW_SPLIT_KEYS - 1) / LK_TW_SPLIT_KEYS;
    Buf<float> kf((size_t)N * Tk * Ci), vf((size_t)N * Tk * Ci), po((size_t)N * H * S * Tq * a.D), pml((size_t)N * H * S * Tq * 2);
    lk_tw_params p = a.params();
    p.kf = kf.p, p.vf = vf.p, p.part_o = po.p, p.part_ml = pml.p, p.n_split = S;
    emu_set_copy_mode(mode);
    emu_launch(dim3((Tk + LK_TW_BM - 1) / LK_TW_BM, N), dim3(128), lk_tw_kv_rows_smem(C), lk_tw_kv_rows, p);
    emu_launch(dim3(S, H, N), dim3(128), lk_tw_split_smem(Tq, C, a.D), lk_tw_split, p);
    emu_launch(dim3(N), dim3(256), lk_tw_out_ln_smem(Tq, C, Ci), lk_tw_out_ln, p);
    char what[128];
    snprintf(what, sizeof what, "tokens->image N%d Tq%d Tk%d C%d Ci%d H%d (%d splits)%s", N, Tq, Tk, C, Ci, H, S,
             biases ? "" : " no biases");
    a.check(what, a.reference(true, false));
}

/* image -> tokens: lk_tw_kv_tokens + lk_tw_i2t_rows */
static void i2t(int N, int Tq, int Tk, int C, int Ci, int H, int qpe_mode, EmuCopyMode mode, uint64_t seed) {
    Attn a(N, Tq, Tk, C, Ci, H, qpe_mode, 1, true, true, seed);
    Buf<float> kf((size_t)N * Tk * Ci), vf((size_t)N * Tk * Ci);
    lk_tw_params p = a.params();
    p.kf = kf.p, p.vf = vf.p;
    emu_set_copy_mode(mode);
    emu_launch(dim3((Ci + LK_TW_BN - 1) / LK_TW_BN, N), dim3(256), lk_tw_kv_tokens_smem(Tk, C), lk_tw_kv_tokens, p);
    emu_launch(dim3((Tq + LK_TW_BM - 1) / LK_TW_BM, N), dim3(128), lk_tw_i2t_smem(Tk, C, Ci), lk_tw_i2t_rows, p);
    char what[128];
    snprintf(what, sizeof what, "image->tokens N%d Tq%d Tk%d C%d Ci%d H%d", N, Tq, Tk, C, Ci, H);
    a.check(what, a.reference(false, true));
}

static void mlp(int R, int C, int Hm, uint64_t seed) {
    Rng r(seed);
    Buf<lisa_bf16_t> x((size_t)R * C), w1((size_t)Hm * C), w2((size_t)C * Hm), y((size_t)R * C);
    Buf<float> b1(Hm), g(C);
    Buf<lisa_bf16_t> b2(C);
    Buf<float> bb(C);
    auto vx = fill_bf16(x, r, -2, 2), vw1 = fill_bf16(w1, r, -1.7 / sqrt(C), 1.7 / sqrt(C));
    auto vw2 = fill_bf16(w2, r, -1.7 / sqrt(Hm), 1.7 / sqrt(Hm)), vb1 = fill_f32(b1, r, -0.3, 0.3);
    auto vb2 = fill_bf16(b2, r, -0.3, 0.3), vg = fill_f32(g, r, 0.5, 1.5), vbb = fill_f32(bb, r, -1, 1);
    lk_tw_mlp_params p = {};
    p.x = x.p, p.x_dt = LK_BF16, p.w1 = w1.p, p.w2 = w2.p, p.b1 = b1.p, p.b2 = b2.p, p.b1_dt = LK_F32, p.b2_dt = LK_BF16;
    p.ln_g = g.p, p.ln_b = bb.p, p.g_dt = LK_F32, p.b_dt = LK_F32, p.eps = 1e-5f, p.y = y.p, p.y_dt = LK_BF16;
    p.R = R, p.C = C, p.Hm = Hm, p.n_chunks = (Hm + LK_TW_HC - 1) / LK_TW_HC;
    Buf<float> part((size_t)p.n_chunks * R * C);
    p.part = part.p;
    emu_launch(dim3(p.n_chunks, (R + LK_TW_RG - 1) / LK_TW_RG), dim3(256), lk_tw_mlp_partial_smem(C), lk_tw_mlp_partial, p);
    emu_launch(dim3((R + 7) / 8), dim3(256), (size_t)8 * C * 4, lk_tw_mlp_ln, p);
    std::vector<double> ref((size_t)R * C);
    for (int t = 0; t < R; t++) {
        std::vector<double> h(Hm), row(C);
        for (int o = 0; o < Hm; o++) {
            double s = vb1[o];
            for (int c = 0; c < C; c++) s += vx[(size_t)t * C + c] * vw1[(size_t)o * C + c];
            h[o] = s > 0 ? s : 0;
        }
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) {
            double s = vb2[c];
            for (int k = 0; k < Hm; k++) s += h[k] * vw2[(size_t)c * Hm + k];
            row[c] = vx[(size_t)t * C + c] + s;
            mean += row[c];
        }
        mean /= C;
        for (int c = 0; c < C; c++) var += (row[c] - mean) * (row[c] - mean);
        const double rstd = 1.0 / sqrt(var / C + 1e-5);
        for (int c = 0; c < C; c++) ref[(size_t)t * C + c] = (row[c] - mean) * rstd * vg[c] + vbb[c];
    }
    char what[96];
    snprintf(what, sizeof what, "mlp R%d C%d Hm%d (%d chunks)", R, C, Hm, p.n_chunks);
    tw_check(what, ref.size(), [&](size_t i) { return (double)lk_bf16_to_f32(y[i].bits); }, [&](size_t i) { return ref[i]; });
}

/* MLP3 on strided rows (one token row of [R, 6, C]): three GEMVs, ReLU between, f32 out. */
static void mlp3(int R, int C, int H0, int H1, int O, uint64_t seed) {
    Rng r(seed);
    const int T = 6, row = 1;
    Buf<lisa_bf16_t> x((size_t)R * T * C), w0((size_t)H0 * C), w1((size_t)H1 * H0), w2((size_t)O * H1);
    Buf<float> b0(H0), b1(H1), b2(O), y((size_t)R * O);
    auto vx = fill_bf16(x, r, -2, 2), vw0 = fill_bf16(w0, r, -0.2, 0.2), vw1 = fill_bf16(w1, r, -0.2, 0.2);
    auto vw2 = fill_bf16(w2, r, -0.3, 0.3), vb0 = fill_f32(b0, r, -0.2, 0.2), vb1 = fill_f32(b1, r, -0.2, 0.2);
    auto vb2 = fill_f32(b2, r, -1, 1);
    lk_mlp3_params p = {};
    p.x = x.p + row * C, p.x_dt = LK_BF16, p.x_rs = (int64_t)T * C, p.w0 = w0.p, p.w1 = w1.p, p.w2 = w2.p;
    p.b0 = b0.p, p.b1 = b1.p, p.b2 = b2.p, p.b0_dt = p.b1_dt = p.b2_dt = LK_F32, p.y = y.p, p.y_dt = LK_F32;
    p.R = R, p.C = C, p.H0 = H0, p.H1 = H1, p.O = O;
    emu_launch(dim3((R + LK_TW_RG - 1) / LK_TW_RG), dim3(256), lk_mlp3_smem(C, H0, H1, O), lk_mlp3, p);
    std::vector<double> ref((size_t)R * O);
    for (int n = 0; n < R; n++) {
        std::vector<double> h0(H0), h1(H1);
        for (int o = 0; o < H0; o++) {
            double s = vb0[o];
            for (int c = 0; c < C; c++) s += vx[((size_t)n * T + row) * C + c] * vw0[(size_t)o * C + c];
            h0[o] = s > 0 ? s : 0;
        }
        for (int o = 0; o < H1; o++) {
            double s = vb1[o];
            for (int c = 0; c < H0; c++) s += h0[c] * vw1[(size_t)o * H0 + c];
            h1[o] = s > 0 ? s : 0;
        }
        for (int o = 0; o < O; o++) {
            double s = vb2[o];
            for (int c = 0; c < H1; c++) s += h1[c] * vw2[(size_t)o * H1 + c];
            ref[(size_t)n * O + o] = s;
        }
    }
    char what[96];
    snprintf(what, sizeof what, "mlp3 R%d %d->%d->%d->%d, strided rows, f32 out", R, C, H0, H1, O);
    check_close(what, ref.size(), [&](size_t i) { return (double)y[i]; }, [&](size_t i) { return ref[i]; }, 2e-5, 2e-5);
}

int main(void) {
    TIMED(self_attn(2, 6, 256, 8, true, 1));        /* SAM dims: 6 tokens, 8 heads of 32 */
    TIMED(self_attn(1, 6, 256, 8, false, 2));       /* layer 0: no PE, no residual */
    TIMED(self_attn(3, 7, 48, 4, true, 3));         /* awkward: head dim 12 */
    TIMED(t2i(1, 6, 600, 256, 128, 8, 2, true, EmuCopyMode::LAZY, 4));   /* 3 splits, 19 tiles (last 24 rows) */
    TIMED(t2i(2, 7, 70, 48, 32, 4, 1, false, EmuCopyMode::EAGER, 5));    /* Ci < a weight chunk, per-prompt PE */
    TIMED(i2t(1, 70, 6, 256, 128, 8, 2, EmuCopyMode::LAZY, 6));          /* 3 tiles (last 6 rows) */
    TIMED(i2t(2, 33, 5, 48, 32, 4, 1, EmuCopyMode::EAGER, 7));
    TIMED(i2t(1, 40, 3, 32, 16, 8, 0, EmuCopyMode::LAZY, 8));            /* the tiny LISA's dims: head dim 2 */
    TIMED(mlp(6, 256, 2048, 9));                                         /* SAM: 16 hidden chunks */
    TIMED(mlp(19, 48, 200, 10));                                         /* 2 row groups, partial chunk */
    TIMED(mlp3(3, 256, 256, 256, 32, 11));                               /* SAM's hypernetwork head */
    TIMED(mlp3(19, 40, 24, 16, 3, 12));                                  /* 2 row groups, the IoU head's width */
    if (g_failures) {
        printf("%d check(s) FAILED\n", g_failures);
        return 1;
    }
    printf("all two-way transformer kernel checks passed (emulated)\n");
    return 0;
}
