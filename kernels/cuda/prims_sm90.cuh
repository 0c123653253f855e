/* kernels/cuda/prims_sm90.cuh — the Hopper (sm_90a) primitives of the wgmma kernels
 * (kernels/cuda/attn_sm90.cuh), beside the sm_80 ones of prims.cuh and compiled the same two ways:
 *   - under nvcc for sm_90a: inline PTX (wgmma.mma_async, cp.async.bulk.tensor, mbarrier,
 *     setmaxnreg, named barriers). These exist only where the sm_90a features are on
 *     (__CUDA_ARCH_FEAT_SM90_ALL), so a fat binary's sm_80/86/89 passes never see them; kernels
 *     that use them guard their bodies with LK_SM90_ENABLED;
 *   - on the host with LISA_CUDA_EMU (tests/gpu/emu/cuda_emu.cpp), from the PTX ISA's semantics:
 *     wgmma is deferred until wgmma.wait_group (its accumulators read as NaN before), TMA copies
 *     land when the mbarrier they complete on is waited for (the box reads as 0xFF before).
 *
 * Terms (PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate" and "Tensor Copy"):
 *   warpgroup   4 consecutive warps whose first warp index is a multiple of 4 (128 threads);
 *   wgmma       D[64 x N] (+)= A[64 x 16] · B[16 x N] issued by a warpgroup; warp w of the group
 *               holds rows 16w .. 16w+15 of D; D fp32 in registers, B (and A, or A from
 *               registers) in shared memory described by a 64-bit matrix descriptor;
 *   fragment    the accumulator layout (PTX ISA figure "WGMMA .m64nNk16 register fragment
 *               layout for accumulator matrix D"): in warp w, lane L = 4g + t holds register
 *               r = v0 + 2·v1 + 4·v2 (v0, v1 in {0, 1}, v2 < N/8) =
 *               D[16w + g + 8·v1][8·v2 + 2t + v0]; a 16-bit A from registers uses the same
 *               mapping with N = 16, elements 2i and 2i+1 packed in 32-bit register i;
 *   descriptor  bits 0-13 start address >> 4, 16-29 leading byte offset (LBO) >> 4, 32-45
 *               stride byte offset (SBO) >> 4, 49-51 base offset (0 here), 62-63 swizzle
 *               (0 none, 1 128 B, 2 64 B, 3 32 B). Canonical layouts (units of 16 bytes, T =
 *               8 bf16, S = swizzle span / 16):
 *                 K-major,  swizzled:   ((8, m), (T, 2k)) : ((S·T, SBO), (1, T))  [LBO unused]
 *                 K-major,  none:       ((8, m), (T, 2k)) : ((1T, SBO), (1, LBO))
 *                 MN-major, swizzled:   ((T, S, m), (8, k)) : ((1, T, LBO), (S·T, SBO))
 *                 MN-major, none:       ((T, 1, m), (8, k)) : ((1, T, SBO), (1T, LBO))
 *               then the swizzle XORs address bits [4, 4+b) with bits [7, 7+b), b = log2 S
 *               (the pattern TMA writes with CU_TENSOR_MAP_SWIZZLE_{32,64,128}B), on the
 *               absolute shared-memory address: tiles start on 1024-byte boundaries;
 *   mbarrier    a 64-bit shared-memory barrier with an arrival count and a transaction (byte)
 *               count; a phase completes when both reach zero; try_wait.parity(P) succeeds once
 *               the phase of parity P has completed (a fresh barrier: parity 1 already has).
 */
#ifndef LISA_KERNELS_CUDA_PRIMS_SM90_CUH
#define LISA_KERNELS_CUDA_PRIMS_SM90_CUH

#include "kernels/cuda/prims.cuh"

/* A TMA tensor map: the driver's opaque 128-byte CUtensorMap on the device (encoded on the host by
 * cuTensorMapEncodeTiled), the emulator's own encoding under LISA_CUDA_EMU. Passed to kernels
 * inside a __grid_constant__ parameter struct. */
typedef struct alignas(64) lk_tmap {
    uint64_t w[16];
} lk_tmap;

