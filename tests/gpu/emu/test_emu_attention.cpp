/* tests/gpu/emu/test_emu_attention.cpp — the attention kernels of kernels/cuda/attn_kernels.cuh,
 * run in the host emulator against a double-precision softmax(q kᵀ s + bias) v.
 *
 * Shapes are the real LISA layouts at reduced sizes (the emulator runs a thread per CUDA thread):
 * SAM windows (qkv packed as [B, T, 3, H, 80], rel-pos, 14x14 and a multi-tile 20x20 grid), LLaMA
 * causal varlen prefill (head dim 128, GQA, sequences of 1/70/130), a causal KV-prefix, CLIP-like
 * head dim 64 with an F32 output, decode over contiguous and paged caches with split-K, the
 * two-way transformer's 6-token attention, and the reference fallback with bias/causal/GQA and
 * awkward head dims. Tolerances: bf16 inputs are exact in both; the kernels round P to bf16
 * before P·V (flash) and the output to bf16, so |err| <= 1e-2 + 1e-2|ref| for values in [-1, 1];
 * F32 paths 2e-5. */
#include "emu_util.hpp"
#include "kernels/cuda/attn_kernels.cuh"

#include <algorithm>
#include <chrono>
#include <functional>
#include <numeric>
#include <type_traits>

/* ---- flash: SAM windows with rel-pos, qkv packed [B, T, 3, H, D] --------------------------- */
static void flash_sam(int S, int nwin, int H, uint64_t seed, EmuCopyMode mode) {
    const int D = 80, T = S * S;
    Rng r(seed);
    Buf<lisa_bf16_t> qkv((size_t)nwin * T * 3 * H * D);
    std::vector<double> qkvv = fill_bf16(qkv, r, -1, 1);
    Buf<float> relh((size_t)nwin * H * T * S), relw((size_t)nwin * H * T * S);
    std::vector<double> rh = fill_f32(relh, r, -2, 2), rw = fill_f32(relw, r, -2, 2);
    Buf<lisa_bf16_t> o((size_t)nwin * T * H * D);

    lk_flash_params p = {};
    p.q = qkv.p;
    p.k = qkv.p + H * D;
    p.v = qkv.p + 2 * H * D;
    p.o = o.p;
    p.q_bs = p.k_bs = p.v_bs = (int64_t)T * 3 * H * D;
    p.q_rs = p.k_rs = p.v_rs = 3 * H * D;
    p.q_hs = p.k_hs = p.v_hs = D;
    p.o_bs = (int64_t)T * H * D, p.o_rs = H * D, p.o_hs = D;
    p.B = nwin, p.Tq = T, p.Tk = T, p.Hq = H, p.Hkv = H;
    const double scale = 1.0 / sqrt((double)D);
    p.scale_log2 = (float)scale * LK_LOG2E;
    p.rel_h = relh.p, p.rel_w = relw.p, p.rel_dtype = LK_F32, p.k_h = S, p.k_w = S;
    p.rh_bs = p.rw_bs = (int64_t)H * T * S, p.rh_hs = p.rw_hs = (int64_t)T * S, p.rh_rs = p.rw_rs = S;
    p.rh_cs = p.rw_cs = 1;
    emu_set_copy_mode(mode);
    emu_launch(dim3((T + 63) / 64, H, nwin), dim3(LK_FLASH_THREADS), lk_flash_smem_bytes(D, S, S), lk_flash_select<80>(p), p);

    auto at = [&](int which) {
        return [&, which](int b, int t, int h, int d) { return qkvv[(((size_t)b * T + t) * 3 + which) * H * D + h * D + d]; };
    };
    std::vector<int> Tv(nwin, T);
    auto ref = ref_attention(nwin, Tv, Tv, H, H, D, scale, false, at(0), at(1), at(2), [&](int b, int h, int i, int j) {
        size_t base = (((size_t)b * H + h) * T + i) * S;
        return rh[base + j / S] + rw[base + j % S];
    });
    char name[96];
    snprintf(name, sizeof name, "flash D=80 rel-pos %dx%d x %d windows x %d heads (%s)", S, S, nwin, H,
             mode == EmuCopyMode::LAZY ? "lazy" : "eager");
    check_bf16(name, ref.size(), [&](size_t i) { return (double)lk_bf16_to_f32(o[i].bits); },
               [&](size_t i) { return ref[i]; });
}

/* ---- flash: SAM rel-pos fused (REL 2): the kernel computes q·rel_pos_h / q·rel_pos_w itself ----
 * q/k/v packed [nwin, T, 3, H, D] (T = Sh·Sw), tables [2S - 1, D] with row stride D + tpad (bf16);
 * the last `pad` grid rows and columns of every window are SAM's zero padding after norm1, i.e.
 * q = k = v = the qkv bias (one vector per window and part, not masked: spec §5.1). The kernel runs
 * every query block; the double reference checks the rows of the blocks in `check_blocks` (all when
 * empty), with the rel-pos terms from the unscaled q as add_decomposed_rel_pos. */
