/* kernels/cuda/attn_sm90.cu — launcher of the Hopper flash-attention kernel (attn_sm90.cuh): the
 * variant choice, the TMA tensor maps (cuTensorMapEncodeTiled, reached through the runtime's
 * driver entry point so that liblisa does not link libcuda), the launch. See attn_sm90.h. */
#include "kernels/cuda/attn_sm90.h"

#include <cuda.h>
#include <cudaTypedefs.h>

/* 1 in the module compiled for sm_90a, 0 in every other architecture's: read back from the
 * module the driver loaded for the device, it says whether the kernels below have bodies. */
#if defined(LK_SM90_ENABLED) || !defined(__CUDA_ARCH__)
static __device__ const int lk_fa3_built = 1;
#else
static __device__ const int lk_fa3_built = 0;
#endif

/* Host helpers are static, not in an anonymous namespace: nvcc gives those external linkage. */

/* cuTensorMapEncodeTiled, looked up once (C++ guarantees one initialization of the static). */
static PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = []() -> PFN_cuTensorMapEncodeTiled_v12000 {
        void *p = nullptr;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess)
            return nullptr;
        return (PFN_cuTensorMapEncodeTiled_v12000)p;
    }();
    return fn;
}

static lisa_status encode(lk_tmap *m, const lk_tmap_req &r, const char *what) {
    PFN_cuTensorMapEncodeTiled_v12000 fn = encode_fn();
    if (!fn) return lisa_fail(LISA_ERR_UNSUPPORTED, "sm90 attention: the driver has no cuTensorMapEncodeTiled");
    cuuint64_t dims[4], strides[3];
    cuuint32_t box[4], es[4] = {1, 1, 1, 1};
    for (int d = 0; d < r.rank; d++) {
        dims[d] = r.dims[d];
        box[d] = r.box[d];
        if (d < r.rank - 1) strides[d] = r.strides[d];
    }
    const CUresult e = fn((CUtensorMap *)m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, (cuuint32_t)r.rank, (void *)r.base, dims,
                          strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE, (CUtensorMapSwizzle)r.swz,
                          CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (e != CUDA_SUCCESS)
        return lisa_fail(LISA_ERR_BACKEND, "sm90 attention: cuTensorMapEncodeTiled(%s: rank %d, dims %llu x %llu x %llu x %llu, "
                                           "box %u x %u x %u x %u) failed with CUresult %d",
                         what, r.rank, (unsigned long long)r.dims[0], (unsigned long long)r.dims[1],
                         (unsigned long long)r.dims[2], (unsigned long long)r.dims[3], r.box[0], r.box[1], r.box[2], r.box[3],
                         (int)e);
    return LISA_OK;
}

template <int D, int BN, int REL, bool CAUSAL, bool VARLEN>
static lisa_status launch(const lk_fa3_params &p, size_t smem, unsigned grid, cudaStream_t st) {
    CUDA_CHECK(cudaFuncSetAttribute(lk_fa3_fwd<D, BN, REL, CAUSAL, VARLEN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)smem));
    lk_fa3_fwd<D, BN, REL, CAUSAL, VARLEN><<<grid, LK_FA3_THREADS, smem, st>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

/* Specialise at one boundary (docs/style.md §7): (D, BN, rel, causal, varlen) -> a kernel. */
static lisa_status dispatch(const lk_fa3_args &a, const lk_fa3_params &p, size_t smem, unsigned grid, cudaStream_t st) {
#define LK_FA3_CASE(D_, BN_, REL_, C_, V_)                                                         \
    if (a.D == D_ && a.BN == BN_ && a.rel == REL_ && a.causal == C_ && (a.cu_q != nullptr) == V_) \
        return launch<D_, BN_, REL_, C_, V_>(p, smem, grid, st);
    LK_FA3_CASE(64, 128, 0, false, false)
    LK_FA3_CASE(64, 128, 0, true, false)
    LK_FA3_CASE(64, 128, 0, false, true)
    LK_FA3_CASE(64, 128, 0, true, true)
    LK_FA3_CASE(80, 128, 0, false, false)
    LK_FA3_CASE(80, 128, 0, true, false)
    LK_FA3_CASE(80, 128, 0, false, true)
    LK_FA3_CASE(80, 128, 0, true, true)
    LK_FA3_CASE(128, 112, 0, false, false)
    LK_FA3_CASE(128, 112, 0, true, false)
    LK_FA3_CASE(128, 112, 0, false, true)
    LK_FA3_CASE(128, 112, 0, true, true)
    LK_FA3_CASE(64, 208, 1, false, false)
    LK_FA3_CASE(64, 208, 2, false, false)
    LK_FA3_CASE(64, 128, 1, false, false)
    LK_FA3_CASE(64, 128, 2, false, false)
    LK_FA3_CASE(80, 208, 1, false, false)
    LK_FA3_CASE(80, 208, 2, false, false)
    LK_FA3_CASE(80, 128, 1, false, false)
    LK_FA3_CASE(80, 128, 2, false, false)
#undef LK_FA3_CASE
    return lisa_fail(LISA_ERR_UNSUPPORTED, "sm90 attention: no variant for head dim %d, %d-key tiles, rel-pos %d, causal %d, "
                                           "varlen %d (rel-pos: head dim 64/80, dense, not causal)",
                     a.D, a.BN, a.rel, (int)a.causal, (int)(a.cu_q != nullptr));
}

extern "C" {

bool lisa_cuda_fa3_available(lisa_backend *be) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (im->fa3_state == 0) {
        if (im->cc_major != 9 || im->cc_minor != 0) {
            im->fa3_state = 2; /* sm_90a code runs on compute capability 9.0 only */
        } else {
            if (im->capturing) return false; /* a synchronous copy would break the capture */
            int built = 0;
            if (cudaMemcpyFromSymbol(&built, lk_fa3_built, sizeof built) != cudaSuccess) {
                (void)cudaGetLastError();
                built = 0;
            }
            im->fa3_state = built ? 1 : 2;
        }
    }
    return im->fa3_state == 1;
}

lisa_status lisa_cuda_fa3_run(lisa_backend *be, lk_fa3_args *a) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (!lisa_cuda_fa3_available(be))
        return lisa_fail(LISA_ERR_UNSUPPORTED, "sm90 attention: device %s (compute capability %d.%d) cannot run the sm_90a "
                                               "kernels (or this build has no sm_90a code)",
                         im->name, im->cc_major, im->cc_minor);
    a->BN = lk_fa3_key_tile(a->D, a->rel, a->Tk);
    a->n_sms = im->num_sms;
    a->smem_max = im->smem_optin;
    lk_fa3_params p;
    lk_tmap_req req[5];
    size_t smem = 0;
    unsigned grid = 0;
    const char *why = lk_fa3_setup(a, &p, req, &smem, &grid);
    if (why) return lisa_fail(LISA_ERR_UNSUPPORTED, "sm90 attention: %s", why);
    if (p.n_items == 0) return LISA_OK;
    LISA_TRY(encode(&p.tm_q, req[0], "q"));
    LISA_TRY(encode(&p.tm_k, req[1], "k"));
    LISA_TRY(encode(&p.tm_v, req[2], "v"));
    if (a->rel == 2) {
        LISA_TRY(encode(&p.tm_rph, req[3], "rel_pos_h"));
        LISA_TRY(encode(&p.tm_rpw, req[4], "rel_pos_w"));
    }
    return dispatch(*a, p, smem, grid, im->stream);
}

} /* extern "C" */
