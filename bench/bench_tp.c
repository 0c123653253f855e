/* bench/bench_tp.c — what tensor parallelism costs on CPU ranks: the deterministic MPI all-reduce
 * (kernels/comm_mpi.c) at the message sizes TP sends, against the compute it would split.
 *
 * usage: mpirun -np 2 --oversubscribe build/bin/bench_tp      (1 warm-up + 10 timed calls each)
 *
 * Sizes (F32): a LLaMA decode row (C = 4096, 5120: 2 all-reduces per layer per step), a 330-row
 * 7B prefill chunk, and the SAM image encoder's block output [64*64, E] for ViT-B (E = 768) and
 * ViT-H (E = 1280): splitting SAM's heads (and MLP) Megatron-style would need 2 of those per block
 * per image. GB/s = message bytes / time (the algorithm moves ~2x that per rank). Prints, never
 * asserts. */
#include "kernels/comm.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(void) {
    int32_t rank, size;
    lisa_comm *c = NULL;
    if (lisa_mpi_world(&rank, &size) != LISA_OK || lisa_comm_mpi_create(&c, size, NULL, NULL) != LISA_OK) {
        fprintf(stderr, "bench_tp: %s\n", lisa_last_error());
        return 1;
    }
    static const struct {
        const char *what;
        size_t n;
    } cases[] = {{"LLaMA-7B decode row [1, 4096]", 4096},
                 {"LLaMA-13B decode row [1, 5120]", 5120},
                 {"LLaMA-7B prefill [330, 4096]", (size_t)330 * 4096},
                 {"SAM ViT-B block [4096, 768]", (size_t)4096 * 768},
                 {"SAM ViT-H block [4096, 1280]", (size_t)4096 * 1280}};
    if (rank == 0) printf("deterministic MPI all-reduce, %d CPU ranks (OpenMPI, shared memory)\n", size);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        float *x = malloc(cases[k].n * sizeof *x);
        for (size_t i = 0; i < cases[k].n; i++)
            x[i] = (float)(i % 7) * 0.25f;
        c->all_reduce_sum_f32(c, x, cases[k].n);
        c->barrier(c);
        const int reps = 10;
        double t0 = now_ms();
        for (int r = 0; r < reps; r++)
            c->all_reduce_sum_f32(c, x, cases[k].n);
        c->barrier(c);
        double ms = (now_ms() - t0) / reps;
        if (rank == 0)
            printf("  %-34s %10.1f KiB %10.3f ms %8.2f GB/s\n", cases[k].what, cases[k].n * 4 / 1024.0, ms,
                   cases[k].n * 4 / (ms * 1e6));
        free(x);
    }
    lisa_comm_free(c);
    return 0;
}
