/* tests/gpu/emu/test_emu_sm90.cpp — the emulator's Hopper primitives (kernels/cuda/prims_sm90.cuh,
 * tests/gpu/emu/cuda_emu.cpp) checked against an independent description of the hardware.
 *
 * The emulator implements wgmma, TMA and mbarriers from the PTX ISA's text (fragment figures,
 * canonical layouts of the matrix descriptor, tensor-copy boxes). This file restates the same
 * facts the way CUTLASS's CuTe does (include/cute/atom/mma_traits_sm90_gmma.hpp: the accumulator
 * and register-A layouts GMMA::CLayout_64xN / ALayout_64x16 as shape:stride over (thread, value),
 * the shared-memory layout atoms Layout_{K,MN}_{INTER,SW32,SW64,SW128}_Atom composed with
 * Swizzle<B,4,3> on the byte address, and make_gmma_desc's choice of LBO / SBO), evaluates them
 * with a small layout function of its own, and requires the emulator to agree on every lane and
 * register:
 *   1. accumulator layout: D = A·B for random A, B; for each of the 128 threads and each register
 *      r < N/2, D_emu(t, r) = D_ref(CLayout_64xN(t, r)), N in {8, 16, 24, 32, 64, 80, 128, 208, 256};
 *   2. A from registers placed by ALayout_64x16, same check;
 *   3. descriptors: A and B in shared memory as CuTe tiles (tile_to_shape of each atom, both tile
 *      orders) for K- and MN-major and every swizzle, four k-steps per tile (the descriptor start
 *      advanced within and across atoms), D compared with the logical product;
 *   4. TMA: boxes of a 4-d tensor (partly out of bounds, strided dims) for every swizzle, against
 *      CuTe's Swizzle<B,4,3> of the row-major box image, zeros outside; then TMA-loaded tiles fed
 *      to wgmma through the matching descriptor (the kernels' path) give the logical product;
 *   5. mbarrier semantics: phase parity, arrival counts, expect-tx bytes, try_wait, and the
 *      emulator's strictness (a box read before its wait is 0xFF; accumulators read before
 *      wgmma.wait_group are NaN);
 *   6. negative controls: a perturbed CuTe table must disagree (the comparison can fail), and
 *      misuse aborts (fork + SIGABRT): wgmma without wgmma.fence, accumulators written or A
 *      registers changed before the wait, a misaligned swizzled TMA destination, mismatched named-barrier counts, a wait on an
 *      mbarrier never initialized.
 */
#include "emu_util.hpp"

#include <csignal>
#include <functional>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

/* ---- a CuTe-style layout: modes of (shape, stride) pairs, coordinates colexicographic ---------- */
struct Mode {
    std::vector<std::pair<int64_t, int64_t>> ss; /* (shape, stride) from the innermost */
    int64_t size() const {
        int64_t n = 1;
        for (auto &p : ss) n *= p.first;
        return n;
    }
    int64_t operator()(int64_t i) const { /* index within the mode -> offset */
        int64_t off = 0;
        for (auto &p : ss) {
            off += (i % p.first) * p.second;
            i /= p.first;
        }
        return off;
    }
};
struct Layout2 {
    Mode m0, m1;
    int64_t operator()(int64_t i, int64_t j) const { return m0(i) + m1(j); }
};

/* GMMA::CLayout_64xN: ((4, 8, 4), (2, 2, N/8)) : ((128, 1, 16), (64, 8, 512)) over (thread, value),
 * giving m + 64·n of the 64 x N tile. ALayout_64x16 (16-bit A in registers) = CLayout_64x16. */
static Layout2 clayout(int n) {
    Layout2 l;
    l.m0.ss = {{4, 128}, {8, 1}, {4, 16}};
    l.m1.ss = {{2, 64}, {2, 8}};
    if (n > 8) l.m1.ss.push_back({n / 8, 512});
    return l;
}

/* CuTe's Swizzle<B, M, S>: x ^ ((x & (((1 << B) - 1) << (M + S))) >> S), on byte addresses. */
static uint64_t cute_swizzle(uint64_t x, int B, int M = 4, int S = 3) {
    const uint64_t yyy = ((1ull << B) - 1) << (M + S);
    return x ^ ((x & yyy) >> S);
}

/* A shared-memory operand tile [mn_total x k_total] of bf16 built from a CuTe GMMA atom:
 *   K-major  atom Layout_K_<sw>_Atom<bf16>  = (8, W) : (W, 1)   (W = 8 for INTER, else span/2)
 *   MN-major atom Layout_MN_<sw>_Atom<bf16> = (W, 8) : (1, W)
 * tiled over (mn, k) by tile_to_shape, atoms in column-major (mn first) or row-major order, then
 * Swizzle<B,4,3> on the byte address (smem_ptr_flag). B = 0, 1, 2, 3 for INTER, 32, 64, 128 B. */
