/* kernels/cuda/attn_sm90.cuh — the Hopper flash-attention forward kernel (sm_90a): wgmma + TMA +
 * mbarriers, warp-specialized, SAM's decomposed rel-pos fused (launcher: kernels/cuda/attn_sm90.cu;
 * the mma.sync kernel of attn_kernels.cuh stays for sm_80/86/89 and for shapes the choice table
 * keeps there).
 *
 * Math (spec §5.1 for SAM; FlashAttention-2/3 for the online softmax): for each query row i,
 *   O_i = Σ_j P_ij V_j / Σ_j P_ij,  P_ij = 2^(S_ij - m_i),
 *   S_ij = log2(e)·(scale·q_i·k_j + rel_h[i, ky(j)] + rel_w[i, kx(j)])   (key j = ky·k_w + kx),
 *   m_i the running row max; keys j >= Tk and, causal, j > i + (Tk - Tq) are -inf.
 *
 * One CTA = 384 threads = 3 warpgroups, persistent over work items (m-block of 128 query rows,
 * head, batch entry / sequence), items blockIdx.x, + gridDim.x, ...:
 *   - warpgroup 0, the producer (setmaxnreg.dec 24): one thread issues every TMA copy: the Q tile
 *     of each item (2 stages), the K and V tiles (2 stages, separate full barriers so QKᵀ starts
 *     before V lands), and once per CTA the rel-pos tables. It waits on the stages' "empty"
 *     barriers, which the consumers arrive on.
 *   - warpgroups 1 and 2, the consumers (setmaxnreg.inc 240): each owns 64 query rows of the item.
 *     Per key tile t: S = Q·K_tᵀ (wgmma SS, K-major Q and K) and O += P_{t-1}·V_{t-1} (wgmma RS:
 *     P from registers, V N-major) are issued back to back; the softmax of S_t (scale, rel-pos,
 *     mask, row max, exp2) runs while P·V is still in flight, and O is rescaled only after it
 *     completes (intra-warpgroup overlap). The two consumers alternate their GEMM issue through
 *     two named barriers (ping-pong), so one warpgroup's softmax overlaps the other's GEMMs.
 *
 * Tiles in shared memory, all 1024-byte aligned: a tile of R rows x D is stored as D/W column
 * chunks of R x W (chunk c at c·R·span bytes), each exactly the box TMA writes with the swizzle
 * span = 2W bytes: W = 64 (128-byte swizzle) for D = 64 and 128, W = 16 (32-byte swizzle) for
 * D = 80. Head dim 80 is not padded to 96: QKᵀ takes 5 k-steps of 16 (one per 32-byte chunk,
 * descriptor start at the chunk, SBO = 8 rows = 256 bytes) and P·V is one m64n80k16 wgmma per 16
 * keys with V N-major (LBO = R·32 bytes from one 16-column chunk to the next, SBO = 256 bytes).
 *
 * Rel-pos (REL, compile time): 0 none; 1 the ATTENTION op's precomputed rel_h[B, H, Tq, k_h] and
 * rel_w[.., k_w] (ops.def REL_POS) copied into shared memory per item; 2 fused: q·rel_pos_h and
 * q·rel_pos_w computed per item from the Q tile already in shared memory by wgmma (m64n32k16 over
 * the needed 32-row windows of the tables, loaded once per CTA by TMA) and scattered to
 * relh[row][ky] = q_row·rel_pos_h[qy(row) - ky + k_h - 1]. Both end in the same shared arrays
 * (fp32, ·log2 e) that the score loop adds in registers; ky = umulhi(key, magic(k_w)).
 *
 * Key tiles (lk_fa3_key_tile): 128 keys; 112 at head dim 128 (register budget); SAM windows
 * (196 tokens): BN = 208 keys per tile covers a window in one tile (12 of 208 key
 * slots, 5.8 %, wasted); the query side needs 4 wgmma row tiles of 64 for 196 rows (60 of 256 row
 * slots, 23.4 %, wasted — packing rows of two windows into one tile would need both windows' keys,
 * which costs more than the padding). Useful fraction of the MMA work 196² / (256·208) = 72 %
 * (58.6 % with 64-key tiles). Consecutive items share K/V and are prefetched by the producer, so
 * windows pipeline across items instead of within one.
 */
#ifndef LISA_KERNELS_CUDA_ATTN_SM90_CUH
#define LISA_KERNELS_CUDA_ATTN_SM90_CUH

#include "kernels/cuda/prims_sm90.cuh"

#ifndef LK_LOG2E
#define LK_LOG2E 1.4426950408889634f
#endif

#if defined(__CUDACC__) && !defined(LISA_CUDA_EMU)
#define LK_GRID_CONST __grid_constant__
#define LK_FA3_BOUNDS __launch_bounds__(384, 1)
#else
#define LK_GRID_CONST
#define LK_FA3_BOUNDS
#endif

enum {
    LK_FA3_BM = 128,      /* query rows per item (2 consumer warpgroups x 64) */
    LK_FA3_THREADS = 384, /* producer + 2 consumers */
    LK_FA3_NS = 2,        /* K/V stages */
    LK_FA3_BAR_SCHED = 1, /* named barriers 1, 2: the consumers' GEMM turns; 3, 4: per consumer */
    LK_FA3_BAR_WG = 3,
};

/* Everything the kernel reads; built by lk_fa3_plan (host), tensor maps filled by the launcher
 * (cuTensorMapEncodeTiled on the device, emu_tmap_encode_tiled in the emulator). All strides in
 * elements. Borrowed pointers only (the caller's tensors). */
