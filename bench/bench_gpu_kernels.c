/* bench/bench_gpu_kernels.c — times the CUDA attention kernels and cuBLASLt GEMMs at LISA's shapes.
 *
 * usage: bench_gpu_kernels [--quick] [--smoke] [--json FILE] [--device N] [--only KEYS] [--after KEY]
 *
 * Cases are named by their JSON keys; --only runs the listed ones, --after the ones after KEY (the
 * suite's resume after a lost context), --smoke one launch of each family in seconds. --json is
 * rewritten after every case; a failing case is abandoned and the next one runs (see fail_case).
 *
 * Method (docs/style.md §9, docs/gpu-bringup.md "Measuring"): bf16 inputs from a fixed random stream (never zeros), three
 * warm-up calls, then the median of N timed calls, each timed with CUDA events after an L2 flush
 * (a memset of a buffer of 4x the L2 size). Rates from written formulas:
 *   attention FLOP = 4·B·H·Tq·Tk·D (QKᵀ and PV, 2 FLOP per MAC), halved for causal (Tq = Tk);
 *   the rel-pos terms add B·H·Tq·Tk (not counted); decode is memory-bound: bytes = K + V read;
 *   GEMM FLOP = 2·M·N·K. % of peak against 989 TFLOP/s (H100/H200 SXM dense bf16, datasheet;
 *   790-800 measured by others on random data on these cards); memory-bound rows against the
 *   measured device-to-device copy (copy_gbps, bytes read + written; datasheet 4.8 / 3.35 TB/s
 *   H200 / H100 when the copy case did not run).
 * Convolutions: SAM's neck 3x3 conv and the mask decoder's transposed convs on im2col + GEMM (the
 * default) and on cuDNN (conv_*_cudnn_*), TFLOP/s of the direct convolution's FLOP.
 * Small-M rows (M <= 16: the decode projections, on the small-M kernel gemv_kernels.cuh, and the
 * same shapes on cuBLASLt as cublaslt_*) report GB/s of weights read and % of copy_gbps.
 * JSON keys (as in bench/results/DATE-CARD.json): attn_sam_window_tflops, attn_sam_global_tflops (batch 8:
 * 8 x 25 windows of 14x14 = 196 tokens, 8 images of 64x64 = 4096 tokens, 16 heads, head dim 80): the
 * ATTENTION_RELPOS op as the SAM encoder calls it (AUTO: today the mma.sync kernel computing the
 * rel-pos terms from its Q tile), FLOP counted on the unpadded problem (196 tokens, not the 256
 * rows of the 64-row tiles); SAM rows also as _unfused_tflops (REL_POS then ATTENTION, both timed:
 * what the encoder ran before the fused op), _terms_tflops (the flash kernel with precomputed terms,
 * REL_POS not timed) and _norel_tflops; the other rows under their names. Prints "no CUDA device:
 * skipped" without a GPU. Every attention row of the mma.sync kernel has a twin of the sm_90a wgmma
 * kernel (key suffix _wgmma_tflops; SAM rel-pos also as _fused_wgmma_tflops: REL_POS computed inside
 * the kernel from the tables); on a card without sm_90a they print "unavailable" and are left out
 * of the JSON. The per-shape choice table (kernels/cuda/attention.cu) is filled from these pairs.
 */
#include <stdio.h>

#ifndef LISA_HAVE_CUDA
int main(void) {
    printf("bench_gpu_kernels: built without CUDA: skipped\n");
    return 0;
}
#else

#include "kernels/cuda/cuda.h"
#include "core/error.h"
#include "core/half.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct row {
    char key[64];
    char shape[80];
    double ms, tflops, gbps;
} row;

static row rows[96];
static int n_rows;
static lisa_backend *be;
static void *flush_buf;
static size_t flush_bytes;
static int reps = 20;
static double peak_tflops, peak_gbps;

/* A failing case is abandoned (its key stays absent; what it allocated leaks, the process is about
 * to end) and the next case runs; when the device cannot synchronize afterwards (a sticky CUDA
 * error: the context is lost) the program writes its JSON and exits with status 3 naming the case
 * ("kernel_bench_aborted_after"), and bench/gpu/suite.sh runs the remaining cases in a fresh
 * process with --after CASE. */
