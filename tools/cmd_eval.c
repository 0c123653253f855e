/* tools/cmd_eval.c — `lisa eval`: reproduce LISA's evaluation tables (spec §9). The run, the record
 * files and the metrics are jobs/eval_job.c; this file parses the options and prints progress and
 * the table.
 *
 *   lisa eval --model DIR --dataset reasonseg|refcoco|refcoco+|refcocog --data ROOT --split SPLIT [options]
 *   lisa eval --merge RECORDS... [--out results.json]
 *
 * Exit: 0 ok, 1 failure, 2 usage.
 */
#include "cli_args.h"
#include "jobs/eval_job.h"
#include "lisa.h"
#include "tools/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const NAME = "eval";

/* Progress state. Holds no memory. */
typedef struct progress {
    double t0;
    bool tty;
    int last_pct;
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_progress(void *ctx, int32_t done, int32_t total, int32_t queries, int32_t errors) {
    progress *c = ctx;
    const double el = now_s() - c->t0, per = done ? el / done : 0;
    if (c->tty) {
        fprintf(stderr, "\r[eval] %d/%d images, %d queries (%d errors), %.2f s/image, ETA %.0f s   ", done, total,
                queries, errors, per, per * (total - done));
        if (done == total) fputc('\n', stderr);
    } else {
        const int pct = total ? (int)(100LL * done / total) : 100;
        if (pct / 10 != c->last_pct / 10 || done == total) {
            fprintf(stderr, "[eval] %d/%d images, %d queries (%d errors), %.1f s\n", done, total, queries, errors, el);
            c->last_pct = pct;
        }
    }
}

static void on_query_error(void *ctx, const char *id, const char *msg) {
    const progress *c = ctx;
    if (!c->tty) fprintf(stderr, "lisa eval: %s: %s\n", id, msg);
}

static void on_notice(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "lisa eval: %s\n", msg);
}

static void print_table(const lisa_eval_summary *S) {
    char name[128];
    snprintf(name, sizeof name, "%s/%s", S->dataset, S->split);
    printf("\n%-24s %8s %7s %8s %8s\n", "split", "queries", "errors", "gIoU", "cIoU");
    printf("%-24s %8lld %7lld %8.2f %8.2f\n", name, (long long)S->all.n, (long long)S->n_errors,
           100 * lisa_eval_giou(&S->all), 100 * lisa_eval_ciou(&S->all));
    if (S->reasonseg) {
        const char *lab[2] = {"  short (is_sentence=0)", "  long (is_sentence=1)"};
        for (int k = 0; k < 2; k++)
            printf("%-24s %8lld %7s %8.2f %8.2f\n", lab[k], (long long)S->by_len[k].n, "",
                   100 * lisa_eval_giou(&S->by_len[k]), 100 * lisa_eval_ciou(&S->by_len[k]));
    }
    printf("mode %s; %lld images; %lld answers without [SEG] (empty masks)%s\n", S->mode, (long long)S->n_images,
           (long long)S->n_no_seg, S->n_errors ? "; failed queries are left out of gIoU/cIoU (see the records)" : "");
}

static bool parse_mode(const char *v, void *dst) {
    if (!strcmp(v, "teacher-forced"))
        *(bool *)dst = false;
    else if (!strcmp(v, "generate"))
        *(bool *)dst = true;
    else
        return false;
    return true;
}

static bool parse_dataset(const char *v, void *dst) {
    if (strcmp(v, "reasonseg") && strcmp(v, "refcoco") && strcmp(v, "refcoco+") && strcmp(v, "refcocog")) return false;
    *(const char **)dst = v;
    return true;
}