typedef struct lk_fa3_params {
    lk_tmap tm_q;   /* q [B, Tq, Hq, D] as {D, Hq, Tq, B} (varlen: {D, Hq, total_q, 1}); box {W, 1, 128, 1} */
    lk_tmap tm_k;   /* k [B, Tk, Hkv, D] as {D, Hkv, Tk, B}; box {W, 1, BN, 1} */
    lk_tmap tm_v;   /* like k */
    lk_tmap tm_rph; /* REL 2: rel_pos_h [2 k_h - 1, D] as {D, 2 k_h - 1}; box {W, rel_rows} */
    lk_tmap tm_rpw; /* REL 2: rel_pos_w [2 k_w - 1, D] */
    void *o;        /* [B, Tq, Hq, D] (varlen [total_q, Hq, D]), BF16 or F32 (o_f32) */
    int64_t o_bs, o_rs, o_hs;
    const int32_t *cu_q, *cu_k; /* varlen: [B + 1] row offsets of each sequence */
    int32_t B, Tq, Tk, Hq, Hkv; /* varlen: Tq = the longest sequence (sizes the items), Tk unused */
    int32_t n_mblk, n_items;    /* items = n_mblk · Hq · B, m-block fastest */
    float scale_log2;           /* softmax scale · log2 e */
    bool o_f32;
    /* REL 1: precomputed terms rel_h[b, h, i, ky], rel_w[b, h, i, kx] (F32 or BF16 = rel_dtype) */
    const void *rel_h, *rel_w;
    int32_t rel_dtype;
    int64_t rh_bs, rh_hs, rh_rs, rh_cs, rw_bs, rw_hs, rw_rs, rw_cs;
    /* REL 1, 2: key grid k_h x k_w (Tk = k_h·k_w; the query grid is the same, setup checks it), its
     * width's magic, the tables' rows in shared memory (REL 2: 2k - 1 rounded up to 8, at least 32) */
    int32_t k_h, k_w, rel_rows;
    uint32_t kw_magic;
    /* shared-memory layout: byte offsets from the 1024-aligned base */
    uint32_t off_q, off_k, off_v, off_rph, off_rpw, off_relh, off_relw;
    int32_t q_stages, ld_h, ld_w; /* Q stages (1 or 2); row strides (floats) of the rel arrays */
} lk_fa3_params;

/* Compile-time configuration of one kernel variant. */
template <int D_, int BN_> struct lk_fa3_cfg {
    static constexpr int D = D_, BN = BN_;
    static constexpr int SWZ = D % 64 == 0 ? LK_SWZ_128B : LK_SWZ_32B;
    static constexpr int SPAN = 16 << SWZ; /* bytes per swizzle row: 32 or 128 */
    static constexpr int W = SPAN / 2;     /* columns per chunk (bf16) */
    static constexpr int NCH = D / W;      /* column chunks per row */
    static constexpr int KS = D / 16;      /* k-steps of QKᵀ */
    static constexpr int PVS = BN / 16;    /* k-steps of P·V */
    static_assert(D % W == 0 && D % 16 == 0 && BN % 16 == 0 && BN <= 256, "tile shape");
};

/* Shared-memory plan (host and device agree through these offsets). Returns the bytes to request
 * (layout + 1024 bytes to align the base), filling the offsets of p. */
LISA_HD size_t lk_fa3_smem_plan(lk_fa3_params *p, int D, int BN, int rel, int q_stages) {
    const uint32_t q_tile = (uint32_t)LK_FA3_BM * (uint32_t)D * 2u, kv_tile = ((uint32_t)BN * (uint32_t)D * 2u + 1023u) / 1024u * 1024u;
    uint32_t off = 1024; /* mbarriers */
    p->q_stages = q_stages;
    p->off_q = off, off += (uint32_t)q_stages * q_tile;
    p->off_k = off, off += LK_FA3_NS * kv_tile;
    p->off_v = off, off += LK_FA3_NS * kv_tile;
    p->off_rph = p->off_rpw = p->off_relh = p->off_relw = 0;
    p->ld_h = p->k_h + 1, p->ld_w = p->k_w + 1; /* odd strides: rows of a warp fall in different banks */
    if (rel == 2) {
        const uint32_t t = ((uint32_t)p->rel_rows * (uint32_t)D * 2u + 1023u) / 1024u * 1024u;
        p->off_rph = off, off += t;
        p->off_rpw = off, off += t;
    }
    if (rel) {
        p->off_relh = off, off += 2u * 64u * (uint32_t)p->ld_h * 4u;
        p->off_relw = off, off += 2u * 64u * (uint32_t)p->ld_w * 4u;
    }
    return (size_t)off + 1024;
}

/* Keys per tile of the variant that runs (D, rel-pos, Tk): SAM windows (rel-pos, Tk <= 208) in one
 * 208-key tile; head dim 128 in 112-key tiles (with 128 the causal variants spill: S, P and O
 * would need 64 + 32 + 64 of the consumers' 240 registers); else 128. */
LISA_HD int lk_fa3_key_tile(int D, int rel, int Tk) { return rel && Tk <= 208 ? 208 : D == 128 ? 112 : 128; }

/* Rows of the rel-pos tables kept in shared memory: 2k - 1 rounded up to 8, at least 32 (one
 * m64n32 wgmma window). */
