/* kernels/cuda/conv_cudnn.c — CONV2D and CONV_TRANSPOSE2D_K2S2 through cuDNN, the alternative to
 * im2col + GEMM (gemm.cu) for SAM's neck 3x3 conv and the mask decoder's transposed convs.
 *
 * Why optional and loaded at run time: cuDNN's implicit-GEMM convolutions skip the im2col buffer (9x
 * the neck's input for a 3x3 kernel) and the transposed conv's fp32 staging; whether that wins at
 * LISA's shapes is for a GPU to measure (bench_gpu_kernels conv_* rows), so the default stays
 * im2col + GEMM and lisa_cuda_set_conv_path (or LISA_CUDA_CONV=cudnn) selects cuDNN. The library
 * is dlopen'ed on first use (libcudnn.so.9: the CUDA toolkit here, the PyTorch wheel's nvidia/cudnn
 * on the GPU machines), so binaries start where cuDNN is missing and such a call reports
 * LISA_ERR_UNSUPPORTED (the op then runs im2col + GEMM). Built only when cudnn.h is found
 * (CMake: LISA_HAVE_CUDNN_H); else every entry point is LISA_ERR_UNSUPPORTED.
 *
 * Numerics: 16-bit activations only (x and y of one dtype, BF16 or F16), weights converted to it,
 * fp32 accumulation (compute type FLOAT, tensor-op math); the bias is added afterwards by the ADD
 * kernel, as on the im2col path. One handle per backend, on the backend's stream; workspaces come
 * from the backend's scratch; descriptors and the heuristic's algorithm are cached per shape.
 */
#include "kernels/cuda/cuda_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef LISA_HAVE_CUDNN_H
#include <cudnn.h>
#include <dlfcn.h>

/* The cuDNN entry points used here, resolved from the dlopen'ed library. */
#define CUDNN_FNS(X)                                                                               \
    X(cudnnCreate)                                                                                 \
    X(cudnnDestroy)                                                                                \
    X(cudnnSetStream)                                                                              \
    X(cudnnGetErrorString)                                                                         \
    X(cudnnCreateTensorDescriptor)                                                                 \
    X(cudnnDestroyTensorDescriptor)                                                                \
    X(cudnnSetTensor4dDescriptor)                                                                  \
    X(cudnnCreateFilterDescriptor)                                                                 \
    X(cudnnDestroyFilterDescriptor)                                                                \
    X(cudnnSetFilter4dDescriptor)                                                                  \
    X(cudnnCreateConvolutionDescriptor)                                                            \
    X(cudnnDestroyConvolutionDescriptor)                                                           \
    X(cudnnSetConvolution2dDescriptor)                                                             \
    X(cudnnSetConvolutionMathType)                                                                 \
    X(cudnnGetConvolutionForwardAlgorithm_v7)                                                      \
    X(cudnnGetConvolutionForwardWorkspaceSize)                                                     \
    X(cudnnConvolutionForward)                                                                     \
    X(cudnnGetConvolutionBackwardDataAlgorithm_v7)                                                 \
    X(cudnnGetConvolutionBackwardDataWorkspaceSize)                                                \
    X(cudnnConvolutionBackwardData)

#define CUDNN_PLANS 16

/* One cached convolution shape: owns its descriptors. */
typedef struct cudnn_plan {
    int64_t key[11]; /* transposed, B, Ci, H, W, Co, kh, kw, stride, pad, dtype */
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    int algo;
    size_t ws;
    bool used;
} cudnn_plan;

/* Per backend (lisa_cuda_impl.cudnn): owns the library handle, the cuDNN handle and the plans;
 * freed by lisa_cuda_cudnn_free. */
typedef struct cudnn_state {
    void *lib;
#define X(f) __typeof__(f) *f;
    CUDNN_FNS(X)
#undef X
    cudnnHandle_t h;
    cudnn_plan plans[CUDNN_PLANS];
    int next;
} cudnn_state;

static lisa_status cudnn_err(const cudnn_state *c, cudnnStatus_t st, const char *what) {
    return lisa_fail(LISA_ERR_BACKEND, "cudnn: %s: %s", what, c->cudnnGetErrorString ? c->cudnnGetErrorString(st) : "?");
}

