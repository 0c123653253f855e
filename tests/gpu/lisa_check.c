/* tests/gpu/lisa_check.c — `lisa-check`: the CUDA backend against the CPU backend.
 *
 * usage: lisa-check [--quick] [--filter TEXT] [--json FILE] [--device N] [--seed N] [--strict] [--self-test]
 *                   [--data DIR] [--full] [--real-dims]
 *
 * Runs every op of kernels/ops.def on random awkward shapes (rows 1/3/7/19/733, widths
 * 37/769/5125, strided inputs, in-place calls, F32 and BF16 activations, poisoned outputs), the
 * fused launchers, and the attention kernels at the real LISA shapes (SAM windows and global
 * attention with rel-pos, LLaMA causal varlen prefill, decode over contiguous and paged caches,
 * the two-way transformer; the sm_90a wgmma kernel at the same shapes on H100/H200, SKIPped
 * elsewhere), then whole models end to end (check_models.c: the committed tiny LISA
 * on the golden cases on CPU, CUDA F32 and CUDA BF16, the engine batched vs alone, and LISA-7B
 * dimensions with synthetic weights; --full adds the whole LISA-7B, CUDA BF16 vs F32), printing
 * one line per check and the first mismatches of a failure. --data names tests/data (default: the
 * one under the current directory, else the source tree's).
 * A check whose CPU reference is missing (the CPU op not implemented yet) is SKIPped and counted;
 * --strict turns skips into failures. Exit status: 0 all passed (or no CUDA device: "no CUDA
 * device: skipped"), 1 failures, 2 usage or setup error. --json writes
 * {"check_failures": N, "check_skipped": M, "check_passed": P, "device": ..., "results": [...]}.
 * Builds without Criterion, so that it runs on a lent GPU machine (bench/gpu/suite.sh).
 * --self-test runs the op cases with a second CPU backend in the GPU's place (F32, contiguous):
 * no GPU needed, it checks the harness itself (CI runs it); the real-dims model checks only with
 * --real-dims there (minutes on a small CPU).
 */
#include "check_util.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f, "usage: lisa-check [--quick] [--filter TEXT] [--json FILE] [--device N] [--seed N] [--strict] [--self-test]\n"
               "                  [--data DIR] [--full] [--real-dims]\n"
               "  CUDA backend vs CPU backend: every op, fused launchers, attention at LISA shapes (the mma.sync\n"
               "  kernel, and on H100/H200 the sm_90a wgmma kernel: --filter wgmma), whole models.\n");
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

/* Writes path atomically (a temporary file renamed); complete = false while the checks still run,
 * so that a run stopped by a timeout leaves the results so far (bench/gpu/suite.sh). */
static int write_json(const char *path, const ck_ctx *c, const char *device, int failures, bool no_device, bool complete) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "lisa-check: cannot write %s\n", tmp);
        return 2;
    }
    fprintf(f, "{\n  \"check_failures\": %d,\n  \"check_skipped\": %d,\n  \"check_passed\": %d,\n  \"device\": ", failures,
            c->skipped, c->passed);
    json_str(f, device);
    fprintf(f, ",\n  \"no_device\": %s,\n  \"complete\": %s,\n  \"results\": [", no_device ? "true" : "false",
            complete ? "true" : "false");
    static const char *st[3] = {"pass", "fail", "skip"};
    for (int i = 0; i < c->n_results; i++) {
        const ck_result *r = &c->results[i];
        fprintf(f, "%s\n    {\"op\": ", i ? "," : "");
        json_str(f, r->op);
        fprintf(f, ", \"case\": ");
        json_str(f, r->name);
        fprintf(f, ", \"dtype\": ");
        json_str(f, r->dtype);
        fprintf(f, ", \"status\": \"%s\", \"max_abs_err\": ", st[r->status]);
        json_num(f, r->max_abs_err);
        fprintf(f, ", \"tol\": ");
        json_num(f, r->tol_err);
        fprintf(f, ", \"naive_bf16_err\": ");
        json_num(f, r->naive_err >= 0 ? r->naive_err : NAN);
        fprintf(f, ", \"note\": ");
        json_str(f, r->note);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) return 2;
    return 0;
}