static jmp_buf case_jmp;
static const char *in_case;
static char failed[1024], aborted[64];
static const char *json_path, *only, *after, *device_name = "unknown";

static void fail_case(void) {
    if (in_case) longjmp(case_jmp, 1);
    exit(1);
}

#define CU(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
            fail_case();                                                                           \
        }                                                                                          \
    } while (0)

static void check(lisa_status s, const char *what) {
    if (s != LISA_OK) {
        fprintf(stderr, "bench_gpu_kernels: %s: %s: %s\n", what, lisa_status_name(s), lisa_last_error());
        fail_case();
    }
}

/* Device BF16 tensor of random values in [-1, 1) (xorshift; never zeros: docs/gpu-bringup.md). */
static lisa_tensor dev_rand(int32_t n, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    lisa_tensor t = lisa_tensor_view4(NULL, LISA_DTYPE_BF16, n, d0, d1, d2, d3);
    const size_t count = (size_t)lisa_tensor_numel(&t), bytes = count * 2;
    check(be->mem_alloc(be, bytes, &t.data), "alloc");
    t.device = LISA_DEVICE_CUDA;
    t.device_id = be->device_id;
    uint16_t *h = malloc(bytes ? bytes : 2);
    uint64_t s = 0x9e3779b97f4a7c15ull ^ bytes;
    for (size_t i = 0; i < count; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = lisa_f32_to_bf16((float)((double)(s >> 11) * (2.0 / 9007199254740992.0) - 1.0));
    }
    check(be->upload(be, t.data, h, bytes), "upload");
    free(h);
    return t;
}

typedef void (*bench_fn)(void *arg);

/* Median milliseconds of fn over `reps` calls, each after an L2 flush. */
static double time_ms(bench_fn fn, void *arg) {
    cudaStream_t st = (cudaStream_t)lisa_cuda_stream(be);
    cudaEvent_t a, b;
    CU(cudaEventCreate(&a));
    CU(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) fn(arg);
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < reps; i++) {
        CU(cudaMemsetAsync(flush_buf, i & 0xff, flush_bytes, st));
        CU(cudaEventRecord(a, st));
        fn(arg);
        CU(cudaEventRecord(b, st));
        CU(cudaEventSynchronize(b));
        float ms;
        CU(cudaEventElapsedTime(&ms, a, b));
        t[i] = ms;
    }
    check(be->synchronize(be), "sync");
    for (int i = 1; i < reps; i++) /* insertion sort */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    double med = t[reps / 2];
    free(t);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return med;
}

/* Rewrites the JSON (atomically) with every row so far: called after every case. */
static void write_json(void) {
    if (!json_path) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", json_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "bench_gpu_kernels: cannot write %s\n", tmp);
        return;
    }
    fprintf(f, "{\n  \"kernel_bench_device\": \"%s\"", device_name);
    for (int i = 0; i < n_rows; i++) {
        double v = isfinite(rows[i].tflops) ? rows[i].tflops : rows[i].gbps;
        if (strstr(rows[i].key, "_ms")) v = rows[i].ms;
        fprintf(f, ",\n  \"%s\": %.4g", rows[i].key, v);
    }
    fprintf(f, ",\n  \"kernel_bench_failed\": \"%s\",\n  \"kernel_bench_aborted_after\": \"%s\"\n}\n", failed, aborted);
    if (fclose(f) == 0) rename(tmp, json_path);
}

static void report(const char *key, const char *shape, double ms, double flop, double bytes) {
    if (n_rows == (int)(sizeof rows / sizeof rows[0])) return;
    row *r = &rows[n_rows++];
    snprintf(r->key, sizeof r->key, "%s", key);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    r->ms = ms;
    r->tflops = flop > 0 ? flop / (ms * 1e-3) / 1e12 : NAN;
    r->gbps = bytes > 0 ? bytes / (ms * 1e-3) / 1e9 : NAN;
    char pct[32] = "";
    if (flop > 0 && peak_tflops > 0) snprintf(pct, sizeof pct, "%5.1f%% of peak", 100 * r->tflops / peak_tflops);
    if (bytes > 0 && peak_gbps > 0) snprintf(pct, sizeof pct, "%5.1f%% of peak BW", 100 * r->gbps / peak_gbps);
    if (flop > 0)
        printf("%-34s %-44s %9.3f ms %8.1f TFLOP/s  %s\n", key, shape, ms, r->tflops, pct);
    else
        printf("%-34s %-44s %9.3f ms %8.1f GB/s     %s\n", key, shape, ms, r->gbps, pct);
    fflush(stdout);
    write_json();
}

