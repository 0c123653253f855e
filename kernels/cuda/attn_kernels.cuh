/* kernels/cuda/attn_kernels.cuh — attention kernel bodies (launchers: kernels/cuda/attention.cu).
 *
 * Three kernels, all with an fp32 online softmax (Milakov & Gimelshein 2018; FlashAttention-2) that
 * never materializes the Tq x Tk score matrix:
 *
 * 1. lk_flash_fwd_v<D, REL, CAUSAL, PAGED, EVEN>: tensor-core flash attention (mma.sync m16n8k16
 *    bf16, fp32 accumulators), D in {64, 80, 128}, the variants chosen by lk_flash_select. One block = 64 queries of one (batch, head); 4 warps x 16 query rows;
 *    key/value tiles of 64 rows double-buffered in shared memory by cp.async. Covers
 *      - SAM non-causal attention with the decomposed relative-position terms added to the scores
 *        inside the kernel (spec §5.1: A = (q·s)kᵀ + rel_h[q, ky] + rel_w[q, kx]), for 14x14
 *        windows (196 tokens, padded windows included) and the 64x64 global blocks, D = 80 (and
 *        64: SAM ViT-B/L); the terms either read (REL 1: the ATTENTION op's rel_h / rel_w from
 *        REL_POS) or computed by the block itself from its Q tile and the tables rel_pos_h /
 *        rel_pos_w with mma (REL 2: ATTENTION_RELPOS, the terms never exist in global memory;
 *        REL 3: the same when a key tile is exactly one grid row, k_w = 64 as in SAM's global
 *        blocks: tile t is ky = t and column c is kx = c, so a thread keeps its 32 rel_w terms in
 *        registers for the whole loop and reads 2 rel_h terms per tile);
 *      - LLaMA causal prefill, D = 128, dense batches or variable lengths via cu_seqlens (one
 *        launch for many sequences, FlashAttention's varlen convention);
 *      - CLIP ViT-L/14 (D = 64) and any other dense bf16 attention.
 *    With paged K/V (runtime/kv_cache.h) it is PAGED_ATTENTION's prefill-chunk path.
 * 2. lk_attn_splitkv<T> + lk_attn_combine: few queries (Tq <= 8) against many keys, the key range
 *    split into fixed 256-key chunks across blocks (split-K / flash-decoding) and merged by a
 *    second kernel in split order. Covers decode over a contiguous or paged KV cache (packed
 *    per-sequence queries) and the two-way transformer's token->image attention (6 queries x
 *    4096 keys). Fixed chunks make a sequence's result independent of the rest of the batch.
 * 3. lk_attn_ref<...>: one warp per query row, scalar fp32 math, any float dtype, D <= 256, an
 *    additive bias, rel-pos, causal, GQA, arbitrary strides. The reference-quality fallback for
 *    everything else; it is also the fast path when keys are few (the two-way transformer's
 *    image->token attention, 4096 queries x 6 keys).
 *
 * Dimension letters: B batch, Tq/Tk query/key length, Hq/Hkv heads (GQA: Hq % Hkv == 0), D head dim.
 * Scores live in the log2 domain (s·log2 e) so that exp2 can be used; -inf marks a masked key. A
 * row without any key of finite score (Tk = 0, or every key masked by the bias) is NaN, as
 * torch.softmax gives (ops.def ATTENTION).
 */
#ifndef LISA_KERNELS_CUDA_ATTN_KERNELS_CUH
#define LISA_KERNELS_CUDA_ATTN_KERNELS_CUH

#include "kernels/cuda/kv_kernels.cuh"
#include "kernels/cuda/prims.cuh"

#define LK_LOG2E 1.4426950408889634f

/* ============================================================================================
 * 1. Flash attention forward (tensor cores)
 * ============================================================================================ */

/* All strides in elements; the last (D) dim is contiguous. */
typedef struct lk_flash_params {
    const lisa_bf16_t *q; /* [B, Tq, Hq, D] (or [total_q, Hq, D] with cu_seqlens_q) */
    const lisa_bf16_t *k; /* [B, Tk, Hkv, D] (or [total_k, Hkv, D]) */
    const lisa_bf16_t *v; /* like k */
    void *o;              /* like q; BF16, or F32 when o_f32 */
    int64_t q_bs, q_rs, q_hs;
    int64_t k_bs, k_rs, k_hs;
    int64_t v_bs, v_rs, v_hs;
    int64_t o_bs, o_rs, o_hs;
    const int32_t *cu_seqlens_q; /* [B+1] row offsets of each sequence, or NULL (dense) */
    const int32_t *cu_seqlens_k; /* [B+1] (packed k/v), or NULL (dense, or paged below) */
    /* Paged K/V (kv_indices != NULL; runtime/kv_cache.h): k/v are pools [n_pages, page_size, Hkv, D]
     * with slot stride k_rs (= Hkv·D) and head stride k_hs; key j of sequence b is in page
     * kv_indices[kv_indptr[b] + j / page_size], slot j % page_size; kv_len[b] keys. */
    const int32_t *kv_indptr, *kv_indices, *kv_len;
    int32_t page_size;
    int32_t q_min; /* sequences with fewer query rows are skipped (the split-KV kernel takes them) */
    int32_t B, Tq, Tk; /* with cu_seqlens: Tq = max query length (grid), Tk unused */
    int32_t Hq, Hkv;
    float scale_log2; /* softmax scale · log2(e) */
    bool causal;      /* query i sees keys j <= i + (Tk - Tq), per sequence */
    bool o_f32;
    /* SAM decomposed rel-pos (NULL when unused): rel_h[b, h, i, ky], rel_w[b, h, i, kx]; key
     * j = ky·k_w + kx, so Tk == k_h·k_w. F32 or BF16 (rel_dtype). */
    const void *rel_h, *rel_w;
    int32_t rel_dtype, k_h, k_w;
    int64_t rh_bs, rh_hs, rh_rs, rh_cs;
    int64_t rw_bs, rw_hs, rw_rs, rw_cs;
    /* Fused rel-pos instead (REL 2; rel_h/rel_w NULL): the tables rel_pos_h [2 k_h - 1, D] and
     * rel_pos_w [2 k_w - 1, D], bf16, rows of rph_rs / rpw_rs elements (16-byte aligned); the query
     * grid is the key grid (Tq == Tk == k_h·k_w, query i at (i / k_w, i % k_w)). */
    const lisa_bf16_t *rel_pos_h, *rel_pos_w;
    int64_t rph_rs, rpw_rs;
} lk_flash_params;

enum { LK_FLASH_BM = 64, LK_FLASH_BN = 64, LK_FLASH_THREADS = 128 };