#define CUDNN_TRY(c, expr, what)                                                                   \
    do {                                                                                           \
        cudnnStatus_t st_ = (expr);                                                                \
        if (st_ != CUDNN_STATUS_SUCCESS) return cudnn_err((c), st_, (what));                       \
    } while (0)

static void plan_release(cudnn_state *c, cudnn_plan *p) {
    if (p->x) c->cudnnDestroyTensorDescriptor(p->x);
    if (p->y) c->cudnnDestroyTensorDescriptor(p->y);
    if (p->w) c->cudnnDestroyFilterDescriptor(p->w);
    if (p->conv) c->cudnnDestroyConvolutionDescriptor(p->conv);
    memset(p, 0, sizeof *p);
}

void lisa_cuda_cudnn_free(lisa_backend *be) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    cudnn_state *c = im->cudnn;
    if (!c) return;
    for (int i = 0; i < CUDNN_PLANS; i++)
        if (c->plans[i].used) plan_release(c, &c->plans[i]);
    if (c->h) c->cudnnDestroy(c->h);
    if (c->lib) dlclose(c->lib);
    free(c);
    im->cudnn = NULL;
}

/* The backend's cuDNN state, loaded and created on first use. */
static lisa_status state(lisa_backend *be, cudnn_state **out) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (im->cudnn) {
        *out = im->cudnn;
        return LISA_OK;
    }
    cudnn_state *c = calloc(1, sizeof *c);
    if (!c) return lisa_fail(LISA_ERR_OOM, "cudnn: out of host memory");
    c->lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) c->lib = dlopen("libcudnn.so", RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) {
        free(c);
        return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn: libcudnn.so.9 not found (%s)", dlerror());
    }