/* --only a,b (comma-separated case keys) and --after KEY (skip every case up to and including KEY). */
static bool case_selected(const char *name) {
    static bool past_after;
    if (aborted[0]) return false;
    if (after && !past_after) {
        if (!strcmp(after, name)) past_after = true;
        return false;
    }
    if (!only) return true;
    const size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

static void case_failed(const char *name) {
    const size_t n = strlen(failed);
    snprintf(failed + n, sizeof failed - n, "%s%s", n ? "," : "", name);
    fprintf(stderr, "bench_gpu_kernels: case %s abandoned\n", name);
    lisa_clear_error();
    lisa_cuda_set_conv_path(be, false, LISA_CUDA_CONV_IM2COL); /* a conv case may have left cuDNN selected */
    lisa_cuda_set_conv_path(be, true, LISA_CUDA_CONV_IM2COL);
    lisa_clear_error();
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        snprintf(aborted, sizeof aborted, "%s", name);
        fprintf(stderr, "bench_gpu_kernels: the device cannot synchronize after %s (%s): the context is lost; rerun with "
                        "--after %s\n", name, cudaGetErrorString(e), name);
    }
    write_json();
}

/* Runs one case unless deselected; a failure inside abandons the case only. */
#define CASE(name, call)                                                                           \
    do {                                                                                           \
        if (case_selected(name)) {                                                                 \
            in_case = name;                                                                        \
            if (setjmp(case_jmp) == 0) {                                                           \
                call;                                                                              \
            } else {                                                                               \
                case_failed(name);                                                                 \
            }                                                                                      \
            in_case = NULL;                                                                        \
        }                                                                                          \
    } while (0)

/* ---- attention -------------------------------------------------------------------------------- */
typedef struct attn_job {
    lisa_tensor y, q, k, v, rh, rw;
    lisa_attn_params p;
    lisa_cuda_attn_path path;
    /* varlen */
    lisa_tensor cu;
    int32_t max_q;
    bool varlen;
    /* ATTENTION_RELPOS (relpos): the tables [2S - 1, D], grid S x S, on path relpos_path */
    lisa_tensor tab_h, tab_w;
    bool relpos;
    int32_t S;
    lisa_cuda_attn_path relpos_path;
} attn_job;

static void run_attn(void *a) {
    attn_job *j = a;
    if (j->varlen)
        check(lisa_cuda_flash_attn_varlen_path(be, &j->y, &j->q, &j->k, &j->v, &j->cu, &j->cu, j->max_q, j->p.scale, true,
                                               j->path),
              "varlen");
    else if (j->relpos)
        check(lisa_cuda_attention_relpos_path(be, &j->y, &j->q, &j->k, &j->v, &j->tab_h, &j->tab_w, j->S, j->S, j->p.scale,
                                              j->relpos_path),
              "attention_relpos");
    else
        check(lisa_cuda_attention_path(be, &j->y, &j->q, &j->k, &j->v, &j->p, j->path), "attention");
}

/* The sm_90a kernel's rows need a Hopper card and a build with sm_90a code. */
static bool wgmma_ok(const char *key) {
    if (lisa_cuda_attn_wgmma_available(be)) return true;
    printf("%-34s unavailable (no sm_90a kernel for this device)\n", key);
    return false;
}

static void free_t(lisa_tensor *t) {
    if (t->data) be->mem_free(be, t->data);
    t->data = NULL;
}

/* How a SAM row computes the rel-pos terms. */
typedef enum sam_rel {
    SAM_NOREL,   /* no rel-pos: plain attention */
    SAM_TERMS,   /* ATTENTION with precomputed terms rel_h / rel_w (REL_POS not timed) */
    SAM_RELPOS,  /* ATTENTION_RELPOS from the tables: path FLASH / WGMMA (fused), AUTO (the op), UNFUSED */
} sam_rel;