struct SmemTile {
    bool mn_major;
    int B, W, mn_total, k_total;
    bool row_major_atoms;
    int64_t atom_elems() const { return 8 * (int64_t)W; }
    int atoms_mn() const { return mn_major ? mn_total / W : mn_total / 8; }
    int atoms_k() const { return mn_major ? k_total / 8 : k_total / W; }
    /* element offset of (mn, k) before the swizzle */
    int64_t offset(int mn, int k) const {
        int64_t in_atom, a_mn, a_k;
        if (!mn_major) {
            in_atom = (int64_t)(mn % 8) * W + (k % W);
            a_mn = mn / 8, a_k = k / W;
        } else {
            in_atom = (int64_t)(mn % W) + (int64_t)(k % 8) * W;
            a_mn = mn / W, a_k = k / 8;
        }
        const int64_t atom = row_major_atoms ? a_mn * atoms_k() + a_k : a_mn + a_k * atoms_mn();
        return atom * atom_elems() + in_atom;
    }
    uint64_t byte_addr(uint64_t base, int mn, int k) const { return cute_swizzle(base + 2 * (uint64_t)offset(mn, k), B); }
    size_t bytes() const { return (size_t)mn_total * k_total * 2; }
    /* make_gmma_desc for the k-step s (k = 16s .. 16s+15) of this tile, in CuTe's terms: the
     * canonical form's strides (units of 16 bytes) of the sub-tensor starting at (0, 16s). */
    uint64_t desc(uint32_t base, int s) const {
        const int64_t atom_b = atom_elems() * 2; /* bytes per atom */
        const int64_t st_mn = row_major_atoms ? atom_b * atoms_k() : atom_b; /* next atom along mn */
        const int64_t st_k = row_major_atoms ? atom_b : atom_b * atoms_mn(); /* next atom along k */
        int64_t start, lbo, sbo;
        if (!mn_major) {
            /* ((8, n), 2) : ((W/8, SBO), 1) swizzled; ((8, n), 2) : ((1, SBO), LBO) INTER */
            start = (int64_t)((16 * s) / W) * st_k + (int64_t)((16 * s) % W) * 2;
            sbo = st_mn;
            lbo = B ? 16 : st_k; /* INTER: the second 8-column core matrix is the next atom along k */
        } else {
            /* ((W/8, n), (8, k)) : ((1, LBO), (W/8, SBO)) swizzled; ((1, n), (8, k)) : ((X, SBO), (1, LBO)) INTER */
            start = (int64_t)(2 * s) * st_k;
            if (B) {
                lbo = st_mn;
                sbo = st_k;
            } else {
                sbo = st_mn;
                lbo = st_k;
            }
        }
        const int swz = B == 0 ? LK_SWZ_NONE : B == 1 ? LK_SWZ_32B : B == 2 ? LK_SWZ_64B : LK_SWZ_128B;
        return lk_gmma_desc(base + (uint32_t)start, (uint32_t)lbo, (uint32_t)sbo, swz);
    }
};

static SmemTile make_tile(bool mn_major, int B, int mn_total, int k_total, bool row_major_atoms) {
    SmemTile t;
    t.mn_major = mn_major, t.B = B, t.mn_total = mn_total, t.k_total = k_total, t.row_major_atoms = row_major_atoms;
    t.W = B == 0 ? 8 : (16 << B) / 2;
    return t;
}

/* ---- the test kernel: copy the prepared images to 1024-aligned shared memory, run wgmma ------- */
struct WgArgs {
    const unsigned char *img_a, *img_b; /* shared-memory images, relative to a 1024-aligned base */
    size_t bytes_a, bytes_b;            /* img_a == NULL: A from registers (a_regs) */
    const uint32_t *a_regs;             /* [128][4] per thread, when A from registers */
    uint64_t desc_a[8], desc_b[8];      /* per k-step, start relative to the aligned base */
    int ksteps, n, ta, tb;
    float *out;       /* [128][n/2] */
    float *early;     /* [128] first accumulator read before the wait (NaN expected), or NULL */
    int bad_no_fence; /* misuse for the death tests */
    int bad_modify_a;
    int bad_write_acc;
};

