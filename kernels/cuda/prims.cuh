/* kernels/cuda/prims.cuh — the device primitives every CUDA kernel body is written against.
 *
 * Kernel bodies (kernels/cuda/NAME.cuh) use only these names plus plain C++ and <math.h>, so that the
 * same source compiles two ways:
 *   - under nvcc (the real backend): the primitives below are intrinsics and inline PTX;
 *   - on the host with LISA_CUDA_EMU defined (tests/gpu/emu): the emulator in
 *     tests/gpu/emu/cuda_emu.cpp runs every thread of a block as a host thread and implements the
 *     collectives (barriers, shuffles, ldmatrix, mma.sync, cp.async) from the PTX ISA's fragment
 *     layouts. That is how the kernels' indexing, masking, pipelining and online softmax are
 *     checked on machines without a GPU (CI), under AddressSanitizer too.
 *
 * Element types: bf16 and f16 are stored as tagged 16-bit words (lisa_bf16_t / lisa_f16_t) and
 * converted with the same round-to-nearest-even bit code as core/half.h, so the device, the
 * emulator and the CPU backend round identically.
 */
#ifndef LISA_KERNELS_CUDA_PRIMS_CUH
#define LISA_KERNELS_CUDA_PRIMS_CUH

#include "kernels/cuda/device_flag.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct lisa_bf16_t {
    uint16_t bits;
} lisa_bf16_t;
typedef struct lisa_f16_t {
    uint16_t bits;
} lisa_f16_t;

/* Runtime dtype codes as in core/tensor.h (kept numerically equal; checked in backend_cuda.c). */
enum { LK_F32 = 0, LK_F16 = 1, LK_BF16 = 2, LK_I32 = 3, LK_I64 = 4, LK_U8 = 5, LK_BOOL = 6 };

#if defined(__CUDACC__) && !defined(LISA_CUDA_EMU)
/* ============================== device (nvcc) ============================================== */
#define LISA_DEV __device__ __forceinline__
#define LISA_HD __host__ __device__ __forceinline__
/* Kernels have internal linkage: each kernels/cuda/NAME.cuh is included by one .cu file. */
#define LISA_GLOBAL static __global__
#define LISA_SHARED __shared__
#define LISA_UNROLL _Pragma("unroll")

LISA_DEV void lk_syncthreads() { __syncthreads(); }
LISA_DEV void lk_syncwarp() { __syncwarp(); }
LISA_DEV float lk_shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
LISA_DEV int lk_shfl_xor_i(int v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
LISA_DEV float lk_shfl(float v, int src) { return __shfl_sync(0xffffffffu, v, src); }
/* Dynamic shared memory of the launch (16-byte aligned). */
LISA_DEV unsigned char *lk_dyn_smem() {
    extern __shared__ __align__(16) unsigned char lk_smem_[];
    return lk_smem_;
}

/* D += A·B for one m16n8k16 tile, bf16 operands, f32 accumulators (PTX ISA "mma.m16n8k16"):
 * g = lane/4, t = lane%4;  a0:(g, 2t..2t+1) a1:(g+8, 2t..) a2:(g, 2t+8..) a3:(g+8, 2t+8..);
 * b0:(k=2t..2t+1, n=g) b1:(k=2t+8.., n=g);  d0,d1:(g, 2t..2t+1) d2,d3:(g+8, 2t..2t+1). */
LISA_DEV void lk_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* Four 8x8 b16 matrices; lane L supplies the row address of row L%8 of matrix L/8 (16-byte
 * aligned); r[i] receives matrix i, row L/4, elements 2(L%4), 2(L%4)+1. */
LISA_DEV void lk_ldmatrix_x4(uint32_t r[4], const void *smem_row) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}
/* Same, transposed: r[i] receives matrix i, elements (row 2(L%4), col L/4), (row 2(L%4)+1, col L/4). */
LISA_DEV void lk_ldmatrix_x4_trans(uint32_t r[4], const void *smem_row) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}

/* 16-byte global->shared copy that completes asynchronously (sm_80+); when !valid the 16 shared
 * bytes are zero-filled and nothing is read (src-size 0). Both addresses 16-byte aligned. */
LISA_DEV void lk_cp_async_16(void *smem, const void *gmem, bool valid) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
LISA_DEV void lk_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* Waits until at most `n` of this thread's most recent committed groups are still in flight. */
template <int n> LISA_DEV void lk_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory"); }

LISA_DEV float lk_exp2(float x) { return exp2f(x); }
LISA_DEV float lk_rsqrt(float x) { return rsqrtf(x); }

/* Device-wide ordering and counting for "the last block finishes the reduction" patterns:
 * threadfence orders this thread's earlier global writes before its later ones for every other
 * thread of the grid; atomic_add returns the old value; ld_cg reads through L2 (not a possibly stale
 * L1 line) what other blocks wrote. */