/* SAM: B windows/images, T tokens of an S x S grid, 16 heads x 80; `path` forces the kernel:
 * SAM_TERMS / SAM_NOREL FLASH (mma.sync) or WGMMA (sm_90a); SAM_RELPOS as lisa_cuda_attention_relpos_path. */
static void bench_sam(const char *key, int64_t B, int64_t S, sam_rel rel, lisa_cuda_attn_path path) {
    const int64_t T = S * S, H = 16, D = 80;
    if (path == LISA_CUDA_ATTN_WGMMA && !wgmma_ok(key)) return;
    attn_job j = {0};
    j.q = dev_rand(4, B, T, H, D);
    j.k = dev_rand(4, B, T, H, D);
    j.v = dev_rand(4, B, T, H, D);
    j.y = dev_rand(4, B, T, H, D);
    j.p.scale = 1.0f / sqrtf((float)D);
    if (rel == SAM_RELPOS) {
        j.tab_h = dev_rand(2, 2 * S - 1, D, 0, 0);
        j.tab_w = dev_rand(2, 2 * S - 1, D, 0, 0);
        j.relpos = true, j.S = (int32_t)S, j.relpos_path = path;
    } else if (rel == SAM_TERMS) {
        j.rh = dev_rand(4, B, H, T, S);
        j.rw = dev_rand(4, B, H, T, S);
        j.p.rel_h = &j.rh, j.p.rel_w = &j.rw;
    }
    j.path = path;
    double ms = time_ms(run_attn, &j);
    char shape[80];
    snprintf(shape, sizeof shape, "B%lld T%lld H16 D80%s%s", (long long)B, (long long)T,
             rel == SAM_TERMS ? " + terms" : rel == SAM_RELPOS ? " rel-pos " : "",
             rel != SAM_RELPOS ? "" : lisa_cuda_attn_path_name(path));
    report(key, shape, ms, 4.0 * B * H * T * T * D, 0);
    free_t(&j.q), free_t(&j.k), free_t(&j.v), free_t(&j.y), free_t(&j.rh), free_t(&j.rw), free_t(&j.tab_h), free_t(&j.tab_w);
}

/* LLaMA-7B prefill attention: nseq x len tokens, 32 x 128, causal, one varlen launch. */
static void bench_prefill(const char *key, int nseq, int len, lisa_cuda_attn_path path) {
    const int64_t H = 32, D = 128, total = (int64_t)nseq * len;
    if (path == LISA_CUDA_ATTN_WGMMA && !wgmma_ok(key)) return;
    attn_job j = {0};
    j.q = dev_rand(3, total, H, D, 0);
    j.k = dev_rand(3, total, H, D, 0);
    j.v = dev_rand(3, total, H, D, 0);
    j.y = dev_rand(3, total, H, D, 0);
    int32_t *cu = malloc(sizeof(int32_t) * (size_t)(nseq + 1));
    for (int i = 0; i <= nseq; i++) cu[i] = i * len;
    j.cu = lisa_tensor_view4(NULL, LISA_DTYPE_I32, 1, nseq + 1, 0, 0, 0);
    check(be->mem_alloc(be, sizeof(int32_t) * (size_t)(nseq + 1), &j.cu.data), "alloc");
    j.cu.device = LISA_DEVICE_CUDA;
    check(be->upload(be, j.cu.data, cu, sizeof(int32_t) * (size_t)(nseq + 1)), "upload");
    free(cu);
    j.varlen = true, j.max_q = len, j.p.scale = 1.0f / sqrtf((float)D), j.path = path;
    double ms = time_ms(run_attn, &j);
    char shape[80];
    snprintf(shape, sizeof shape, "%d x %d tokens H32 D128 causal varlen", nseq, len);
    report(key, shape, ms, 4.0 * nseq * H * (double)len * len * D / 2, 0);
    free_t(&j.q), free_t(&j.k), free_t(&j.v), free_t(&j.y), free_t(&j.cu);
}

