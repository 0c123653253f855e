/* bench/bench_ops_cpu.c — CPU reference backend micro-benchmark (prints a table, never asserts).
 *
 *   build/bin/bench_ops_cpu [--full] [--threads N]
 *
 * Shapes are real LISA ones (LLaMA-7B prefill of ~330 tokens and decode, SAM ViT-H windowed and
 * global attention, CLIP ViT-L MLP). --full adds the heavy ones (SAM global attention: 43 GFLOP).
 * Formulas: linear 2·M·N·K FLOP; attention 4·B·H·Tq·Tk·D FLOP (q·kᵀ and p·v; causal counted
 * dense); layernorm/rmsnorm bytes = 2·R·C·4 (read x, write y). Each case: one warm-up call, then
 * repetitions until 0.3 s have passed (at most 50), with a 32 MiB buffer rewritten between runs to
 * flush the caches; the table shows the median time.
 */
#include "kernels/ops.h"
#include "core/error.h"
#include "core/half.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static unsigned char *g_flush;
enum { FLUSH_BYTES = 32 << 20 };

static lisa_tensor make(lisa_dtype dt, int32_t nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    const int64_t shape[4] = {a, b, c, d};
    lisa_tensor t;
    if (lisa_tensor_alloc(&t, dt, nd, shape) != LISA_OK) {
        fprintf(stderr, "alloc: %s\n", lisa_last_error());
        exit(1);
    }
    /* small deterministic values; the dtype's bits for 16-bit types */
    uint32_t s = 12345;
    int64_t n = lisa_tensor_numel(&t);
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float v = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.2f;
        if (dt == LISA_DTYPE_F32) ((float *)t.data)[i] = v;
        else if (dt == LISA_DTYPE_BF16) ((uint16_t *)t.data)[i] = lisa_f32_to_bf16(v);
        else if (dt == LISA_DTYPE_F16) ((uint16_t *)t.data)[i] = lisa_f32_to_f16(v);
        else if (dt == LISA_DTYPE_I32) ((int32_t *)t.data)[i] = (int32_t)i;
    }
    return t;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef lisa_status (*bench_fn)(lisa_backend *be, void *ctx);