/* Swizzle modes, numbered as CUtensorMapSwizzle (NONE, 32B, 64B, 128B). */
enum { LK_SWZ_NONE = 0, LK_SWZ_32B = 1, LK_SWZ_64B = 2, LK_SWZ_128B = 3 };

/* The wgmma descriptor of a canonical shared-memory layout (see the header comment). `saddr` is a
 * shared-memory address (lk_smem_u32); lbo/sbo in bytes; swz an LK_SWZ_* mode. */
LISA_HD uint64_t lk_gmma_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo, int swz) {
    /* descriptor layout-type field: 1 = 128 B, 2 = 64 B, 3 = 32 B (the reverse of the TMA enum) */
    const uint64_t lt = swz == LK_SWZ_128B ? 1u : swz == LK_SWZ_64B ? 2u : swz == LK_SWZ_32B ? 3u : 0u;
    return (uint64_t)((saddr >> 4) & 0x3FFFu) | ((uint64_t)((lbo >> 4) & 0x3FFFu) << 16) |
           ((uint64_t)((sbo >> 4) & 0x3FFFu) << 32) | (lt << 62);
}

/* q / rows with a magic multiplier m = floor(2^32 / d) + 1: exact for q < 2^32 / d (keys here). */
LISA_HD uint32_t lk_magic_u32(uint32_t d) { return (uint32_t)(0x100000000ull / d + 1u); }

#if defined(__CUDACC__) && !defined(LISA_CUDA_EMU)
/* ============================== device (nvcc) ============================================== */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LK_SM90_ENABLED 1
#endif

LISA_DEV uint32_t lk_umulhi(uint32_t a, uint32_t b) { return __umulhi(a, b); }
/* x, but opaque to the compiler: values derived from it are recomputed where used instead of being
 * kept live (or spilled) across a register-hungry loop. */
LISA_DEV int lk_opaque(int x) {
    int r;
    asm volatile("mov.b32 %0, %1;" : "=r"(r) : "r"(x));
    return r;
}

#if !defined(__CUDA_ARCH__) || defined(LK_SM90_ENABLED)
LISA_DEV uint32_t lk_smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

LISA_DEV void lk_mbar_init(uint64_t *bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(lk_smem_u32(bar)), "r"(count) : "memory");
}
/* After the inits, before the barrier that publishes them: makes them visible to the async proxy
 * (TMA completes transactions on them). */
LISA_DEV void lk_mbar_fence_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
LISA_DEV void lk_mbar_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(lk_smem_u32(bar)) : "memory");
}
/* Arrives and adds `bytes` to the transaction count of the current phase. */
LISA_DEV void lk_mbar_arrive_expect_tx(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(lk_smem_u32(bar)), "r"(bytes)
                 : "memory");
}
LISA_DEV bool lk_mbar_try_wait(uint64_t *bar, uint32_t parity) {
    uint32_t ok;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(ok)
                 : "r"(lk_smem_u32(bar)), "r"(parity)
                 : "memory");
    return ok != 0;
}
LISA_DEV void lk_mbar_wait(uint64_t *bar, uint32_t parity) {
    while (!lk_mbar_try_wait(bar, parity)) {
    }
}

LISA_DEV void lk_tma_prefetch(const lk_tmap *m) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"((uint64_t)m) : "memory");
}
/* Box at (c0, c1[, c2, c3]) of tensor map m into shared memory dst; completes `box bytes` of
 * transactions on bar. Out-of-bound elements are written as zeros. */
LISA_DEV void lk_tma_load_2d(void *dst, const lk_tmap *m, uint64_t *bar, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::
                     "r"(lk_smem_u32(dst)),
                 "l"((uint64_t)m), "r"(lk_smem_u32(bar)), "r"(c0), "r"(c1)
                 : "memory");
}
LISA_DEV void lk_tma_load_4d(void *dst, const lk_tmap *m, uint64_t *bar, int c0, int c1, int c2, int c3) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, "
                 "%6}], [%2];\n" ::"r"(lk_smem_u32(dst)),
                 "l"((uint64_t)m), "r"(lk_smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
                 : "memory");
}