/* Decode attention: B requests, one query each, over kv tokens (contiguous cache, split-K). */
static void bench_decode(int64_t B, int64_t kv) {
    const int64_t H = 32, D = 128;
    attn_job j = {0};
    j.q = dev_rand(4, B, 1, H, D);
    j.k = dev_rand(4, B, kv, H, D);
    j.v = dev_rand(4, B, kv, H, D);
    j.y = dev_rand(4, B, 1, H, D);
    j.p.scale = 1.0f / sqrtf((float)D);
    j.path = LISA_CUDA_ATTN_SPLITKV;
    double ms = time_ms(run_attn, &j);
    char key[64], shape[80];
    snprintf(key, sizeof key, "attn_decode_b%lld_kv%lld_gbps", (long long)B, (long long)kv);
    snprintf(shape, sizeof shape, "B%lld kv %lld H32 D128 (K+V bytes)", (long long)B, (long long)kv);
    report(key, shape, ms, 0, 2.0 * B * kv * H * D * 2);
    free_t(&j.q), free_t(&j.k), free_t(&j.v), free_t(&j.y);
}

/* Two-way transformer token->image: N masks x 6 tokens vs 4096 keys, 8 heads x 16. */
static void bench_two_way(int64_t N) {
    attn_job j = {0};
    j.q = dev_rand(4, N, 6, 8, 16);
    j.k = dev_rand(4, N, 4096, 8, 16);
    j.v = dev_rand(4, N, 4096, 8, 16);
    j.y = dev_rand(4, N, 6, 8, 16);
    j.p.scale = 0.25f;
    j.path = LISA_CUDA_ATTN_AUTO;
    double ms = time_ms(run_attn, &j);
    char shape[80];
    snprintf(shape, sizeof shape, "N%lld 6 x 4096 H8 D16 (split-KV)", (long long)N);
    report("attn_two_way_t2i_ms", shape, ms, 4.0 * N * 8 * 6 * 4096 * 16, 0);
    free_t(&j.q), free_t(&j.k), free_t(&j.v), free_t(&j.y);
}

/* ---- GEMM ------------------------------------------------------------------------------------- */
typedef struct gemm_job {
    lisa_tensor y, x, w, b;
    lisa_act act;
} gemm_job;

static void run_gemm(void *a) {
    gemm_job *j = a;
    check(lisa_op_linear_ex(be, &j->y, &j->x, &j->w, j->b.data ? &j->b : NULL, NULL, j->act), "linear");
}

static void bench_gemm(const char *key, int64_t M, int64_t K, int64_t N, bool bias, lisa_act act) {
    gemm_job j = {0};
    j.x = dev_rand(2, M, K, 0, 0);
    j.w = dev_rand(2, N, K, 0, 0);
    j.y = dev_rand(2, M, N, 0, 0);
    if (bias) j.b = dev_rand(1, N, 0, 0, 0);
    j.act = act;
    double ms = time_ms(run_gemm, &j);
    char shape[80];
    snprintf(shape, sizeof shape, "M%lld K%lld N%lld%s%s", (long long)M, (long long)K, (long long)N, bias ? " +bias" : "",
             act == LISA_ACT_GELU ? " +gelu(erf)" : "");
    /* small M: weight-streaming, so report GB/s of weights read instead of TFLOP/s */
    report(key, shape, ms, M <= 16 ? 0 : 2.0 * M * N * K, M <= 16 ? (double)N * K * 2 : 0);
    free_t(&j.x), free_t(&j.w), free_t(&j.y), free_t(&j.b);
}

/* ---- convolutions: im2col + GEMM vs cuDNN (kernels/cuda/conv_cudnn.c) ---------------------------- */
typedef struct conv_job {
    lisa_tensor y, x, w, b;
    bool transposed;
} conv_job;

static void run_conv(void *a) {
    conv_job *j = a;
    if (j->transposed)
        check(lisa_op_conv_transpose2d_k2s2(be, &j->y, &j->x, &j->w, &j->b), "conv_transpose2d_k2s2");
    else
        check(lisa_op_conv2d(be, &j->y, &j->x, &j->w, NULL, 1, 1), "conv2d");
}

/* SAM's neck 3x3 conv (transposed = false: x [B, 256, 64, 64], w [256, 256, 3, 3], pad 1) or the mask
 * decoder's upscaling (transposed: x [B, Ci, H, H] -> [B, Co, 2H, 2H]) on the given path. */
