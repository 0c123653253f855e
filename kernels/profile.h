/* kernels/profile.h — per-op time tables of a backend: the profile the GPU suite brings back.
 *
 * Why: nsys is not available on the lent GPU machines and ncu only on some (docs/gpu-bringup.md),
 * so the suite measures where a model step's time goes itself. lisa_profile_begin swaps the
 * backend's ops table (and its upload/download hooks) for wrappers generated from kernels/ops.def
 * that mark the backend's stream before and after every op (CUDA: events from a pool reserved at
 * begin; the CPU backend, whose ops are synchronous: the host clock). lisa_profile_end waits once,
 * reads the marks and sums them per (op, output shape, input shape): ops issued from inside another
 * op are part of their caller's time. Nothing is allocated between begin and end (the marks are
 * reserved at begin), and nothing waits: the step runs as it would unprofiled, plus one event
 * record per op boundary (a few µs of host time each).
 *
 * Not thread-safe: one thread drives a profiled backend (benchmarks). A step captured into a CUDA
 * graph cannot be profiled this way (its ops run at replay); profile the step eagerly.
 *
 * Ownership: a lisa_op_profile owns its marks and entries (malloc) until lisa_profile_free; while
 * profiling, the backend borrows it (be->profile).
 */
#ifndef LISA_KERNELS_PROFILE_H
#define LISA_KERNELS_PROFILE_H

#include "kernels/ops.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_profile_entry {
    char op[32];
    char shape[96]; /* "y[2640,12288] x[2640,4096]" */
    int64_t calls;
    double ms; /* summed device (or host) time */
} lisa_profile_entry;

typedef struct lisa_profile_mark {
    int32_t entry;
    double t0, t1; /* host clock (ms) when the backend has no timer */
} lisa_profile_mark;

typedef struct lisa_op_profile {
    lisa_backend *be;
    const lisa_ops *inner; /* the backend's own table, restored at end */
    lisa_status (*inner_upload)(lisa_backend *be, void *dst, const void *src, size_t bytes);
    lisa_status (*inner_download)(lisa_backend *be, void *dst, const void *src, size_t bytes);
    int32_t depth;
    lisa_profile_mark *marks; /* [cap_marks] */
    int32_t n_marks, cap_marks, dropped;
    lisa_profile_entry *entries; /* [cap_entries] */
    int32_t n_entries, cap_entries;
    double total_ms;  /* sum over the entries */
    double wall_ms;   /* host time from begin to the end of the wait in lisa_profile_end */
    double t_begin;
    bool active;
} lisa_op_profile;

/* Starts profiling be's ops: up to max_ops timed calls (more are counted in `dropped`). */
lisa_status lisa_profile_begin(lisa_backend *be, lisa_op_profile *p, int32_t max_ops);
/* Waits for the backend, restores its table and sums the marks into entries (sorted by time). */
lisa_status lisa_profile_end(lisa_op_profile *p);
/* The `top` most expensive entries as a table ("op  shape  calls  ms  %"). */
void lisa_profile_print(const lisa_op_profile *p, FILE *f, int32_t top, const char *title);
/* The same as a JSON object {"total_ms": .., "wall_ms": .., "ops": [{"op", "shape", "calls", "ms", "pct"}..]}. */
void lisa_profile_json(const lisa_op_profile *p, FILE *f, int32_t top);
void lisa_profile_free(lisa_op_profile *p);

#ifdef __cplusplus
}
#endif

#endif