#define X(f)                                                                                       \
    c->f = (__typeof__(c->f))dlsym(c->lib, #f);                                                    \
    if (!c->f) {                                                                                   \
        dlclose(c->lib);                                                                           \
        free(c);                                                                                   \
        return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn: the library lacks %s", #f);                 \
    }
    CUDNN_FNS(X)
#undef X
    cudnnStatus_t st = c->cudnnCreate(&c->h);
    if (st == CUDNN_STATUS_SUCCESS) st = c->cudnnSetStream(c->h, im->stream);
    if (st != CUDNN_STATUS_SUCCESS) {
        lisa_status s = cudnn_err(c, st, "cudnnCreate");
        if (c->h) c->cudnnDestroy(c->h);
        dlclose(c->lib);
        free(c);
        return s;
    }
    im->cudnn = c;
    *out = c;
    return LISA_OK;
}

/* Descriptors and algorithm for one shape (cached). Forward: x [B, Ci, H, W] -> y [B, Co, Ho, Wo]
 * with w [Co, Ci, kh, kw]. Transposed (backward data): x [B, Ci, H, W] is dy, w [Ci, Co, 2, 2] is
 * the filter of the convolution y -> x, y [B, Co, 2H, 2W] is dx. */
static lisa_status plan_get(lisa_backend *be, cudnn_state *c, const int64_t key[11], int64_t Ho, int64_t Wo, size_t ws_cap,
                            cudnn_plan **out) {
    for (int i = 0; i < CUDNN_PLANS; i++)
        if (c->plans[i].used && !memcmp(c->plans[i].key, key, sizeof c->plans[i].key)) {
            *out = &c->plans[i];
            return LISA_OK;
        }
    cudnn_plan *p = &c->plans[c->next];
    c->next = (c->next + 1) % CUDNN_PLANS;
    if (p->used) plan_release(c, p);
    memcpy(p->key, key, sizeof p->key);
    p->used = true;
    const bool tr = key[0] != 0;
    const int B = (int)key[1], Ci = (int)key[2], H = (int)key[3], W = (int)key[4], Co = (int)key[5];
    const int kh = (int)key[6], kw = (int)key[7], stride = (int)key[8], pad = (int)key[9];
    const cudnnDataType_t dt = key[10] == LISA_DTYPE_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    lisa_status s = LISA_OK;
#define PT(expr, what)                                                                             \
    do {                                                                                           \
        cudnnStatus_t st_ = (expr);                                                                \
        if (st_ != CUDNN_STATUS_SUCCESS) {                                                         \
            s = cudnn_err(c, st_, what);                                                           \
            plan_release(c, p);                                                                    \
            return s;                                                                              \
        }                                                                                          \
    } while (0)
    PT(c->cudnnCreateTensorDescriptor(&p->x), "tensor descriptor");
    PT(c->cudnnCreateTensorDescriptor(&p->y), "tensor descriptor");
    PT(c->cudnnCreateFilterDescriptor(&p->w), "filter descriptor");
    PT(c->cudnnCreateConvolutionDescriptor(&p->conv), "convolution descriptor");
    PT(c->cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, dt, B, Ci, H, W), "x descriptor");
    PT(c->cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, dt, B, Co, (int)Ho, (int)Wo), "y descriptor");
    /* forward: filter [Co, Ci, kh, kw]; transposed: the filter of y -> x, [K = Ci, C = Co, 2, 2] */
    PT(c->cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NCHW, tr ? Ci : Co, tr ? Co : Ci, kh, kw), "w descriptor");
    PT(c->cudnnSetConvolution2dDescriptor(p->conv, pad, pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
       "convolution");
    PT(c->cudnnSetConvolutionMathType(p->conv, CUDNN_TENSOR_OP_MATH), "math type");
    int n = 0;
    if (!tr) {
        cudnnConvolutionFwdAlgoPerf_t perf[8];
        PT(c->cudnnGetConvolutionForwardAlgorithm_v7(c->h, p->x, p->w, p->conv, p->y, 8, &n, perf), "forward heuristic");
        int pick = -1;
        for (int i = 0; i < n && pick < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= ws_cap) pick = i;
        if (pick < 0) {
            plan_release(c, p);
            return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn: no forward algorithm within %zu bytes of scratch", ws_cap);
        }
        p->algo = (int)perf[pick].algo;
        PT(c->cudnnGetConvolutionForwardWorkspaceSize(c->h, p->x, p->w, p->conv, p->y, perf[pick].algo, &p->ws),
           "forward workspace");
    } else {
        cudnnConvolutionBwdDataAlgoPerf_t perf[8];
        PT(c->cudnnGetConvolutionBackwardDataAlgorithm_v7(c->h, p->w, p->x, p->conv, p->y, 8, &n, perf),
           "backward-data heuristic");
        int pick = -1;
        for (int i = 0; i < n && pick < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= ws_cap) pick = i;
        if (pick < 0) {
            plan_release(c, p);
            return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn: no backward-data algorithm within %zu bytes of scratch", ws_cap);
        }
        p->algo = (int)perf[pick].algo;
        PT(c->cudnnGetConvolutionBackwardDataWorkspaceSize(c->h, p->w, p->x, p->conv, p->y, perf[pick].algo, &p->ws),
           "backward-data workspace");
    }
#undef PT
    *out = p;
    (void)be;
    return LISA_OK;
}