LISA_HD int32_t lk_fa3_rel_rows(int32_t k) {
    int32_t r = (2 * k - 1 + 7) / 8 * 8;
    return r < 32 ? 32 : r;
}

/* One work item's geometry, computed identically by the producer and the consumers. */
struct lk_fa3_item {
    int b, h, hk, m0, Tq, Tk;
    int64_t qrow0, krow0; /* first row of the sequence in the packed tensors (varlen), else 0 */
    int bq, bk;           /* batch coordinate of the tensor maps (varlen: 0) */
    int n_tiles;          /* key tiles this item visits */
};

template <int BN, bool CAUSAL, bool VARLEN> LISA_DEV bool lk_fa3_item_at(const lk_fa3_params &p, int item, lk_fa3_item *it) {
    it->m0 = (item % p.n_mblk) * LK_FA3_BM;
    it->h = (item / p.n_mblk) % p.Hq;
    it->b = item / (p.n_mblk * p.Hq);
    it->hk = it->h / (p.Hq / p.Hkv);
    if (VARLEN) {
        it->qrow0 = p.cu_q[it->b], it->Tq = p.cu_q[it->b + 1] - p.cu_q[it->b];
        it->krow0 = p.cu_k[it->b], it->Tk = p.cu_k[it->b + 1] - p.cu_k[it->b];
        it->bq = it->bk = 0;
    } else {
        it->qrow0 = it->krow0 = 0, it->Tq = p.Tq, it->Tk = p.Tk;
        it->bq = it->bk = it->b;
    }
    if (it->m0 >= it->Tq) return false;
    int n_end = it->Tk;
    if (CAUSAL) { /* the item's last row sees keys <= its index + (Tk - Tq) */
        const int last = (it->m0 + LK_FA3_BM < it->Tq ? it->m0 + LK_FA3_BM : it->Tq) - 1;
        const int lim = last + (it->Tk - it->Tq) + 1;
        n_end = lim < n_end ? lim : n_end;
    }
    it->n_tiles = n_end > 0 ? (n_end + BN - 1) / BN : 0;
    return true;
}

template <int N> LISA_DEV void lk_fence_regs(float (&r)[N]) {
    LISA_UNROLL
    for (int i = 0; i < N; i++) lk_reg_fence(r[i]);
}
template <int N> LISA_DEV void lk_fence_regs(uint32_t (&r)[N][4]) {
    LISA_UNROLL
    for (int i = 0; i < N; i++) {
        lk_reg_fence(r[i][0]);
        lk_reg_fence(r[i][1]);
        lk_reg_fence(r[i][2]);
        lk_reg_fence(r[i][3]);
    }
}

/* S[64 x N] = Q_wg · Bᵀ over KS k-steps: Q chunked (rows_q rows per chunk, this warpgroup's 64
 * rows at row0), B chunked (rows_b rows per chunk, starting at row rb0, a multiple of 8). */
template <class C, int N>
LISA_DEV void lk_fa3_gemm_qk(float (&s)[N / 2], uint32_t q_base, int rows_q, int row0, uint32_t b_base, int rows_b, int rb0) {
    LISA_UNROLL
    for (int ks = 0; ks < C::KS; ks++) {
        const int c = ks * 16 / C::W, in = ks * 16 % C::W; /* chunk, column in it */
        const uint32_t qa = q_base + (uint32_t)(c * rows_q * C::SPAN + row0 * C::SPAN + in * 2);
        const uint32_t ba = b_base + (uint32_t)(c * rows_b * C::SPAN + rb0 * C::SPAN + in * 2);
        lk_wgmma_ss<N, 0, 0>(s, lk_gmma_desc(qa, 16, 8 * C::SPAN, C::SWZ), lk_gmma_desc(ba, 16, 8 * C::SPAN, C::SWZ), ks > 0);
    }
}

/* O[64 x D] += P[64 x BN] · V[BN x D]: V N-major (chunks of W head-dim columns, BN rows each). */
template <class C>
LISA_DEV void lk_fa3_gemm_pv(float (&o)[C::D / 2], const uint32_t (&pa)[C::PVS][4], uint32_t v_base) {
    LISA_UNROLL
    for (int ks = 0; ks < C::PVS; ks++) {
        const uint32_t va = v_base + (uint32_t)(ks * 16 * C::SPAN);
        lk_wgmma_rs<C::D, 1>(o, pa[ks], lk_gmma_desc(va, (uint32_t)(C::BN * C::SPAN), 8 * C::SPAN, C::SWZ), true);
    }
}