int lisa_cmd_eval(int argc, char **argv) {
    lisa_eval_job j = lisa_eval_job_default();
    const char *merge = NULL;
    int32_t shard[2] = {0, 0};
    const cli_opt opts[] = {
        CLI_STR("model", &j.model, "DIR", "a LISA checkpoint directory"),
        CLI_STR_D("vision-tower", &j.model_params.vision_tower, "DIR", "the CLIP directory (default: as `lisa segment`)",
                  ""),
        CLI_FN("dataset", &j.dataset, parse_dataset, "reasonseg|refcoco|refcoco+|refcocog", "the benchmark", NULL),
        CLI_STR("data", &j.data, "ROOT",
                "the LISA dataset root: ROOT/reason_seg/ReasonSeg/<split>/*.jpg + .json, or\n"
                "ROOT/refer_seg/<dataset>/{instances.json, refs(unc|umd).p} with images in\n"
                "ROOT/refer_seg/images/mscoco/images/train2014 (ROOT may also be the\n"
                "ReasonSeg or refer_seg directory itself)"),
        CLI_STR("split", &j.split, "SPLIT",
                "ReasonSeg: val | test (| train); refCOCO(+): val | testA | testB;\n"
                "refCOCOg: val | test (--split-by umd, the default for refcocog)"),
        CLI_STR_D("split-by", &j.split_by, "unc|umd|google", "the refer split file", "umd for refcocog, else unc"),
        CLI_FN("mode", &j.generate, parse_mode, "teacher-forced|generate",
               "teacher-forced: the paper's numbers (answer fixed to \"[SEG].\", one forward);\n"
               "generate: greedy chat, the first [SEG]'s mask (none = empty)",
               "teacher-forced"),
        CLI_INT_D("limit", &j.limit, 0, 1000000000, "N", "the first N images of the shard", "all"),
        CLI_FN("shard", shard, cli_parse_shard, "K/N",
               "images with index % N == K (0 <= K < N); merge the record files after.\n"
               "Under srun/mpirun: the rank and size (SLURM_PROCID/NTASKS,\n"
               "OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE); with --tp T, one shard per\n"
               "group of T consecutive ranks",
               "0/1"),
        CLI_INT("tp", &j.model_params.tensor_parallel, 1, 4096, "T",
                "tensor parallelism: split the LLM over T MPI ranks (mpirun -np T*G runs G\n"
                "groups, each on its own shard; generate mode)"),
        CLI_STR("out", &j.out, "results.json", "the metrics as JSON (written atomically)"),
        CLI_STR_D("records", &j.records, "FILE", "the resumable per-query record file",
                  "<out>.records.jsonl, or lisa-eval-<dataset>-<split>[-K-of-N].records.jsonl"),
        CLI_FLAG("resume", &j.resume, "continue an interrupted run from its record file"),
        CLI_STR("dump-masks", &j.dump_masks, "DIR", "write each predicted mask as DIR/<image>_q<k>.png (0/255)"),
        CLI_INT("max-new-tokens", &j.seg.max_new_tokens, 1, 1 << 20, "N", "generate mode: generation limit (as chat.py)"),
        CLI_BACKEND("backend", &j.model_params.backend),
        CLI_INT_D("threads", &j.model_params.n_threads, 0, 4096, "N", "CPU threads (0: all cores)", "all cores"),
        CLI_STR("merge", &merge, "RECORDS",
                "merge mode: the metrics of record files of several shards (this one and the\n"
                "further arguments); no model needed"),
    };
    j.model_params.tensor_parallel = 1;
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--model DIR --dataset reasonseg|refcoco|refcoco+|refcocog --data ROOT --split SPLIT [options]\n"
                 "--merge RECORDS... [--out results.json]",
        .about = "Evaluates LISA as the reference (train_ds.py --eval_only) does and prints gIoU / cIoU. Every\n"
                 "query's result is appended to a record file; --resume skips the queries already there and\n"
                 "--merge combines the record files of shards. The metrics always come from the records.",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
        .notes = "Exit status: 0 ok, 1 failure, 2 usage error.",
        .max_pos = 1 << 20,
    };
    char **pos = NULL;
    int n_pos = 0;
    const int rc = cli_parse(&cmd, argc, argv, &pos, &n_pos);
    if (rc != CLI_RUN) return rc;
    if (merge) { /* the files: --merge's value, then the arguments after it */
        const char **files = malloc((size_t)(1 + n_pos) * sizeof *files);
        if (!files) return cli_fail(NAME, NULL, lisa_fail(LISA_ERR_OOM, "out of memory"));
        files[0] = merge;
        for (int i = 0; i < n_pos; i++)
            files[1 + i] = pos[i];
        lisa_eval_summary S;
        const lisa_status s = lisa_eval_merge(files, 1 + n_pos, j.out, &S);
        free(files);
        if (s != LISA_OK) return cli_fail(NAME, NULL, s);
        print_table(&S);
        return 0;
    }
    if (n_pos) return cli_usage_error(&cmd, "unexpected argument '%s'", pos[0]);
    if (j.model_params.tensor_parallel > 1 && !j.generate)
        return cli_usage_error(&cmd, "--tp needs --mode generate (teacher-forced runs without TP)");
    if (!j.model || !j.dataset || !j.data || !j.split)
        return cli_usage_error(&cmd, "--model, --dataset, --data and --split are required");
    j.shard_k = shard[0];
    j.shard_n = shard[1]; /* 0: from srun/mpirun */
    progress pr = {.t0 = now_s(), .tty = isatty(2) != 0, .last_pct = -10};
    j.on_progress = on_progress;
    j.on_query_error = on_query_error;
    j.on_notice = on_notice;
    j.ctx = &pr;
    lisa_eval_summary S;
    const lisa_status s = lisa_eval_job_run(&j, &S);
    if (s != LISA_OK) return cli_fail(NAME, NULL, s);
    if (!S.follower) print_table(&S);
    return 0;
}