template <int D>
static void flash_sam_fused(int Sh, int Sw, int nwin, int H, int pad, int tpad, bool o_f32, uint64_t seed, EmuCopyMode mode,
                            std::vector<int> check_blocks = {}) {
    const int T = Sh * Sw, rs = D + tpad;
    Rng r(seed);
    Buf<lisa_bf16_t> qkv((size_t)nwin * T * 3 * H * D);
    std::vector<double> x = fill_bf16(qkv, r, -1, 1);
    for (int b = 0; b < nwin; b++) /* padded tokens: copies of token 0 of a bias window */
        for (int t = 0; t < T; t++) {
            if (t / Sw < Sh - pad && t % Sw < Sw - pad) continue;
            for (int e = 0; e < 3 * H * D; e++) {
                const size_t dst = ((size_t)b * T + t) * 3 * H * D + e, src = (size_t)(nwin - 1 - b) * T * 3 * H * D + e;
                qkv[dst] = qkv[src];
                x[dst] = x[src];
            }
        }
    Buf<lisa_bf16_t> th((size_t)(2 * Sh - 1) * rs), tw((size_t)(2 * Sw - 1) * rs);
    std::vector<double> thv = fill_bf16(th, r, -0.3, 0.3), twv = fill_bf16(tw, r, -0.3, 0.3);
    Buf<lisa_bf16_t> ob((size_t)nwin * T * H * D);
    Buf<float> of((size_t)nwin * T * H * D);

    lk_flash_params p = {};
    p.q = qkv.p, p.k = qkv.p + H * D, p.v = qkv.p + 2 * H * D, p.o = o_f32 ? (void *)of.p : (void *)ob.p, p.o_f32 = o_f32;
    p.q_bs = p.k_bs = p.v_bs = (int64_t)T * 3 * H * D;
    p.q_rs = p.k_rs = p.v_rs = 3 * H * D;
    p.q_hs = p.k_hs = p.v_hs = D;
    p.o_bs = (int64_t)T * H * D, p.o_rs = H * D, p.o_hs = D;
    p.B = nwin, p.Tq = T, p.Tk = T, p.Hq = H, p.Hkv = H;
    const double scale = 1.0 / sqrt((double)D);
    p.scale_log2 = (float)scale * LK_LOG2E;
    p.k_h = Sh, p.k_w = Sw, p.rel_pos_h = th.p, p.rel_pos_w = tw.p, p.rph_rs = p.rpw_rs = rs;
    lk_flash_fn fn = lk_flash_select<D>(p);
    const bool even = T % 64 == 0, rowt = even && Sw == 64; /* REL 3: one grid row per key tile */
    const lk_flash_fn want = rowt   ? (lk_flash_fn)lk_flash_fwd_v<D, 3, false, false, true>
                             : even ? (lk_flash_fn)lk_flash_fwd_v<D, 2, false, false, true>
                                    : (lk_flash_fn)lk_flash_fwd_v<D, 2, false, false, false>;
    if (fn != want) {
        printf("%-58s FAIL  (lk_flash_select did not pick the fused REL %d variant)\n", "flash rel-pos fused", rowt ? 3 : 2);
        g_failures++;
        return;
    }
    emu_set_copy_mode(mode);
    emu_launch(dim3((T + 63) / 64, H, nwin), dim3(LK_FLASH_THREADS), lk_flash_smem_bytes(D, Sh, Sw), fn, p);

    /* double reference of the checked rows; other rows are left out of the comparison */
    std::vector<char> want_row(T, check_blocks.empty() ? 1 : 0);
    for (int blk : check_blocks)
        for (int i = blk * 64; i < std::min(T, blk * 64 + 64); i++) want_row[i] = 1;
    std::vector<double> ref, got;
    std::vector<double> sc(T), rh(Sh), rw(Sw);
    auto at = [&](int b, int t, int part, int h, int d) { return x[(((size_t)b * T + t) * 3 + part) * H * D + h * D + d]; };
    for (int b = 0; b < nwin; b++)
        for (int i = 0; i < T; i++) {
            if (!want_row[i]) continue;
            for (int h = 0; h < H; h++) {
                const int qy = i / Sw, qx = i % Sw;
                for (int ky = 0; ky < Sh; ky++) {
                    double a = 0;
                    for (int d = 0; d < D; d++) a += at(b, i, 0, h, d) * thv[(size_t)(qy - ky + Sh - 1) * rs + d];
                    rh[ky] = a;
                }
                for (int kx = 0; kx < Sw; kx++) {
                    double a = 0;
                    for (int d = 0; d < D; d++) a += at(b, i, 0, h, d) * twv[(size_t)(qx - kx + Sw - 1) * rs + d];
                    rw[kx] = a;
                }
                double mx = -INFINITY;
                for (int j = 0; j < T; j++) {
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += at(b, i, 0, h, d) * at(b, j, 1, h, d);
                    sc[j] = dot * scale + rh[j / Sw] + rw[j % Sw];
                    mx = std::max(mx, sc[j]);
                }
                double sum = 0;
                for (int j = 0; j < T; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += sc[j] * at(b, j, 2, h, d);
                    ref.push_back(o / sum);
                    const size_t oi = (((size_t)b * T + i) * H + h) * D + d;
                    got.push_back(o_f32 ? (double)of[oi] : (double)lk_bf16_to_f32(ob[oi].bits));
                }
            }
        }
    char name[128];
    snprintf(name, sizeof name, "flash D=%d rel-pos FUSED%s %dx%d%s x %d win x %d heads%s%s (%s)", D, rowt ? " (rows)" : "", Sh, Sw,
             pad ? " padded" : "", nwin, H, o_f32 ? " f32-out" : "", tpad ? " strided tables" : "",
             mode == EmuCopyMode::LAZY ? "lazy" : "eager");
    check_bf16(name, ref.size(), [&](size_t i) { return got[i]; }, [&](size_t i) { return ref[i]; });
}

