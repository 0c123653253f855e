/* tests/gpu/emu/test_emu_attn_sm90.cpp — the Hopper flash-attention kernel (kernels/cuda/attn_sm90.cuh:
 * wgmma, TMA, mbarriers, producer + 2 ping-pong consumer warpgroups) run in the emulator against a
 * double-precision softmax(q kᵀ s + bias) v, on awkward shapes:
 *   - SAM windows (qkv packed [B, T, 3, H, 80], 14x14 = 196 tokens in one 208-key tile, 4 row tiles
 *     of which the last holds 4 rows), rel-pos precomputed (REL 1) and fused from the tables (REL 2);
 *   - SAM global-like 20x20 = 400 tokens in 128-key tiles (a 16-key tail tile), both rel modes;
 *   - dense head dims 64 / 80 / 128, causal with a KV prefix, GQA, F32 output, no keys at all;
 *   - variable-length causal batches (sequences of 1, 70, 130, 0 tokens) in one launch;
 * with a persistent grid smaller than the work (several items per CTA: Q and K/V stages reused
 * across items), in LAZY mode (TMA lands at the wait) and EAGER mode (TMA lands at issue, so a
 * stage refilled too early is caught). Tolerances as test_emu_attention.cpp (bf16 P and output). */
#include "emu_util.hpp"
#include "kernels/cuda/attn_sm90.cuh"

#include <chrono>
#include <string>

static const size_t kSmemMax = 232448; /* H100 / H200 opt-in limit per block */

/* Encodes the plan's tensor maps and launches lk_fa3_fwd<D, BN, REL, CAUSAL, VARLEN>. */
template <int D, int BN, int REL, bool CAUSAL, bool VARLEN>
static bool run_fa3(lk_fa3_args a, EmuCopyMode mode, int n_sms, size_t smem_max = kSmemMax, int want_q_stages = 0) {
    a.D = D, a.BN = BN, a.n_sms = n_sms, a.smem_max = smem_max;
    if (BN != lk_fa3_key_tile(D, REL, a.Tk)) {
        fprintf(stderr, "  test asks for %d-key tiles where the launcher would use %d\n", BN, lk_fa3_key_tile(D, REL, a.Tk));
        g_failures++;
        return false;
    }
    lk_fa3_params p;
    lk_tmap_req req[5];
    size_t smem = 0;
    unsigned grid = 0;
    const char *err = lk_fa3_setup(&a, &p, req, &smem, &grid);
    if (err) {
        fprintf(stderr, "  lk_fa3_setup: %s\n", err);
        g_failures++;
        return false;
    }
    if (want_q_stages && p.q_stages != want_q_stages) {
        fprintf(stderr, "  plan has %d Q stages, the case wants %d\n", p.q_stages, want_q_stages);
        g_failures++;
        return false;
    }
    lk_tmap *maps[5] = {&p.tm_q, &p.tm_k, &p.tm_v, &p.tm_rph, &p.tm_rpw};
    const uint32_t es[4] = {1, 1, 1, 1};
    for (int i = 0; i < (REL == 2 ? 5 : 3); i++) {
        err = emu_tmap_encode_tiled(maps[i], 2, req[i].rank, req[i].base, req[i].dims, req[i].strides, req[i].box, es,
                                    req[i].swz);
        if (err) {
            fprintf(stderr, "  tensor map %d: %s\n", i, err);
            g_failures++;
            return false;
        }
    }
    emu_set_copy_mode(mode);
    emu_launch(dim3(grid), dim3(LK_FA3_THREADS), smem, lk_fa3_fwd<D, BN, REL, CAUSAL, VARLEN>, p);
    return true;
}