/* Runs one convolution (shapes already checked by the op). */
static lisa_status run(lisa_backend *be, bool transposed, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                       const lisa_tensor *b, int32_t stride, int32_t pad) {
    if (x->dtype != LISA_DTYPE_BF16 && x->dtype != LISA_DTYPE_F16)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn conv: 16-bit activations only (x is %s)", lisa_dtype_name(x->dtype));
    if (y->dtype != x->dtype)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn conv: y must have x's dtype");
    const int64_t B = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3];
    if (B > INT32_MAX || Ci > INT32_MAX || H > INT32_MAX || W > INT32_MAX)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn conv: dims beyond int32");
    cudnn_state *c;
    LISA_TRY(state(be, &c));
    const size_t mark = lisa_arena_mark(&be->scratch);
    lisa_status s = LISA_OK;
    /* weights in x's dtype (a checkpoint may keep them in another) */
    const void *wd = w->data;
    if (w->dtype != x->dtype) {
        void *dst = NULL;
        s = lisa_cuda_scratch(be, (size_t)lisa_tensor_numel(w) * lisa_dtype_size(x->dtype), &dst);
        if (s == LISA_OK) {
            lisa_tensor wc = lisa_tensor_view(dst, x->dtype, w->n_dims, w->shape);
            wc.device = LISA_DEVICE_CUDA, wc.device_id = be->device_id;
            s = lisa_cuda_copy(be, &wc, w);
        }
        wd = dst;
    }
    const int64_t key[11] = {transposed, B, Ci, H, W, y->shape[1], w->shape[2], w->shape[3], stride, pad, x->dtype};
    cudnn_plan *p = NULL;
    if (s == LISA_OK) s = plan_get(be, c, key, y->shape[2], y->shape[3], be->scratch.cap - be->scratch.used, &p);
    void *ws = NULL;
    if (s == LISA_OK && p->ws) s = lisa_cuda_scratch(be, p->ws, &ws);
    if (s == LISA_OK) {
        const float alpha = 1.0f, beta = 0.0f;
        cudnnStatus_t st =
            transposed ? c->cudnnConvolutionBackwardData(c->h, &alpha, p->w, wd, p->x, x->data, p->conv,
                                                         (cudnnConvolutionBwdDataAlgo_t)p->algo, ws, p->ws, &beta, p->y, y->data)
                       : c->cudnnConvolutionForward(c->h, &alpha, p->x, x->data, p->w, wd, p->conv,
                                                    (cudnnConvolutionFwdAlgo_t)p->algo, ws, p->ws, &beta, p->y, y->data);
        if (st != CUDNN_STATUS_SUCCESS) s = cudnn_err(c, st, transposed ? "cudnnConvolutionBackwardData" : "cudnnConvolutionForward");
    }
    if (s == LISA_OK && b) { /* + b[Co] per channel, as the im2col path */
        const int64_t Co = y->shape[1], P = y->shape[2] * y->shape[3];
        lisa_tensor yv = lisa_tensor_view4(y->data, y->dtype, 3, B, Co, P, 0);
        lisa_tensor bv = lisa_tensor_view4(b->data, b->dtype, 2, Co, 1, 0, 0);
        yv.device = bv.device = LISA_DEVICE_CUDA;
        yv.device_id = bv.device_id = be->device_id;
        s = lisa_cuda_add(be, &yv, &yv, &bv);
    }
    lisa_arena_reset(&be->scratch, mark); /* later work on the stream runs after the convolution */
    return s;
}

lisa_status lisa_cuda_conv2d_cudnn(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                   const lisa_tensor *b, int32_t stride, int32_t pad) {
    return run(be, false, y, x, w, b, stride, pad);
}

lisa_status lisa_cuda_convt_k2s2_cudnn(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                       const lisa_tensor *b) {
    return run(be, true, y, x, w, b, 2, 0);
}

#else /* no cudnn.h at build time */

void lisa_cuda_cudnn_free(lisa_backend *be) { (void)be; }

lisa_status lisa_cuda_conv2d_cudnn(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                   const lisa_tensor *b, int32_t stride, int32_t pad) {
    (void)be, (void)y, (void)x, (void)w, (void)b, (void)stride, (void)pad;
    return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn: this build has no cudnn.h (CMake did not find cuDNN)");
}

lisa_status lisa_cuda_convt_k2s2_cudnn(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                       const lisa_tensor *b) {
    (void)be, (void)y, (void)x, (void)w, (void)b;
    return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn: this build has no cudnn.h (CMake did not find cuDNN)");
}

#endif

lisa_status lisa_cuda_set_conv_path(lisa_backend *be, bool transposed, lisa_cuda_conv_path path) {
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (path != LISA_CUDA_CONV_IM2COL && path != LISA_CUDA_CONV_CUDNN)
        return lisa_fail(LISA_ERR_INVALID_ARG, "conv path %d (0 im2col, 1 cudnn)", (int)path);
#ifdef LISA_HAVE_CUDNN_H
    if (path == LISA_CUDA_CONV_CUDNN) {
        cudnn_state *c;
        LISA_TRY(state(be, &c)); /* fails here, not in a model step, when cuDNN cannot be loaded */
    }
#else
    if (path == LISA_CUDA_CONV_CUDNN)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "cudnn: this build has no cudnn.h (CMake did not find cuDNN)");
#endif
    if (transposed)
        im->convt_path = path;
    else
        im->conv_path = path;
    return LISA_OK;
}