/* ---- flash: causal varlen prefill, D = 128, GQA --------------------------------------------- */
static void flash_varlen(const std::vector<int> &lens, int Hq, int Hkv, uint64_t seed) {
    const int D = 128, B = (int)lens.size();
    int total = std::accumulate(lens.begin(), lens.end(), 0), maxlen = *std::max_element(lens.begin(), lens.end());
    Rng r(seed);
    Buf<lisa_bf16_t> q((size_t)total * Hq * D), k((size_t)total * Hkv * D), v((size_t)total * Hkv * D),
        o((size_t)total * Hq * D);
    auto qv = fill_bf16(q, r, -1, 1), kv = fill_bf16(k, r, -1, 1), vv = fill_bf16(v, r, -1, 1);
    Buf<int32_t> cu(B + 1);
    cu[0] = 0;
    for (int b = 0; b < B; b++) cu[b + 1] = cu[b] + lens[b];

    lk_flash_params p = {};
    p.q = q.p, p.k = k.p, p.v = v.p, p.o = o.p;
    p.q_rs = Hq * D, p.q_hs = D, p.k_rs = Hkv * D, p.k_hs = D, p.v_rs = Hkv * D, p.v_hs = D, p.o_rs = Hq * D, p.o_hs = D;
    p.cu_seqlens_q = cu.p, p.cu_seqlens_k = cu.p;
    p.B = B, p.Tq = maxlen, p.Tk = 0, p.Hq = Hq, p.Hkv = Hkv, p.causal = true;
    const double scale = 1.0 / sqrt((double)D);
    p.scale_log2 = (float)scale * LK_LOG2E;
    emu_set_copy_mode(EmuCopyMode::LAZY);
    emu_launch(dim3((maxlen + 63) / 64, Hq, B), dim3(LK_FLASH_THREADS), lk_flash_smem_bytes(D, 0, 0), lk_flash_select<128>(p), p);

    auto acc = [&](const std::vector<double> &x, int H) {
        return [&, H](int b, int t, int h, int d) { return x[(((size_t)cu[b] + t) * H + h) * D + d]; };
    };
    auto ref = ref_attention(B, lens, lens, Hq, Hkv, D, scale, true, acc(qv, Hq), acc(kv, Hkv), acc(vv, Hkv), nullptr);
    char name[96];
    snprintf(name, sizeof name, "flash D=128 causal varlen (%zu seqs, max %d) Hq %d Hkv %d", lens.size(), maxlen, Hq, Hkv);
    check_bf16(name, ref.size(), [&](size_t i) { return (double)lk_bf16_to_f32(o[i].bits); },
               [&](size_t i) { return ref[i]; });
}

/* ---- flash: dense batch, optional causal with a KV prefix (Tk > Tq), optional F32 output ---- */
template <int D> static void flash_dense(int B, int Tq, int Tk, int H, bool causal, bool o_f32, uint64_t seed) {
    Rng r(seed);
    Buf<lisa_bf16_t> q((size_t)B * Tq * H * D), k((size_t)B * Tk * H * D), v((size_t)B * Tk * H * D);
    auto qv = fill_bf16(q, r, -1, 1), kv = fill_bf16(k, r, -1, 1), vv = fill_bf16(v, r, -1, 1);
    Buf<float> of((size_t)B * Tq * H * D);
    Buf<lisa_bf16_t> ob((size_t)B * Tq * H * D);
    lk_flash_params p = {};
    p.q = q.p, p.k = k.p, p.v = v.p, p.o = o_f32 ? (void *)of.p : (void *)ob.p, p.o_f32 = o_f32;
    p.q_bs = (int64_t)Tq * H * D, p.q_rs = H * D, p.q_hs = D;
    p.k_bs = p.v_bs = (int64_t)Tk * H * D, p.k_rs = p.v_rs = H * D, p.k_hs = p.v_hs = D;
    p.o_bs = p.q_bs, p.o_rs = p.q_rs, p.o_hs = D;
    p.B = B, p.Tq = Tq, p.Tk = Tk, p.Hq = H, p.Hkv = H, p.causal = causal;
    const double scale = 1.0 / sqrt((double)D);
    p.scale_log2 = (float)scale * LK_LOG2E;
    emu_set_copy_mode(EmuCopyMode::EAGER);
    emu_launch(dim3((Tq + 63) / 64, H, B), dim3(LK_FLASH_THREADS), lk_flash_smem_bytes(D, 0, 0), lk_flash_select<D>(p), p);
    auto acc = [&](const std::vector<double> &x, int T) {
        return [&, T](int b, int t, int h, int d) { return x[(((size_t)b * T + t) * H + h) * D + d]; };
    };
    auto ref = ref_attention(B, std::vector<int>(B, Tq), std::vector<int>(B, Tk), H, H, D, scale, causal, acc(qv, Tq),
                             acc(kv, Tk), acc(vv, Tk), nullptr);
    char name[96];
    snprintf(name, sizeof name, "flash D=%d B%d Tq %d Tk %d H %d%s%s", D, B, Tq, Tk, H, causal ? " causal" : "",
             o_f32 ? " f32-out" : "");
    check_bf16(name, ref.size(), [&](size_t i) { return o_f32 ? (double)of[i] : (double)lk_bf16_to_f32(ob[i].bits); },
               [&](size_t i) { return ref[i]; });
}