/* ---- SAM: S x S grid, nwin windows/images, H heads, qkv packed, rel-pos REL 1 or 2 ------------ */
template <int BN, int REL> static void sam(int S, int nwin, int H, uint64_t seed, EmuCopyMode mode, int n_sms) {
    const int D = 80, T = S * S;
    Rng r(seed);
    Buf<lisa_bf16_t> qkv((size_t)nwin * T * 3 * H * D);
    std::vector<double> qkvv = fill_bf16(qkv, r, -1, 1);
    /* REL 1: the terms; REL 2: the tables rel_pos_{h,w} [2S - 1, D] (bf16) */
    Buf<float> relh((size_t)nwin * H * T * S), relw((size_t)nwin * H * T * S);
    std::vector<double> rh = fill_f32(relh, r, -2, 2), rw = fill_f32(relw, r, -2, 2);
    Buf<lisa_bf16_t> tabh((size_t)(2 * S - 1) * D), tabw((size_t)(2 * S - 1) * D);
    std::vector<double> th = fill_bf16(tabh, r, -0.3, 0.3), tw = fill_bf16(tabw, r, -0.3, 0.3);
    Buf<lisa_bf16_t> o((size_t)nwin * T * H * D);

    lk_fa3_args a = {};
    a.q = qkv.p, a.k = qkv.p + H * D, a.v = qkv.p + 2 * H * D, a.o = o.p;
    a.q_bs = a.k_bs = a.v_bs = (int64_t)T * 3 * H * D;
    a.q_rs = a.k_rs = a.v_rs = 3 * H * D;
    a.q_hs = a.k_hs = a.v_hs = D;
    a.o_bs = (int64_t)T * H * D, a.o_rs = H * D, a.o_hs = D;
    a.B = nwin, a.Tq = T, a.Tk = T, a.Hq = H, a.Hkv = H;
    const double scale = 1.0 / sqrt((double)D);
    a.scale = (float)scale;
    a.rel = REL, a.k_h = S, a.k_w = S;
    if (REL == 1) {
        a.rel_h = relh.p, a.rel_w = relw.p, a.rel_dtype = LK_F32;
        a.rh_bs = a.rw_bs = (int64_t)H * T * S, a.rh_hs = a.rw_hs = (int64_t)T * S, a.rh_rs = a.rw_rs = S;
        a.rh_cs = a.rw_cs = 1;
    } else {
        a.rel_pos_h = tabh.p, a.rel_pos_w = tabw.p, a.rph_rs = a.rpw_rs = D;
    }
    if (!run_fa3<80, BN, REL, false, false>(a, mode, n_sms)) return;

    auto at = [&](int which) {
        return [&, which](int b, int t, int h, int d) { return qkvv[(((size_t)b * T + t) * 3 + which) * H * D + h * D + d]; };
    };
    std::vector<int> Tv(nwin, T);
    auto ref = ref_attention(nwin, Tv, Tv, H, H, D, scale, false, at(0), at(1), at(2), [&](int b, int h, int i, int j) {
        if (REL == 1) {
            size_t base = (((size_t)b * H + h) * T + i) * S;
            return rh[base + j / S] + rw[base + j % S];
        }
        /* SAM add_decomposed_rel_pos: rel_h = q·Rh[qy - ky + S - 1], rel_w = q·Rw[qx - kx + S - 1] (unscaled q) */
        const int qy = i / S, qx = i % S, ky = j / S, kx = j % S;
        double sh = 0, sw = 0;
        for (int d = 0; d < D; d++) {
            const double q = qkvv[(((size_t)b * T + i) * 3) * H * D + h * D + d];
            sh += q * th[(size_t)(qy - ky + S - 1) * D + d];
            sw += q * tw[(size_t)(qx - kx + S - 1) * D + d];
        }
        return sh + sw;
    });
    char name[128];
    snprintf(name, sizeof name, "sm90 D=80 BN %d rel-pos %s %dx%d x %d win x %d heads (%s, %d CTAs)", BN,
             REL == 1 ? "terms" : "fused", S, S, nwin, H, mode == EmuCopyMode::LAZY ? "lazy" : "eager", n_sms);
    check_bf16(name, ref.size(), [&](size_t i) { return (double)lk_bf16_to_f32(o[i].bits); }, [&](size_t i) { return ref[i]; });
}

