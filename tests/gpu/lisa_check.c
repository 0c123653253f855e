/* tests/gpu/lisa_check.c — `lisa-check`: the CUDA backend against the CPU backend.
 *
 * usage: lisa-check [--quick] [--smoke] [--section LIST] [--filter TEXT] [--json FILE] [--device N] [--seed N]
 *                   [--strict] [--self-test] [--data DIR] [--full] [--real-dims] [--section-timeout S]
 *                   [--rerun-timeout S] [--no-rerun] [--no-fork] [--stop-first] [--plant-crash SECTION]
 *                   [--plant-hang SECTION]
 *
 * Sections, each in its own child process (so that a sticky CUDA error, a crash or a hang loses one
 * section, not the run):
 *   ops        every op of kernels/ops.def on random awkward shapes (rows 1/3/7/19/733, widths
 *              37/769/5125, strided inputs, in-place calls, F32 and BF16 activations, poisoned
 *              outputs), dtype casts, error paths and the fused launchers;
 *   attention  the attention kernels at the real LISA shapes (SAM windows and global attention with
 *              rel-pos, LLaMA causal varlen prefill, decode over contiguous and paged caches, the
 *              two-way transformer), flat and peaky softmax, each output against the CPU backend
 *              (sampled rows) and, whole, against the naive on-GPU kernel (check_attn.c); the sm_90a
 *              wgmma kernel at the same shapes on H100/H200, SKIPped elsewhere;
 *   e2e        the committed tiny LISA on the golden cases on CPU, CUDA F32 and CUDA BF16, the engine
 *              batched vs alone (check_models.c);
 *   real       LISA-7B dimensions with synthetic weights (--full adds the whole LISA-7B, CUDA BF16
 *              vs F32).
 * --smoke runs the `smoke` section instead: one small case of every kernel family (seconds; the
 * suite's first step). --section LIST (comma-separated names) picks sections.
 *
 * The parent starts one child per section (this executable again, with --child), reads the child's
 * records as they are written (so a crashed, killed or hung child leaves its results and the name
 * of the case it was in), kills a child after --section-timeout seconds, and writes --json after
 * every record. When a section fails it is rerun once with CUDA_LAUNCH_BLOCKING=1 and --stop-first
 * (the first failing launch then reports its own error instead of a later call's), its output kept
 * in the log and its records under "reruns" in the JSON (not counted). --no-fork runs the sections
 * in this process (debugging). --plant-crash / --plant-hang SECTION make that section's child abort
 * or hang after its first record (they test the isolation and the timeout; a ctest).
 *
 * A check whose CPU reference is missing (the CPU op not implemented yet) is SKIPped and counted;
 * --strict turns skips into failures. Exit status: 0 all passed (or no CUDA device: "no CUDA
 * device: skipped"), 1 failures, 2 usage or setup error. --json writes {"check_failures": N,
 * "check_skipped": M, "check_passed": P, "device": ..., "sections": [...], "results": [...],
 * "reruns": [...]}. Builds without Criterion, so that it runs on a lent GPU machine
 * (bench/gpu/suite.sh). --self-test runs the same sections with a second CPU backend in the GPU's
 * place (F32, contiguous): no GPU needed, it checks the harness itself (CI runs it), including the
 * attention checker against planted bugs ("planted bugs caught: N/N", check_attn.c); the real-dims
 * model checks only with --real-dims there (minutes on a small CPU).
 */
#include "check_util.h"

#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: lisa-check [--quick] [--smoke] [--section LIST] [--filter TEXT] [--json FILE] [--device N]\n"
               "                  [--seed N] [--strict] [--self-test] [--data DIR] [--full] [--real-dims]\n"
               "                  [--section-timeout S] [--rerun-timeout S] [--no-rerun] [--no-fork] [--stop-first]\n"
               "                  [--plant-crash SECTION] [--plant-hang SECTION]\n"
               "  CUDA backend vs CPU backend, one child process per section: smoke (--smoke), ops, attention,\n"
               "  e2e, real. A failing section is rerun with CUDA_LAUNCH_BLOCKING=1 up to its first failure.\n"
               "  The attention section runs the mma.sync kernel and, on H100/H200, the sm_90a wgmma kernel\n"
               "  (--filter wgmma).\n");
}