/* Dynamic shared memory of lk_flash_fwd_v<D, ..>: Q tile, then per buffer a K and a V tile (rows
 * padded by 8 elements = 16 bytes so that ldmatrix rows fall in distinct banks; buffer 1's K and V
 * are adjacent: REL 2 stages up to 128 table rows there before the key loop first fills it), and
 * with rel-pos the block's rel_h/rel_w rows (k + 1 floats apart: the 8 rows a warp reads at once
 * fall in different banks) and two (ky, kx) tables of one key tile. */
LISA_HD size_t lk_flash_smem_bytes(int D, int k_h, int k_w) {
    size_t tile = (size_t)LK_FLASH_BM * (size_t)(D + 8) * 2;
    if (!k_h) return 5 * tile;
    return 5 * tile + (size_t)LK_FLASH_BM * (size_t)(k_h + 1 + k_w + 1) * 4 + 2 * LK_FLASH_BN * 2;
}

/* (ky, kx) of key j on a k_w-wide grid, packed as ky << 8 | kx (grids up to 255 x 255). */
LISA_DEV uint16_t lk_flash_kyx(int j, int k_w) {
    const int ky = j / k_w;
    return (uint16_t)(ky << 8 | (j - ky * k_w));
}

/* Copies rows [row0, row0+64) into a padded smem tile with 16-byte cp.async; row r's address is
 * row_ptr(r); rows >= T are zero-filled. 128 threads. */
template <int D, typename RowPtr>
LISA_DEV void lk_flash_load_tile(lisa_bf16_t *tile, const RowPtr &row_ptr, int row0, int T) {
    constexpr int DP = D + 8, CPR = D / 8; /* 16-byte chunks per row */
    for (int i = (int)threadIdx.x; i < LK_FLASH_BM * CPR; i += LK_FLASH_THREADS) {
        int r = i / CPR, c = i % CPR;
        bool valid = row0 + r < T;
        const lisa_bf16_t *src = row_ptr(valid ? row0 + r : 0) + (valid ? c * 8 : 0);
        lk_cp_async_16(tile + r * DP + c * 8, src, valid);
    }
}

/* REL 2: the block's rel-pos terms from its Q tile (spec §5.1, add_decomposed_rel_pos, with the
 * unscaled q): relh[r][ky] = q_r · rel_pos_h[qy(r) − ky + k_h − 1] and relw[r][kx] = q_r ·
 * rel_pos_w[qx(r) − kx + k_w − 1], times log2 e as the scores, into the rel arrays the key loop
 * reads (rows past Tq: 0). As S = Q·Rᵀ with mma.sync, Q from the warp's fragments qf (the A operand
 * of QKᵀ) and R the table rows the block needs — rel_pos_h rows qy(first) .. qy(last) + k_h − 1 and
 * rel_pos_w rows qx(first) .. qx(last) + k_w − 1 (every row when the block spans grid rows) — laid
 * end to end as one "virtual" table and staged through `stage` (2·BN = 128 padded rows: buffer 1
 * of K/V, free until the key loop's first prefetch) in chunks of up to 128 rows: SAM's 14x14
 * windows take one chunk (≤ 19 + 27 rows), its 64x64 global grid two (64 + 127 rows). Each warp
 * multiplies only the rows its own 16 query rows need, 16 table rows per ldmatrix.x4 (two n-tiles
 * of 8), and scatters accumulator (row r, table row t) to ky = qy(r) − t + k_h − 1 when in range (each
 * (row, ky) comes from exactly one table row). Block-uniform chunk loop: every thread reaches its
 * barriers. */
template <int D>
LISA_DEV void lk_flash_relpos_from_q(const lk_flash_params &p, const uint32_t (&qf)[D / 16][4], float *relh_s,
                                     float *relw_s, lisa_bf16_t *stage, int m0, int m_last, int Tq, const int (&row_l)[2],
                                     int ld_h, int ld_w) {
    constexpr int DP = D + 8, CPR = D / 8, KS = D / 16, ROWS = 2 * LK_FLASH_BN;
    const int tid = (int)threadIdx.x, warp = tid >> 5, lane = tid & 31, tg = lane & 3;
    const int k_h = p.k_h, k_w = p.k_w;
    for (int i = tid; i < LK_FLASH_BM * ld_h; i += LK_FLASH_THREADS)
        if (m0 + i / ld_h >= Tq) relh_s[i] = 0.0f;
    for (int i = tid; i < LK_FLASH_BM * ld_w; i += LK_FLASH_THREADS)
        if (m0 + i / ld_w >= Tq) relw_s[i] = 0.0f;
    /* table rows that query rows r0 .. r1 need, [lo_h, hi_h] of rel_pos_h and [lo_w, hi_w] of rel_pos_w */
    auto span = [k_h, k_w](int r0, int r1, int *lo_h, int *hi_h, int *lo_w, int *hi_w) {
        const int y0 = r0 / k_w, y1 = r1 / k_w;
        *lo_h = y0, *hi_h = y1 + k_h - 1;
        *lo_w = y0 == y1 ? r0 - y0 * k_w : 0;
        *hi_w = y0 == y1 ? r1 - y1 * k_w + k_w - 1 : 2 * k_w - 2;
    };
    int lo_h, hi_h, lo_w, hi_w;
    span(m0, m_last, &lo_h, &hi_h, &lo_w, &hi_w);
    const int nh = hi_h - lo_h + 1, nv = nh + hi_w - lo_w + 1; /* virtual rows: h's, then w's */
    /* this warp's virtual ranges [wlo[t], whi[t]] (t = 0 h, 1 w); empty when it has no rows */
    int wlo[2] = {1, 1}, whi[2] = {0, 0};
    const int wr0 = m0 + warp * 16, wr1 = (wr0 + 15 < Tq ? wr0 + 15 : Tq - 1);
    if (wr1 >= wr0) {
        int a_h, b_h, a_w, b_w;
        span(wr0, wr1, &a_h, &b_h, &a_w, &b_w);
        wlo[0] = a_h - lo_h, whi[0] = b_h - lo_h, wlo[1] = nh + a_w - lo_w, whi[1] = nh + b_w - lo_w;
    }
    /* this thread's rows: grid coordinates, validity */
    int ry[2], rx[2];
    bool rv[2];
    LISA_UNROLL
    for (int r = 0; r < 2; r++) {
        const int gr = m0 + row_l[r];
        rv[r] = gr < Tq;
        ry[r] = gr / k_w, rx[r] = gr - ry[r] * k_w;
    }
    for (int c0 = 0; c0 < nv; c0 += ROWS) {
        const int n = nv - c0 < ROWS ? nv - c0 : ROWS;
        for (int i = tid; i < n * CPR; i += LK_FLASH_THREADS) {
            const int r = i / CPR, c = i % CPR, v = c0 + r;
            const lisa_bf16_t *src = v < nh ? p.rel_pos_h + (int64_t)(lo_h + v) * p.rph_rs
                                            : p.rel_pos_w + (int64_t)(lo_w + v - nh) * p.rpw_rs;
            lk_cp_async_16(stage + r * DP + c * 8, src + c * 8, true);
        }
        lk_cp_async_commit();
        lk_cp_async_wait<0>();
        lk_syncthreads();
        for (int t = 0; t < 2; t++) {
            const int a = (wlo[t] > c0 ? wlo[t] : c0) - c0, e = (whi[t] < c0 + n - 1 ? whi[t] : c0 + n - 1) - c0;
            float *dst = t == 0 ? relh_s : relw_s;
            const int ld = t == 0 ? ld_h : ld_w, kdim = t == 0 ? k_h : k_w, t0 = t == 0 ? lo_h : lo_w - nh;
            for (int s0 = a; s0 <= e; s0 += 16) { /* warp-uniform */
                const int sb = s0 < ROWS - 16 ? s0 : ROWS - 16; /* the 16 staged rows multiplied (stay in the stage) */
                float acc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
                LISA_UNROLL
                for (int ks = 0; ks < KS; ks++) {
                    uint32_t rb[4];
                    const int rr = sb + (lane & 7) + (lane >> 4) * 8, cc = ks * 16 + ((lane >> 3) & 1) * 8;
                    lk_ldmatrix_x4(rb, stage + rr * DP + cc);
                    const uint32_t b0[2] = {rb[0], rb[1]}, b1[2] = {rb[2], rb[3]};
                    lk_mma_bf16_16816(acc[0], qf[ks], b0);
                    lk_mma_bf16_16816(acc[1], qf[ks], b1);
                }
                LISA_UNROLL
                for (int j = 0; j < 2; j++) {
                    LISA_UNROLL
                    for (int q4 = 0; q4 < 4; q4++) {
                        const int lr = sb + 8 * j + 2 * tg + (q4 & 1), r = q4 >> 1; /* staged row, row of the pair */
                        if (lr < s0 || lr > e || !rv[r]) continue; /* another step's row, or not staged */
                        const int kk = (t == 0 ? ry[r] : rx[r]) - (t0 + c0 + lr) + kdim - 1;
                        if (kk >= 0 && kk < kdim) dst[row_l[r] * ld + kk] = acc[j][q4] * LK_LOG2E;
                    }
                }
            }
        }
        lk_syncthreads(); /* the stage is read by every warp before the next chunk (or the loop's prefetch) overwrites it */
    }
}

