/* tests/common/testutil.h — helpers shared by the Criterion tests and lisa-check:
 * a seeded RNG, random/poison fills, tolerance checks that print the first mismatches and the
 * max error, and small file helpers. */
#ifndef LISA_TESTUTIL_H
#define LISA_TESTUTIL_H

#include "kernels/ops.h"
#include "core/tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* splitmix64: deterministic, seedable, identical on every platform. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;

static inline tu_rng tu_rng_seed(uint64_t seed) { tu_rng r = {seed * 0x9e3779b97f4a7c15ull + 1}; return r; }
uint64_t tu_next_u64(tu_rng *r);
double tu_uniform(tu_rng *r, double lo, double hi); /* [lo, hi) */
double tu_normal(tu_rng *r);                         /* N(0, 1) */

/* Allocates a host tensor (owner) of the given shape; aborts the test on failure. */
lisa_tensor tu_tensor(lisa_dtype dt, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
/* Fills every element with uniform [lo, hi) (strided-aware; rounds to the dtype). */
void tu_fill_uniform(lisa_tensor *t, tu_rng *r, double lo, double hi);
/* Fills with a signalling pattern (NaN for float dtypes, 0xA5 bytes otherwise) so that an op that
 * leaves part of its output unwritten fails the comparison. */
void tu_poison(lisa_tensor *t);

/* |got - ref| <= atol + rtol*|ref| for every element (got any dtype/strides, ref dense doubles in
 * got's logical order). Prints up to 5 mismatches and the max abs/rel error, prefixed by `what`.
 * Also fails on NaN/Inf in got where ref is finite. */
bool tu_check_close(const char *what, const lisa_tensor *got, const double *ref, double atol, double rtol);
/* Same for two tensors. */
bool tu_check_tensors(const char *what, const lisa_tensor *got, const lisa_tensor *ref, double atol, double rtol);

/* Reads a whole file into malloc'd memory (NUL-terminated); returns NULL on failure. */
char *tu_read_file(const char *path, size_t *len);
/* mkdtemp under $TMPDIR (or /tmp); returns a malloc'd path. */
char *tu_make_tmpdir(const char *prefix);
/* rm -rf of a directory created by tu_make_tmpdir. */
void tu_remove_tree(const char *path);
/* Writes bytes to a file; returns false on failure. */
bool tu_write_file(const char *path, const void *data, size_t len);

/* A CPU backend for tests (abort on failure). */
lisa_backend *tu_cpu_backend(void);

#endif