/* grid (min(n_items, SMs)), block 384, dynamic smem lk_fa3_smem_plan(...). */
template <int D, int BN, int REL, bool CAUSAL, bool VARLEN>
LISA_GLOBAL void LK_FA3_BOUNDS lk_fa3_fwd(const LK_GRID_CONST lk_fa3_params p) {
#if defined(LK_SM90_ENABLED)
    using C = lk_fa3_cfg<D, BN>;
    constexpr int BM = LK_FA3_BM, NS = LK_FA3_NS;
    constexpr uint32_t Q_TILE = (uint32_t)BM * D * 2, KV_BYTES = (uint32_t)BN * D * 2;
    constexpr uint32_t KV_TILE = (KV_BYTES + 1023u) / 1024u * 1024u;

    unsigned char *smem = lk_dyn_smem();
    unsigned char *base = smem + (1024u - lk_smem_u32(smem) % 1024u) % 1024u;
    const uint32_t sbase = lk_smem_u32(base);
    uint64_t *bars = (uint64_t *)base;
    uint64_t *q_full = bars, *q_empty = bars + 2, *k_full = bars + 4, *v_full = bars + 4 + NS, *kv_empty = bars + 4 + 2 * NS;
    uint64_t *rel_full = bars + 4 + 3 * NS;
    const int tid = (int)threadIdx.x, wg = tid / 128;

    if (tid == 0) {
        for (int i = 0; i < 2; i++) {
            lk_mbar_init(&q_full[i], 1);
            lk_mbar_init(&q_empty[i], 256);
        }
        for (int i = 0; i < NS; i++) {
            lk_mbar_init(&k_full[i], 1);
            lk_mbar_init(&v_full[i], 1);
            lk_mbar_init(&kv_empty[i], 256);
        }
        lk_mbar_init(rel_full, 1);
        lk_mbar_fence_init();
    }
    lk_syncthreads();

    if (wg == 0) {
        /* ------------------------------ producer ------------------------------------------- */
        lk_setmaxnreg_dec<24>();
        if (tid != 0) return;
        lk_tma_prefetch(&p.tm_q);
        lk_tma_prefetch(&p.tm_k);
        lk_tma_prefetch(&p.tm_v);
        if (REL == 2) { /* the rel-pos tables, once per CTA */
            const uint32_t rb = (uint32_t)p.rel_rows * C::SPAN;
            lk_mbar_arrive_expect_tx(rel_full, 2u * (uint32_t)C::NCH * rb);
            for (int c = 0; c < C::NCH; c++) {
                lk_tma_load_2d(base + p.off_rph + c * rb, &p.tm_rph, rel_full, c * C::W, 0);
                lk_tma_load_2d(base + p.off_rpw + c * rb, &p.tm_rpw, rel_full, c * C::W, 0);
            }
        }
        int q_iter = 0, kv_iter = 0;
        for (int item = (int)blockIdx.x; item < p.n_items; item += (int)gridDim.x) {
            lk_fa3_item it;
            if (!lk_fa3_item_at<BN, CAUSAL, VARLEN>(p, item, &it)) continue;
            const int qs = q_iter % p.q_stages;
            lk_mbar_wait(&q_empty[qs], ((q_iter / p.q_stages) & 1) ^ 1);
            lk_mbar_arrive_expect_tx(&q_full[qs], Q_TILE);
            unsigned char *qt = base + p.off_q + qs * Q_TILE;
            for (int c = 0; c < C::NCH; c++)
                lk_tma_load_4d(qt + c * BM * C::SPAN, &p.tm_q, &q_full[qs], c * C::W, it.h, (int)it.qrow0 + it.m0, it.bq);
            for (int t = 0; t < it.n_tiles; t++, kv_iter++) {
                const int st = kv_iter % NS;
                lk_mbar_wait(&kv_empty[st], ((kv_iter / NS) & 1) ^ 1);
                unsigned char *kt = base + p.off_k + st * KV_TILE, *vt = base + p.off_v + st * KV_TILE;
                const int row = (int)it.krow0 + t * BN;
                lk_mbar_arrive_expect_tx(&k_full[st], KV_BYTES);
                for (int c = 0; c < C::NCH; c++) lk_tma_load_4d(kt + c * BN * C::SPAN, &p.tm_k, &k_full[st], c * C::W, it.hk, row, it.bk);
                lk_mbar_arrive_expect_tx(&v_full[st], KV_BYTES);
                for (int c = 0; c < C::NCH; c++) lk_tma_load_4d(vt + c * BN * C::SPAN, &p.tm_v, &v_full[st], c * C::W, it.hk, row, it.bk);
            }
            q_iter++;
        }
        return;
    }

    /* ------------------------------ consumers ---------------------------------------------- */
    lk_setmaxnreg_inc<240>();
    const int cw = wg - 1;                           /* consumer warpgroup 0 or 1: rows 64cw .. */
    const int t128 = tid % 128;
    const int t4 = tid % 4;                          /* fragment column pair */
    float *relh = (float *)(base + p.off_relh) + cw * 64 * p.ld_h;
    float *relw = (float *)(base + p.off_relw) + cw * 64 * p.ld_w;
    if (cw == 1) lk_named_bar_arrive(LK_FA3_BAR_SCHED + 0, 256); /* consumer 0 issues first */
    if (REL == 2) lk_mbar_wait(rel_full, 0);

    /* pipeline positions, modulo 4 (all that stage and phase need): bits 0-1 the K/V tile, bits 2-3 the
     * Q tile; one register instead of two counters (the key loop leaves none to spare) */
    uint32_t pipe = 0;
#define LK_KV ((int)(pipe & 3u))
#define LK_QI ((int)((pipe >> 2) & 3u))
#define LK_KV_NEXT() (pipe = (pipe & ~3u) | ((pipe + 1u) & 3u))
    for (int item = (int)blockIdx.x; item < p.n_items; item += (int)gridDim.x) {
        lk_fa3_item it;
        if (!lk_fa3_item_at<BN, CAUSAL, VARLEN>(p, item, &it)) continue;
        const bool q2 = p.q_stages == 2; /* Q stages: 2, or 1 when shared memory is short */
        const int qs = q2 ? LK_QI & 1 : 0;
        const uint32_t q_base = sbase + p.off_q + (uint32_t)qs * Q_TILE;
        const int i0 = it.m0 + 64 * cw; /* first query row of this warpgroup */
        /* this thread's rows in the 64 (fragment row g of its warp, and g + 8), recomputed per item
         * from an opaque thread index so that they are not held (or spilled) across items */
        const int tq = lk_opaque(tid) % 128;
        const int row_l[2] = {16 * (tq / 32) + (tq % 32) / 4, 16 * (tq / 32) + (tq % 32) / 4 + 8};
        const int qi[2] = {i0 + row_l[0], i0 + row_l[1]};
        lk_mbar_wait(&q_full[qs], (q2 ? LK_QI >> 1 : LK_QI) & 1);

        if (REL) {
            lk_named_bar_sync(LK_FA3_BAR_WG + cw, 128); /* the previous item's readers are done */
            const int i1 = (i0 + 64 < it.Tq ? i0 + 64 : it.Tq) - 1; /* last valid row (< i0: none) */
            if (REL == 1) {
                const int64_t hb = (int64_t)it.b * p.rh_bs + (int64_t)it.h * p.rh_hs;
                const int64_t wb = (int64_t)it.b * p.rw_bs + (int64_t)it.h * p.rw_hs;
                for (int i = t128; i < 64 * p.k_h; i += 128) {
                    const int r = i / p.k_h, c = i % p.k_h;
                    relh[r * p.ld_h + c] =
                        i0 + r <= i1 ? lk_load(p.rel_h, p.rel_dtype, hb + (int64_t)(i0 + r) * p.rh_rs + c * p.rh_cs) * LK_LOG2E : 0.0f;
                }
                for (int i = t128; i < 64 * p.k_w; i += 128) {
                    const int r = i / p.k_w, c = i % p.k_w;
                    relw[r * p.ld_w + c] =
                        i0 + r <= i1 ? lk_load(p.rel_w, p.rel_dtype, wb + (int64_t)(i0 + r) * p.rw_rs + c * p.rw_cs) * LK_LOG2E : 0.0f;
                }
            } else if (REL == 2) {
                /* rows past the sequence: zeros (their scores are never stored) */
                for (int i = t128; i < 64 * p.k_h; i += 128)
                    if (i0 + i / p.k_h > i1) relh[(i / p.k_h) * p.ld_h + i % p.k_h] = 0.0f;
                for (int i = t128; i < 64 * p.k_w; i += 128)
                    if (i0 + i / p.k_w > i1) relw[(i / p.k_w) * p.ld_w + i % p.k_w] = 0.0f;
                if (i1 >= i0) {
                    /* table rows needed: h: qy(i0) .. qy(i1) + k_h - 1; w: the qx span + k_w - 1 */
                    const int qy0 = (int)lk_umulhi((uint32_t)i0, p.kw_magic), qy1 = (int)lk_umulhi((uint32_t)i1, p.kw_magic);
                    const int qx0 = i0 - qy0 * p.k_w, qx1 = i1 - qy1 * p.k_w;
                    const bool wrap = qy1 > qy0;
                    for (int tab = 0; tab < 2; tab++) {
                        const int lo = tab == 0 ? qy0 : wrap ? 0 : qx0;
                        const int hi = tab == 0 ? qy1 + p.k_h - 1 : (wrap ? p.k_w - 1 : qx1) + (tab == 0 ? p.k_h : p.k_w) - 1;
                        const uint32_t tb = sbase + (tab == 0 ? p.off_rph : p.off_rpw);
                        const int kdim = tab == 0 ? p.k_h : p.k_w;
                        float *dst = tab == 0 ? relh : relw;
                        const int ld = tab == 0 ? p.ld_h : p.ld_w;
                        for (int r0 = lo & ~7; r0 <= hi; r0 += 32) {
                            const int rr = r0 + 32 <= p.rel_rows ? r0 : p.rel_rows - 32;
                            float acc[16];
                            LISA_UNROLL
                            for (int i = 0; i < 16; i++) acc[i] = 0.0f;
                            lk_fence_regs(acc);
                            lk_wgmma_fence();
                            lk_fa3_gemm_qk<C, 32>(acc, q_base, BM, 64 * cw, tb, p.rel_rows, rr);
                            lk_wgmma_commit();
                            lk_wgmma_wait<0>();
                            lk_fence_regs(acc);
                            LISA_UNROLL
                            for (int e = 0; e < 16; e++) { /* element (v0, v1, v2) = (e%2, (e/2)%2, e/4) */
                                const int r = row_l[(e >> 1) & 1], q = i0 + r;
                                const int tr = rr + 8 * (e >> 2) + 2 * t4 + (e & 1); /* table row */
                                if (q > i1) continue;
                                const int qy = (int)lk_umulhi((uint32_t)q, p.kw_magic), qx = q - qy * p.k_w;
                                const int kk = (tab == 0 ? qy : qx) - tr + kdim - 1;
                                if (kk >= 0 && kk < kdim) dst[r * ld + kk] = acc[e] * LK_LOG2E;
                            }
                        }
                    }
                }
            }
            lk_named_bar_sync(LK_FA3_BAR_WG + cw, 128);
        }

        float o[D / 2];
        LISA_UNROLL
        for (int i = 0; i < D / 2; i++) o[i] = 0.0f;
        float m_i[2] = {-INFINITY, -INFINITY}, l_i[2] = {0.0f, 0.0f};
        const int causal_off = it.Tk - it.Tq;
        const int kw = p.k_w;
        const uint32_t kw_magic = p.kw_magic;

        /* scale, rel-pos, mask of tile n0 in place; returns the tile's row maxima */
        auto transform = [&](float (&s)[BN / 2], int n0, float (&mx)[2]) {
            const bool need_mask = n0 + BN > it.Tk || (CAUSAL && n0 + BN - 1 > i0 + causal_off);
            mx[0] = mx[1] = -INFINITY;
            LISA_UNROLL
            for (int v2 = 0; v2 < BN / 8; v2++) {
                LISA_UNROLL
                for (int v0 = 0; v0 < 2; v0++) {
                    const int key = n0 + 8 * v2 + 2 * t4 + v0;
                    int ky = 0, kx = 0;
                    if (REL) {
                        ky = (int)lk_umulhi((uint32_t)key, kw_magic);
                        kx = key - ky * kw;
                        if (key >= it.Tk) ky = kx = 0; /* masked below; keep the lookups in range */
                    }
                    LISA_UNROLL
                    for (int v1 = 0; v1 < 2; v1++) {
                        float x = s[v0 + 2 * v1 + 4 * v2] * p.scale_log2;
                        if (REL) x += relh[row_l[v1] * p.ld_h + ky] + relw[row_l[v1] * p.ld_w + kx];
                        if (need_mask && (key >= it.Tk || (CAUSAL && key > qi[v1] + causal_off))) x = -INFINITY;
                        s[v0 + 2 * v1 + 4 * v2] = x;
                        mx[v1] = fmaxf(mx[v1], x);
                    }
                }
            }
            LISA_UNROLL
            for (int r = 0; r < 2; r++) { /* a row's scores are spread over the 4 lanes of a quad */
                mx[r] = fmaxf(mx[r], lk_shfl_xor(mx[r], 1));
                mx[r] = fmaxf(mx[r], lk_shfl_xor(mx[r], 2));
            }
        };
        /* P = 2^(S - m_new) in place, row sums; returns alpha = 2^(m_old - m_new) per row */
        auto softmax = [&](float (&s)[BN / 2], const float (&mx)[2], float (&alpha)[2], float (&sum)[2]) {
            LISA_UNROLL
            for (int r = 0; r < 2; r++) {
                const float m_new = fmaxf(m_i[r], mx[r]);
                const float m_use = m_new == -INFINITY ? 0.0f : m_new; /* no (-inf) - (-inf) */
                alpha[r] = lk_exp2(m_i[r] - m_use);
                m_i[r] = m_new;
                sum[r] = 0.0f;
                LISA_UNROLL
                for (int v2 = 0; v2 < BN / 8; v2++) {
                    LISA_UNROLL
                    for (int v0 = 0; v0 < 2; v0++) {
                        float &x = s[v0 + 2 * r + 4 * v2];
                        x = lk_exp2(x - m_use);
                        sum[r] += x;
                    }
                }
            }
        };
        /* the bf16 A fragments of P (k-step ks: registers 8ks .. 8ks+7 of S, PTX A layout) */
        auto pack = [&](const float (&s)[BN / 2], uint32_t (&pa)[C::PVS][4]) {
            LISA_UNROLL
            for (int ks = 0; ks < C::PVS; ks++)
                LISA_UNROLL
                for (int i = 0; i < 4; i++) pa[ks][i] = lk_pack_bf16x2(s[8 * ks + 2 * i], s[8 * ks + 2 * i + 1]);
        };

        if (it.n_tiles > 0) {
            float s[BN / 2];
            LISA_UNROLL
            for (int i = 0; i < BN / 2; i++) s[i] = 0.0f;
            uint32_t pa[C::PVS][4];
            float mx[2], alpha[2], sum[2];
            /* tile 0 */
            int st = LK_KV % NS;
            lk_mbar_wait(&k_full[st], (LK_KV / NS) & 1);
            lk_named_bar_sync(LK_FA3_BAR_SCHED + cw, 256);
            lk_fence_regs(s);
            lk_wgmma_fence();
            lk_fa3_gemm_qk<C, BN>(s, q_base, BM, 64 * cw, sbase + p.off_k + (uint32_t)st * KV_TILE, BN, 0);
            lk_wgmma_commit();
            lk_named_bar_arrive(LK_FA3_BAR_SCHED + (1 - cw), 256);
            lk_wgmma_wait<0>();
            lk_fence_regs(s);
            transform(s, 0, mx);
            softmax(s, mx, alpha, sum);
            l_i[0] = sum[0], l_i[1] = sum[1];
            pack(s, pa);
            for (int t = 1; t < it.n_tiles; t++) {
                const int st2 = ((LK_KV + 1) & 3) % NS;
                lk_mbar_wait(&k_full[st2], (((LK_KV + 1) & 3) / NS) & 1);
                lk_named_bar_sync(LK_FA3_BAR_SCHED + cw, 256);
                lk_fence_regs(s);
                lk_wgmma_fence();
                lk_fa3_gemm_qk<C, BN>(s, q_base, BM, 64 * cw, sbase + p.off_k + (uint32_t)st2 * KV_TILE, BN, 0);
                lk_wgmma_commit();
                lk_mbar_wait(&v_full[st], (LK_KV / NS) & 1);
                lk_fence_regs(o);
                lk_fence_regs(pa);
                lk_wgmma_fence();
                lk_fa3_gemm_pv<C>(o, pa, sbase + p.off_v + (uint32_t)st * KV_TILE);
                lk_wgmma_commit();
                lk_named_bar_arrive(LK_FA3_BAR_SCHED + (1 - cw), 256);
                lk_wgmma_wait<1>(); /* S_t is ready; P_{t-1}·V_{t-1} may still run */
                lk_fence_regs(s);
                transform(s, t * BN, mx);
                softmax(s, mx, alpha, sum);
                lk_wgmma_wait<0>();
                lk_fence_regs(o);
                lk_fence_regs(pa);
                lk_mbar_arrive(&kv_empty[st]); /* K and V of tile t-1 are no longer read */
                LK_KV_NEXT();
                st = st2;
                LISA_UNROLL
                for (int i = 0; i < D / 2; i++) o[i] *= alpha[(i >> 1) & 1];
                l_i[0] = l_i[0] * alpha[0] + sum[0];
                l_i[1] = l_i[1] * alpha[1] + sum[1];
                pack(s, pa);
            }
            lk_mbar_wait(&v_full[st], (LK_KV / NS) & 1);
            lk_fence_regs(o);
            lk_fence_regs(pa);
            lk_wgmma_fence();
            lk_fa3_gemm_pv<C>(o, pa, sbase + p.off_v + (uint32_t)st * KV_TILE);
            lk_wgmma_commit();
            lk_wgmma_wait<0>();
            lk_fence_regs(o);
            lk_mbar_arrive(&kv_empty[st]);
            LK_KV_NEXT();
        }
        { /* the Q stage again, from an opaque copy: not worth a register through the key loop */
            const int qi_now = (lk_opaque((int)pipe) >> 2) & 3;
            lk_mbar_arrive(&q_empty[p.q_stages == 2 ? qi_now & 1 : 0]);
        }
        pipe = (pipe + 4u) & 15u; /* next Q tile */

        /* normalize and store: register (v0, v1, v2) is row qi[v1], head-dim column 8 v2 + 2 t4 + v0.
         * The item's geometry and the rows are recomputed from opaque copies: cheaper than keeping
         * them live through the key loop. */
        lk_fa3_item ie;
        (void)lk_fa3_item_at<BN, CAUSAL, VARLEN>(p, lk_opaque(item), &ie);
        const int te = lk_opaque(tid);
        LISA_UNROLL
        for (int r = 0; r < 2; r++) {
            const int qr = ie.m0 + 64 * (te / 128 - 1) + 16 * ((te % 128) / 32) + (te % 32) / 4 + 8 * r;
            float l = l_i[r];
            l += lk_shfl_xor(l, 1);
            l += lk_shfl_xor(l, 2);
            const float inv = l > 0.0f ? 1.0f / l : NAN; /* no key at all: NaN, as torch */
            if (qr >= ie.Tq) continue;
            const int64_t ob = (VARLEN ? 0 : (int64_t)ie.b * p.o_bs) + (ie.qrow0 + qr) * p.o_rs + (int64_t)ie.h * p.o_hs;
            LISA_UNROLL
            for (int v2 = 0; v2 < D / 8; v2++) {
                const int d = 8 * v2 + 2 * t4;
                const float a = o[4 * v2 + 2 * r] * inv, bv = o[4 * v2 + 2 * r + 1] * inv;
                if (p.o_f32) {
                    float *op = (float *)p.o + ob + d;
                    op[0] = a;
                    op[1] = bv;
                } else {
                    *(uint32_t *)((lisa_bf16_t *)p.o + ob + d) = lk_pack_bf16x2(a, bv);
                }
            }
        }
    }
#undef LK_KV
#undef LK_QI
#undef LK_KV_NEXT
    if (tid < 256) lk_named_bar_sync(LK_FA3_BAR_SCHED + 0, 256); /* consumer 0: consumer 1's last turn signal */
#endif
}