template <int N> static void wg_kernel(const WgArgs a) {
    unsigned char *smem = lk_dyn_smem();
    const uint32_t pad = (1024u - lk_smem_u32(smem) % 1024u) % 1024u;
    unsigned char *base = smem + pad;
    const uint32_t sbase = lk_smem_u32(base);
    const int tid = (int)threadIdx.x;
    for (size_t i = (size_t)tid; i < a.bytes_a; i += 128) base[i] = a.img_a[i];
    for (size_t i = (size_t)tid; i < a.bytes_b; i += 128) base[a.bytes_a + i] = a.img_b[i];
    lk_syncthreads();
    float d[N / 2];
    for (int r = 0; r < N / 2; r++) d[r] = 0.5f; /* overwritten: the first k-step does not accumulate */
    if (!a.bad_no_fence) lk_wgmma_fence();
    for (int s = 0; s < a.ksteps; s++) {
        const uint64_t db = a.desc_b[s] + ((uint64_t)((sbase + (uint32_t)a.bytes_a) >> 4) & 0x3FFF);
        if (a.img_a) {
            const uint64_t da = a.desc_a[s] + ((uint64_t)(sbase >> 4) & 0x3FFF);
            if (a.ta) {
                if (a.tb) lk_wgmma_ss<N, 1, 1>(d, da, db, s > 0);
                else lk_wgmma_ss<N, 1, 0>(d, da, db, s > 0);
            } else {
                if (a.tb) lk_wgmma_ss<N, 0, 1>(d, da, db, s > 0);
                else lk_wgmma_ss<N, 0, 0>(d, da, db, s > 0);
            }
        } else {
            uint32_t ar[4];
            for (int i = 0; i < 4; i++) ar[i] = a.a_regs[tid * 4 + i];
            if (a.tb) lk_wgmma_rs<N, 1>(d, ar, db, false);
            else lk_wgmma_rs<N, 0>(d, ar, db, false);
            if (a.bad_modify_a) ar[0] ^= 1u;
            lk_wgmma_commit();
            lk_wgmma_wait<0>();
            continue;
        }
    }
    if (a.img_a) lk_wgmma_commit();
    if (a.early) a.early[tid] = d[0];
    if (a.bad_write_acc) d[1] *= 2.0f;
    lk_wgmma_wait<0>();
    for (int r = 0; r < N / 2; r++) a.out[(size_t)tid * (N / 2) + r] = d[r];
}

static void launch_wg(const WgArgs &a) {
    const size_t smem = a.bytes_a + a.bytes_b + 1024;
    switch (a.n) {
#define WG_CASE(N)                                                                                 \
    case N: emu_launch(dim3(1), dim3(128), smem, wg_kernel<N>, a); break;
        WG_CASE(8) WG_CASE(16) WG_CASE(24) WG_CASE(32) WG_CASE(64) WG_CASE(80) WG_CASE(128) WG_CASE(208) WG_CASE(256)
#undef WG_CASE
    default: fprintf(stderr, "no wg_kernel for N %d\n", a.n); abort();
    }
}

/* Random bf16 matrix [rows x cols] (values in [-1, 1], never zero-filled), exact doubles. */
static std::vector<uint16_t> rand_bf16(Rng &r, int rows, int cols) {
    std::vector<uint16_t> m((size_t)rows * cols);
    for (auto &x : m) x = lk_f32_to_bf16((float)r.uniform(-1, 1));
    return m;
}
static double bf(uint16_t b) { return lk_bf16_to_f32(b); }

/* Writes logical X[mn][k] into a tile image at its CuTe address. */
static std::vector<unsigned char> tile_image(const SmemTile &t, const std::vector<uint16_t> &x) {
    std::vector<unsigned char> img(t.bytes(), 0xEE);
    for (int mn = 0; mn < t.mn_total; mn++)
        for (int k = 0; k < t.k_total; k++) {
            const uint64_t a = t.byte_addr(0, mn, k);
            memcpy(&img[a], &x[(size_t)mn * t.k_total + k], 2);
        }
    return img;
}

/* Compares D_emu(thread, reg) with Σ_k A[m][k]·B[n][k] at (m, n) = layout(thread, reg). Returns
 * the number of (thread, register) pairs that disagree. */
static int compare_d(const std::vector<float> &out, int n, const Layout2 &cl, const std::vector<uint16_t> &A,
                     const std::vector<uint16_t> &Bm, int K, bool quiet) {
    int bad = 0;
    for (int t = 0; t < 128; t++)
        for (int r = 0; r < n / 2; r++) {
            const int64_t idx = cl(t, r);
            const int m = (int)(idx % 64), c = (int)(idx / 64);
            double ref = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                ref += bf(A[(size_t)m * K + k]) * bf(Bm[(size_t)c * K + k]);
                mag += fabs(bf(A[(size_t)m * K + k]) * bf(Bm[(size_t)c * K + k]));
            }
            const double got = out[(size_t)t * (n / 2) + r];
            if (!(fabs(got - ref) <= 1e-5 * mag + 1e-6)) {
                if (!quiet && bad < 3)
                    fprintf(stderr, "    thread %d reg %d: got %.7g, CuTe says D[%d][%d] = %.7g\n", t, r, got, m, c, ref);
                bad++;
            }
        }
    return bad;
}

