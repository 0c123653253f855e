/* tests/gpu/emu/test_emu_gemv.cpp — the small-M linear (kernels/cuda/gemv_kernels.cuh, the decode
 * projections) in the host emulator against a double-precision x·wᵀ, at awkward shapes: M 1/3/9/16
 * (the 8- and 16-row variants), N not a multiple of the 32-row tile, K = 8 (one partial step),
 * 1024 (one full split) and 2056/3000 (split-K with a short last split), strided x, every epilogue
 * (bias of either dtype, ReLU, erf GELU, quick GELU, a residual aliasing y), BF16 and F32 outputs.
 * Also: the same bits on a second run (the split-K merge is ordered, not atomic), the tickets back
 * at zero after every launch, and row m's result independent of M (batch invariance). Tolerances:
 * bf16 inputs are exact and products exact in fp32, so the error is fp32 summation order
 * (F32 out: 1e-5·sqrt(K) abs) plus one bf16 rounding (BF16 out: twice the storage error). */
#include "emu_util.hpp"
#include "kernels/cuda/gemv_kernels.cuh"

#include <vector>

struct GemvCase {
    int M, N, K, lda, act;
    bool bias, bias_f32, res, y_f32;
};

/* Runs the kernel as the launcher does; returns the output as doubles (and the raw y bits). */
static std::vector<double> run(const GemvCase &cs, Buf<lisa_bf16_t> &x, Buf<lisa_bf16_t> &w, const void *bias,
                               const std::vector<double> &res0, std::vector<uint32_t> *bits, bool *tickets_zero) {
    const int S = (cs.K + LK_GEMV_KC - 1) / LK_GEMV_KC, tiles = (cs.N + LK_GEMV_ROWS - 1) / LK_GEMV_ROWS;
    Buf<float> yf((size_t)cs.M * cs.N);
    Buf<lisa_bf16_t> yb((size_t)cs.M * cs.N);
    for (size_t i = 0; i < res0.size(); i++) { /* the residual lives in y (aliasing) */
        yf[i] = (float)res0[i];
        yb[i].bits = lk_f32_to_bf16((float)res0[i]);
    }
    Buf<float> part((size_t)S * cs.M * cs.N);
    Buf<int> tickets(tiles);
    for (int i = 0; i < tiles; i++) tickets[i] = 0;
    lk_gemv_params p = {};
    p.x = x.p, p.lda = cs.lda, p.w = w.p;
    p.y = cs.y_f32 ? (void *)yf.p : (void *)yb.p, p.ydt = cs.y_f32 ? LK_F32 : LK_BF16, p.ldy = cs.N;
    p.bias = bias, p.bdt = cs.bias_f32 ? LK_F32 : LK_BF16;
    p.res = cs.res ? p.y : nullptr, p.ldr = cs.N;
    p.act = cs.act, p.M = cs.M, p.N = cs.N, p.K = cs.K, p.S = S, p.part = part.p, p.tickets = tickets.p;
    if (cs.M <= 8)
        emu_launch(dim3(tiles, S), dim3(LK_GEMV_WARPS * 32), lk_gemv_smem_bytes(8), lk_gemv<8>, p);
    else
        emu_launch(dim3(tiles, S), dim3(LK_GEMV_WARPS * 32), lk_gemv_smem_bytes(16), lk_gemv<16>, p);
    *tickets_zero = true;
    for (int i = 0; i < tiles; i++) *tickets_zero = *tickets_zero && tickets[i] == 0;
    std::vector<double> out((size_t)cs.M * cs.N);
    bits->resize(out.size());
    for (size_t i = 0; i < out.size(); i++) {
        out[i] = cs.y_f32 ? (double)yf[i] : (double)lk_bf16_to_f32(yb[i].bits);
        (*bits)[i] = cs.y_f32 ? lk_f32_bits(yf[i]) : yb[i].bits;
    }
    return out;
}

static double act_ref(int act, double v) {
    if (act == LK_ACT_RELU) return v > 0 ? v : 0;
    if (act == LK_ACT_GELU) return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    if (act == LK_ACT_QUICK_GELU) return v / (1 + exp(-1.702 * v));
    return v;
}