/* Median seconds per call. */
static double time_it(lisa_backend *be, bench_fn fn, void *ctx) {
    double t[50];
    int n = 0;
    if (fn(be, ctx) != LISA_OK) {
        fprintf(stderr, "op failed: %s\n", lisa_last_error());
        return -1;
    }
    double start = now_s();
    while (n < 50 && (n < 3 || now_s() - start < 0.3)) {
        memset(g_flush, n & 0xff, FLUSH_BYTES);
        double t0 = now_s();
        fn(be, ctx);
        t[n++] = now_s() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

/* ---- linear --------------------------------------------------------------------------------- */
typedef struct {
    lisa_tensor x, w, b, y;
} lin_ctx;

static lisa_status run_linear(lisa_backend *be, void *p) {
    lin_ctx *c = p;
    return lisa_op_linear(be, &c->y, &c->x, &c->w, &c->b);
}

static void bench_linear(lisa_backend *be, const char *what, int64_t M, int64_t K, int64_t N, lisa_dtype wdt) {
    lin_ctx c = {make(LISA_DTYPE_F32, 2, M, K, 0, 0), make(wdt, 2, N, K, 0, 0), make(wdt, 1, N, 0, 0, 0),
                 make(LISA_DTYPE_F32, 2, M, N, 0, 0)};
    double s = time_it(be, run_linear, &c);
    printf("%-12s %-34s %-5s %10.3f ms %9.1f GFLOP/s\n", "linear", what, lisa_dtype_name(wdt), s * 1e3,
           2.0 * (double)M * (double)N * (double)K / s * 1e-9);
    lisa_tensor_free(&c.x), lisa_tensor_free(&c.w), lisa_tensor_free(&c.b), lisa_tensor_free(&c.y);
}

/* ---- attention ------------------------------------------------------------------------------ */
typedef struct {
    lisa_tensor q, k, v, y;
    lisa_attn_params p;
} attn_ctx;

static lisa_status run_attention(lisa_backend *be, void *p) {
    attn_ctx *c = p;
    return lisa_op_attention(be, &c->y, &c->q, &c->k, &c->v, &c->p);
}

static void bench_attention(lisa_backend *be, const char *what, int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t D,
                            bool causal) {
    attn_ctx c = {make(LISA_DTYPE_F32, 4, B, Tq, H, D), make(LISA_DTYPE_F32, 4, B, Tk, H, D),
                  make(LISA_DTYPE_F32, 4, B, Tk, H, D), make(LISA_DTYPE_F32, 4, B, Tq, H, D),
                  {.scale = 0.1f, .causal = causal}};
    double s = time_it(be, run_attention, &c);
    printf("%-12s %-34s %-5s %10.3f ms %9.1f GFLOP/s\n", "attention", what, "F32", s * 1e3,
           4.0 * (double)(B * H) * (double)Tq * (double)Tk * (double)D / s * 1e-9);
    lisa_tensor_free(&c.q), lisa_tensor_free(&c.k), lisa_tensor_free(&c.v), lisa_tensor_free(&c.y);
}

/* ---- norms ---------------------------------------------------------------------------------- */
typedef struct {
    lisa_tensor x, g, b, y;
    bool rms;
} norm_ctx;

static lisa_status run_norm(lisa_backend *be, void *p) {
    norm_ctx *c = p;
    return c->rms ? lisa_op_rmsnorm(be, &c->y, &c->x, &c->g, 1e-6f) : lisa_op_layernorm(be, &c->y, &c->x, &c->g, &c->b, 1e-6f);
}

static void bench_norm(lisa_backend *be, const char *what, int64_t R, int64_t C, lisa_dtype gdt, bool rms) {
    norm_ctx c = {make(LISA_DTYPE_F32, 2, R, C, 0, 0), make(gdt, 1, C, 0, 0, 0), make(gdt, 1, C, 0, 0, 0),
                  make(LISA_DTYPE_F32, 2, R, C, 0, 0), rms};
    double s = time_it(be, run_norm, &c);
    printf("%-12s %-34s %-5s %10.3f ms %9.2f GB/s\n", rms ? "rmsnorm" : "layernorm", what, lisa_dtype_name(gdt), s * 1e3,
           2.0 * (double)R * (double)C * 4.0 / s * 1e-9);
    lisa_tensor_free(&c.x), lisa_tensor_free(&c.g), lisa_tensor_free(&c.b), lisa_tensor_free(&c.y);
}

int main(int argc, char **argv) {
    bool full = false;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--full") == 0) full = true;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--full] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    lisa_backend *be = NULL;
    if (lisa_backend_cpu_create(&be, 0, threads) != LISA_OK) {
        fprintf(stderr, "cpu backend: %s\n", lisa_last_error());
        return 1;
    }
    g_flush = malloc(FLUSH_BYTES);
    printf("CPU reference backend, %d threads (OpenMP; OpenBLAS uses OPENBLAS_NUM_THREADS or all cores)\n",
           be->n_threads);
    printf("%-12s %-34s %-5s %13s %17s\n", "op", "shape", "param", "median", "rate");

    bench_linear(be, "LLaMA-7B qkv-ish M=330 K=4096 N=4096", 330, 4096, 4096, LISA_DTYPE_F32);
    bench_linear(be, "LLaMA-7B qkv-ish M=330 K=4096 N=4096", 330, 4096, 4096, LISA_DTYPE_BF16);
    bench_linear(be, "LLaMA-7B decode M=1 K=4096 N=4096", 1, 4096, 4096, LISA_DTYPE_BF16);
    bench_linear(be, "CLIP-L fc1 M=257 K=1024 N=4096", 257, 1024, 4096, LISA_DTYPE_F32);
    bench_linear(be, "SAM-H qkv window M=196 K=1280 N=3840", 196, 1280, 3840, LISA_DTYPE_F16);
    if (full) {
        bench_linear(be, "LLaMA-7B up M=330 K=4096 N=11008", 330, 4096, 11008, LISA_DTYPE_BF16);
        bench_linear(be, "SAM-H qkv global M=4096 K=1280 N=3840", 4096, 1280, 3840, LISA_DTYPE_F32);
    }
    bench_attention(be, "SAM window B=25 T=196 H=16 D=80", 25, 196, 196, 16, 80, false);
    bench_attention(be, "LLaMA prefill T=330 H=32 D=128 causal", 1, 330, 330, 32, 128, true);
    bench_attention(be, "LLaMA decode Tq=1 Tk=340 H=32 D=128", 1, 1, 340, 32, 128, true);
    if (full) bench_attention(be, "SAM global T=4096 H=16 D=80", 1, 4096, 4096, 16, 80, false);
    bench_norm(be, "SAM-H LN R=4096 C=1280", 4096, 1280, LISA_DTYPE_F32, false);
    bench_norm(be, "CLIP-L LN R=257 C=1024", 257, 1024, LISA_DTYPE_F16, false);
    bench_norm(be, "LLaMA-7B RMSNorm R=330 C=4096", 330, 4096, LISA_DTYPE_BF16, true);

    free(g_flush);
    lisa_backend_free(be);
    return 0;
}