/* ---- split-KV over a contiguous cache ------------------------------------------------------- */
template <typename T>
static void splitkv_contig(int B, int Tq, const std::vector<int> &lens, int Hq, int Hkv, int D, int n_split, bool causal,
                           uint64_t seed) {
    const int Tk = *std::max_element(lens.begin(), lens.end());
    Rng r(seed);
    std::vector<double> qv((size_t)B * Tq * Hq * D), kv((size_t)B * Tk * Hkv * D), vv(kv.size());
    Buf<T> q(qv.size()), k(kv.size()), v(vv.size()), o((size_t)B * Tq * Hq * D);
    auto fill = [&](Buf<T> &b, std::vector<double> &x) {
        for (size_t i = 0; i < x.size(); i++) {
            b[i] = lk_from_f32<T>((float)r.uniform(-1, 1));
            x[i] = lk_to_f32(b[i]);
        }
    };
    fill(q, qv), fill(k, kv), fill(v, vv);
    Buf<int32_t> sl(B);
    for (int b = 0; b < B; b++) sl[b] = lens[b];
    int kps = ((Tk + n_split - 1) / n_split + 31) / 32 * 32;
    Buf<float> po((size_t)B * Hq * n_split * Tq * D), pml((size_t)B * Hq * n_split * Tq * 2);
    lk_splitkv_params p = {};
    p.q = q.p, p.q_bs = (int64_t)Tq * Hq * D, p.q_rs = Hq * D, p.q_hs = D;
    p.k = k.p, p.v = v.p, p.k_bs = p.v_bs = (int64_t)Tk * Hkv * D, p.k_rs = p.v_rs = Hkv * D, p.k_hs = p.v_hs = D;
    p.seqlens_k = sl.p;
    p.o = o.p, p.o_bs = p.q_bs, p.o_rs = p.q_rs, p.o_hs = D;
    p.part_o = po.p, p.part_ml = pml.p;
    p.B = B, p.Tq = Tq, p.Tk = Tk, p.Hq = Hq, p.Hkv = Hkv, p.D = D, p.n_split = n_split, p.keys_per_split = kps;
    const double scale = 1.0 / sqrt((double)D);
    p.scale_log2 = (float)scale * LK_LOG2E, p.causal = causal;
    emu_launch(dim3(n_split, Hq, B), dim3(128), 0, lk_attn_splitkv<T>, p);
    if (n_split > 1) emu_launch(dim3(Hq, B), dim3(128), 0, lk_attn_combine<T>, p);
    auto accq = [&](int b, int t, int h, int d) { return qv[(((size_t)b * Tq + t) * Hq + h) * D + d]; };
    auto acck = [&](int b, int t, int h, int d) { return kv[(((size_t)b * Tk + t) * Hkv + h) * D + d]; };
    auto accv = [&](int b, int t, int h, int d) { return vv[(((size_t)b * Tk + t) * Hkv + h) * D + d]; };
    auto ref = ref_attention(B, std::vector<int>(B, Tq), lens, Hq, Hkv, D, scale, causal, accq, acck, accv, nullptr);
    char name[96];
    snprintf(name, sizeof name, "splitkv %s Tq %d Tk<=%d Hq %d Hkv %d D %d splits %d%s",
             sizeof(T) == 4 ? "f32" : (std::is_same<T, lisa_bf16_t>::value ? "bf16" : "f16"),
             Tq, Tk, Hq, Hkv, D, n_split, causal ? " causal" : "");
    if (sizeof(T) == 4)
        check_close(name, ref.size(), [&](size_t i) { return (double)lk_to_f32(o[i]); }, [&](size_t i) { return ref[i]; },
                    2e-5, 2e-5);
    else
        check_bf16(name, ref.size(), [&](size_t i) { return (double)lk_to_f32(o[i]); }, [&](size_t i) { return ref[i]; });
}

/* ---- split-KV over a paged cache: pages of 16 tokens, shuffled page ids --------------------- */
static void splitkv_paged(const std::vector<int> &lens, int H, int D, int n_split, uint64_t seed) {
    const int B = (int)lens.size(), PS = 16;
    Rng r(seed);
    std::vector<int> indptr(B + 1, 0);
    for (int b = 0; b < B; b++) indptr[b + 1] = indptr[b] + (lens[b] + PS - 1) / PS;
    const int n_pages = indptr[B] + 3; /* a few unused pages */
    std::vector<int> perm(n_pages);
    std::iota(perm.begin(), perm.end(), 0);
    for (int i = n_pages - 1; i > 0; i--) std::swap(perm[i], perm[r.next() % (uint64_t)(i + 1)]);
    Buf<int32_t> d_indptr(B + 1), d_idx(indptr[B]), d_len(B);
    for (int b = 0; b <= B; b++) d_indptr[b] = indptr[b];
    for (int i = 0; i < indptr[B]; i++) d_idx[i] = perm[i];
    for (int b = 0; b < B; b++) d_len[b] = lens[b];
    Buf<lisa_bf16_t> q((size_t)B * H * D), kp((size_t)n_pages * PS * H * D), vp((size_t)n_pages * PS * H * D),
        o((size_t)B * H * D);
    auto qv = fill_bf16(q, r, -1, 1), kv = fill_bf16(kp, r, -1, 1), vv = fill_bf16(vp, r, -1, 1);
    int Tk = *std::max_element(lens.begin(), lens.end());
    int kps = ((Tk + n_split - 1) / n_split + 31) / 32 * 32;
    Buf<float> po((size_t)B * H * n_split * D), pml((size_t)B * H * n_split * 2);
    lk_splitkv_params p = {};
    p.q = q.p, p.q_bs = (int64_t)H * D, p.q_rs = 0, p.q_hs = D;
    p.k = kp.p, p.v = vp.p;
    p.kv_indptr = d_indptr.p, p.kv_indices = d_idx.p, p.kv_len = d_len.p, p.page_size = PS;
    p.k_rs = p.v_rs = (int64_t)H * D, p.k_hs = p.v_hs = D;
    p.o = o.p, p.o_bs = (int64_t)H * D, p.o_rs = 0, p.o_hs = D;
    p.part_o = po.p, p.part_ml = pml.p;
    p.B = B, p.Tq = 1, p.Tk = Tk, p.Hq = H, p.Hkv = H, p.D = D, p.n_split = n_split, p.keys_per_split = kps;
    const double scale = 1.0 / sqrt((double)D);
    p.scale_log2 = (float)scale * LK_LOG2E;
    emu_launch(dim3(n_split, H, B), dim3(128), 0, lk_attn_splitkv<lisa_bf16_t>, p);
    if (n_split > 1) emu_launch(dim3(H, B), dim3(128), 0, lk_attn_combine<lisa_bf16_t>, p);
    auto paged = [&](const std::vector<double> &x) {
        return [&](int b, int t, int h, int d) {
            int page = perm[indptr[b] + t / PS];
            return x[(((size_t)page * PS + t % PS) * H + h) * D + d];
        };
    };
    auto accq = [&](int b, int, int h, int d) { return qv[((size_t)b * H + h) * D + d]; };
    auto ref = ref_attention(B, std::vector<int>(B, 1), lens, H, H, D, scale, false, accq, paged(kv), paged(vv), nullptr);
    char name[96];
    snprintf(name, sizeof name, "decode paged (page 16) bf16 %d seqs H %d D %d splits %d", B, H, D, n_split);
    check_bf16(name, ref.size(), [&](size_t i) { return (double)lk_bf16_to_f32(o[i].bits); },
               [&](size_t i) { return ref[i]; });
}