/* ---- dense batch: optional causal with a KV prefix, GQA, optional F32 output -------------------- */
template <int D, bool CAUSAL>
static void dense(int B, int Tq, int Tk, int Hq, int Hkv, bool o_f32, uint64_t seed, EmuCopyMode mode, int n_sms,
                  size_t smem_max = kSmemMax, int want_q_stages = 0) {
    Rng r(seed);
    Buf<lisa_bf16_t> q((size_t)B * Tq * Hq * D), k((size_t)B * (Tk ? Tk : 1) * Hkv * D), v(k.n);
    auto qv = fill_bf16(q, r, -1, 1), kv = fill_bf16(k, r, -1, 1), vv = fill_bf16(v, r, -1, 1);
    Buf<float> of((size_t)B * Tq * Hq * D);
    Buf<lisa_bf16_t> ob((size_t)B * Tq * Hq * D);
    lk_fa3_args a = {};
    a.q = q.p, a.k = k.p, a.v = v.p, a.o = o_f32 ? (void *)of.p : (void *)ob.p, a.o_f32 = o_f32;
    a.q_bs = (int64_t)Tq * Hq * D, a.q_rs = Hq * D, a.q_hs = D;
    a.k_bs = a.v_bs = (int64_t)Tk * Hkv * D, a.k_rs = a.v_rs = Hkv * D, a.k_hs = a.v_hs = D;
    a.o_bs = a.q_bs, a.o_rs = a.q_rs, a.o_hs = D;
    a.B = B, a.Tq = Tq, a.Tk = Tk, a.Hq = Hq, a.Hkv = Hkv, a.causal = CAUSAL;
    const double scale = 1.0 / sqrt((double)D);
    a.scale = (float)scale;
    if (!run_fa3<D, D == 128 ? 112 : 128, 0, CAUSAL, false>(a, mode, n_sms, smem_max, want_q_stages)) return;
    auto acc = [&](const std::vector<double> &x, int T, int H) {
        return [&, T, H](int b, int t, int h, int d) { return x[(((size_t)b * T + t) * H + h) * D + d]; };
    };
    auto ref = ref_attention(B, std::vector<int>(B, Tq), std::vector<int>(B, Tk), Hq, Hkv, D, scale, CAUSAL,
                             acc(qv, Tq, Hq), acc(kv, Tk, Hkv), acc(vv, Tk, Hkv), nullptr);
    char name[128];
    snprintf(name, sizeof name, "sm90 D=%d B%d Tq %d Tk %d Hq %d Hkv %d%s%s%s (%s)", D, B, Tq, Tk, Hq, Hkv,
             CAUSAL ? " causal" : "", o_f32 ? " f32-out" : "", want_q_stages == 1 ? " 1 Q stage" : "",
             mode == EmuCopyMode::LAZY ? "lazy" : "eager");
    check_bf16(name, ref.size(), [&](size_t i) { return o_f32 ? (double)of[i] : (double)lk_bf16_to_f32(ob[i].bits); },
               [&](size_t i) { return ref[i]; });
}