static void report(const char *what, bool ok) {
    printf("%-78s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) g_failures++;
}

/* 1. + 6a. accumulator layout for one N (A, B K-major, 128-byte swizzle) */
static void check_accumulators(int n, uint64_t seed) {
    Rng r(seed);
    const int K = 16;
    const SmemTile ta = make_tile(false, 3, 64, 64, false), tb = make_tile(false, 3, n, 64, false);
    /* logical A [64 x 64], B [n x 64]; only the first k-step is used */
    auto A = rand_bf16(r, 64, 64), Bm = rand_bf16(r, n, 64);
    auto ia = tile_image(ta, A), ib = tile_image(tb, Bm);
    std::vector<float> out((size_t)128 * n / 2);
    std::vector<float> early(128);
    WgArgs a = {};
    a.img_a = ia.data(), a.img_b = ib.data(), a.bytes_a = ia.size(), a.bytes_b = ib.size();
    a.desc_a[0] = ta.desc(0, 0), a.desc_b[0] = tb.desc(0, 0), a.ksteps = 1, a.n = n;
    a.out = out.data(), a.early = early.data();
    launch_wg(a);
    /* restrict A/B to k < 16 for the reference */
    std::vector<uint16_t> A16((size_t)64 * K), B16((size_t)n * K);
    for (int m = 0; m < 64; m++) memcpy(&A16[(size_t)m * K], &A[(size_t)m * 64], 2 * K);
    for (int c = 0; c < n; c++) memcpy(&B16[(size_t)c * K], &Bm[(size_t)c * 64], 2 * K);
    const int bad = compare_d(out, n, clayout(n), A16, B16, K, false);
    char name[128];
    snprintf(name, sizeof name, "accumulators m64n%dk16: %d threads x %d registers = CLayout_64x%d", n, 128, n / 2, n);
    report(name, bad == 0);
    bool nan_early = true;
    for (float x : early) nan_early = nan_early && std::isnan(x);
    if (n == 64) report("  accumulators read before wgmma.wait_group are NaN (emulator strictness)", nan_early);
    if (n == 64 || n == 80) { /* negative control: swap the strides of v0 (64) and v1 (8) */
        Layout2 wrong = clayout(n);
        std::swap(wrong.m1.ss[0].second, wrong.m1.ss[1].second);
        const int bad2 = compare_d(out, n, wrong, A16, B16, K, true);
        snprintf(name, sizeof name, "  negative control: a perturbed CLayout_64x%d disagrees (%d of %d pairs)", n, bad2,
                 64 * n);
        report(name, bad2 > 64 * n / 4);
    }
}

/* 2. A from registers, placed by ALayout_64x16 (= CLayout_64x16): thread t, value v -> (m, k),
 * values 2i, 2i+1 packed in register i. B: N-major (tnsp-b) 64-byte swizzle for variety. */
static void check_a_registers(int n, uint64_t seed) {
    Rng r(seed);
    const int K = 16;
    auto A = rand_bf16(r, 64, K), Bm = rand_bf16(r, n, K);
    const Layout2 al = clayout(16);
    std::vector<uint32_t> regs((size_t)128 * 4, 0);
    for (int t = 0; t < 128; t++)
        for (int v = 0; v < 8; v++) {
            const int64_t idx = al(t, v);
            const int m = (int)(idx % 64), k = (int)(idx / 64);
            regs[(size_t)t * 4 + v / 2] |= (uint32_t)A[(size_t)m * K + k] << (16 * (v % 2));
        }
    const int bsw = n % 32 == 0 ? 2 : 1; /* an MN-major atom spans 32 (64 B) or 16 (32 B) columns of N */
    const SmemTile tb = make_tile(true, bsw, n, K, false);
    /* MN-major tile: logical X[mn][k] = B[n][k] */
    auto ib = tile_image(tb, Bm);
    std::vector<float> out((size_t)128 * n / 2);
    WgArgs a = {};
    a.img_b = ib.data(), a.bytes_b = ib.size(), a.a_regs = regs.data();
    a.desc_b[0] = tb.desc(0, 0), a.ksteps = 1, a.n = n, a.tb = 1, a.out = out.data();
    launch_wg(a);
    const int bad = compare_d(out, n, clayout(n), A, Bm, K, false);
    char name[128];
    snprintf(name, sizeof name, "A from registers (ALayout_64x16), B N-major SW%d, n%d: every lane/register",
             bsw == 2 ? 64 : 32, n);
    report(name, bad == 0);
}

/* 3. descriptors: A and B tiles for every (major, swizzle) pair, 4 k-steps */
static void check_descriptors(uint64_t seed) {
    const char *swn[4] = {"INTER", "SW32", "SW64", "SW128"};
    int n_ok = 0, n_all = 0;
    Rng r(seed);
    for (int amaj = 0; amaj < 2; amaj++)
        for (int aB = 0; aB < 4; aB++)
            for (int bmaj = 0; bmaj < 2; bmaj++)
                for (int bB = 0; bB < 4; bB++) {
                    const int n = bmaj && bB == 3 ? 128 : 80, K = 64; /* MN-major SW128 needs N % 64 == 0 */
                    if (bmaj && n % ((16 << bB) / 2) != 0) continue;
                    const bool order = (amaj + aB + bmaj + bB) % 2 == 1; /* alternate the atom order */
                    const SmemTile ta = make_tile(amaj != 0, aB, 64, K, order), tb = make_tile(bmaj != 0, bB, n, K, !order);
                    auto A = rand_bf16(r, 64, K), Bm = rand_bf16(r, n, K);
                    auto ia = tile_image(ta, A), ib = tile_image(tb, Bm);
                    std::vector<float> out((size_t)128 * n / 2);
                    WgArgs a = {};
                    a.img_a = ia.data(), a.img_b = ib.data(), a.bytes_a = ia.size(), a.bytes_b = ib.size();
                    for (int s = 0; s < 4; s++) a.desc_a[s] = ta.desc(0, s), a.desc_b[s] = tb.desc(0, s);
                    a.ksteps = 4, a.n = n, a.ta = amaj, a.tb = bmaj, a.out = out.data();
                    launch_wg(a);
                    const int bad = compare_d(out, n, clayout(n), A, Bm, K, false);
                    n_all++;
                    if (bad == 0) {
                        n_ok++;
                    } else {
                        char name[128];
                        snprintf(name, sizeof name, "descriptor A %s-major %s, B %s-major %s: %d bad", amaj ? "M" : "K",
                                 swn[aB], bmaj ? "N" : "K", swn[bB], bad);
                        report(name, false);
                    }
                }
    char name[128];
    snprintf(name, sizeof name, "descriptors: A, B x {K, MN}-major x {INTER, SW32, SW64, SW128}, 4 k-steps: %d/%d", n_ok,
             n_all);
    report(name, n_ok == n_all);
}

/* ---- 4. TMA ------------------------------------------------------------------------------------ */
struct TmaArgs {
    const lk_tmap *map;
    int rank;
    int32_t c[4];
    size_t box_bytes;
    unsigned char *out;      /* the landed box bytes (relative to the 1024-aligned destination) */
    unsigned char *early;    /* first 16 bytes read right after the issue, before the wait */
    int32_t *flags;          /* mbarrier observations */
    int misalign;            /* death test: destination 16 bytes past alignment */
};

static void tma_kernel(const TmaArgs a) {
    unsigned char *smem = lk_dyn_smem();
    const uint32_t pad = (1024u - lk_smem_u32(smem) % 1024u) % 1024u;
    uint64_t *bar = (uint64_t *)(smem + pad);
    unsigned char *dst = smem + pad + 1024 + (a.misalign ? 16 : 0);
    const int tid = (int)threadIdx.x;
    if (tid == 0) {
        lk_mbar_init(bar, 2);
        lk_mbar_fence_init();
    }
    lk_syncthreads();
    if (tid == 0) {
        a.flags[0] = lk_mbar_try_wait(bar, 0); /* phase 0 incomplete: false */
        a.flags[1] = lk_mbar_try_wait(bar, 1); /* "parity 1" of a fresh barrier: already complete */
        lk_mbar_arrive_expect_tx(bar, (uint32_t)a.box_bytes);
        a.flags[2] = lk_mbar_try_wait(bar, 0); /* one arrival and the bytes still owed */
        if (a.rank == 4)
            lk_tma_load_4d(dst, a.map, bar, a.c[0], a.c[1], a.c[2], a.c[3]);
        else
            lk_tma_load_2d(dst, a.map, bar, a.c[0], a.c[1]);
        memcpy(a.early, dst, 16); /* before the wait: still poison (LAZY) */
    }
    lk_syncthreads();
    if (tid == 32) {
        a.flags[3] = lk_mbar_try_wait(bar, 0); /* copy landed but one arrival owed: false */
        lk_mbar_arrive(bar);
    }
    lk_syncthreads();
    lk_mbar_wait(bar, 0);
    if (tid == 0) {
        a.flags[4] = lk_mbar_try_wait(bar, 0); /* phase 0 done */
        a.flags[5] = lk_mbar_try_wait(bar, 1); /* phase 1 (parity 1) not yet */
    }
    lk_syncthreads();
    for (size_t i = (size_t)tid; i < a.box_bytes; i += blockDim.x) a.out[i] = dst[i];
}

static void check_tma(int swz, uint64_t seed) {
    Rng r(seed);
    /* tensor [B=2][T=37][H=3][D=72] bf16 (D fastest), H-stride padded: a strided view */
    const int D = 72, H = 3, T = 37, B = 2, Hpad = 4;
    std::vector<uint16_t> g((size_t)B * T * Hpad * D);
    for (auto &x : g) x = lk_f32_to_bf16((float)r.uniform(-1, 1));
    const int W = swz == LK_SWZ_NONE ? 24 : (16 << swz) / 2; /* box inner elements */
    const uint64_t dims[4] = {(uint64_t)D, (uint64_t)H, (uint64_t)T, (uint64_t)B};
    const uint64_t strides[3] = {(uint64_t)D * 2, (uint64_t)Hpad * D * 2, (uint64_t)T * Hpad * D * 2};
    const uint32_t box[4] = {(uint32_t)W, 1, 20, 1}, es[4] = {1, 1, 1, 1};
    lk_tmap *map = (lk_tmap *)aligned_alloc(64, sizeof(lk_tmap));
    const char *err = emu_tmap_encode_tiled(map, 2, 4, g.data(), dims, strides, box, es, swz);
    if (err) {
        report(err, false);
        free(map);
        return;
    }
    const size_t bytes = (size_t)W * 20 * 2;
    /* a box at d = D - W/2 (the right half out of bounds when W > D - that), t = 30 (rows 37.. out) */
    const int32_t c[4] = {D - W + 8, 2, 30, 1};
    std::vector<unsigned char> out(bytes), early(16);
    std::vector<int32_t> flags(8, -1);
    TmaArgs a = {map, 4, {c[0], c[1], c[2], c[3]}, bytes, out.data(), early.data(), flags.data(), 0};
    emu_launch(dim3(1), dim3(64), 2048 + bytes + 1024, tma_kernel, a);
    /* expected: row-major box image, element (i0, i2) at byte 2(i2·W + i0), then Swizzle<B,4,3> */
    const int Bsw = swz == LK_SWZ_NONE ? 0 : swz;
    size_t bad = 0;
    for (int i2 = 0; i2 < 20; i2++)
        for (int i0 = 0; i0 < W; i0++) {
            const int d = c[0] + i0, t = c[2] + i2;
            const uint16_t want = d < D && t < T ? g[(((size_t)c[3] * T + t) * Hpad + c[1]) * D + d] : 0;
            /* the destination is 1024-aligned, so its own address bits do not swizzle */
            const uint64_t at = cute_swizzle(1024 + 2 * (uint64_t)(i2 * W + i0), Bsw) - 1024;
            uint16_t got;
            memcpy(&got, &out[at], 2);
            bad += got != want;
        }
    bool poison = true;
    for (unsigned char x : early) poison = poison && x == 0xFF;
    const char *swn[4] = {"none", "32B", "64B", "128B"};
    char name[128];
    snprintf(name, sizeof name, "TMA 4-d box %dx1x20x1, strided H, out-of-bounds tail, swizzle %s: %zu bad", W, swn[swz],
             bad);
    report(name, bad == 0);
    if (swz == LK_SWZ_128B) {
        report("  box reads 0xFF before its mbarrier wait (LAZY copies)", poison);
        const bool sem = flags[0] == 0 && flags[1] == 1 && flags[2] == 0 && flags[3] == 0 && flags[4] == 1 && flags[5] == 0;
        report("  mbarrier: parity, arrival count, expect-tx bytes, try_wait", sem);
    }
    free(map);
}

/* TMA-loaded tiles through wgmma descriptors: K [rows][D] as TMA boxes of W columns (one box
 * per column chunk, chunk c at c·rows·span bytes), used K-major (S = Q·Kᵀ) and the same layout
 * used N-major (O = P·V, V's head dim is N): exactly how attn_sm90.cuh addresses Q, K and V. */
struct TmaWgArgs {
    const lk_tmap *map;
    int n_chunks, W, rows, span, n;
    bool mn_major;
    const uint64_t *desc_rel;   /* per k-step: B descriptor, start relative to the tile base */
    const uint64_t *desc_a_rel; /* per k-step: A descriptor, start relative to A's base */
    int ksteps;
    const unsigned char *img_a; /* A tile image (a CuTe K-major SW32 tile, 64 x 16·ksteps) */
    size_t bytes_a;
    float *out;
};

template <int N> static void tma_wg_kernel(const TmaWgArgs a) {
    unsigned char *smem = lk_dyn_smem();
    const uint32_t pad = (1024u - lk_smem_u32(smem) % 1024u) % 1024u;
    uint64_t *bar = (uint64_t *)(smem + pad);
    unsigned char *ta = smem + pad + 1024, *tb = ta + (a.bytes_a + 1023) / 1024 * 1024;
    const int tid = (int)threadIdx.x;
    for (size_t i = (size_t)tid; i < a.bytes_a; i += 128) ta[i] = a.img_a[i];
    if (tid == 0) {
        lk_mbar_init(bar, 1);
        lk_mbar_fence_init();
    }
    lk_syncthreads();
    if (tid == 0) {
        lk_mbar_arrive_expect_tx(bar, (uint32_t)(a.n_chunks * a.rows * a.span));
        for (int c = 0; c < a.n_chunks; c++) lk_tma_load_2d(tb + (size_t)c * a.rows * a.span, a.map, bar, c * a.W, 0);
    }
    lk_mbar_wait(bar, 0);
    float d[N / 2];
    lk_wgmma_fence();
    for (int s = 0; s < a.ksteps; s++) {
        const uint64_t da = a.desc_a_rel[s] + ((lk_smem_u32(ta) >> 4) & 0x3FFF);
        const uint64_t db = a.desc_rel[s] + ((lk_smem_u32(tb) >> 4) & 0x3FFF);
        if (a.mn_major)
            lk_wgmma_ss<N, 0, 1>(d, da, db, s > 0);
        else
            lk_wgmma_ss<N, 0, 0>(d, da, db, s > 0);
    }
    lk_wgmma_commit();
    lk_wgmma_wait<0>();
    for (int r = 0; r < N / 2; r++) a.out[(size_t)tid * (N / 2) + r] = d[r];
}

static void check_tma_wgmma(int swz, bool mn_major, uint64_t seed) {
    Rng r(seed);
    const int span = 16 << swz, W = span / 2, D = 80 * (swz == LK_SWZ_32B) + 128 * (swz != LK_SWZ_32B), rows = 64;
    /* global X[rows][D]; K-major: B[n = row][k = d] (n = rows, K = D); N-major: B[n = d][k = row] */
    std::vector<uint16_t> X = rand_bf16(r, rows, D);
    const uint64_t dims[2] = {(uint64_t)D, (uint64_t)rows}, strides[1] = {(uint64_t)D * 2};
    const uint32_t box[2] = {(uint32_t)W, (uint32_t)rows}, es[2] = {1, 1};
    lk_tmap *map = (lk_tmap *)aligned_alloc(64, sizeof(lk_tmap));
    const char *err = emu_tmap_encode_tiled(map, 2, 2, X.data(), dims, strides, box, es, swz);
    if (err) {
        report(err, false);
        free(map);
        return;
    }
    const int n = mn_major ? D : rows, K = mn_major ? rows : D, ksteps = K / 16;
    std::vector<uint64_t> desc(ksteps);
    for (int s = 0; s < ksteps; s++) {
        if (!mn_major) /* k = 16s in chunk 16s / W, 32 bytes per k-step inside it; SBO = 8 rows */
            desc[s] = lk_gmma_desc((uint32_t)((16 * s / W) * rows * span + (16 * s % W) * 2), 16, 8 * span, swz);
        else /* 16 rows per k-step; LBO = next chunk of W head-dim columns; SBO = 8 rows */
            desc[s] = lk_gmma_desc((uint32_t)(16 * s * span), (uint32_t)(rows * span), 8 * span, swz);
    }
    std::vector<uint16_t> A = rand_bf16(r, 64, K);
    const SmemTile ta = make_tile(false, 1, 64, K, false);
    std::vector<uint64_t> desc_a(ksteps);
    for (int s = 0; s < ksteps; s++) desc_a[s] = ta.desc(0, s);
    std::vector<unsigned char> ia = tile_image(ta, A);
    std::vector<float> out((size_t)128 * n / 2);
    TmaWgArgs a = {map,         D / W,         W,      rows,      span, n, mn_major, desc.data(), desc_a.data(),
                   ksteps,      ia.data(),     ia.size(), out.data()};
    const size_t smem = 1024 + (ia.size() + 1023) / 1024 * 1024 + (size_t)rows * D * 2 + 1024;
    if (n == 64)
        emu_launch(dim3(1), dim3(128), smem, tma_wg_kernel<64>, a);
    else if (n == 80)
        emu_launch(dim3(1), dim3(128), smem, tma_wg_kernel<80>, a);
    else
        emu_launch(dim3(1), dim3(128), smem, tma_wg_kernel<128>, a);
    /* logical B [n][K] */
    std::vector<uint16_t> Bm((size_t)n * K);
    for (int c = 0; c < n; c++)
        for (int k = 0; k < K; k++) Bm[(size_t)c * K + k] = mn_major ? X[(size_t)k * D + c] : X[(size_t)c * D + k];
    const int bad = compare_d(out, n, clayout(n), A, Bm, K, false);
    const char *swn[4] = {"none", "32B", "64B", "128B"};
    char name[128];
    snprintf(name, sizeof name, "TMA swizzle %s -> wgmma B %s-major (head dim %d in %d-column boxes)", swn[swz],
             mn_major ? "N" : "K", D, W);
    report(name, bad == 0);
    free(map);
}

/* ---- 6b. misuse aborts ----------------------------------------------------------------------- */
struct NamedArgs {
    int bad;
};
/* good: warps 0-1 and 2-3 meet at barriers 1 and 2 (64 threads each), then all at barrier 3;
 * bad: warp 3 names 96 threads at barrier 3 where the others name 128 */
static void named_kernel(const NamedArgs a) {
    const int warp = (int)threadIdx.x / 32;
    lk_named_bar_sync(warp < 2 ? 1 : 2, 64);
    lk_named_bar_sync(3, a.bad && warp == 3 ? 96 : 128);
}
static void mbar_uninit_kernel(int) {
    uint64_t *bar = (uint64_t *)lk_dyn_smem();
    lk_mbar_wait(bar, 0); /* never initialized */
}

static bool aborts(const char *what, const std::function<void()> &fn) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        fn();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    const bool ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
    char name[128];
    snprintf(name, sizeof name, "misuse aborts: %s", what);
    report(name, ok);
    return ok;
}