/* ============================== host side: the launch plan ================================= */

/* A tensor map to encode (cuTensorMapEncodeTiled's arguments, bf16, element strides 1). */
typedef struct lk_tmap_req {
    const void *base;
    int rank;
    uint64_t dims[4], strides[3]; /* strides in bytes, of dims 1 .. rank-1 */
    uint32_t box[4];
    int swz;
} lk_tmap_req;

/* The problem as the launcher sees it (strides in elements; borrowed pointers). */
typedef struct lk_fa3_args {
    const void *q, *k, *v; /* bf16 [B, T, H, D] (varlen: [total, H, D], B = sequences) */
    void *o;
    int64_t q_bs, q_rs, q_hs, k_bs, k_rs, k_hs, v_bs, v_rs, v_hs, o_bs, o_rs, o_hs;
    int32_t B, Tq, Tk, Hq, Hkv, D;
    const int32_t *cu_q, *cu_k; /* varlen (device): else NULL */
    int64_t total_q, total_k;   /* varlen: rows of q and k */
    float scale;
    bool causal, o_f32;
    int rel; /* 0, 1 (rel_h / rel_w terms), 2 (rel_pos tables, fused) */
    const void *rel_h, *rel_w;
    int32_t rel_dtype;
    int64_t rh_bs, rh_hs, rh_rs, rh_cs, rw_bs, rw_hs, rw_rs, rw_cs;
    const void *rel_pos_h, *rel_pos_w; /* REL 2: bf16 [2k - 1, D], row strides below */
    int64_t rph_rs, rpw_rs;
    int32_t k_h, k_w;
    int BN;     /* key tile of the chosen variant */
    int n_sms;  /* persistent grid size bound */
    size_t smem_max;
} lk_fa3_args;