/* ---- varlen: packed sequences, causal (or not), one launch -------------------------------------- */
template <int D, bool CAUSAL> static void varlen(const std::vector<int> &lens, int Hq, int Hkv, uint64_t seed, int n_sms) {
    const int B = (int)lens.size();
    const int total = std::accumulate(lens.begin(), lens.end(), 0), maxlen = *std::max_element(lens.begin(), lens.end());
    Rng r(seed);
    Buf<lisa_bf16_t> q((size_t)total * Hq * D), k((size_t)total * Hkv * D), v(k.n), o((size_t)total * Hq * D);
    auto qv = fill_bf16(q, r, -1, 1), kv = fill_bf16(k, r, -1, 1), vv = fill_bf16(v, r, -1, 1);
    Buf<int32_t> cu(B + 1);
    cu[0] = 0;
    for (int b = 0; b < B; b++) cu[b + 1] = cu[b] + lens[b];
    lk_fa3_args a = {};
    a.q = q.p, a.k = k.p, a.v = v.p, a.o = o.p;
    a.q_rs = Hq * D, a.q_hs = D, a.k_rs = a.v_rs = Hkv * D, a.k_hs = a.v_hs = D, a.o_rs = Hq * D, a.o_hs = D;
    a.cu_q = cu.p, a.cu_k = cu.p, a.total_q = total, a.total_k = total;
    a.B = B, a.Tq = maxlen, a.Tk = 0, a.Hq = Hq, a.Hkv = Hkv, a.causal = CAUSAL;
    const double scale = 1.0 / sqrt((double)D);
    a.scale = (float)scale;
    if (!run_fa3<D, D == 128 ? 112 : 128, 0, CAUSAL, true>(a, EmuCopyMode::LAZY, n_sms)) return;
    auto acc = [&](const std::vector<double> &x, int H) {
        return [&, H](int b, int t, int h, int d) { return x[(((size_t)cu[b] + t) * H + h) * D + d]; };
    };
    auto ref = ref_attention(B, lens, lens, Hq, Hkv, D, scale, CAUSAL, acc(qv, Hq), acc(kv, Hkv), acc(vv, Hkv), nullptr);
    std::string ls;
    for (int l : lens) ls += std::to_string(l) + " ";
    char name[128];
    snprintf(name, sizeof name, "sm90 D=%d varlen%s (%s) Hq %d Hkv %d", D, CAUSAL ? " causal" : "", ls.c_str(), Hq, Hkv);
    check_bf16(name, ref.size(), [&](size_t i) { return (double)lk_bf16_to_f32(o[i].bits); }, [&](size_t i) { return ref[i]; });
}

int main(void) {
    /* SAM windows: 196 tokens, one 208-key tile; 2 windows x 2 heads = 8 items on 3 CTAs */
    TIMED((sam<208, 1>(14, 2, 2, 1, EmuCopyMode::LAZY, 3)));
    TIMED((sam<208, 2>(14, 2, 2, 2, EmuCopyMode::LAZY, 3)));
    TIMED((sam<208, 2>(14, 1, 3, 3, EmuCopyMode::EAGER, 2)));
    /* SAM global-like: 400 tokens, 4 key tiles of 128 (the last 16 keys), 4 m-blocks */
    TIMED((sam<128, 1>(20, 1, 1, 4, EmuCopyMode::LAZY, 2)));
    TIMED((sam<128, 2>(20, 1, 1, 5, EmuCopyMode::EAGER, 3)));
    /* dense: causal with an 80-key prefix (D 128), GQA; CLIP-like D 64 with F32 output; D 80 */
    TIMED((dense<128, true>(1, 20, 100, 2, 1, false, 6, EmuCopyMode::LAZY, 2)));
    TIMED((dense<64, false>(2, 65, 33, 3, 3, true, 7, EmuCopyMode::EAGER, 4)));
    TIMED((dense<80, false>(1, 130, 300, 2, 2, false, 8, EmuCopyMode::LAZY, 3)));
    TIMED((dense<128, true>(2, 129, 129, 1, 1, false, 9, EmuCopyMode::EAGER, 3)));
    TIMED((dense<128, false>(1, 3, 0, 1, 1, false, 10, EmuCopyMode::LAZY, 1))); /* no keys: NaN, as torch */
    /* shared memory for one Q stage only (the plan's fallback): 6 items on 2 CTAs reuse it */
    TIMED((dense<80, false>(1, 300, 200, 2, 2, false, 13, EmuCopyMode::EAGER, 2, 110000, 1)));
    /* varlen causal prefill (LLaMA, D 128, GQA 2:1), and D 64 with an empty sequence */
    TIMED((varlen<128, true>({1, 70, 130}, 2, 1, 11, 3)));
    TIMED((varlen<64, false>({33, 0, 129}, 2, 2, 12, 2)));
    if (g_failures) {
        printf("%d check(s) FAILED\n", g_failures);
        return 1;
    }
    printf("all sm90 attention kernel checks passed (emulated)\n");
    return 0;
}