static void gemv_case(const GemvCase &cs, uint64_t seed) {
    Rng r(seed);
    Buf<lisa_bf16_t> x((size_t)(cs.M - 1) * cs.lda + cs.K), w((size_t)cs.N * cs.K);
    auto xv = fill_bf16(x, r, -1, 1), wv = fill_bf16(w, r, -1, 1);
    Buf<float> bf(cs.N);
    Buf<lisa_bf16_t> bb(cs.N);
    auto bfv = fill_f32(bf, r, -1, 1), bbv = fill_bf16(bb, r, -1, 1);
    const void *bias = cs.bias ? (cs.bias_f32 ? (const void *)bf.p : (const void *)bb.p) : nullptr;
    std::vector<double> res0;
    if (cs.res) {
        res0.resize((size_t)cs.M * cs.N);
        for (auto &v : res0) v = cs.y_f32 ? (double)(float)r.uniform(-2, 2) : (double)bf16_round((float)r.uniform(-2, 2));
    }
    std::vector<uint32_t> bits1, bits2;
    bool z1, z2;
    auto got = run(cs, x, w, bias, res0, &bits1, &z1);
    run(cs, x, w, bias, res0, &bits2, &z2);
    std::vector<double> ref((size_t)cs.M * cs.N);
    for (int m = 0; m < cs.M; m++)
        for (int n = 0; n < cs.N; n++) {
            double acc = 0;
            for (int k = 0; k < cs.K; k++) acc += xv[(size_t)m * cs.lda + k] * wv[(size_t)n * cs.K + k];
            if (cs.bias) acc += cs.bias_f32 ? bfv[n] : bbv[n];
            acc = act_ref(cs.act, acc);
            if (cs.res) acc += res0[(size_t)m * cs.N + n];
            ref[(size_t)m * cs.N + n] = acc;
        }
    char name[160];
    static const char *acts[4] = {"", " relu", " gelu", " quick-gelu"};
    snprintf(name, sizeof name, "gemv M%d N%d K%d%s%s%s%s -> %s (S %d)", cs.M, cs.N, cs.K, cs.lda != cs.K ? " strided" : "",
             cs.bias ? (cs.bias_f32 ? " +bias f32" : " +bias bf16") : "", acts[cs.act], cs.res ? " +residual(=y)" : "",
             cs.y_f32 ? "f32" : "bf16", (cs.K + LK_GEMV_KC - 1) / LK_GEMV_KC);
    /* fp32 erff/expf add a few ulps */
    if (cs.y_f32)
        check_close(name, ref.size(), [&](size_t i) { return got[i]; }, [&](size_t i) { return ref[i]; },
                    1e-5 * sqrt((double)cs.K), 1e-5);
    else
        check_close(name, ref.size(), [&](size_t i) { return got[i]; }, [&](size_t i) { return ref[i]; },
                    1e-5 * sqrt((double)cs.K), 1.0 / 128, 2.0 * bf16_store_l2(ref.size(), [&](size_t i) { return ref[i]; }) + 1e-6);
    const bool same = bits1 == bits2;
    printf("%-58s %s\n", "  same bits on a second run, tickets back at zero", same && z1 && z2 ? "ok" : "FAIL");
    if (!(same && z1 && z2)) g_failures++;
}

/* Row m of an M-row call is bit-identical to the same row alone (M = 1) and inside M = 16. */
static void batch_invariance(uint64_t seed) {
    Rng r(seed);
    const int N = 45, K = 2056;
    Buf<lisa_bf16_t> x((size_t)16 * K), w((size_t)N * K);
    fill_bf16(x, r, -1, 1), fill_bf16(w, r, -1, 1);
    std::vector<uint32_t> b1, b3, b16;
    bool z;
    run({1, N, K, K, 0, false, false, false, true}, x, w, nullptr, {}, &b1, &z);
    run({3, N, K, K, 0, false, false, false, true}, x, w, nullptr, {}, &b3, &z);
    run({16, N, K, K, 0, false, false, false, true}, x, w, nullptr, {}, &b16, &z);
    bool ok = true;
    for (int n = 0; n < N; n++) ok = ok && b1[n] == b3[n] && b1[n] == b16[n];
    for (int m = 0; m < 3; m++)
        for (int n = 0; n < N; n++) ok = ok && b3[(size_t)m * N + n] == b16[(size_t)m * N + n];
    printf("%-58s %s\n", "gemv: row m's bits independent of M (1 / 3 / 16 rows)", ok ? "ok" : "FAIL");
    if (!ok) g_failures++;
}

int main(void) {
    gemv_case({1, 37, 8, 8, LK_ACT_NONE, true, false, false, false}, 1);       /* one partial step */
    gemv_case({1, 64, 1024, 1024, LK_ACT_NONE, false, false, false, true}, 2); /* one full split, two tiles */
    gemv_case({3, 100, 2056, 2056, LK_ACT_NONE, false, false, true, true}, 3); /* S 3, residual aliasing y */
    gemv_case({9, 33, 3000, 3008, LK_ACT_QUICK_GELU, true, false, false, false}, 4); /* 16-row variant, strided x */
    gemv_case({16, 70, 1024, 1024, LK_ACT_GELU, true, true, false, true}, 5);
    gemv_case({7, 40, 1536, 1536, LK_ACT_RELU, true, true, true, false}, 6);
    batch_invariance(7);
    if (g_failures) {
        printf("%d check(s) FAILED\n", g_failures);
        return 1;
    }
    printf("all small-M linear checks passed (emulated)\n");
    return 0;
}