typedef struct section {
    const char *name;
    void (*run)(ck_ctx *c);
} section;

static void run_ops(ck_ctx *c) {
    ck_cases_ops(c);
    ck_cases_casts_and_errors(c);
}

static const section sections[] = {
    {"smoke", ck_cases_smoke},           {"ops", run_ops}, {"attention", ck_cases_attention},
    {"e2e", ck_cases_models_tiny},       {"real", ck_cases_models_real},
};
#define N_SECTIONS ((int)(sizeof sections / sizeof sections[0]))

/* What one child did (the parent's view). */
typedef struct section_run {
    const char *name;
    int rc;           /* exit status, or 128 + signal */
    bool crashed, timed_out, rerun;
    double seconds;
    int passed, failed, skipped;
    char last_case[160]; /* the last case the child started ("op name") */
} section_run;

/* Parent state: results of all children (in c.results), section runs, reruns. Static storage. */
static ck_ctx g_c;
static section_run g_runs[2 * N_SECTIONS];
static int g_n_runs;
static ck_result g_reruns[512];
static int g_n_reruns;
static char g_device[320] = "unknown";
static volatile sig_atomic_t g_stop;

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

static void json_results(FILE *f, const ck_result *res, int n) {
    static const char *st[3] = {"pass", "fail", "skip"};
    for (int i = 0; i < n; i++) {
        const ck_result *r = &res[i];
        fprintf(f, "%s\n    {\"op\": ", i ? "," : "");
        json_str(f, r->op);
        fprintf(f, ", \"case\": ");
        json_str(f, r->name);
        fprintf(f, ", \"dtype\": ");
        json_str(f, r->dtype);
        fprintf(f, ", \"status\": \"%s\", \"max_abs_err\": ", st[r->status < 3 ? r->status : 0]);
        json_num(f, r->max_abs_err);
        fprintf(f, ", \"tol\": ");
        json_num(f, r->tol_err);
        fprintf(f, ", \"naive_bf16_err\": ");
        json_num(f, r->naive_err >= 0 ? r->naive_err : NAN);
        fprintf(f, ", \"note\": ");
        json_str(f, r->note);
        fprintf(f, "}");
    }
}

/* Writes path atomically (a temporary file renamed); complete = false while the checks still run,
 * so that a run stopped by a timeout leaves the results so far (bench/gpu/suite.sh). */
static int write_json(const char *path, const ck_ctx *c, int failures, bool no_device, bool complete) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "lisa-check: cannot write %s\n", tmp);
        return 2;
    }
    fprintf(f, "{\n  \"check_failures\": %d,\n  \"check_skipped\": %d,\n  \"check_passed\": %d,\n  \"device\": ", failures,
            c->skipped, c->passed);
    json_str(f, g_device);
    fprintf(f, ",\n  \"no_device\": %s,\n  \"complete\": %s,\n  \"sections\": [", no_device ? "true" : "false",
            complete ? "true" : "false");
    for (int i = 0; i < g_n_runs; i++) {
        const section_run *s = &g_runs[i];
        fprintf(f, "%s\n    {\"section\": \"%s\", \"rerun_blocking\": %s, \"exit\": %d, \"crashed\": %s, \"timed_out\": %s, "
                   "\"seconds\": %.1f, \"passed\": %d, \"failed\": %d, \"skipped\": %d, \"last_case\": ",
                i ? "," : "", s->name, s->rerun ? "true" : "false", s->rc, s->crashed ? "true" : "false",
                s->timed_out ? "true" : "false", s->seconds, s->passed, s->failed, s->skipped);
        json_str(f, s->last_case);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"results\": [");
    json_results(f, c->results, c->n_results);
    fprintf(f, "\n  ],\n  \"reruns\": [");
    json_results(f, g_reruns, g_n_reruns);
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) return 2;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- child side ------------------------------------------------------------------------------ */