/* ---- PAGED_ATTENTION: packed queries (prefill chunks and decode rows) over one paged pool -------
 * Sequence b: qlen[b] new queries at the end of kv_len[b] keys (causal), pages shuffled. Chunks
 * longer than 8 rows go through the flash kernel (paged K/V, q_min 9), the rest through split-KV
 * (packed rows) — as lisa_cuda_paged_attention_ex launches them. */
static void paged_mixed(const std::vector<int> &qlen, const std::vector<int> &kvlen, int Hq, int Hkv, uint64_t seed) {
    const int D = 128, B = (int)qlen.size(), PS = 16;
    Rng r(seed);
    std::vector<int> qo(B + 1, 0), indptr(B + 1, 0);
    for (int b = 0; b < B; b++) qo[b + 1] = qo[b] + qlen[b], indptr[b + 1] = indptr[b] + (kvlen[b] + PS - 1) / PS;
    const int T = qo[B], n_pages = indptr[B] + 2;
    std::vector<int> perm(n_pages);
    std::iota(perm.begin(), perm.end(), 0);
    for (int i = n_pages - 1; i > 0; i--) std::swap(perm[i], perm[r.next() % (uint64_t)(i + 1)]);
    Buf<int32_t> d_qo(B + 1), d_ptr(B + 1), d_idx(indptr[B]), d_len(B);
    for (int b = 0; b <= B; b++) d_qo[b] = qo[b], d_ptr[b] = indptr[b];
    for (int i = 0; i < indptr[B]; i++) d_idx[i] = perm[i];
    for (int b = 0; b < B; b++) d_len[b] = kvlen[b];
    Buf<lisa_bf16_t> q((size_t)T * Hq * D), kp((size_t)n_pages * PS * Hkv * D), vp(kp.n), o((size_t)T * Hq * D);
    auto qv = fill_bf16(q, r, -1, 1), kv = fill_bf16(kp, r, -1, 1), vv = fill_bf16(vp, r, -1, 1);
    const double scale = 1.0 / sqrt((double)D);
    int maxq = 0, maxk = 0;
    for (int b = 0; b < B; b++) maxq = std::max(maxq, qlen[b]), maxk = std::max(maxk, kvlen[b]);
    /* flash for chunks > 8 rows */
    lk_flash_params fp = {};
    fp.q = q.p, fp.k = kp.p, fp.v = vp.p, fp.o = o.p;
    fp.q_rs = Hq * D, fp.q_hs = D, fp.o_rs = Hq * D, fp.o_hs = D, fp.k_rs = fp.v_rs = Hkv * D, fp.k_hs = fp.v_hs = D;
    fp.cu_seqlens_q = d_qo.p, fp.kv_indptr = d_ptr.p, fp.kv_indices = d_idx.p, fp.kv_len = d_len.p, fp.page_size = PS;
    fp.q_min = LK_SPLITKV_MAXQ + 1, fp.B = B, fp.Tq = maxq, fp.Hq = Hq, fp.Hkv = Hkv, fp.causal = true;
    fp.scale_log2 = (float)scale * LK_LOG2E;
    emu_set_copy_mode(EmuCopyMode::LAZY);
    emu_launch(dim3((maxq + 63) / 64, Hq, B), dim3(LK_FLASH_THREADS), lk_flash_smem_bytes(D, 0, 0), lk_flash_select<128>(fp), fp);
    /* split-KV for 1..8 rows, fixed 256-key splits */
    const int n_split = (maxk + LK_SPLITKV_KEYS - 1) / LK_SPLITKV_KEYS, TqMax = std::min(maxq, (int)LK_SPLITKV_MAXQ);
    Buf<float> po((size_t)B * Hq * n_split * TqMax * D), pml((size_t)B * Hq * n_split * TqMax * 2);
    lk_splitkv_params sp = {};
    sp.q = q.p, sp.q_rs = Hq * D, sp.q_hs = D, sp.qo_indptr = d_qo.p;
    sp.k = kp.p, sp.v = vp.p, sp.k_rs = sp.v_rs = Hkv * D, sp.k_hs = sp.v_hs = D;
    sp.kv_indptr = d_ptr.p, sp.kv_indices = d_idx.p, sp.kv_len = d_len.p, sp.page_size = PS;
    sp.o = o.p, sp.o_rs = Hq * D, sp.o_hs = D, sp.part_o = po.p, sp.part_ml = pml.p;
    sp.B = B, sp.Tq = TqMax, sp.Tk = maxk, sp.Hq = Hq, sp.Hkv = Hkv, sp.D = D, sp.n_split = n_split;
    sp.keys_per_split = LK_SPLITKV_KEYS, sp.scale_log2 = (float)scale * LK_LOG2E, sp.causal = true;
    emu_launch(dim3(n_split, Hq, B), dim3(128), 0, lk_attn_splitkv<lisa_bf16_t>, sp);
    if (n_split > 1) emu_launch(dim3(Hq, B), dim3(128), 0, lk_attn_combine<lisa_bf16_t>, sp);
    auto accq = [&](int b, int t, int h, int d) { return qv[(((size_t)qo[b] + t) * Hq + h) * D + d]; };
    auto paged = [&](const std::vector<double> &x) {
        return [&](int b, int t, int h, int d) {
            int page = perm[indptr[b] + t / PS];
            return x[(((size_t)page * PS + t % PS) * Hkv + h) * D + d];
        };
    };
    auto ref = ref_attention(B, qlen, kvlen, Hq, Hkv, D, scale, true, accq, paged(kv), paged(vv), nullptr);
    char name[96];
    snprintf(name, sizeof name, "paged attention: %d seqs (flash + split-KV) Hq %d Hkv %d", B, Hq, Hkv);
    check_bf16(name, ref.size(), [&](size_t i) { return (double)lk_bf16_to_f32(o[i].bits); }, [&](size_t i) { return ref[i]; });
}