/* Ordinary shared-memory stores -> later async-proxy reads (wgmma, TMA store). */
LISA_DEV void lk_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

LISA_DEV void lk_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
LISA_DEV void lk_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/* Waits until at most n of this warpgroup's committed wgmma groups are pending. */
template <int n> LISA_DEV void lk_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(n) : "memory"); }
/* Keeps the compiler from moving accesses of an accumulator register across wgmma calls. */
LISA_DEV void lk_reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }
LISA_DEV void lk_reg_fence(uint32_t &r) { asm volatile("" : "+r"(r)::"memory"); }

template <int R> LISA_DEV void lk_setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R)); }
template <int R> LISA_DEV void lk_setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R)); }

/* Named barriers (ids 1..15; 0 is __syncthreads): n threads, a multiple of 32. */
LISA_DEV void lk_named_bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
LISA_DEV void lk_named_bar_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }

/* lk_wgmma_ss<N, TA, TB>(d, desc_a, desc_b, accumulate) and lk_wgmma_rs<N, TB>(d, a, desc_b,
 * accumulate): D[64 x N] = A·B (+ D when accumulate); TA / TB = 1 for an M- / N-major operand. */
#include "kernels/cuda/wgmma_ops.cuh"
#endif /* sm_90a or host pass */

#else
/* ============================== host emulation (tests/gpu/emu) ============================ */
#define LK_SM90_ENABLED 1
inline uint32_t lk_umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
inline int lk_opaque(int x) { return x; }
uint32_t lk_smem_u32(const void *p);
void lk_mbar_init(uint64_t *bar, uint32_t count);
void lk_mbar_fence_init();
void lk_mbar_arrive(uint64_t *bar);
void lk_mbar_arrive_expect_tx(uint64_t *bar, uint32_t bytes);
bool lk_mbar_try_wait(uint64_t *bar, uint32_t parity);
void lk_mbar_wait(uint64_t *bar, uint32_t parity);
void lk_tma_prefetch(const lk_tmap *m);
void lk_tma_load_nd(void *dst, const lk_tmap *m, uint64_t *bar, int rank, const int32_t *coords);
inline void lk_tma_load_2d(void *dst, const lk_tmap *m, uint64_t *bar, int c0, int c1) {
    const int32_t c[2] = {c0, c1};
    lk_tma_load_nd(dst, m, bar, 2, c);
}
inline void lk_tma_load_4d(void *dst, const lk_tmap *m, uint64_t *bar, int c0, int c1, int c2, int c3) {
    const int32_t c[4] = {c0, c1, c2, c3};
    lk_tma_load_nd(dst, m, bar, 4, c);
}
void lk_fence_proxy_async();
void lk_wgmma_fence();
void lk_wgmma_commit();
void lk_wgmma_wait_n(int n);
template <int n> inline void lk_wgmma_wait() { lk_wgmma_wait_n(n); }
inline void lk_reg_fence(float &) {}
inline void lk_reg_fence(uint32_t &) {}
void lk_setmaxnreg(int regs, bool inc);
template <int R> inline void lk_setmaxnreg_inc() { lk_setmaxnreg(R, true); }
template <int R> inline void lk_setmaxnreg_dec() { lk_setmaxnreg(R, false); }
void lk_named_bar_sync(int id, int n);
void lk_named_bar_arrive(int id, int n);
/* One wgmma: a_regs NULL -> A from the descriptor desc_a (ta = 1: M-major). */
void lk_wgmma_emu(float *d, int n, const uint32_t *a_regs, uint64_t desc_a, uint64_t desc_b, bool accumulate, int ta,
                  int tb);
template <int N, int TA, int TB> inline void lk_wgmma_ss(float (&d)[N / 2], uint64_t da, uint64_t db, bool acc) {
    lk_wgmma_emu(d, N, nullptr, da, db, acc, TA, TB);
}
template <int N, int TB> inline void lk_wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db, bool acc) {
    lk_wgmma_emu(d, N, a, 0, db, acc, 0, TB);
}
#endif

#endif