static void check_misuse(void) {
    /* the good variants run (the checks are not just always aborting) */
    {
        NamedArgs a = {0};
        emu_launch(dim3(1), dim3(128), 0, named_kernel, a);
        report("named barriers: two groups of 64 threads, then all 128, complete", true);
    }
    Rng r(99);
    auto A = rand_bf16(r, 64, 16), Bm = rand_bf16(r, 64, 16);
    const SmemTile ta = make_tile(false, 3, 64, 64, false), tb = make_tile(false, 1, 64, 16, false);
    std::vector<uint16_t> A64((size_t)64 * 64, 0x3f80);
    auto ia = tile_image(ta, A64), ib = tile_image(tb, Bm);
    std::vector<float> out(128 * 32);
    WgArgs a = {};
    a.img_a = ia.data(), a.img_b = ib.data(), a.bytes_a = ia.size(), a.bytes_b = ib.size();
    a.desc_a[0] = ta.desc(0, 0), a.desc_b[0] = tb.desc(0, 0), a.ksteps = 1, a.n = 64, a.out = out.data();
    aborts("accumulators written before wgmma.wait_group", [a]() mutable {
        a.bad_write_acc = 1;
        launch_wg(a);
    });
    aborts("wgmma without wgmma.fence", [a]() mutable {
        a.bad_no_fence = 1;
        launch_wg(a);
    });
    std::vector<uint32_t> regs(128 * 4, 0x3f803f80u);
    WgArgs ar = {};
    ar.img_b = ib.data(), ar.bytes_b = ib.size(), ar.a_regs = regs.data(), ar.desc_b[0] = tb.desc(0, 0), ar.ksteps = 1;
    ar.n = 64, ar.out = out.data();
    aborts("A registers changed before wgmma.wait_group", [ar]() mutable {
        ar.bad_modify_a = 1;
        launch_wg(ar);
    });
    aborts("bar.sync with two thread counts", []() {
        NamedArgs n = {1};
        emu_launch(dim3(1), dim3(128), 0, named_kernel, n);
    });
    aborts("waiting on an mbarrier never initialized", []() { emu_launch(dim3(1), dim3(32), 64, mbar_uninit_kernel, 0); });
    aborts("a 128-byte-swizzled TMA box 16 bytes off its 1024-byte alignment", []() {
        std::vector<uint16_t> g(64 * 64, 0x3f80);
        const uint64_t dims[4] = {64, 1, 64, 1}, st[3] = {128, 128, 8192};
        const uint32_t box[4] = {64, 1, 8, 1}, es[4] = {1, 1, 1, 1};
        lk_tmap *m = (lk_tmap *)aligned_alloc(64, sizeof(lk_tmap));
        emu_tmap_encode_tiled(m, 2, 4, g.data(), dims, st, box, es, LK_SWZ_128B);
        std::vector<unsigned char> o(1024), e(16);
        std::vector<int32_t> f(8);
        TmaArgs t = {m, 4, {0, 0, 0, 0}, 1024, o.data(), e.data(), f.data(), 1};
        emu_launch(dim3(1), dim3(64), 8192, tma_kernel, t);
    });
    /* the tensor-map encoder applies the driver's rules */
    {
        lk_tmap *m = (lk_tmap *)aligned_alloc(64, sizeof(lk_tmap));
        std::vector<uint16_t> g(4096);
        const uint64_t dims[2] = {80, 40}, st_ok[1] = {160}, st_bad[1] = {168};
        const uint32_t box_ok[2] = {16, 40}, box_wide[2] = {32, 40}, es[2] = {1, 1};
        const bool ok = emu_tmap_encode_tiled(m, 2, 2, g.data(), dims, st_ok, box_ok, es, LK_SWZ_32B) == nullptr &&
                        emu_tmap_encode_tiled(m, 2, 2, g.data(), dims, st_bad, box_ok, es, LK_SWZ_32B) != nullptr &&
                        emu_tmap_encode_tiled(m, 2, 2, g.data(), dims, st_ok, box_wide, es, LK_SWZ_32B) != nullptr &&
                        emu_tmap_encode_tiled(m, 2, 2, (const char *)g.data() + 8, dims, st_ok, box_ok, es, LK_SWZ_32B) !=
                            nullptr;
        report("tensor maps: strides % 16, inner box <= swizzle span, 16-byte base enforced", ok);
        free(m);
    }
}

int main(void) {
    const int ns[] = {8, 16, 24, 32, 64, 80, 128, 208, 256};
    for (int i = 0; i < (int)(sizeof ns / sizeof ns[0]); i++) check_accumulators(ns[i], 100 + (uint64_t)i);
    check_a_registers(80, 200);
    check_a_registers(128, 201);
    check_descriptors(300);
    for (int swz = LK_SWZ_NONE; swz <= LK_SWZ_128B; swz++) check_tma(swz, 400 + (uint64_t)swz);
    check_tma_wgmma(LK_SWZ_32B, false, 500);
    check_tma_wgmma(LK_SWZ_32B, true, 501);
    check_tma_wgmma(LK_SWZ_128B, false, 502);
    check_tma_wgmma(LK_SWZ_128B, true, 503);
    check_misuse();
    if (g_failures) {
        printf("%d check(s) FAILED\n", g_failures);
        return 1;
    }
    printf("all Hopper primitive checks passed (emulated, against CuTe's SM90 GMMA layouts)\n");
    return 0;
}