/* KV_APPEND scatter: rows into slots, -1 skipped; an out-of-pool slot raises the device flag and
 * then nothing at all is written. */
static void kv_append(uint64_t seed) {
    const int T = 5, Hkv = 2, D = 16, NP = 3, PS = 4;
    Rng r(seed);
    Buf<float> k((size_t)T * Hkv * D), v(k.n);
    auto kv = fill_f32(k, r, -1, 1), vv = fill_f32(v, r, -1, 1);
    Buf<lisa_bf16_t> kp((size_t)NP * PS * Hkv * D), vp(kp.n);
    for (size_t i = 0; i < kp.n; i++) kp[i].bits = vp[i].bits = 0x7fc0; /* NaN: untouched slots stay NaN */
    Buf<int32_t> slots(T);
    const int sl[T] = {7, -1, 0, 11, 5};
    for (int t = 0; t < T; t++) slots[t] = sl[t];
    Buf<int64_t> flag(3);
    flag[0] = flag[1] = flag[2] = 0;
    emu_launch(dim3(1), dim3(32), 0, lk_kv_slots_check, (const int32_t *)slots.p, T, (int64_t)(NP * PS), flag.p);
    emu_launch(dim3(2), dim3(64), 0, lk_kv_append, (void *)kp.p, (void *)vp.p, (int)LK_BF16, (const void *)k.p,
               (const void *)v.p, (int)LK_F32, (int64_t)(Hkv * D), (int64_t)D, (int64_t)(Hkv * D), (int64_t)D,
               (const int32_t *)slots.p, T, Hkv, D, (int64_t)(NP * PS), (const int64_t *)flag.p);
    size_t wrong = 0;
    for (int s2 = 0; s2 < NP * PS; s2++)
        for (int e = 0; e < Hkv * D; e++) {
            int t = -1;
            for (int tt = 0; tt < T; tt++)
                if (sl[tt] == s2) t = tt;
            const size_t i = (size_t)s2 * Hkv * D + e;
            if (t < 0) {
                wrong += kp[i].bits != 0x7fc0 || vp[i].bits != 0x7fc0;
            } else {
                wrong += kp[i].bits != lk_f32_to_bf16((float)kv[(size_t)t * Hkv * D + e]);
                wrong += vp[i].bits != lk_f32_to_bf16((float)vv[(size_t)t * Hkv * D + e]);
            }
        }
    bool ok = wrong == 0 && flag[0] == LK_FLAG_NONE;
    /* one slot past the pool: the flag names it, and a fresh pool stays untouched */
    slots[1] = 12;
    Buf<lisa_bf16_t> kp2(kp.n), vp2(kp.n); /* poisoned */
    emu_launch(dim3(1), dim3(32), 0, lk_kv_slots_check, (const int32_t *)slots.p, T, (int64_t)(NP * PS), flag.p);
    emu_launch(dim3(2), dim3(64), 0, lk_kv_append, (void *)kp2.p, (void *)vp2.p, (int)LK_BF16, (const void *)k.p,
               (const void *)v.p, (int)LK_F32, (int64_t)(Hkv * D), (int64_t)D, (int64_t)(Hkv * D), (int64_t)D,
               (const int32_t *)slots.p, T, Hkv, D, (int64_t)(NP * PS), (const int64_t *)flag.p);
    size_t touched = 0;
    for (size_t i = 0; i < kp2.n; i++) touched += kp2[i].bits != 0xffff || vp2[i].bits != 0xffff;
    ok = ok && flag[0] == LK_FLAG_KV_SLOT && flag[1] == 12 && flag[2] == NP * PS && touched == 0;
    printf("%-58s %s  (%zu wrong elements, %zu written after a bad slot)\n",
           "kv_append: F32 rows -> bf16 pages, -1 skipped, bad slot flagged", ok ? "ok  " : "FAIL", wrong, touched);
    if (!ok) g_failures++;
}

/* ---- reference fallback kernel --------------------------------------------------------------- */
static void attn_ref_f32_bias(int B, int Tq, int Tk, int Hq, int Hkv, int D, bool causal, uint64_t seed) {
    Rng r(seed);
    Buf<float> q((size_t)B * Tq * Hq * D), k((size_t)B * Tk * Hkv * D), v((size_t)B * Tk * Hkv * D),
        o((size_t)B * Tq * Hq * D), bias((size_t)Hq * Tq * Tk);
    auto qv = fill_f32(q, r, -1, 1), kv = fill_f32(k, r, -1, 1), vv = fill_f32(v, r, -1, 1), bv = fill_f32(bias, r, -3, 3);
    for (int i = 0; i < Tk; i += 5) bv[i] = bias[i] = -INFINITY; /* some masked keys in head 0, row 0 */
    for (int i = 0; i < Tk; i++) bv[Tk + i] = bias[Tk + i] = -INFINITY; /* head 0, row 1: all masked -> NaN */
    lk_attn_ref_params p = {};
    p.q = q.p, p.k = k.p, p.v = v.p, p.o = o.p, p.q_dt = p.k_dt = p.v_dt = p.o_dt = LK_F32;
    p.q_bs = (int64_t)Tq * Hq * D, p.q_rs = Hq * D, p.q_hs = D;
    p.k_bs = p.v_bs = (int64_t)Tk * Hkv * D, p.k_rs = p.v_rs = Hkv * D, p.k_hs = p.v_hs = D;
    p.o_bs = p.q_bs, p.o_rs = p.q_rs, p.o_hs = D;
    p.B = B, p.Tq = Tq, p.Tk = Tk, p.Hq = Hq, p.Hkv = Hkv, p.D = D, p.causal = causal;
    p.scale = (float)(1.0 / sqrt((double)D));
    p.bias = bias.p, p.bias_bs = 0, p.bias_hs = (int64_t)Tq * Tk, p.bias_rs = Tk, p.bias_js = 1;
    emu_launch(dim3((unsigned)((B * Tq * Hq + 3) / 4)), dim3(128), 0, lk_attn_ref, p);
    auto acc = [&](const std::vector<double> &x, int T, int H) {
        return [&, T, H](int b, int t, int h, int d) { return x[(((size_t)b * T + t) * H + h) * D + d]; };
    };
    auto ref = ref_attention(B, std::vector<int>(B, Tq), std::vector<int>(B, Tk), Hq, Hkv, D, p.scale, causal,
                             acc(qv, Tq, Hq), acc(kv, Tk, Hkv), acc(vv, Tk, Hkv),
                             [&](int, int h, int i, int j) { return bv[((size_t)h * Tq + i) * Tk + j]; });
    char name[96];
    snprintf(name, sizeof name, "ref f32 bias B%d Tq %d Tk %d Hq %d Hkv %d D %d%s", B, Tq, Tk, Hq, Hkv, D,
             causal ? " causal" : "");
    check_close(name, ref.size(), [&](size_t i) { return (double)o[i]; }, [&](size_t i) { return ref[i]; }, 2e-5, 2e-5);
}