static const char *g_json, *g_device; /* for the partial JSON after each result */

static void partial_json(ck_ctx *c) {
    if (g_json) write_json(g_json, c, g_device, c->failures, false, false);
}

int main(int argc, char **argv) {
    static ck_ctx c; /* large (result log): static storage */
    const char *json = NULL;
    int device = 0;
    bool strict = false;
    uint64_t seed = 1234;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick"))
            c.quick = true;
        else if (!strcmp(a, "--strict"))
            strict = true;
        else if (!strcmp(a, "--self-test"))
            c.self_test = true;
        else if (!strcmp(a, "--full"))
            c.full = true;
        else if (!strcmp(a, "--real-dims"))
            c.real_dims = true;
        else if (!strcmp(a, "--data") && i + 1 < argc)
            c.data_dir = argv[++i];
        else if (!strcmp(a, "--skip-if-no-device"))
            ; /* the default; accepted for the ctest registration's readability */
        else if (!strcmp(a, "--filter") && i + 1 < argc)
            c.filter = argv[++i];
        else if (!strcmp(a, "--json") && i + 1 < argc)
            json = argv[++i];
        else if (!strcmp(a, "--device") && i + 1 < argc)
            device = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "lisa-check: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    c.rng.s = seed * 0x9e3779b97f4a7c15ull + 1;
    if (!c.data_dir) {
        struct stat st;
        c.data_dir = stat("tests/data/tiny-lisa/config.json", &st) == 0 ? "tests/data" : LISA_CHECK_DATA_DIR;
    }

    lisa_status s = c.self_test ? lisa_backend_cpu_create(&c.gpu, 0, 0) : lisa_backend_cuda_create(&c.gpu, device, 0);
    if (!c.self_test && s == LISA_ERR_UNSUPPORTED && lisa_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n  (%s)\n", lisa_last_error());
        return json ? write_json(json, &c, "none", 0, true, true) : 0;
    }
    if (s != LISA_OK) {
        fprintf(stderr, "lisa-check: cuda backend: %s: %s\n", lisa_status_name(s), lisa_last_error());
        return 2;
    }
    if (lisa_backend_cpu_create(&c.cpu, 0, 0) != LISA_OK) {
        fprintf(stderr, "lisa-check: cpu backend: %s\n", lisa_last_error());
        lisa_backend_free(c.gpu);
        return 2;
    }
    const char *dev = c.self_test ? "cpu (self-test)" : lisa_cuda_device_name(c.gpu);
    g_json = json, g_device = dev;
    c.on_record = partial_json;
    printf("lisa-check: CUDA %s vs CPU (%d threads)%s%s%s\n", dev, c.cpu->n_threads, c.quick ? ", quick" : "",
           c.filter ? ", filter " : "", c.filter ? c.filter : "");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_cases_ops(&c);
    ck_cases_casts_and_errors(&c);
    ck_cases_attention(&c);
    ck_cases_models(&c);
    if (!c.filter && !c.self_test) { /* every op of ops.def must have been exercised (docs/style.md §15) */
        for (int op = 0; op < LISA_OP_COUNT; op++) {
            const char *name = lisa_op_name((lisa_op)op);
            bool seen = false;
            for (int i = 0; i < c.n_results && !seen; i++) seen = !strcmp(c.results[i].op, name);
            if (!seen) ck_record(&c, name, "coverage", "-", 1, NAN, 0, -1, "no lisa-check case exercises this op");
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const int failures = c.failures + (strict ? c.skipped : 0);
    printf("\nlisa-check: %d passed, %d FAILED, %d skipped (no CPU reference yet) in %.1f s on %s\n", c.passed, c.failures,
           c.skipped, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), dev);
    int rc = failures ? 1 : 0;
    if (json && write_json(json, &c, dev, failures, false, true) != 0) rc = 2;
    lisa_backend_free(c.cpu);
    lisa_backend_free(c.gpu);
    return rc;
}