static void bench_conv(const char *key, bool transposed, int64_t B, int64_t Ci, int64_t Co, int64_t H,
                       lisa_cuda_conv_path path) {
    conv_job j = {0};
    j.transposed = transposed;
    check(lisa_cuda_set_conv_path(be, transposed, path), "conv path");
    j.x = dev_rand(4, B, Ci, H, H);
    if (transposed) {
        j.w = dev_rand(4, Ci, Co, 2, 2);
        j.b = dev_rand(1, Co, 0, 0, 0);
        j.y = dev_rand(4, B, Co, 2 * H, 2 * H);
    } else {
        j.w = dev_rand(4, Co, Ci, 3, 3);
        j.y = dev_rand(4, B, Co, H, H);
    }
    const double ms = time_ms(run_conv, &j);
    check(lisa_cuda_set_conv_path(be, transposed, LISA_CUDA_CONV_IM2COL), "conv path");
    char shape[80];
    snprintf(shape, sizeof shape, "%s [%lld,%lld,%lld,%lld] -> %lld (%s)", transposed ? "convT k2s2" : "conv 3x3", (long long)B,
             (long long)Ci, (long long)H, (long long)H, (long long)Co, path == LISA_CUDA_CONV_CUDNN ? "cuDNN" : "im2col+GEMM");
    const double flop = transposed ? 2.0 * B * Ci * Co * 4 * H * H : 2.0 * B * Co * Ci * 9 * H * H;
    report(key, shape, ms, flop, 0);
    free_t(&j.x), free_t(&j.w), free_t(&j.y), free_t(&j.b);
}

/* ---- device-to-device copy: the bandwidth ceiling the memory-bound rows are measured against ---- */
typedef struct copy_job {
    void *a, *b;
    size_t bytes;
} copy_job;

static void run_copy(void *arg) {
    copy_job *j = arg;
    CU(cudaMemcpyAsync(j->b, j->a, j->bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)lisa_cuda_stream(be)));
}

static double copy_gbps;

static void bench_copy(void) {
    copy_job j = {.bytes = (size_t)1 << 30};
    CU(cudaMalloc(&j.a, j.bytes));
    CU(cudaMalloc(&j.b, j.bytes));
    CU(cudaMemset(j.a, 0x3c, j.bytes));
    const double ms = time_ms(run_copy, &j);
    report("copy_gbps", "1 GiB device-to-device (read + written bytes)", ms, 0, 2.0 * (double)j.bytes);
    copy_gbps = 2.0 * (double)j.bytes / (ms * 1e-3) / 1e9;
    cudaFree(j.a);
    cudaFree(j.b);
}