static const char *g_plant_crash, *g_plant_hang;

static void crash_after_first_record(ck_ctx *c) {
    (void)c;
    fprintf(stderr, "lisa-check: --plant-crash: aborting this section's child on purpose\n");
    abort();
}

static void hang_after_first_record(ck_ctx *c) {
    (void)c;
    fprintf(stderr, "lisa-check: --plant-hang: this section's child hangs on purpose\n");
    for (;;) pause();
}

/* Runs the named sections in this process (the child, or --no-fork); returns the exit status. */
static int run_here(ck_ctx *c, const char *const *names, int n_names, int device) {
    lisa_status s = c->self_test ? lisa_backend_cpu_create(&c->gpu, 0, 0) : lisa_backend_cuda_create(&c->gpu, device, 0);
    if (s != LISA_OK) {
        fprintf(stderr, "lisa-check: %s backend: %s: %s\n", c->self_test ? "cpu (self-test)" : "cuda", lisa_status_name(s),
                lisa_last_error());
        return 2;
    }
    if (lisa_backend_cpu_create(&c->cpu, 0, 0) != LISA_OK) {
        fprintf(stderr, "lisa-check: cpu backend: %s\n", lisa_last_error());
        lisa_backend_free(c->gpu);
        return 2;
    }
    const char *dev = c->self_test ? "cpu (self-test)" : lisa_cuda_device_name(c->gpu);
    snprintf(g_device, sizeof g_device, "%s", dev);
    if (c->rec_out) { /* the device name for the parent's JSON: a "case started" record of op #device */
        FILE *f = c->rec_out;
        c->rec_out = NULL;
        ck_result r;
        memset(&r, 0, sizeof r);
        snprintf(r.op, sizeof r.op, "#device");
        snprintf(r.note, sizeof r.note, "%s", dev);
        r.status = 3;
        if (fwrite(&r, sizeof r, 1, f) != 1 || fflush(f) != 0) fprintf(stderr, "lisa-check: cannot write the record file\n");
        c->rec_out = f;
    }
    for (int i = 0; i < n_names; i++) {
        const section *sec = NULL;
        for (int k = 0; k < N_SECTIONS; k++)
            if (!strcmp(sections[k].name, names[i])) sec = &sections[k];
        if (!sec) continue;
        printf("== section %s: CUDA %s vs CPU (%d threads)%s%s%s%s\n", sec->name, dev, c->cpu->n_threads,
               c->quick ? ", quick" : "", c->filter ? ", filter " : "", c->filter ? c->filter : "",
               getenv("CUDA_LAUNCH_BLOCKING") ? ", CUDA_LAUNCH_BLOCKING=1" : "");
        fflush(stdout);
        if (g_plant_crash && !strcmp(g_plant_crash, sec->name)) c->on_record = crash_after_first_record;
        if (g_plant_hang && !strcmp(g_plant_hang, sec->name)) c->on_record = hang_after_first_record;
        sec->run(c);
        c->on_record = NULL;
    }
    lisa_backend_free(c->cpu);
    lisa_backend_free(c->gpu);
    c->cpu = c->gpu = NULL;
    return c->failures ? 1 : 0;
}

/* ---- parent side ----------------------------------------------------------------------------- */

/* The options a child inherits. */
typedef struct opts {
    bool quick, self_test, full, real_dims, stop_first;
    const char *filter, *data, *seed, *device;
} opts;

static void on_term(int sig) {
    (void)sig;
    g_stop = 1;
}