/* grid (ceil(Tq / 64), Hq, B), block 128, dynamic smem lk_flash_smem_bytes(D, k_h, k_w).
 * Variants are compile-time parameters (no feature branch in the key-tile loop): REL (SAM's rel-pos
 * terms, from a per-tile (ky, kx) table: no integer division per score; 1: terms read from
 * rel_h / rel_w, 2: computed from the Q tile and the tables, see lk_flash_relpos_from_q; 3: as 2
 * with one grid row per key tile, no table: rel_w in registers), CAUSAL, PAGED
 * (K/V through the page table), EVEN (dense, Tq and Tk multiples of 64: no key-bound mask) and the
 * head dim D. lk_flash_select below names the instantiated ones. */
template <int D, int REL, bool CAUSAL, bool PAGED, bool EVEN>
LISA_GLOBAL void
#if defined(__CUDACC__) && !defined(LISA_CUDA_EMU)
__launch_bounds__(LK_FLASH_THREADS)
#endif
    lk_flash_fwd_v(const lk_flash_params p) {
    constexpr int BM = LK_FLASH_BM, BN = LK_FLASH_BN, DP = D + 8;
    constexpr int KS = D / 16; /* k-steps of S = Q Kᵀ */
    constexpr int NO = D / 8;  /* n-tiles of O */
    static_assert(D % 16 == 0, "head dim must be a multiple of 16");

    const int b = (int)blockIdx.z, h = (int)blockIdx.y, m0 = (int)blockIdx.x * BM;
    const int tid = (int)threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, tg = lane & 3; /* mma fragment coordinates */

    int64_t qrow0 = 0, krow0 = 0;
    int Tq = p.Tq, Tk = p.Tk;
    if (p.cu_seqlens_q) {
        qrow0 = p.cu_seqlens_q[b];
        Tq = p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b];
    }
    if (p.cu_seqlens_k) {
        krow0 = p.cu_seqlens_k[b];
        Tk = p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b];
    }
    if (PAGED) Tk = p.kv_len[b];
    if (m0 >= Tq || Tq < p.q_min) return; /* uniform over the block, before any barrier */
    const int hk = h / (p.Hq / p.Hkv);
    const int64_t bq = p.cu_seqlens_q ? 0 : (int64_t)b, bk = p.cu_seqlens_k || PAGED ? 0 : (int64_t)b;

    const lisa_bf16_t *qg = p.q + bq * p.q_bs + qrow0 * p.q_rs + (int64_t)h * p.q_hs;
    const lisa_bf16_t *kg = p.k + bk * p.k_bs + krow0 * p.k_rs + (int64_t)hk * p.k_hs;
    const lisa_bf16_t *vg = p.v + bk * p.v_bs + krow0 * p.v_rs + (int64_t)hk * p.v_hs;
    /* key row j -> its slot: j itself, or through the page table */
    const int32_t *pages = PAGED ? p.kv_indices + p.kv_indptr[b] : nullptr;
    const int ps = p.page_size;
    auto slot = [pages, ps](int j) -> int64_t {
        return PAGED ? (int64_t)pages[j / ps] * ps + j % ps : (int64_t)j;
    };
    const int64_t k_rs = p.k_rs, v_rs = p.v_rs, q_rs = p.q_rs;
    auto q_row = [qg, q_rs](int r) { return qg + (int64_t)r * q_rs; };
    auto k_row = [kg, k_rs, slot](int j) { return kg + slot(j) * k_rs; };
    auto v_row = [vg, v_rs, slot](int j) { return vg + slot(j) * v_rs; };

    lisa_bf16_t *Qs = (lisa_bf16_t *)lk_dyn_smem();
    lisa_bf16_t *Ks = Qs + BM * DP; /* buffer b's K tile at Ks + b·KV_BUF, its V tile BN rows after */
    lisa_bf16_t *Vs = Ks + BN * DP;
    constexpr int KV_BUF = 2 * BN * DP;
    const int ld_h = p.k_h + 1, ld_w = p.k_w + 1;   /* row strides of the rel arrays */
    float *relh_s = (float *)(Ks + 2 * KV_BUF);     /* [BM][ld_h] */
    float *relw_s = relh_s + BM * ld_h;             /* [BM][ld_w] */
    uint16_t *kyx_s = (uint16_t *)(relw_s + BM * ld_w); /* [2][BN]: (ky, kx) of the keys of a tile */
    const int k_w = p.k_w;

    /* Keys this block can see: causal row i sees j <= i + (Tk - Tq); the block's last row bounds it. */
    const int m_last = (m0 + BM < Tq ? m0 + BM : Tq) - 1;
    int n_end = Tk;
    if (CAUSAL) {
        int lim = m_last + (Tk - Tq) + 1;
        n_end = lim < n_end ? lim : n_end;
    }
    const int n_tiles = n_end > 0 ? (n_end + BN - 1) / BN : 0;

    lk_flash_load_tile<D>(Qs, q_row, m0, Tq);
    lk_cp_async_commit();
    if (n_tiles > 0) {
        lk_flash_load_tile<D>(Ks, k_row, 0, Tk);
        lk_flash_load_tile<D>(Vs, v_row, 0, Tk);
    }
    lk_cp_async_commit();
    constexpr bool KYX = REL == 1 || REL == 2; /* (ky, kx) of each key from a per-tile table */
    if (KYX) /* ordinary stores; visible to all after the first barrier below */
        if (tid < BN) kyx_s[tid] = lk_flash_kyx(tid < Tk ? tid : 0, k_w); /* tile 0's table */
    if (REL == 1) {
        const int64_t hb = (int64_t)b * p.rh_bs + (int64_t)h * p.rh_hs;
        const int64_t wb = (int64_t)b * p.rw_bs + (int64_t)h * p.rw_hs;
        for (int i = tid; i < BM * p.k_h; i += LK_FLASH_THREADS) {
            int r = i / p.k_h, c = i % p.k_h;
            relh_s[r * ld_h + c] = m0 + r < Tq ? lk_load(p.rel_h, p.rel_dtype, hb + (int64_t)(m0 + r) * p.rh_rs + c * p.rh_cs) * LK_LOG2E
                                               : 0.0f;
        }
        for (int i = tid; i < BM * p.k_w; i += LK_FLASH_THREADS) {
            int r = i / p.k_w, c = i % p.k_w;
            relw_s[r * ld_w + c] = m0 + r < Tq ? lk_load(p.rel_w, p.rel_dtype, wb + (int64_t)(m0 + r) * p.rw_rs + c * p.rw_cs) * LK_LOG2E
                                               : 0.0f;
        }
    }
    lk_cp_async_wait<1>(); /* the Q tile has landed (this thread's part) */
    lk_syncthreads();      /* ... and everybody's */

    /* Q fragments (A operand, 16 rows x D per warp), kept in registers for the whole loop.
     * ldmatrix matrices: 0 = rows 0-7 / cols 0-7, 1 = rows 8-15 / cols 0-7, 2 = rows 0-7 /
     * cols 8-15, 3 = rows 8-15 / cols 8-15 -> exactly a0..a3. */
    uint32_t qf[KS][4];
    LISA_UNROLL
    for (int ks = 0; ks < KS; ks++) {
        int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = ks * 16 + (lane >> 4) * 8;
        lk_ldmatrix_x4(qf[ks], Qs + r * DP + c);
    }
    /* This thread's two query rows (block-local) and their global indices. */
    const int row_l[2] = {warp * 16 + g, warp * 16 + g + 8};
    const int qi[2] = {m0 + row_l[0], m0 + row_l[1]};
    if (REL >= 2) lk_flash_relpos_from_q<D>(p, qf, relh_s, relw_s, Ks + KV_BUF, m0, m_last, Tq, row_l, ld_h, ld_w);
    /* REL 3: this thread's rel_w terms (columns 8j + 2tg + c of every tile, its two rows) */
    float rw_reg[REL == 3 ? 8 : 1][2][2];
    if (REL == 3) {
        LISA_UNROLL
        for (int j = 0; j < (REL == 3 ? 8 : 1); j++)
            LISA_UNROLL
            for (int c = 0; c < 2; c++)
                LISA_UNROLL
                for (int r = 0; r < 2; r++) rw_reg[j][c][r] = relw_s[row_l[r] * ld_w + 8 * j + 2 * tg + c];
    }

    float o[NO][4];
    LISA_UNROLL
    for (int n = 0; n < NO; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m_i[2] = {-INFINITY, -INFINITY}, l_i[2] = {0.0f, 0.0f};
    const int causal_off = Tk - Tq;

    for (int t = 0; t < n_tiles; t++) {
        const int buf = t & 1, n0 = t * BN;
        if (t + 1 < n_tiles) { /* prefetch the next K/V tile (and its (ky, kx) table) into the other buffer */
            lk_flash_load_tile<D>(Ks + (buf ^ 1) * KV_BUF, k_row, n0 + BN, Tk);
            lk_flash_load_tile<D>(Vs + (buf ^ 1) * KV_BUF, v_row, n0 + BN, Tk);
            if (KYX && tid < BN) {
                const int j = n0 + BN + tid;
                kyx_s[(buf ^ 1) * BN + tid] = lk_flash_kyx(j < Tk ? j : 0, k_w);
            }
            lk_cp_async_commit();
            lk_cp_async_wait<1>();
        } else {
            lk_cp_async_wait<0>();
        }
        lk_syncthreads();
        const lisa_bf16_t *Kt = Ks + buf * KV_BUF, *Vt = Vs + buf * KV_BUF;

        /* S = Q Kᵀ for 16 rows x 64 keys per warp: s[j] is n-tile j (keys 8j..8j+7). B operand
         * (k = head dim, n = key) straight from row-major K: matrices 0/1 = keys 0-7 at d and
         * d+8 (b0, b1 of n-tile 2np), 2/3 = keys 8-15 (n-tile 2np+1). */
        float s[8][4];
        LISA_UNROLL
        for (int j = 0; j < 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
        LISA_UNROLL
        for (int ks = 0; ks < KS; ks++) {
            LISA_UNROLL
            for (int np = 0; np < 4; np++) {
                uint32_t kb[4];
                int r = np * 16 + (lane & 7) + (lane >> 4) * 8, c = ks * 16 + ((lane >> 3) & 1) * 8;
                lk_ldmatrix_x4(kb, Kt + r * DP + c);
                const uint32_t b0[2] = {kb[0], kb[1]}, b1[2] = {kb[2], kb[3]};
                lk_mma_bf16_16816(s[2 * np], qf[ks], b0);
                lk_mma_bf16_16816(s[2 * np + 1], qf[ks], b1);
            }
        }

        /* Scale, rel-pos, mask. Element e of n-tile j: row row_l[e/2], key n0 + 8j + 2tg + e%2.
         * need_mask is uniform per tile: only the last partial tile and the causal diagonal mask. */
        const bool need_mask = (!EVEN && n0 + BN > Tk) || (CAUSAL && n0 + BN - 1 > m0 + causal_off);
        float rh_t[2] = {0.0f, 0.0f}; /* REL 3: the tile's rel_h term (ky = t) of this thread's rows */
        if (REL == 3) rh_t[0] = relh_s[row_l[0] * ld_h + t], rh_t[1] = relh_s[row_l[1] * ld_h + t];
        LISA_UNROLL
        for (int j = 0; j < 8; j++) {
            LISA_UNROLL
            for (int c = 0; c < 2; c++) {
                const int col = 8 * j + 2 * tg + c, key = n0 + col;
                int ky = 0, kx = 0;
                if (KYX) { /* this column's (ky, kx) from the tile's table (keys >= Tk read key 0's, masked below) */
                    const uint16_t v = kyx_s[buf * BN + col];
                    ky = v >> 8, kx = v & 255;
                }
                LISA_UNROLL
                for (int r = 0; r < 2; r++) {
                    float x = s[j][2 * r + c] * p.scale_log2;
                    if (KYX) x += relh_s[row_l[r] * ld_h + ky] + relw_s[row_l[r] * ld_w + kx];
                    if (REL == 3) x += rh_t[r] + rw_reg[REL == 3 ? j : 0][c][r];
                    if (need_mask && ((!EVEN && key >= Tk) || (CAUSAL && key > qi[r] + causal_off))) x = -INFINITY;
                    s[j][2 * r + c] = x;
                }
            }
        }

        /* Online softmax per row; a row's 64 scores are spread over the 4 lanes of a quad. */
        LISA_UNROLL
        for (int r = 0; r < 2; r++) {
            float mx = -INFINITY;
            LISA_UNROLL
            for (int j = 0; j < 8; j++) mx = fmaxf(mx, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
            mx = fmaxf(mx, lk_shfl_xor(mx, 1));
            mx = fmaxf(mx, lk_shfl_xor(mx, 2));
            const float m_new = fmaxf(m_i[r], mx);
            const float m_use = m_new == -INFINITY ? 0.0f : m_new; /* no (-inf) - (-inf) */
            const float alpha = lk_exp2(m_i[r] - m_use);
            float sum = 0.0f;
            LISA_UNROLL
            for (int j = 0; j < 8; j++) {
                s[j][2 * r] = lk_exp2(s[j][2 * r] - m_use);
                s[j][2 * r + 1] = lk_exp2(s[j][2 * r + 1] - m_use);
                sum += s[j][2 * r] + s[j][2 * r + 1];
            }
            l_i[r] = l_i[r] * alpha + sum; /* this lane's partial sum; the quad is reduced at the end */
            m_i[r] = m_new;
            LISA_UNROLL
            for (int n = 0; n < NO; n++) {
                o[n][2 * r] *= alpha;
                o[n][2 * r + 1] *= alpha;
            }
        }

        /* O += P V. P (bf16) as the A operand: the accumulators of n-tiles 2ks2 and 2ks2+1 are
         * exactly the a0..a3 layout of a 16x16 tile. V as the B operand (k = key, n = head dim)
         * via ldmatrix.trans: matrices 0/1 = keys 0-7 / 8-15 at d (b0, b1 of n-tile 2dp),
         * 2/3 = the same at d+8 (n-tile 2dp+1). */
        LISA_UNROLL
        for (int ks2 = 0; ks2 < BN / 16; ks2++) {
            uint32_t a[4];
            a[0] = lk_pack_bf16x2(s[2 * ks2][0], s[2 * ks2][1]);
            a[1] = lk_pack_bf16x2(s[2 * ks2][2], s[2 * ks2][3]);
            a[2] = lk_pack_bf16x2(s[2 * ks2 + 1][0], s[2 * ks2 + 1][1]);
            a[3] = lk_pack_bf16x2(s[2 * ks2 + 1][2], s[2 * ks2 + 1][3]);
            LISA_UNROLL
            for (int dp = 0; dp < D / 16; dp++) {
                uint32_t vb[4];
                int r = ks2 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = dp * 16 + (lane >> 4) * 8;
                lk_ldmatrix_x4_trans(vb, Vt + r * DP + c);
                const uint32_t b0[2] = {vb[0], vb[1]}, b1[2] = {vb[2], vb[3]};
                lk_mma_bf16_16816(o[2 * dp], a, b0);
                lk_mma_bf16_16816(o[2 * dp + 1], a, b1);
            }
        }
        lk_syncthreads(); /* every warp is done with buffer `buf` before it is refilled */
    }
    if (n_tiles == 0) lk_cp_async_wait<0>();

    /* Normalize and store. Row r of this thread: columns 8n + 2tg, +1 of every n-tile. */
    LISA_UNROLL
    for (int r = 0; r < 2; r++) {
        float l = l_i[r];
        l += lk_shfl_xor(l, 1);
        l += lk_shfl_xor(l, 2);
        const float inv = l > 0.0f ? 1.0f / l : NAN; /* no key at all (Tk = 0): NaN, as torch */
        if (qi[r] >= Tq) continue;
        const int64_t ob = (p.cu_seqlens_q ? 0 : (int64_t)b * p.o_bs) + (qrow0 + qi[r]) * p.o_rs + (int64_t)h * p.o_hs;
        LISA_UNROLL
        for (int n = 0; n < NO; n++) {
            const int d = 8 * n + 2 * tg;
            const float v0 = o[n][2 * r] * inv, v1 = o[n][2 * r + 1] * inv;
            if (p.o_f32) {
                float *op = (float *)p.o + ob + d;
                op[0] = v0;
                op[1] = v1;
            } else {
                *(uint32_t *)((lisa_bf16_t *)p.o + ob + d) = lk_pack_bf16x2(v0, v1);
            }
        }
    }
}

/* The instantiated variants and the one that computes p (the launchers and the emulator tests use
 * this; nullptr when no variant fits: the caller falls back). Compiled: D 64 and 128 causal or not,
 * D 128 also paged (PAGED_ATTENTION's prefill chunks: LLaMA), D 80 causal or not and, non-causal,
 * with rel-pos terms (REL 1, SAM through ATTENTION) and EVEN (SAM's 64x64 global attention: 4096
 * keys); rel-pos from the tables (REL 2, ATTENTION_RELPOS) at D 80 (SAM ViT-H) and 64 (ViT-B/L),
 * EVEN or not, and REL 3 (EVEN, grids 64 keys wide: SAM's global blocks) at both. Every variant is a full kernel (code size and build time), so only the
 * combinations LISA runs, plus plain causal and non-causal attention for every head dim, are
 * instantiated. */
typedef void (*lk_flash_fn)(const lk_flash_params);

inline bool lk_flash_even(const lk_flash_params &p) {
    return !p.cu_seqlens_q && !p.cu_seqlens_k && !p.kv_indices && p.Tq % LK_FLASH_BM == 0 && p.Tk % LK_FLASH_BN == 0;
}

template <int D> inline lk_flash_fn lk_flash_select(const lk_flash_params &p);
template <> inline lk_flash_fn lk_flash_select<64>(const lk_flash_params &p) {
    if (p.rel_h || p.kv_indices) return nullptr;
    if (p.rel_pos_h) {
        if (p.causal || p.cu_seqlens_q || p.cu_seqlens_k) return nullptr;
        if (p.k_w == LK_FLASH_BN && lk_flash_even(p)) return lk_flash_fwd_v<64, 3, false, false, true>;
        return lk_flash_even(p) ? lk_flash_fwd_v<64, 2, false, false, true> : lk_flash_fwd_v<64, 2, false, false, false>;
    }
    return p.causal ? lk_flash_fwd_v<64, 0, true, false, false> : lk_flash_fwd_v<64, 0, false, false, false>;
}
template <> inline lk_flash_fn lk_flash_select<80>(const lk_flash_params &p) {
    if (p.kv_indices) return nullptr;
    const bool even = lk_flash_even(p);
    if (p.rel_pos_h) {
        if (p.causal || p.rel_h || p.cu_seqlens_q || p.cu_seqlens_k) return nullptr;
        if (p.k_w == LK_FLASH_BN && even) return lk_flash_fwd_v<80, 3, false, false, true>;
        return even ? lk_flash_fwd_v<80, 2, false, false, true> : lk_flash_fwd_v<80, 2, false, false, false>;
    }
    if (p.rel_h) {
        if (p.causal) return nullptr;
        return even ? lk_flash_fwd_v<80, 1, false, false, true> : lk_flash_fwd_v<80, 1, false, false, false>;
    }
    if (p.causal) return lk_flash_fwd_v<80, 0, true, false, false>;
    return even ? lk_flash_fwd_v<80, 0, false, false, true> : lk_flash_fwd_v<80, 0, false, false, false>;
}
template <> inline lk_flash_fn lk_flash_select<128>(const lk_flash_params &p) {
    if (p.rel_h || p.rel_pos_h) return nullptr;
    if (p.kv_indices)
        return p.causal ? lk_flash_fwd_v<128, 0, true, true, false> : lk_flash_fwd_v<128, 0, false, true, false>;
    return p.causal ? lk_flash_fwd_v<128, 0, true, false, false> : lk_flash_fwd_v<128, 0, false, false, false>;
}

/* ============================================================================================
 * 2. Split-KV attention for few queries (decode, two-way token->image)
 * ============================================================================================ */

enum { LK_SPLITKV_MAXQ = 8, LK_SPLITKV_MAXD = 128, LK_SPLITKV_WARPS = 4, LK_SPLITKV_KEYS = 256 };

typedef struct lk_splitkv_params {
    const void *q; /* [B, Tq, Hq, D], or packed [total, Hq, D] with qo_indptr */
    int64_t q_bs, q_rs, q_hs;
    const int32_t *qo_indptr; /* [B+1] query rows of each sequence (packed q and o), or NULL */
    /* Contiguous KV: k/v [B, Tk, Hkv, D] with strides; per-batch lengths seqlens_k[b] (NULL: Tk). */
    const void *k, *v;
    int64_t k_bs, k_rs, k_hs, v_bs, v_rs, v_hs;
    const int32_t *seqlens_k;
    /* Paged KV (kv_indices != NULL; runtime/kv_cache.h, FlashInfer's CSR plan): k/v are pools
     * [n_pages, page_size, Hkv, D] (slot stride k_rs, head stride k_hs); sequence b owns pages
     * kv_indices[kv_indptr[b] .. kv_indptr[b+1]) and kv_len[b] keys. */
    const int32_t *kv_indptr, *kv_indices, *kv_len;
    int32_t page_size;
    void *o; /* like q */
    int64_t o_bs, o_rs, o_hs;
    float *part_o;  /* [B, Hq, n_split, Tq, D] unnormalized partial outputs (n_split > 1) */
    float *part_ml; /* [B, Hq, n_split, Tq, 2] running max (log2 domain) and sum */
    int32_t B, Tq, Tk, Hq, Hkv, D, n_split, keys_per_split; /* Tq: rows per sequence (max with qo_indptr) */
    float scale_log2;
    bool causal; /* query r sees keys j <= r + (Tk_b - Tq_b) */
} lk_splitkv_params;

/* Keys of batch b (contiguous: seqlens_k or Tk; paged: kv_len). */
LISA_DEV int lk_splitkv_len(const lk_splitkv_params &p, int b) {
    if (p.kv_indices) return p.kv_len[b];
    return p.seqlens_k ? p.seqlens_k[b] : p.Tk;
}

/* Element offset of key j's row for kv head hk. */
LISA_DEV int64_t lk_splitkv_row(const lk_splitkv_params &p, int b, int j, int hk, int64_t bs, int64_t rs, int64_t hs) {
    if (p.kv_indices) {
        int page = p.kv_indices[p.kv_indptr[b] + j / p.page_size];
        return ((int64_t)page * p.page_size + j % p.page_size) * rs + (int64_t)hk * hs;
    }
    return (int64_t)b * bs + (int64_t)j * rs + (int64_t)hk * hs;
}

/* First q/o row of sequence b and its row count. */
LISA_DEV void lk_splitkv_rows(const lk_splitkv_params &p, int b, int64_t *q0, int64_t *o0, int *nq) {
    if (p.qo_indptr) {
        *q0 = (int64_t)p.qo_indptr[b] * p.q_rs;
        *o0 = (int64_t)p.qo_indptr[b] * p.o_rs;
        *nq = p.qo_indptr[b + 1] - p.qo_indptr[b];
    } else {
        *q0 = (int64_t)b * p.q_bs;
        *o0 = (int64_t)b * p.o_bs;
        *nq = p.Tq;
    }
}

/* grid (n_split, Hq, B), block 128 (4 warps). Each warp walks chunks of 32 keys of the block's
 * range: lane = key for the scores (q in shared memory, the key row by 16-byte loads), then
 * lane = head-dim slice for P·V (value rows read coalesced). Warps are merged in shared memory;
 * with n_split == 1 the block writes the output, else partials for lk_attn_combine. */
template <typename T> LISA_GLOBAL void lk_attn_splitkv(const lk_splitkv_params p) {
    constexpr int VEC = 16 / (int)sizeof(T);
    constexpr int DPL = LK_SPLITKV_MAXD / 32; /* head-dim slots per lane */
    LISA_SHARED float qs[LK_SPLITKV_MAXQ][LK_SPLITKV_MAXD];
    LISA_SHARED float wacc[LK_SPLITKV_WARPS][LK_SPLITKV_MAXQ][LK_SPLITKV_MAXD];
    LISA_SHARED float wm[LK_SPLITKV_WARPS][LK_SPLITKV_MAXQ], wl[LK_SPLITKV_WARPS][LK_SPLITKV_MAXQ];

    const int split = (int)blockIdx.x, h = (int)blockIdx.y, b = (int)blockIdx.z;
    const int tid = (int)threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int D = p.D;
    int64_t q0, o0;
    int Tq;
    lk_splitkv_rows(p, b, &q0, &o0, &Tq);
    if (Tq == 0 || Tq > LK_SPLITKV_MAXQ) return; /* uniform: longer sequences go to the flash kernel */
    const int hk = h / (p.Hq / p.Hkv);
    const int Tk = lk_splitkv_len(p, b);
    const int kbeg = split * p.keys_per_split;
    const int kend = kbeg + p.keys_per_split < Tk ? kbeg + p.keys_per_split : Tk;

    for (int i = tid; i < Tq * D; i += LK_SPLITKV_WARPS * 32) {
        int r = i / D, d = i % D;
        qs[r][d] = lk_to_f32(((const T *)p.q)[q0 + (int64_t)r * p.q_rs + (int64_t)h * p.q_hs + d]);
    }
    lk_syncthreads();

    float m[LK_SPLITKV_MAXQ], l[LK_SPLITKV_MAXQ], acc[LK_SPLITKV_MAXQ][DPL];
    LISA_UNROLL
    for (int r = 0; r < LK_SPLITKV_MAXQ; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        LISA_UNROLL
        for (int i = 0; i < DPL; i++) acc[r][i] = 0.0f;
    }
    const T *kbase = (const T *)p.k, *vbase = (const T *)p.v;
    const int causal_off = Tk - Tq;

    for (int c0 = kbeg + warp * 32; c0 < kend; c0 += LK_SPLITKV_WARPS * 32) {
        const int j = c0 + lane;
        const bool valid = j < kend;
        float sc[LK_SPLITKV_MAXQ];
        LISA_UNROLL
        for (int r = 0; r < LK_SPLITKV_MAXQ; r++) sc[r] = 0.0f;
        if (valid) {
            const T *krow = kbase + lk_splitkv_row(p, b, j, hk, p.k_bs, p.k_rs, p.k_hs);
            for (int d0 = 0; d0 < D; d0 += VEC) {
                float kv[VEC];
                lk_unpack16<T>(kv, lk_ld16(krow + d0));
                LISA_UNROLL
                for (int r = 0; r < LK_SPLITKV_MAXQ; r++) {
                    if (r < Tq) {
                        LISA_UNROLL
                        for (int e = 0; e < VEC; e++) sc[r] += qs[r][d0 + e] * kv[e];
                    }
                }
            }
        }
        /* Online softmax per query row over this chunk (log2 domain). */
        float pr[LK_SPLITKV_MAXQ];
        LISA_UNROLL
        for (int r = 0; r < LK_SPLITKV_MAXQ; r++) {
            pr[r] = 0.0f;
            if (r >= Tq) continue; /* uniform */
            const bool vis = valid && !(p.causal && j > r + causal_off);
            const float x = vis ? sc[r] * p.scale_log2 : -INFINITY;
            const float m_new = fmaxf(m[r], lk_warp_max(x));
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            const float alpha = lk_exp2(m[r] - m_use);
            pr[r] = lk_exp2(x - m_use);
            l[r] = l[r] * alpha + lk_warp_sum(pr[r]);
            m[r] = m_new;
            LISA_UNROLL
            for (int i = 0; i < DPL; i++) acc[r][i] *= alpha;
        }
        /* acc[r][d] += Σ_jj p[r][jj] · v[c0 + jj][d], lane owning d = lane + 32i. */
        const int nk = kend - c0 < 32 ? kend - c0 : 32;
        for (int jj = 0; jj < nk; jj++) {
            const T *vrow = vbase + lk_splitkv_row(p, b, c0 + jj, hk, p.v_bs, p.v_rs, p.v_hs);
            float vv[DPL];
            LISA_UNROLL
            for (int i = 0; i < DPL; i++) {
                int d = lane + 32 * i;
                vv[i] = d < D ? lk_to_f32(vrow[d]) : 0.0f;
            }
            LISA_UNROLL
            for (int r = 0; r < LK_SPLITKV_MAXQ; r++) {
                if (r >= Tq) continue;
                const float pj = lk_shfl(pr[r], jj);
                LISA_UNROLL
                for (int i = 0; i < DPL; i++) acc[r][i] += pj * vv[i];
            }
        }
    }

    /* Merge the 4 warps, then write the output (one split) or this split's partial. */
    LISA_UNROLL
    for (int r = 0; r < LK_SPLITKV_MAXQ; r++) {
        if (r >= Tq) continue;
        if (lane == 0) {
            wm[warp][r] = m[r];
            wl[warp][r] = l[r];
        }
        LISA_UNROLL
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            if (d < D) wacc[warp][r][d] = acc[r][i];
        }
    }
    lk_syncthreads();
    for (int i = tid; i < Tq * D; i += LK_SPLITKV_WARPS * 32) {
        const int r = i / D, d = i % D;
        float M = -INFINITY;
        for (int w = 0; w < LK_SPLITKV_WARPS; w++) M = fmaxf(M, wm[w][r]);
        float L = 0.0f, O = 0.0f;
        if (M != -INFINITY) {
            for (int w = 0; w < LK_SPLITKV_WARPS; w++) {
                const float f = lk_exp2(wm[w][r] - M);
                L += wl[w][r] * f;
                O += wacc[w][r][d] * f;
            }
        }
        if (p.n_split == 1) {
            ((T *)p.o)[o0 + (int64_t)r * p.o_rs + (int64_t)h * p.o_hs + d] = lk_from_f32<T>(L > 0.0f ? O / L : NAN);
        } else {
            const int64_t pi = (((int64_t)b * p.Hq + h) * p.n_split + split) * p.Tq + r;
            p.part_o[pi * D + d] = O;
            if (d == 0) {
                p.part_ml[pi * 2] = M;
                p.part_ml[pi * 2 + 1] = L;
            }
        }
    }
}

/* grid (Hq, B), block 128: merges the n_split partials of each (b, h, query row), in split order. */
template <typename T> LISA_GLOBAL void lk_attn_combine(const lk_splitkv_params p) {
    const int h = (int)blockIdx.x, b = (int)blockIdx.y, D = p.D, S = p.n_split;
    int64_t q0, o0;
    int Tq;
    lk_splitkv_rows(p, b, &q0, &o0, &Tq);
    if (Tq > LK_SPLITKV_MAXQ) return;
    for (int i = (int)threadIdx.x; i < Tq * D; i += (int)blockDim.x) {
        const int r = i / D, d = i % D;
        const int64_t base = ((int64_t)b * p.Hq + h) * S * p.Tq;
        float M = -INFINITY;
        for (int s = 0; s < S; s++) M = fmaxf(M, p.part_ml[(base + (int64_t)s * p.Tq + r) * 2]);
        float L = 0.0f, O = 0.0f;
        if (M != -INFINITY) {
            for (int s = 0; s < S; s++) {
                const int64_t pi = base + (int64_t)s * p.Tq + r;
                const float f = lk_exp2(p.part_ml[pi * 2] - M);
                L += p.part_ml[pi * 2 + 1] * f;
                O += p.part_o[pi * D + d] * f;
            }
        }
        ((T *)p.o)[o0 + (int64_t)r * p.o_rs + (int64_t)h * p.o_hs + d] = lk_from_f32<T>(L > 0.0f ? O / L : NAN);
    }
}


/* KV_APPEND: k_pages/v_pages[slot, h, :] = k/v[t, h, :] for slots[t] >= 0 (-1 = padding). Pools
 * [n_pages·page_size, Hkv, D] contiguous; k/v [T, Hkv, D] strided (D contiguous); any float dtypes
 * (converted). Writes nothing when the device flag is raised (lk_kv_slots_check runs first, so one
 * bad slot leaves the whole pool untouched, as the CPU backend). grid-stride over T·Hkv·D. */
LISA_GLOBAL void lk_kv_append(void *kp, void *vp, int pdt, const void *k, const void *v, int kdt, int64_t k_ts,
                              int64_t k_hs, int64_t v_ts, int64_t v_hs, const int32_t *slots, int32_t T, int32_t Hkv,
                              int32_t D, int64_t n_slots, const int64_t *flag) {
    if (flag[0] != LK_FLAG_NONE) return;
    const int64_t n = (int64_t)T * Hkv * D;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int d = (int)(i % D), h = (int)((i / D) % Hkv);
        const int64_t t = i / ((int64_t)D * Hkv);
        const int64_t sl = slots[t];
        if (sl < 0 || sl >= n_slots) continue;
        const int64_t dst = (sl * Hkv + h) * D + d;
        lk_store(kp, pdt, dst, lk_load(k, kdt, t * k_ts + (int64_t)h * k_hs + d));
        lk_store(vp, pdt, dst, lk_load(v, kdt, t * v_ts + (int64_t)h * v_hs + d));
    }
}