/* Fills p (all but the tensor maps), the maps to encode (q, k, v, rel_pos_h, rel_pos_w), the
 * dynamic shared memory and the grid. Returns NULL or why the kernel cannot take the problem. */
static inline const char *lk_fa3_setup(const lk_fa3_args *a, lk_fa3_params *p, lk_tmap_req req[5], size_t *smem,
                                       unsigned *grid) {
    memset(p, 0, sizeof *p);
    memset(req, 0, 5 * sizeof *req);
    const int D = a->D, BN = a->BN;
    const int swz = D % 64 == 0 ? LK_SWZ_128B : LK_SWZ_32B, W = (16 << swz) / 2;
    if (D != 64 && D != 80 && D != 128) return "head dim (64, 80, 128)";
    if (a->B < 1 || a->Hq < 1 || a->Hkv < 1 || a->Hq % a->Hkv) return "heads";
    const bool varlen = a->cu_q != NULL;
    p->o = a->o, p->o_bs = a->o_bs, p->o_rs = a->o_rs, p->o_hs = a->o_hs, p->o_f32 = a->o_f32;
    p->cu_q = a->cu_q, p->cu_k = a->cu_k;
    p->B = a->B, p->Tq = a->Tq, p->Tk = a->Tk, p->Hq = a->Hq, p->Hkv = a->Hkv;
    p->scale_log2 = a->scale * LK_LOG2E;
    p->n_mblk = (a->Tq + LK_FA3_BM - 1) / LK_FA3_BM;
    const int64_t items = (int64_t)p->n_mblk * a->Hq * a->B;
    if (items > 0x7fffffff) return "too many work items";
    p->n_items = (int32_t)items;
    /* tensor maps: q/k/v as {D, H, T, B} (varlen {D, H, total, 1}) */
    const void *bases[3] = {a->q, a->k, a->v};
    const int64_t hs[3] = {a->q_hs, a->k_hs, a->v_hs}, rs[3] = {a->q_rs, a->k_rs, a->v_rs}, bs[3] = {a->q_bs, a->k_bs, a->v_bs};
    for (int i = 0; i < 3; i++) {
        lk_tmap_req *r = &req[i];
        const int64_t H = i == 0 ? a->Hq : a->Hkv, T = varlen ? (i == 0 ? a->total_q : a->total_k) : (i == 0 ? a->Tq : a->Tk);
        r->base = bases[i], r->rank = 4, r->swz = swz;
        r->dims[0] = (uint64_t)D, r->dims[1] = (uint64_t)H, r->dims[2] = (uint64_t)(T > 0 ? T : 1);
        r->dims[3] = varlen ? 1 : (uint64_t)a->B;
        r->strides[0] = (uint64_t)hs[i] * 2, r->strides[1] = (uint64_t)rs[i] * 2;
        /* a batch of one: any stride will do (a 3-d view reports 0, which TMA refuses) */
        r->strides[2] = (uint64_t)(r->dims[3] > 1 ? bs[i] : rs[i] * (int64_t)r->dims[2]) * 2;
        if (H == 1) r->strides[0] = r->strides[1];
        r->box[0] = (uint32_t)W, r->box[1] = 1, r->box[2] = i == 0 ? (uint32_t)LK_FA3_BM : (uint32_t)BN, r->box[3] = 1;
    }
    p->rel_h = a->rel_h, p->rel_w = a->rel_w, p->rel_dtype = a->rel_dtype;
    p->rh_bs = a->rh_bs, p->rh_hs = a->rh_hs, p->rh_rs = a->rh_rs, p->rh_cs = a->rh_cs;
    p->rw_bs = a->rw_bs, p->rw_hs = a->rw_hs, p->rw_rs = a->rw_rs, p->rw_cs = a->rw_cs;
    if (a->rel) {
        if (a->k_h < 1 || a->k_w < 1 || (int64_t)a->k_h * a->k_w != a->Tk || varlen) return "rel-pos grid (k_h·k_w = Tk, dense)";
        if (a->rel == 2 && a->Tq != a->Tk) return "fused rel-pos needs the query grid = the key grid";
        p->k_h = a->k_h, p->k_w = a->k_w;
        p->kw_magic = lk_magic_u32((uint32_t)a->k_w);
    }
    if (a->rel == 2) {
        const int32_t kmax = a->k_h > a->k_w ? a->k_h : a->k_w;
        p->rel_rows = lk_fa3_rel_rows(kmax);
        if (p->rel_rows > 256) return "rel-pos tables longer than 256 rows";
        const void *tb[2] = {a->rel_pos_h, a->rel_pos_w};
        const int64_t trs[2] = {a->rph_rs, a->rpw_rs};
        const int32_t kk[2] = {a->k_h, a->k_w};
        for (int i = 0; i < 2; i++) {
            lk_tmap_req *r = &req[3 + i];
            r->base = tb[i], r->rank = 2, r->swz = swz;
            r->dims[0] = (uint64_t)D, r->dims[1] = (uint64_t)(2 * kk[i] - 1);
            r->strides[0] = (uint64_t)trs[i] * 2;
            r->box[0] = (uint32_t)W, r->box[1] = (uint32_t)p->rel_rows;
        }
    }
    size_t bytes = lk_fa3_smem_plan(p, D, BN, a->rel, 2);
    if (bytes > a->smem_max) bytes = lk_fa3_smem_plan(p, D, BN, a->rel, 1); /* one Q stage */
    if (bytes > a->smem_max) return "shared memory";
    *smem = bytes;
    const int64_t g = items < a->n_sms ? items : a->n_sms;
    *grid = (unsigned)(g > 0 ? g : 1);
    return NULL;
}

#endif