/* Folds one record read from a child into the parent's state. */
static void take_record(const ck_result *r, section_run *sr, bool rerun) {
    if (r->status == 3) {
        if (!strcmp(r->op, "#device"))
            snprintf(g_device, sizeof g_device, "%s", r->note);
        else
            snprintf(sr->last_case, sizeof sr->last_case, "%s %s", r->op, r->name);
        return;
    }
    if (r->status == 0) sr->passed++;
    if (r->status == 1) sr->failed++;
    if (r->status == 2) sr->skipped++;
    if (rerun) {
        if (g_n_reruns < (int)(sizeof g_reruns / sizeof g_reruns[0])) g_reruns[g_n_reruns++] = *r;
        return;
    }
    if (g_c.n_results < CK_MAX_RESULTS) g_c.results[g_c.n_results++] = *r;
    if (r->status == 0) g_c.passed++;
    if (r->status == 1) g_c.failures++;
    if (r->status == 2) g_c.skipped++;
}

/* Runs one section in a child and waits for it (timeout_s > 0: killed after that many seconds). */
static void run_child(const char *self, const char *name, const opts *o, bool rerun, double timeout_s, const char *json) {
    section_run *sr = &g_runs[g_n_runs++];
    memset(sr, 0, sizeof *sr);
    sr->name = name, sr->rerun = rerun;
    char rec[] = "/tmp/lisa-check-records-XXXXXX";
    int fd = mkstemp(rec);
    if (fd < 0) {
        fprintf(stderr, "lisa-check: mkstemp: %s\n", strerror(errno));
        sr->rc = 2, sr->crashed = true;
        return;
    }
    close(fd);
    const char *argv[32];
    int n = 0;
    argv[n++] = self;
    argv[n++] = "--child";
    argv[n++] = rec;
    argv[n++] = "--section";
    argv[n++] = name;
    if (o->quick) argv[n++] = "--quick";
    if (o->self_test) argv[n++] = "--self-test";
    if (o->full) argv[n++] = "--full";
    if (o->real_dims) argv[n++] = "--real-dims";
    if (o->stop_first || rerun) argv[n++] = "--stop-first";
    if (o->filter) argv[n++] = "--filter", argv[n++] = o->filter;
    if (o->data) argv[n++] = "--data", argv[n++] = o->data;
    if (o->seed) argv[n++] = "--seed", argv[n++] = o->seed;
    if (o->device) argv[n++] = "--device", argv[n++] = o->device;
    if (g_plant_crash) argv[n++] = "--plant-crash", argv[n++] = g_plant_crash;
    if (g_plant_hang) argv[n++] = "--plant-hang", argv[n++] = g_plant_hang;
    argv[n] = NULL;
    if (rerun)
        printf("\n=== rerun of section %s with CUDA_LAUNCH_BLOCKING=1 up to its first failure (output kept; not counted)\n",
               name);
    fflush(stdout);
    fflush(stderr);
    const double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        if (rerun) setenv("CUDA_LAUNCH_BLOCKING", "1", 1);
        execv(self, (char *const *)argv);
        fprintf(stderr, "lisa-check: exec %s: %s\n", self, strerror(errno));
        _exit(2);
    }
    if (pid < 0) {
        fprintf(stderr, "lisa-check: fork: %s\n", strerror(errno));
        sr->rc = 2, sr->crashed = true;
        unlink(rec);
        return;
    }
    FILE *rf = fopen(rec, "rb");
    int status = 0;
    bool done = false;
    double last_json = 0;
    while (!done) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) done = true;
        /* records written so far (the whole file once the child has ended) */
        ck_result r;
        int got = 0;
        while (rf && fread(&r, sizeof r, 1, rf) == 1) {
            take_record(&r, sr, rerun);
            got++;
        }
        if (rf) clearerr(rf);
        const double t = now_s();
        if (json && got && t - last_json > 1.0) {
            write_json(json, &g_c, g_c.failures, false, false);
            last_json = t;
        }
        if (done) break;
        if (g_stop || (timeout_s > 0 && t - t0 > timeout_s)) {
            sr->timed_out = !g_stop;
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            done = true;
            while (rf && fread(&r, sizeof r, 1, rf) == 1) take_record(&r, sr, rerun);
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (rf) fclose(rf);
    unlink(rec);
    sr->seconds = now_s() - t0;
    sr->rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    sr->crashed = !sr->timed_out && (WIFSIGNALED(status) || sr->rc >= 2);
    const char *tag = rerun ? "rerun" : "section";
    if (sr->timed_out || sr->crashed) {
        char note[200];
        if (sr->timed_out)
            snprintf(note, sizeof note, "killed after %.0f s (--section-timeout) in case: %s", sr->seconds,
                     sr->last_case[0] ? sr->last_case : "(none started)");
        else
            snprintf(note, sizeof note, "child ended with %s %d in case: %s", WIFSIGNALED(status) ? "signal" : "exit status",
                     WIFSIGNALED(status) ? WTERMSIG(status) : sr->rc, sr->last_case[0] ? sr->last_case : "(none started)");
        ck_result r;
        memset(&r, 0, sizeof r);
        snprintf(r.op, sizeof r.op, "section");
        snprintf(r.name, sizeof r.name, "%s %s %s", tag, name, sr->timed_out ? "timed out" : "crashed");
        snprintf(r.dtype, sizeof r.dtype, "-");
        r.status = 1, r.max_abs_err = NAN, r.naive_err = -1;
        snprintf(r.note, sizeof r.note, "%s", note);
        printf("FAIL  %-22s %-40s %-5s %s\n", r.op, r.name, r.dtype, r.note);
        take_record(&r, sr, rerun);
    }
    printf("== %s %s: %d passed, %d FAILED, %d skipped in %.1f s (exit %d)\n", tag, name, sr->passed, sr->failed,
           sr->skipped, sr->seconds, sr->rc);
    fflush(stdout);
    if (json) write_json(json, &g_c, g_c.failures, false, false);
}

