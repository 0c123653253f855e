/* tests/gpu/tp_nccl_check.c — `tp-nccl-check`: the NCCL communicator (kernels/comm_nccl.c) on the
 * GPUs of one node, for bench/gpu/suite.sh's TP=2 step.
 *
 * usage: mpirun -np N tp-nccl-check [--json FILE]     (one rank per GPU, N >= 2)
 *
 * Each rank takes GPU (rank % device count), bootstraps NCCL through MPI and checks, on its own
 * comm stream joined to the default stream by events: the all-reduce (every rank the same bits;
 * within 1e-6 relative of the rank-order sum: NCCL's order is its own), the all-gather, the
 * broadcast and the barrier, at the sizes tensor parallelism uses (a decode row of LLaMA-7B/13B,
 * a 330-row prefill, the vocab gather), and reports the all-reduce time of each. Prints
 * "N passed, M failed" on rank 0; exit 0 when all passed ("no CUDA device: skipped" counts).
 * CUDA + NCCL + MPI builds only; compile-only in CI (no GPU there). */
#include "kernels/comm.h"
#include "core/error.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int n_pass, n_fail, rank;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond)                                                                                                      \
            n_pass++;                                                                                                  \
        else {                                                                                                         \
            n_fail++;                                                                                                  \
            fprintf(stderr, "[rank %d] FAILED: %s: ", rank, #cond);                                                    \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

#define MUST(expr)                                                                                                     \
    do {                                                                                                               \
        lisa_status s_ = (expr);                                                                                       \
        if (s_ != LISA_OK) {                                                                                           \
            fprintf(stderr, "[rank %d] %s: %s\n", rank, #expr, lisa_last_error());                                     \
            exit(2);                                                                                                   \
        }                                                                                                              \
    } while (0)

#define CUDA_MUST(expr)                                                                                                \
    do {                                                                                                               \
        cudaError_t e_ = (expr);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            fprintf(stderr, "[rank %d] %s: %s\n", rank, #expr, cudaGetErrorString(e_));                                \
            exit(2);                                                                                                   \
        }                                                                                                              \
    } while (0)

static float val(int r, size_t i) { return (float)sin(0.37 * (double)(r + 1) * (double)(i + 1)) * 3.1f; }

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* all-reduce of n floats: correctness, agreement, time (ms per call) */
static double check_all_reduce(lisa_comm *host, lisa_comm *nc, size_t n) {
    float *h = malloc(n * sizeof *h), *all = malloc(n * (size_t)host->size * sizeof *all), *d = NULL;
    for (size_t i = 0; i < n; i++)
        h[i] = val(host->rank, i);
    CUDA_MUST(cudaMalloc((void **)&d, n * sizeof *d));
    CUDA_MUST(cudaMemcpy(d, h, n * sizeof *h, cudaMemcpyHostToDevice));
    MUST(nc->all_reduce_sum_f32(nc, d, n));
    CUDA_MUST(cudaMemcpy(h, d, n * sizeof *h, cudaMemcpyDeviceToHost)); /* legacy stream: after the event */
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float want = val(0, i);
        for (int r = 1; r < host->size; r++)
            want += val(r, i);
        worst = fmax(worst, fabs((double)h[i] - want) / (1.0 + fabs(want)));
    }
    CHECK(worst <= 1e-6, "all-reduce of %zu floats: off the sum by %.3g", n, worst);
    MUST(host->all_gather(host, all, h, n * sizeof *h));
    bool same = true;
    for (int r = 0; r < host->size; r++)
        same = same && memcmp(all + (size_t)r * n, h, n * sizeof *h) == 0;
    CHECK(same, "all-reduce of %zu floats: ranks hold different bits", n);
    /* time: 20 calls after 3 warm-ups */
    for (int i = 0; i < 3; i++)
        MUST(nc->all_reduce_sum_f32(nc, d, n));
    CUDA_MUST(cudaDeviceSynchronize());
    double t0 = now_ms();
    for (int i = 0; i < 20; i++)
        MUST(nc->all_reduce_sum_f32(nc, d, n));
    CUDA_MUST(cudaDeviceSynchronize());
    double ms = (now_ms() - t0) / 20;
    cudaFree(d);
    free(h);
    free(all);
    return ms;
}

int main(int argc, char **argv) {
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else
            return fprintf(stderr, "usage: mpirun -np N tp-nccl-check [--json FILE]\n"), 2;
    }
    int32_t wr = 0, ws = 1;
    MUST(lisa_mpi_world(&wr, &ws));
    rank = wr;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        if (rank == 0) printf("no CUDA device: skipped\n0 passed, 0 failed\n");
        return 0;
    }
    lisa_comm *host = NULL, *nc = NULL;
    MUST(lisa_comm_mpi_create(&host, ws, NULL, NULL));
    const int dev = rank % ndev;
    CUDA_MUST(cudaSetDevice(dev));
    MUST(lisa_comm_nccl_create(&nc, host, dev, NULL));
    CHECK(nc->rank == host->rank && nc->size == host->size && nc->device_memory, "NCCL rank %d of %d", nc->rank,
          nc->size);

    /* the sizes TP moves: decode rows of 7B / 13B, a 330-row 7B prefill, 16 rows of 32004 logits */
    const size_t sizes[4] = {4096, 5120, (size_t)330 * 4096, (size_t)16 * 8001};
    double ms[4];
    for (int k = 0; k < 4; k++)
        ms[k] = check_all_reduce(host, nc, sizes[k]);

    /* all-gather and broadcast */
    const size_t n = 8001;
    float *h = malloc(n * (size_t)ws * sizeof *h), *d = NULL, *dall = NULL;
    for (size_t i = 0; i < n; i++)
        h[i] = val(rank, i);
    CUDA_MUST(cudaMalloc((void **)&d, n * sizeof *d));
    CUDA_MUST(cudaMalloc((void **)&dall, n * (size_t)ws * sizeof *dall));
    CUDA_MUST(cudaMemcpy(d, h, n * sizeof *h, cudaMemcpyHostToDevice));
    MUST(nc->all_gather(nc, dall, d, n * sizeof *d));
    CUDA_MUST(cudaMemcpy(h, dall, n * (size_t)ws * sizeof *h, cudaMemcpyDeviceToHost));
    bool ok = true;
    for (int r = 0; r < ws; r++)
        for (size_t i = 0; i < n; i++)
            ok = ok && h[(size_t)r * n + i] == val(r, i);
    CHECK(ok, "all-gather");
    MUST(nc->broadcast(nc, dall, n * sizeof *d, ws - 1));
    CUDA_MUST(cudaMemcpy(h, dall, n * sizeof *h, cudaMemcpyDeviceToHost));
    ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && h[i] == val(ws - 1, i);
    CHECK(ok, "broadcast from rank %d", ws - 1);
    MUST(nc->barrier(nc));
    cudaFree(d);
    cudaFree(dall);
    free(h);

    int32_t mine[2] = {n_pass, n_fail}, *all = malloc(sizeof mine * (size_t)ws);
    MUST(host->all_gather(host, all, mine, sizeof mine));
    int tp = 0, tf = 0;
    for (int r = 0; r < ws; r++)
        tp += all[2 * r], tf += all[2 * r + 1];
    free(all);
    if (rank == 0) {
        printf("NCCL all-reduce on %d GPUs: 4096 f32 %.3f ms, 5120 f32 %.3f ms, 330x4096 f32 %.3f ms, 16x8001 f32 "
               "%.3f ms\n",
               ws, ms[0], ms[1], ms[2], ms[3]);
        if (json) {
            FILE *f = fopen(json, "w");
            if (f) {
                fprintf(f,
                        "{\"tp_ranks\": %d, \"tp_failures\": %d, \"tp_allreduce_ms_4096\": %.4f, "
                        "\"tp_allreduce_ms_5120\": %.4f, \"tp_allreduce_ms_330x4096\": %.4f, "
                        "\"tp_allreduce_ms_16x8001\": %.4f}\n",
                        ws, tf, ms[0], ms[1], ms[2], ms[3]);
                fclose(f);
            }
        }
        printf("%d passed, %d failed\n", tp, tf);
    }
    lisa_comm_free(nc);
    lisa_comm_free(host);
    return tf ? 1 : 0;
}