static void attn_ref_bf16_relpos(int S, int H, uint64_t seed) {
    const int D = 80, T = S * S;
    Rng r(seed);
    Buf<lisa_bf16_t> q((size_t)T * H * D), k((size_t)T * H * D), v((size_t)T * H * D), rh((size_t)H * T * S),
        rw((size_t)H * T * S);
    auto qv = fill_bf16(q, r, -1, 1), kv = fill_bf16(k, r, -1, 1), vv = fill_bf16(v, r, -1, 1);
    auto rhv = fill_bf16(rh, r, -2, 2), rwv = fill_bf16(rw, r, -2, 2);
    Buf<float> o((size_t)T * H * D);
    lk_attn_ref_params p = {};
    p.q = q.p, p.k = k.p, p.v = v.p, p.o = o.p, p.q_dt = p.k_dt = p.v_dt = LK_BF16, p.o_dt = LK_F32;
    p.q_bs = p.k_bs = p.v_bs = p.o_bs = (int64_t)T * H * D;
    p.q_rs = p.k_rs = p.v_rs = p.o_rs = H * D, p.q_hs = p.k_hs = p.v_hs = p.o_hs = D;
    p.B = 1, p.Tq = T, p.Tk = T, p.Hq = H, p.Hkv = H, p.D = D;
    p.scale = (float)(1.0 / sqrt((double)D));
    p.rel_h = rh.p, p.rel_w = rw.p, p.rel_dtype = LK_BF16, p.k_h = S, p.k_w = S;
    p.rh_bs = p.rw_bs = 0, p.rh_hs = p.rw_hs = (int64_t)T * S, p.rh_rs = p.rw_rs = S, p.rh_cs = p.rw_cs = 1;
    emu_launch(dim3((unsigned)((T * H + 3) / 4)), dim3(128), 0, lk_attn_ref, p);
    auto acc = [&](const std::vector<double> &x) {
        return [&](int, int t, int h, int d) { return x[((size_t)t * H + h) * D + d]; };
    };
    auto ref = ref_attention(1, {T}, {T}, H, H, D, p.scale, false, acc(qv), acc(kv), acc(vv), [&](int, int h, int i, int j) {
        size_t base = ((size_t)h * T + i) * S;
        return rhv[base + j / S] + rwv[base + j % S];
    });
    check_close("ref bf16 rel-pos 7x7, f32 out", ref.size(), [&](size_t i) { return (double)o[i]; },
                [&](size_t i) { return ref[i]; }, 2e-5, 2e-5);
}

/* lk_flash_select: each problem gets the variant written for it, and combinations without one get
 * nullptr (the launcher then falls back to the reference kernel). */
static void flash_variants() {
    lk_flash_params p = {};
    bool ok = true;
    float dummy = 0;
    p.Tq = p.Tk = 4096, p.rel_h = &dummy; /* SAM global: rel-pos, 64 x 64 keys */
    ok = ok && lk_flash_select<80>(p) == (lk_flash_fn)lk_flash_fwd_v<80, 1, false, false, true>;
    p.Tq = p.Tk = 196; /* SAM window */
    ok = ok && lk_flash_select<80>(p) == (lk_flash_fn)lk_flash_fwd_v<80, 1, false, false, false>;
    p.rel_h = nullptr, p.rel_pos_h = (const lisa_bf16_t *)&dummy; /* the tables: REL 2 at D 80 and 64, not 128 */
    ok = ok && lk_flash_select<80>(p) == (lk_flash_fn)lk_flash_fwd_v<80, 2, false, false, false> &&
         lk_flash_select<64>(p) == (lk_flash_fn)lk_flash_fwd_v<64, 2, false, false, false> && lk_flash_select<128>(p) == nullptr;
    p.Tq = p.Tk = 4096, p.k_w = 32; /* a 128 x 32 grid: EVEN, two grid rows per tile */
    ok = ok && lk_flash_select<80>(p) == (lk_flash_fn)lk_flash_fwd_v<80, 2, false, false, true>;
    p.k_w = 64; /* SAM global: one grid row per key tile */
    ok = ok && lk_flash_select<80>(p) == (lk_flash_fn)lk_flash_fwd_v<80, 3, false, false, true> &&
         lk_flash_select<64>(p) == (lk_flash_fn)lk_flash_fwd_v<64, 3, false, false, true>;
    p.k_w = 0;
    p.Tq = p.Tk = 196, p.rel_pos_h = nullptr, p.rel_h = &dummy;
    p.causal = true; /* rel-pos + causal: not compiled */
    ok = ok && lk_flash_select<80>(p) == nullptr && lk_flash_select<128>(p) == nullptr && lk_flash_select<64>(p) == nullptr;
    p.rel_h = nullptr;
    int32_t cu[2] = {0, 64};
    p.cu_seqlens_q = cu, p.Tq = p.Tk = 64; /* varlen: never EVEN */
    ok = ok && lk_flash_select<128>(p) == (lk_flash_fn)lk_flash_fwd_v<128, false, true, false, false>;
    p.cu_seqlens_q = nullptr, p.kv_indices = cu; /* paged prefill chunks: D 128 only */
    ok = ok && lk_flash_select<128>(p) == (lk_flash_fn)lk_flash_fwd_v<128, false, true, true, false> &&
         lk_flash_select<80>(p) == nullptr && lk_flash_select<64>(p) == nullptr;
    printf("%-58s %s\n", "flash variants: the selection table", ok ? "ok  " : "FAIL");
    if (!ok) g_failures++;
}