LISA_DEV void lk_threadfence() { __threadfence(); }
LISA_DEV int lk_atomic_add(int *p, int v) { return atomicAdd(p, v); }
LISA_DEV float lk_ld_cg(const float *p) { return __ldcg(p); }

/* One 16-byte global load (p 16-byte aligned). */
struct lk_u4 {
    uint32_t w[4];
};
LISA_DEV lk_u4 lk_ld16(const void *p) {
    uint4 v = *reinterpret_cast<const uint4 *>(p);
    lk_u4 r = {{v.x, v.y, v.z, v.w}};
    return r;
}

#else
/* ============================== host emulation (tests/gpu/emu) ============================ */
#define LISA_DEV inline
#define LISA_HD inline
#define LISA_GLOBAL static inline
/* The emulator runs one block at a time, so a function-static variable is exactly the block's
 * shared variable (all of the block's threads see the same object). */
#define LISA_SHARED static
#define LISA_UNROLL

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

void lk_syncthreads();
void lk_syncwarp();
float lk_shfl_xor(float v, int m);
int lk_shfl_xor_i(int v, int m);
float lk_shfl(float v, int src);
unsigned char *lk_dyn_smem();
void lk_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]);
void lk_ldmatrix_x4(uint32_t r[4], const void *smem_row);
void lk_ldmatrix_x4_trans(uint32_t r[4], const void *smem_row);
void lk_cp_async_16(void *smem, const void *gmem, bool valid);
void lk_cp_async_commit();
void lk_cp_async_wait_n(int n);
template <int n> inline void lk_cp_async_wait() { lk_cp_async_wait_n(n); }
inline float lk_exp2(float x) { return exp2f(x); }
inline float lk_rsqrt(float x) { return 1.0f / sqrtf(x); }
/* blocks run one after another in the emulator; the warps of a block are host threads */
inline void lk_threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline int lk_atomic_add(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline float lk_ld_cg(const float *p) {
    float v;
    __atomic_load(p, &v, __ATOMIC_ACQUIRE);
    return v;
}
struct lk_u4 {
    uint32_t w[4];
};
lk_u4 lk_ld16(const void *p); /* checks 16-byte alignment */
#endif

/* ============================== shared by both ============================================= */

LISA_HD float lk_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
LISA_HD uint32_t lk_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* bf16 <-> f32, round to nearest even, NaN kept quiet (core/half.h). */
LISA_HD float lk_bf16_to_f32(uint16_t h) { return lk_bits_f32((uint32_t)h << 16); }
LISA_HD uint16_t lk_f32_to_bf16(float f) {
    uint32_t u = lk_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* Two floats -> packed bf16x2 (lo in bits 0..15), the register format of mma operands. */
LISA_HD uint32_t lk_pack_bf16x2(float lo, float hi) {
    return (uint32_t)lk_f32_to_bf16(lo) | ((uint32_t)lk_f32_to_bf16(hi) << 16);
}

/* f16 <-> f32 (core/half.h, bit for bit). */
LISA_HD float lk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1fu) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else {
        exp = 113u;
        while ((man & 0x400u) == 0) {
            man <<= 1;
            exp--;
        }
        man &= 0x3ffu;
        u = sign | (exp << 23) | (man << 13);
    }
    return lk_bits_f32(u);
}
LISA_HD uint16_t lk_f32_to_f16(float f) {
    uint32_t u = lk_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((absu >> 13) & 0x3ffu));
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (absu < 0x38800000u) {
        if (absu < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absu >> 23;
        uint32_t m = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;
        uint32_t half = 1u << (shift - 1);
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absu - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

/* Typed element access: to_f32 / from_f32 for the three float storage types. */
LISA_HD float lk_to_f32(float v) { return v; }
LISA_HD float lk_to_f32(lisa_bf16_t v) { return lk_bf16_to_f32(v.bits); }
LISA_HD float lk_to_f32(lisa_f16_t v) { return lk_f16_to_f32(v.bits); }
template <typename T> LISA_HD T lk_from_f32(float v);
template <> LISA_HD float lk_from_f32<float>(float v) { return v; }
template <> LISA_HD lisa_bf16_t lk_from_f32<lisa_bf16_t>(float v) {
    lisa_bf16_t r;
    r.bits = lk_f32_to_bf16(v);
    return r;
}
template <> LISA_HD lisa_f16_t lk_from_f32<lisa_f16_t>(float v) {
    lisa_f16_t r;
    r.bits = lk_f32_to_f16(v);
    return r;
}

/* Runtime-dtype element access (float dtypes only), for the memory-bound kernels that take any
 * mix of F32/BF16/F16 operands without one template instantiation per combination: the switch is
 * uniform across a launch, so it costs a predictable branch, not divergence. */
LISA_HD float lk_load(const void *p, int dt, int64_t i) {
    switch (dt) {
    case LK_BF16: return lk_bf16_to_f32(((const uint16_t *)p)[i]);
    case LK_F16: return lk_f16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}
LISA_HD void lk_store(void *p, int dt, int64_t i, float v) {
    switch (dt) {
    case LK_BF16: ((uint16_t *)p)[i] = lk_f32_to_bf16(v); break;
    case LK_F16: ((uint16_t *)p)[i] = lk_f32_to_f16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}
/* Rounds v as storing it in dtype dt would (identity for F32). */
LISA_HD float lk_round_to(int dt, float v) {
    switch (dt) {
    case LK_BF16: return lk_bf16_to_f32(lk_f32_to_bf16(v));
    case LK_F16: return lk_f16_to_f32(lk_f32_to_f16(v));
    default: return v;
    }
}

/* The 16 bytes of u (one lk_ld16) as floats: 4 F32 or 8 BF16/F16 elements. */
template <typename T> LISA_DEV void lk_unpack16(float *dst, lk_u4 u);
template <> LISA_DEV void lk_unpack16<float>(float *dst, lk_u4 u) {
    for (int i = 0; i < 4; i++) dst[i] = lk_bits_f32(u.w[i]);
}
template <> LISA_DEV void lk_unpack16<lisa_bf16_t>(float *dst, lk_u4 u) {
    for (int i = 0; i < 4; i++) {
        dst[2 * i] = lk_bf16_to_f32((uint16_t)(u.w[i] & 0xffffu));
        dst[2 * i + 1] = lk_bf16_to_f32((uint16_t)(u.w[i] >> 16));
    }
}
template <> LISA_DEV void lk_unpack16<lisa_f16_t>(float *dst, lk_u4 u) {
    for (int i = 0; i < 4; i++) {
        dst[2 * i] = lk_f16_to_f32((uint16_t)(u.w[i] & 0xffffu));
        dst[2 * i + 1] = lk_f16_to_f32((uint16_t)(u.w[i] >> 16));
    }
}

/* Activations, one definition for every kernel that applies them (ops.def GELU, QUICK_GELU, RELU):
 * the elementwise ops, the GEMV and GEMM epilogues. ReLU keeps NaN as torch does. */
LISA_DEV float lk_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
LISA_DEV float lk_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
LISA_DEV float lk_quick_gelu(float x) { return x * lk_sigmoid(1.702f * x); }
LISA_DEV float lk_relu(float x) { return x > 0.0f ? x : (x == x ? 0.0f : x); }

/* The backend's device error flag (lisa_cuda_impl.flag, three int64 words): [0] what went wrong
 * (LK_FLAG_*; 0 = nothing), [1] the offending value, [2] its bound. Check kernels raise it instead
 * of making the host wait; the kernel that follows a check reads word 0 and does nothing when it is
 * set (so a bad input leaves the output untouched, as ops.def asks), and the host reads the flag at
 * its next wait (lisa_cuda_wait) and reports the error there. Racing raisers each write a
 * consistent (kind, bound); the value is one of the bad ones. */
LISA_HD void lk_flag_raise(int64_t *flag, int64_t kind, int64_t value, int64_t bound) {
    flag[1] = value;
    flag[2] = bound;
    flag[0] = kind;
}

/* Warp reductions over all 32 lanes (every lane gets the result). */
LISA_DEV float lk_warp_sum(float v) {
    LISA_UNROLL
    for (int m = 16; m > 0; m >>= 1) v += lk_shfl_xor(v, m);
    return v;
}
LISA_DEV float lk_warp_max(float v) {
    LISA_UNROLL
    for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, lk_shfl_xor(v, m));
    return v;
}

/* Block-wide sum over blockDim.x threads (a multiple of 32, at most 1024); every thread gets the
 * result. Starts and ends with a barrier so that back-to-back calls may reuse the scratch. */
LISA_DEV float lk_block_sum(float v) {
    LISA_SHARED float lk_red_sum_[32];
    int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    v = lk_warp_sum(v);
    lk_syncthreads();
    if (lane == 0) lk_red_sum_[warp] = v;
    lk_syncthreads();
    float r = lane < nw ? lk_red_sum_[lane] : 0.0f;
    return lk_warp_sum(r);
}
LISA_DEV float lk_block_max(float v) {
    LISA_SHARED float lk_red_max_[32];
    int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    v = lk_warp_max(v);
    lk_syncthreads();
    if (lane == 0) lk_red_max_[warp] = v;
    lk_syncthreads();
    float r = lane < nw ? lk_red_max_[lane] : -INFINITY;
    return lk_warp_max(r);
}

#endif
