/* tests/common/testutil.c */
#include "testutil.h"

#include "core/error.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t tu_next_u64(tu_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double tu_uniform(tu_rng *r, double lo, double hi) {
    return lo + (hi - lo) * ((double)(tu_next_u64(r) >> 11) * (1.0 / 9007199254740992.0));
}

double tu_normal(tu_rng *r) {
    double u1 = tu_uniform(r, 0, 1), u2 = tu_uniform(r, 0, 1);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

lisa_tensor tu_tensor(lisa_dtype dt, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    lisa_tensor t;
    if (lisa_tensor_alloc(&t, dt, n_dims, shape) != LISA_OK) {
        fprintf(stderr, "tu_tensor: %s\n", lisa_last_error());
        abort();
    }
    return t;
}

/* Iterates a tensor's logical index space in row-major order. */
static bool next_index(const lisa_tensor *t, int64_t *idx) {
    for (int d = t->n_dims - 1; d >= 0; d--) {
        if (++idx[d] < t->shape[d]) return true;
        idx[d] = 0;
    }
    return false;
}

void tu_fill_uniform(lisa_tensor *t, tu_rng *r, double lo, double hi) {
    int64_t idx[4] = {0, 0, 0, 0};
    if (lisa_tensor_numel(t) == 0) return;
    do {
        lisa_tensor_set(t, idx, tu_uniform(r, lo, hi));
    } while (next_index(t, idx));
}

void tu_poison(lisa_tensor *t) {
    int64_t idx[4] = {0, 0, 0, 0};
    if (lisa_tensor_numel(t) == 0) return;
    bool is_float = t->dtype == LISA_DTYPE_F32 || t->dtype == LISA_DTYPE_F16 || t->dtype == LISA_DTYPE_BF16;
    do {
        if (is_float) {
            lisa_tensor_set(t, idx, NAN);
        } else {
            int64_t off = 0;
            for (int d = 0; d < t->n_dims; d++) off += idx[d] * t->stride[d];
            memset((char *)t->data + (size_t)off * lisa_dtype_size(t->dtype), 0xA5, lisa_dtype_size(t->dtype));
        }
    } while (next_index(t, idx));
}

bool tu_check_close(const char *what, const lisa_tensor *got, const double *ref, double atol, double rtol) {
    int64_t idx[4] = {0, 0, 0, 0};
    int64_t n = lisa_tensor_numel(got), i = 0, bad = 0;
    double max_abs = 0, max_rel = 0;
    if (n == 0) return true;
    do {
        double g = lisa_tensor_get(got, idx), r = ref[i];
        double err = fabs(g - r);
        bool ok = (isfinite(r) ? (isfinite(g) && err <= atol + rtol * fabs(r)) : (isnan(r) ? isnan(g) : g == r));
        if (isfinite(err) && err > max_abs) max_abs = err;
        if (isfinite(err) && fabs(r) > 0 && err / fabs(r) > max_rel) max_rel = err / fabs(r);
        if (!ok) {
            if (bad < 5)
                fprintf(stderr, "%s: mismatch at flat %lld: got %.9g ref %.9g (|err| %.3g > %.3g)\n", what, (long long)i,
                        g, r, err, atol + rtol * fabs(r));
            bad++;
        }
        i++;
    } while (next_index(got, idx));
    if (bad)
        fprintf(stderr, "%s: %lld of %lld elements out of tolerance (atol %.3g rtol %.3g); max abs err %.3g, max rel %.3g\n",
                what, (long long)bad, (long long)n, atol, rtol, max_abs, max_rel);
    return bad == 0;
}

bool tu_check_tensors(const char *what, const lisa_tensor *got, const lisa_tensor *ref, double atol, double rtol) {
    int64_t n = lisa_tensor_numel(ref);
    if (!lisa_tensor_same_shape(got, ref)) {
        char a[96], b[96];
        fprintf(stderr, "%s: shape %s vs reference %s\n", what, lisa_tensor_shape_str(got, a, sizeof a),
                lisa_tensor_shape_str(ref, b, sizeof b));
        return false;
    }
    double *r = malloc((size_t)(n ? n : 1) * sizeof(double));
    int64_t idx[4] = {0, 0, 0, 0}, i = 0;
    if (n) do {
            r[i++] = lisa_tensor_get(ref, idx);
        } while (next_index(ref, idx));
    bool ok = tu_check_close(what, got, r, atol, rtol);
    free(r);
    return ok;
}

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len) *len = (size_t)n;
    }
    return buf;
}

bool tu_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

char *tu_make_tmpdir(const char *prefix) {
    const char *base = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s-XXXXXX", base && *base ? base : "/tmp", prefix);
    if (!mkdtemp(buf)) return NULL;
    return strdup(buf);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void tu_remove_tree(const char *path) {
    if (path) nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

lisa_backend *tu_cpu_backend(void) {
    lisa_backend *be = NULL;
    if (lisa_backend_cpu_create(&be, 0, 2) != LISA_OK) {
        fprintf(stderr, "cpu backend: %s\n", lisa_last_error());
        abort();
    }
    return be;
}