/* Runs one case and prints its wall time (the emulator is slow; keep cases small). */
int main(void) {
    TIMED(flash_sam(14, 2, 2, 1, EmuCopyMode::LAZY)); /* SAM window: 196 tokens, 4 query blocks, 4 key tiles */
    TIMED(flash_sam(14, 1, 1, 2, EmuCopyMode::EAGER));
    TIMED(flash_sam(20, 1, 1, 3, EmuCopyMode::LAZY)); /* 400 tokens: 7 key tiles, a 16-row tail block */
    TIMED(flash_varlen({1, 70, 130}, 2, 1, 4)); /* GQA 2:1, tail tiles, a 1-token sequence */
    TIMED(flash_dense<128>(1, 20, 100, 2, true, false, 5)); /* causal with a 80-token KV prefix */
    TIMED(flash_dense<64>(2, 65, 33, 3, false, true, 6)); /* CLIP head dim, F32 output */
    TIMED(flash_dense<128>(1, 3, 0, 1, false, false, 7)); /* no keys at all: NaN, as torch */
    flash_variants();
    TIMED(flash_sam(16, 1, 2, 19, EmuCopyMode::LAZY));                /* REL + EVEN: 256 keys, 4 full tiles */
    /* REL 2 (ATTENTION_RELPOS): the terms from the Q tile and the tables inside the kernel */
    TIMED(flash_sam_fused<80>(14, 14, 2, 2, 2, 0, false, 23, EmuCopyMode::LAZY));  /* SAM windows, 2 rows/cols of padding */
    TIMED(flash_sam_fused<80>(14, 14, 1, 1, 0, 8, true, 24, EmuCopyMode::EAGER));  /* strided tables, F32 out */
    TIMED(flash_sam_fused<80>(5, 7, 2, 1, 0, 0, false, 25, EmuCopyMode::LAZY));    /* odd grid, one partial block */
    TIMED(flash_sam_fused<80>(9, 23, 1, 2, 0, 0, false, 26, EmuCopyMode::EAGER));  /* blocks spanning 3-4 grid rows */
    TIMED(flash_sam_fused<80>(3, 100, 1, 1, 0, 16, false, 27, EmuCopyMode::LAZY)); /* 199-row table: two chunks */
    TIMED(flash_sam_fused<64>(16, 16, 1, 2, 3, 0, false, 28, EmuCopyMode::LAZY));  /* D 64 (ViT-B/L), EVEN */
    TIMED(flash_sam_fused<80>(64, 64, 1, 1, 0, 0, false, 29, EmuCopyMode::LAZY, {0, 1, 37, 63})); /* SAM global: REL 3 */
    TIMED(flash_sam_fused<80>(3, 64, 2, 2, 1, 0, true, 30, EmuCopyMode::EAGER)); /* REL 3 on a short grid, f32 out */
    TIMED(flash_sam_fused<64>(5, 64, 1, 1, 0, 8, false, 31, EmuCopyMode::LAZY)); /* REL 3 at D 64 */
    TIMED(flash_sam_fused<80>(4, 32, 1, 1, 0, 0, false, 32, EmuCopyMode::LAZY)); /* EVEN, 32 wide: REL 2 (2 rows a tile) */
    TIMED(flash_dense<80>(1, 128, 128, 2, false, false, 20));          /* EVEN without rel-pos */
    TIMED(flash_dense<80>(1, 70, 90, 2, true, false, 21));             /* causal, D 80 */
    TIMED(flash_dense<64>(2, 50, 70, 2, true, true, 22));              /* causal, D 64, f32 out */
    TIMED(splitkv_contig<lisa_bf16_t>(2, 1, {300, 57}, 4, 2, 128, 3, false, 8)); /* decode, GQA, split 3 */
    TIMED(splitkv_contig<float>(2, 6, {200, 200}, 2, 2, 16, 1, false, 9)); /* two-way token->image */
    TIMED(splitkv_contig<float>(1, 4, {50}, 2, 1, 32, 2, true, 10)); /* causal few-query */
    TIMED(splitkv_contig<lisa_f16_t>(1, 8, {70}, 1, 1, 64, 2, false, 11));
    TIMED(splitkv_paged({1, 40, 100}, 2, 64, 2, 12));
    TIMED(splitkv_paged({33}, 1, 128, 1, 13));
    TIMED(paged_mixed({70, 1, 3, 9}, {100, 300, 40, 9}, 4, 2, 17)); /* prefill chunks + decode rows */
    TIMED(kv_append(18));
    TIMED(attn_ref_f32_bias(2, 7, 19, 4, 2, 37, true, 14));
    TIMED(attn_ref_f32_bias(1, 5, 40, 1, 1, 200, false, 15));
    TIMED(attn_ref_bf16_relpos(7, 2, 16));
    if (g_failures) {
        printf("%d check(s) FAILED\n", g_failures);
        return 1;
    }
    printf("all attention kernel checks passed (emulated)\n");
    return 0;
}