int main(int argc, char **argv) {
    ck_ctx *c = &g_c;
    const char *json = NULL, *section_list = NULL, *child_rec = NULL;
    opts o = {0};
    int device = 0;
    bool strict = false, smoke = false, no_fork = false, no_rerun = false;
    double section_timeout = 0, rerun_timeout = 60;
    uint64_t seed = 1234;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool more = i + 1 < argc;
        if (!strcmp(a, "--quick"))
            c->quick = o.quick = true;
        else if (!strcmp(a, "--smoke"))
            smoke = true;
        else if (!strcmp(a, "--strict"))
            strict = true;
        else if (!strcmp(a, "--self-test"))
            c->self_test = o.self_test = true;
        else if (!strcmp(a, "--full"))
            c->full = o.full = true;
        else if (!strcmp(a, "--real-dims"))
            c->real_dims = o.real_dims = true;
        else if (!strcmp(a, "--no-fork"))
            no_fork = true;
        else if (!strcmp(a, "--no-rerun"))
            no_rerun = true;
        else if (!strcmp(a, "--stop-first"))
            c->stop_first = o.stop_first = true;
        else if (!strcmp(a, "--skip-if-no-device"))
            ; /* the default; accepted for the ctest registration's readability */
        else if (!strcmp(a, "--data") && more)
            c->data_dir = o.data = argv[++i];
        else if (!strcmp(a, "--filter") && more)
            c->filter = o.filter = argv[++i];
        else if (!strcmp(a, "--section") && more)
            section_list = argv[++i];
        else if (!strcmp(a, "--child") && more)
            child_rec = argv[++i];
        else if (!strcmp(a, "--plant-crash") && more)
            g_plant_crash = argv[++i];
        else if (!strcmp(a, "--plant-hang") && more)
            g_plant_hang = argv[++i];
        else if (!strcmp(a, "--section-timeout") && more)
            section_timeout = atof(argv[++i]);
        else if (!strcmp(a, "--rerun-timeout") && more)
            rerun_timeout = atof(argv[++i]);
        else if (!strcmp(a, "--json") && more)
            json = argv[++i];
        else if (!strcmp(a, "--device") && more)
            device = atoi(o.device = argv[++i]);
        else if (!strcmp(a, "--seed") && more)
            seed = strtoull(o.seed = argv[++i], NULL, 10);
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "lisa-check: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    c->rng.s = seed * 0x9e3779b97f4a7c15ull + 1;
    if (!c->data_dir) {
        struct stat st;
        c->data_dir = stat("tests/data/tiny-lisa/config.json", &st) == 0 ? "tests/data" : LISA_CHECK_DATA_DIR;
    }
    /* the sections to run */
    const char *names[N_SECTIONS];
    int n_names = 0;
    if (section_list) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", section_list);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int k = 0;
            while (k < N_SECTIONS && strcmp(sections[k].name, tok) != 0) k++;
            if (k == N_SECTIONS) {
                fprintf(stderr, "lisa-check: unknown section '%s' (smoke, ops, attention, e2e, real)\n", tok);
                return 2;
            }
            if (n_names < N_SECTIONS) names[n_names++] = sections[k].name;
        }
    } else if (smoke) {
        names[n_names++] = "smoke";
    } else {
        for (int k = 1; k < N_SECTIONS; k++) names[n_names++] = sections[k].name;
    }

    if (child_rec) { /* a section's child: records to the parent's file */
        c->rec_out = fopen(child_rec, "ab");
        if (!c->rec_out) {
            fprintf(stderr, "lisa-check: cannot open %s\n", child_rec);
            return 2;
        }
        int rc = run_here(c, names, n_names, device);
        fclose(c->rec_out);
        return rc;
    }

    if (!c->self_test && lisa_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return json ? write_json(json, c, 0, true, true) : 0;
    }
    const double t0 = now_s();
    if (no_fork) {
        int rc = run_here(c, names, n_names, device);
        if (rc == 2) return 2;
    } else {
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0) {
            fprintf(stderr, "lisa-check: cannot find its own executable (/proc/self/exe)\n");
            return 2;
        }
        self[len] = '\0';
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        printf("lisa-check: %s, sections:", c->self_test ? "self-test (a CPU backend in the GPU's place)" : "CUDA vs CPU");
        for (int i = 0; i < n_names; i++) printf(" %s", names[i]);
        printf(" (each in its own process)\n");
        for (int i = 0; i < n_names && !g_stop; i++) {
            const int before = c->failures;
            run_child(self, names[i], &o, false, section_timeout, json);
            if (c->failures > before && !no_rerun && !g_stop) run_child(self, names[i], &o, true, rerun_timeout, json);
        }
    }
    if (!c->filter && !c->self_test && !smoke && !section_list) {
        /* every op of ops.def must have been exercised (docs/style.md §15) */
        for (int op = 0; op < LISA_OP_COUNT; op++) {
            const char *name = lisa_op_name((lisa_op)op);
            bool seen = false;
            for (int i = 0; i < c->n_results && !seen; i++) seen = !strcmp(c->results[i].op, name);
            if (!seen) ck_record(c, name, "coverage", "-", 1, NAN, 0, -1, "no lisa-check case exercises this op");
        }
    }
    int planted = 0, caught = 0;
    for (int i = 0; i < c->n_results; i++)
        if (!strcmp(c->results[i].op, "planted_bug")) planted++, caught += c->results[i].status == 0;
    if (planted) printf("\nplanted bugs caught: %d/%d\n", caught, planted);
    const int failures = c->failures + (strict ? c->skipped : 0);
    printf("\nlisa-check: %d passed, %d FAILED, %d skipped (no CPU reference yet) in %.1f s on %s\n", c->passed, c->failures,
           c->skipped, now_s() - t0, g_device);
    for (int i = 0; i < g_n_runs; i++)
        if (g_runs[i].crashed || g_runs[i].timed_out || g_runs[i].failed)
            printf("  %s %s: %d failed%s%s (last case: %s)\n", g_runs[i].rerun ? "rerun" : "section", g_runs[i].name,
                   g_runs[i].failed, g_runs[i].crashed ? ", crashed" : "", g_runs[i].timed_out ? ", timed out" : "",
                   g_runs[i].last_case);
    int rc = failures ? 1 : 0;
    if (json && write_json(json, c, failures, false, !g_stop) != 0) rc = 2;
    return g_stop ? 124 : rc;
}