int main(int argc, char **argv) {
    int device = 0;
    volatile bool quick = false, smoke = false; /* read after the CASE longjmps */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--smoke"))
            smoke = quick = true;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--after") && i + 1 < argc)
            after = argv[++i];
        else {
            fprintf(stderr, "usage: bench_gpu_kernels [--quick] [--smoke] [--json FILE] [--device N] [--only KEYS] [--after KEY]\n");
            return 2;
        }
    }
    lisa_status s = lisa_backend_cuda_create(&be, device, (size_t)512 << 20);
    if (s == LISA_ERR_UNSUPPORTED && lisa_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 0;
    }
    check(s, "cuda backend");
    const char *name = lisa_cuda_device_name(be);
    device_name = name;
    peak_tflops = strstr(name, "H100") || strstr(name, "H200") ? 989.0 : 0;
    peak_gbps = strstr(name, "H200") ? 4800.0 : strstr(name, "H100") ? 3350.0 : 0;
    if (quick) reps = 7;
    if (smoke) reps = 3;
    int l2 = 0;
    cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device);
    flush_bytes = (size_t)(l2 > 0 ? l2 : 64 << 20) * 4;
    CU(cudaMalloc(&flush_buf, flush_bytes));
    printf("bench_gpu_kernels on %s: median of %d calls after an L2 flush (%zu MiB)\n", name, reps, flush_bytes >> 20);

    CASE("copy_gbps", bench_copy());
    if (copy_gbps > 0) {
        printf("  (memory-bound rows below: %% of the measured copy bandwidth %.0f GB/s)\n", copy_gbps);
        peak_gbps = copy_gbps;
    }
    if (smoke) { /* suite.sh's smoke step: one launch of each family, seconds */
        CASE("attn_sam_window_tflops", bench_sam("attn_sam_window_tflops", 25, 14, SAM_RELPOS, LISA_CUDA_ATTN_AUTO));
        CASE("attn_decode_b1_kv1024_gbps", bench_decode(1, 1024));
        CASE("gemm_llama_decode_b1_gbps", bench_gemm("gemm_llama_decode_b1_gbps", 1, 4096, 11008, false, LISA_ACT_NONE));
        CASE("gemv_b16_down_gbps", bench_gemm("gemv_b16_down_gbps", 16, 11008, 4096, false, LISA_ACT_NONE));
    } else {
        /* attention: SAM at batch 8 (200 windows; 8 global images): the ATTENTION_RELPOS op (AUTO), its
         * composition, the kernel with precomputed terms, no rel-pos */
        const lisa_cuda_attn_path F = LISA_CUDA_ATTN_FLASH, W = LISA_CUDA_ATTN_WGMMA, A = LISA_CUDA_ATTN_AUTO,
                                  U = LISA_CUDA_ATTN_UNFUSED;
        CASE("attn_sam_window_tflops", bench_sam("attn_sam_window_tflops", 8 * 25, 14, SAM_RELPOS, A));
        CASE("attn_sam_global_tflops", bench_sam("attn_sam_global_tflops", 8, 64, SAM_RELPOS, A));
        CASE("attn_sam_window_fused_tflops", bench_sam("attn_sam_window_fused_tflops", 8 * 25, 14, SAM_RELPOS, F));
        CASE("attn_sam_global_fused_tflops", bench_sam("attn_sam_global_fused_tflops", 8, 64, SAM_RELPOS, F));
        CASE("attn_sam_window_unfused_tflops", bench_sam("attn_sam_window_unfused_tflops", 8 * 25, 14, SAM_RELPOS, U));
        CASE("attn_sam_global_unfused_tflops", bench_sam("attn_sam_global_unfused_tflops", 8, 64, SAM_RELPOS, U));
        CASE("attn_sam_window_terms_tflops", bench_sam("attn_sam_window_terms_tflops", 8 * 25, 14, SAM_TERMS, F));
        CASE("attn_sam_global_terms_tflops", bench_sam("attn_sam_global_terms_tflops", 8, 64, SAM_TERMS, F));
        CASE("attn_sam_window_norel_tflops", bench_sam("attn_sam_window_norel_tflops", 8 * 25, 14, SAM_NOREL, F));
        CASE("attn_sam_global_norel_tflops", bench_sam("attn_sam_global_norel_tflops", 8, 64, SAM_NOREL, F));
        CASE("attn_llama_prefill_tflops", bench_prefill("attn_llama_prefill_tflops", 8, 330, F));
        /* the sm_90a kernel, every variant at the same shapes */
        CASE("attn_sam_window_wgmma_tflops", bench_sam("attn_sam_window_wgmma_tflops", 8 * 25, 14, SAM_TERMS, W));
        CASE("attn_sam_window_fused_wgmma_tflops", bench_sam("attn_sam_window_fused_wgmma_tflops", 8 * 25, 14, SAM_RELPOS, W));
        CASE("attn_sam_global_wgmma_tflops", bench_sam("attn_sam_global_wgmma_tflops", 8, 64, SAM_TERMS, W));
        CASE("attn_sam_global_fused_wgmma_tflops", bench_sam("attn_sam_global_fused_wgmma_tflops", 8, 64, SAM_RELPOS, W));
        CASE("attn_sam_window_norel_wgmma_tflops", bench_sam("attn_sam_window_norel_wgmma_tflops", 8 * 25, 14, SAM_NOREL, W));
        CASE("attn_sam_global_norel_wgmma_tflops", bench_sam("attn_sam_global_norel_wgmma_tflops", 8, 64, SAM_NOREL, W));
        CASE("attn_llama_prefill_wgmma_tflops", bench_prefill("attn_llama_prefill_wgmma_tflops", 8, 330, W));
        CASE("attn_decode_b1_kv1024_gbps", bench_decode(1, 1024));
        CASE("attn_decode_b16_kv1024_gbps", bench_decode(16, 1024));
        if (!quick) CASE("attn_decode_b1_kv4096_gbps", bench_decode(1, 4096));
        CASE("attn_two_way_t2i_ms", bench_two_way(8));
        /* GEMMs: LLaMA-7B prefill (8 x 330 tokens) and decode, SAM ViT-H at batch 8 (32768 tokens) */
        CASE("gemm_llama_qkv_tflops", bench_gemm("gemm_llama_qkv_tflops", 2640, 4096, 12288, false, LISA_ACT_NONE));
        CASE("gemm_llama_down_tflops", bench_gemm("gemm_llama_down_tflops", 2640, 11008, 4096, false, LISA_ACT_NONE));
        CASE("gemm_llama_decode_b1_gbps", bench_gemm("gemm_llama_decode_b1_gbps", 1, 4096, 11008, false, LISA_ACT_NONE));
        /* the small-M kernel (gemv_kernels.cuh) at LLaMA-7B's decode shapes, GB/s of weights read and %
         * of the measured copy bandwidth; then the same shape on cuBLASLt for comparison */
        CASE("gemv_b1_qkvo_gbps", bench_gemm("gemv_b1_qkvo_gbps", 1, 4096, 4096, false, LISA_ACT_NONE));
        CASE("gemv_b1_down_gbps", bench_gemm("gemv_b1_down_gbps", 1, 11008, 4096, false, LISA_ACT_NONE));
        CASE("gemv_b1_lm_head_gbps", bench_gemm("gemv_b1_lm_head_gbps", 1, 4096, 32004, false, LISA_ACT_NONE));
        CASE("gemv_b16_gate_gbps", bench_gemm("gemv_b16_gate_gbps", 16, 4096, 11008, false, LISA_ACT_NONE));
        CASE("gemv_b16_down_gbps", bench_gemm("gemv_b16_down_gbps", 16, 11008, 4096, false, LISA_ACT_NONE));
        lisa_cuda_set_gemv_max_rows(be, 0);
        CASE("cublaslt_b1_gate_gbps", bench_gemm("cublaslt_b1_gate_gbps", 1, 4096, 11008, false, LISA_ACT_NONE));
        CASE("cublaslt_b16_down_gbps", bench_gemm("cublaslt_b16_down_gbps", 16, 11008, 4096, false, LISA_ACT_NONE));
        lisa_cuda_set_gemv_max_rows(be, 16);
        /* SAM neck 3x3 conv (batch 8) and the mask decoder's transposed convs (8 masks): im2col + GEMM
         * (the default) vs cuDNN, to decide the default on this card */
        CASE("conv_sam_neck_b8_tflops", bench_conv("conv_sam_neck_b8_tflops", false, 8, 256, 256, 64, LISA_CUDA_CONV_IM2COL));
        CASE("conv_sam_neck_b8_cudnn_tflops",
             bench_conv("conv_sam_neck_b8_cudnn_tflops", false, 8, 256, 256, 64, LISA_CUDA_CONV_CUDNN));
        CASE("convt_dec1_n8_tflops", bench_conv("convt_dec1_n8_tflops", true, 8, 256, 64, 64, LISA_CUDA_CONV_IM2COL));
        CASE("convt_dec1_n8_cudnn_tflops", bench_conv("convt_dec1_n8_cudnn_tflops", true, 8, 256, 64, 64, LISA_CUDA_CONV_CUDNN));
        CASE("convt_dec2_n8_tflops", bench_conv("convt_dec2_n8_tflops", true, 8, 64, 32, 128, LISA_CUDA_CONV_IM2COL));
        CASE("convt_dec2_n8_cudnn_tflops", bench_conv("convt_dec2_n8_cudnn_tflops", true, 8, 64, 32, 128, LISA_CUDA_CONV_CUDNN));
        CASE("gemm_sam_qkv_tflops", bench_gemm("gemm_sam_qkv_tflops", 32768, 1280, 3840, true, LISA_ACT_NONE));
        CASE("gemm_sam_mlp1_gelu_tflops",
             bench_gemm("gemm_sam_mlp1_gelu_tflops", 32768, 1280, 5120, true, LISA_ACT_GELU));
        if (!quick)
            CASE("gemm_sam_mlp2_tflops", bench_gemm("gemm_sam_mlp2_tflops", 32768, 5120, 1280, true, LISA_ACT_NONE));
    }
    write_json();
    if (aborted[0]) return 3; /* the context is lost: suite.sh runs the rest with --after */
    cudaFree(flush_buf);
    lisa_backend_free(be);
    return failed[0] ? 1 : 0;
}
#endif