/* ============================================================================================
 * 3. Reference-quality fallback: one warp per (b, query, head)
 * ============================================================================================ */

typedef struct lk_attn_ref_params {
    const void *q, *k, *v;
    void *o;
    int32_t q_dt, k_dt, v_dt, o_dt;
    int64_t q_bs, q_rs, q_hs, k_bs, k_rs, k_hs, v_bs, v_rs, v_hs, o_bs, o_rs, o_hs;
    int32_t B, Tq, Tk, Hq, Hkv, D; /* D <= 256 */
    float scale;
    bool causal;
    const float *bias; /* [.., .., Tq, Tk] F32; a zero stride broadcasts */
    int64_t bias_bs, bias_hs, bias_rs, bias_js;
    const void *rel_h, *rel_w;
    int32_t rel_dtype, k_h, k_w;
    int64_t rh_bs, rh_hs, rh_rs, rh_cs, rw_bs, rw_hs, rw_rs, rw_cs;
} lk_attn_ref_params;

/* grid ceil(B·Tq·Hq / 4), block 128: warp w handles row ((b·Tq + i)·Hq + h). Natural-log domain
 * and expf, for accuracy; keys with a -inf bias are skipped. */
LISA_GLOBAL void lk_attn_ref(const lk_attn_ref_params p) {
    const int lane = (int)threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * 4 + ((int)threadIdx.x >> 5);
    if (row >= (int64_t)p.B * p.Tq * p.Hq) return; /* whole warp */
    const int h = (int)(row % p.Hq), i = (int)((row / p.Hq) % p.Tq), b = (int)(row / ((int64_t)p.Hq * p.Tq));
    const int hk = h / (p.Hq / p.Hkv);
    const int64_t qo = (int64_t)b * p.q_bs + (int64_t)i * p.q_rs + (int64_t)h * p.q_hs;
    float q[8], acc[8];
    LISA_UNROLL
    for (int s = 0; s < 8; s++) {
        int d = lane + 32 * s;
        q[s] = d < p.D ? lk_load(p.q, p.q_dt, qo + d) : 0.0f;
        acc[s] = 0.0f;
    }
    int kmax = p.Tk;
    if (p.causal) {
        int lim = i + (p.Tk - p.Tq) + 1;
        kmax = lim < kmax ? (lim > 0 ? lim : 0) : kmax;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j < kmax; j++) {
        const int64_t ko = (int64_t)b * p.k_bs + (int64_t)j * p.k_rs + (int64_t)hk * p.k_hs;
        float dot = 0.0f;
        LISA_UNROLL
        for (int s = 0; s < 8; s++) {
            int d = lane + 32 * s;
            if (d < p.D) dot += q[s] * lk_load(p.k, p.k_dt, ko + d);
        }
        float x = lk_warp_sum(dot) * p.scale;
        if (p.bias) x += p.bias[(int64_t)b * p.bias_bs + (int64_t)h * p.bias_hs + (int64_t)i * p.bias_rs + j * p.bias_js];
        if (p.rel_h) {
            int ky = j / p.k_w, kx = j % p.k_w;
            x += lk_load(p.rel_h, p.rel_dtype, (int64_t)b * p.rh_bs + (int64_t)h * p.rh_hs + (int64_t)i * p.rh_rs + ky * p.rh_cs);
            x += lk_load(p.rel_w, p.rel_dtype, (int64_t)b * p.rw_bs + (int64_t)h * p.rw_hs + (int64_t)i * p.rw_rs + kx * p.rw_cs);
        }
        if (x == -INFINITY) continue; /* uniform: x is the same on every lane */
        const float m_new = fmaxf(m, x);
        const float alpha = expf(m - m_new), pj = expf(x - m_new);
        l = l * alpha + pj;
        const int64_t vo = (int64_t)b * p.v_bs + (int64_t)j * p.v_rs + (int64_t)hk * p.v_hs;
        LISA_UNROLL
        for (int s = 0; s < 8; s++) {
            int d = lane + 32 * s;
            acc[s] = acc[s] * alpha + (d < p.D ? pj * lk_load(p.v, p.v_dt, vo + d) : 0.0f);
        }
        m = m_new;
    }
    const float inv = l > 0.0f ? 1.0f / l : NAN; /* every key masked (or none): NaN, as torch */
    const int64_t oo = (int64_t)b * p.o_bs + (int64_t)i * p.o_rs + (int64_t)h * p.o_hs;
    LISA_UNROLL
    for (int s = 0; s < 8; s++) {
        int d = lane + 32 * s;
        if (d < p.D) lk_store(p.o, p.o_dt, oo + d, acc[s] * inv);
    }
}

#endif
