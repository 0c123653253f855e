/* tests/test_bench.c — the FLOP model of jobs/flops.h against the reference modules
 * (tests/data/flops/lisa7b_flops.json: every aten matmul/convolution of segment_anything and
 * transformers 4.31 counted on LISA-7B dims by tests/golden/gen_flops.py), against the parameter
 * counts of tests/data/configs/expected_counts.json and against docs/architecture.md's table; and `lisa bench
 * --json` on the tiny model (the keys, and numbers that agree with each other). */
#include "golden.h"
#include "models/manifest.h"
#include "jobs/bench.h"
#include "jobs/flops.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static cJSON *read_json(const char *path) {
    size_t n;
    char *t = tu_read_file(path, &n);
    cr_assert(t, "cannot read %s", path);
    cJSON *j = cJSON_Parse(t);
    free(t);
    cr_assert(j, "%s is not JSON", path);
    return j;
}

static double get(const cJSON *j, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    cr_assert(cJSON_IsNumber(x), "%s.%s missing", a, b ? b : "");
    return x->valuedouble;
}

static void expect_rel(double got, double want, double tol, const char *what) {
    cr_expect(fabs(got - want) <= tol * fabs(want), "%s: got %.6g, want %.6g (rel %.3g)", what, got, want,
              fabs(got - want) / fabs(want));
}

/* LISA-7B: LLaMA dims from the config, SAM ViT-H (the manifest's defaults without a checkpoint),
 * CLIP ViT-L/14 as openai/clip-vit-large-patch14's config.json states it */
static lisa_flop_dims lisa7b(void) {
    lisa_manifest mf;
    cr_assert_eq(lisa_manifest_from_dir(&mf, LISA_TESTDATA_DIR "/configs/lisa-7b-v1", NULL), LISA_OK, "%s",
                 lisa_last_error());
    lisa_flop_dims d = {.llm = mf.llm, .sam = mf.sam};
    lisa_manifest_free(&mf);
    d.clip = (lisa_clip_dims){.hidden = 1024, .intermediate = 4096, .n_layers = 24, .image = 224, .patch = 14};
    d.clip_layers = 23; /* mm_vision_select_layer -2 */
    return d;
}

Test(bench, flops_match_the_reference_modules) {
    const lisa_flop_dims d = lisa7b();
    cJSON *ref = read_json(LISA_TESTDATA_DIR "/flops/lisa7b_flops.json");
    expect_rel(lisa_flops_sam_encoder(&d.sam), get(ref, "sam_encoder", "total"), 1e-12, "SAM ViT-H encoder");
    expect_rel(lisa_flops_clip(&d.clip, d.clip_layers), get(ref, "clip", "total"), 1e-12, "CLIP, 23 layers");
    lisa_flops f;
    lisa_flops_request(&f, &d, 330, 0, 1, 1);
    expect_rel(f.projector, get(ref, "projector", "total"), 1e-12, "projector");
    /* LLaMA: the linear part per row exactly; attention causal where HF computes the full square:
     * sum_{p<T} (p+1) = T(T+1)/2 of T^2 */
    const double L = get(ref, "n_layers", NULL), T = get(ref, "prefill_tokens", NULL);
    const double lin = get(ref, "llama_layer_prefill", "linear"), att = get(ref, "llama_layer_prefill", "attention");
    const double head = get(ref, "lm_head", "total");
    expect_rel(lisa_flops_llama_rows(&d.llm, 0, (int64_t)T, 1), L * (lin + att * (T + 1) / (2 * T)) + head, 1e-12,
               "prefill of 330 rows");
    expect_rel(f.prefill, L * (lin + att * (T + 1) / (2 * T)) + head, 1e-12, "request prefill");
    expect_rel(lisa_flops_llama_rows(&d.llm, (int64_t)T, 1, 1), L * get(ref, "llama_layer_decode", "total") + head,
               1e-12, "decode row at context 331");
    expect_rel(f.masks, get(ref, "mask_decoder", "total") + get(ref, "text_fcs", "total"), 1e-12,
               "mask decoder + text_hidden_fcs");
    cr_expect_eq(f.decode, 0, "one generated token comes from the prefill: no decode step");
    lisa_flops g;
    lisa_flops_request(&g, &d, 330, 32, 10, 2); /* 32 prefix rows from the cache, 9 decode steps, 2 masks */
    expect_rel(g.prefill, lisa_flops_llama_rows(&d.llm, 32, 298, 1), 1e-12, "prefill after a cached prefix");
    expect_rel(g.decode, lisa_flops_llama_rows(&d.llm, 330, 9, 9), 1e-12, "9 decode steps");
    expect_rel(g.masks, 2 * f.masks, 1e-12, "two masks");
    expect_rel(g.total, g.sam_encoder + g.clip + g.projector + g.prefill + g.decode + g.masks, 1e-12, "total");
    cJSON_Delete(ref);
}

Test(bench, flops_match_parameter_counts_and_design_table) {
    const lisa_flop_dims d = lisa7b();
    cJSON *counts = read_json(LISA_TESTDATA_DIR "/configs/expected_counts.json");
    /* a row costs 2 FLOP per weight of the decoder layers: all LLM parameters but the embedding,
     * lm_head (counted once per logits row) and the RMSNorm gains ((2 L + 1) C) */
    const double C = 4096, V = 32004, Ly = 32;
    const double params = get(cJSON_GetObjectItemCaseSensitive(counts, "lisa-7b-v1"), "llm_params", NULL);
    const double per_row = lisa_flops_llama_rows(&d.llm, 0, 1, 0) - Ly * 4 * C; /* minus attention to 1 key */
    expect_rel(per_row, 2 * (params - 2 * V * C - (2 * Ly + 1) * C), 1e-12, "2 x decoder parameters per row");
    cJSON_Delete(counts);
    /* docs/architecture.md "Performance model": SAM ~6, CLIP ~0.15, prefill 330 tokens ~4.4 TFLOP. The prefill
     * figure there is 2 x 6.74 B (all parameters) x 330 = 4.45; the engine does 4.30 (no embedding
     * GEMM, one row of logits, causal attention) */
    expect_rel(lisa_flops_sam_encoder(&d.sam), 6e12, 0.02, "DESIGN: SAM ViT-H ~6 TFLOP");
    expect_rel(lisa_flops_clip(&d.clip, 23), 0.15e12, 0.05, "DESIGN: CLIP ~0.15 TFLOP");
    const double prefill = lisa_flops_llama_rows(&d.llm, 0, 330, 1);
    expect_rel(prefill, 4.4e12, 0.03, "DESIGN: LLaMA-7B prefill of 330 tokens ~4.4 TFLOP");
    expect_rel(2 * params * 330, 4.4e12, 0.02, "DESIGN's prefill = 2 x all parameters x 330");
    /* decode: 2 FLOP per weight byte pair of DESIGN's 13.5 GB (bf16) per step */
    expect_rel(lisa_flops_llama_rows(&d.llm, 330, 1, 1), 13.5e9, 0.02, "decode step ~13.5 GFLOP");
}

Test(bench, json_output_on_the_tiny_model, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-bench");
    char cmd[8192], out[1200];
    snprintf(out, sizeof out, "%s/out.json", dir);
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 '%s' bench --model '%s' --vision-tower '%s' --requests 4 --concurrency 3 "
             "--max-batch 2 --max-new-tokens 5 --warmup 1 --size 64x48 --threads 2 --peak-tflops 2 --json > '%s' "
             "2> '%s/err.txt'",
             LISA_TOOL_PATH, TINY_LISA_DIR, TINY_CLIP_DIR, out, dir);
    const int rc = system(cmd);
    char ep[1200];
    snprintf(ep, sizeof ep, "%s/err.txt", dir);
    size_t n;
    char *err = tu_read_file(ep, &n);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "lisa bench failed: %s", err ? err : "");
    cr_expect(!err || (!strstr(err, "Sanitizer") && !strstr(err, "runtime error:")), "%s", err);
    free(err);
    cJSON *j = read_json(out);
    cr_expect_eq(get(j, "requests", NULL), 4);
    cr_expect_eq(get(j, "ok", NULL), 4);
    cr_expect_eq(get(j, "failed", NULL), 0);
    cr_expect_eq(get(j, "concurrency", NULL), 3);
    cr_expect_eq(get(j, "max_batch", NULL), 2);
    const double secs = get(j, "seconds", NULL), sps = get(j, "samples_per_s", NULL);
    cr_expect_gt(secs, 0);
    expect_rel(sps, 4 / secs, 1e-9, "samples/s = ok / seconds");
    const double p50 = get(j, "latency_ms", "p50"), p99 = get(j, "latency_ms", "p99");
    cr_expect(p50 > 0 && p50 <= p99 && p99 <= get(j, "latency_ms", "max") + 1e-9 && p99 <= secs * 1e3 + 1);
    const char *stages[] = {"preprocess", "vision", "prefill", "decode", "sam_decoder", "total"};
    for (int i = 0; i < 6; i++)
        cr_expect_geq(get(j, "stages_ms", stages[i]), 0, "%s", stages[i]);
    cr_expect_gt(get(j, "stages_ms", "vision"), 0);
    const double mb = get(j, "engine", "mean_decode_batch");
    cr_expect(mb >= 1 && mb <= 2, "mean decode batch %g (max batch 2)", mb);
    cr_expect_gt(get(j, "engine", "decode_steps"), 0);
    const char *parts[] = {"sam_encoder", "clip", "projector", "prefill", "decode", "masks"};
    double sum = 0;
    for (int i = 0; i < 6; i++)
        sum += get(j, "flops_per_request", parts[i]);
    expect_rel(get(j, "flops_per_request", "total"), sum, 1e-9, "flops total = sum of stages");
    const double tfl = get(j, "achieved_tflops", NULL);
    expect_rel(tfl, get(j, "flops_per_request", "total") * 4 / secs / 1e12, 1e-6, "achieved = FLOPs / seconds");
    expect_rel(get(j, "mfu", NULL), tfl / 2, 1e-9, "mfu = achieved / --peak-tflops");
    cr_expect_gt(get(j, "generated_tokens", NULL), 0);
    cr_expect_gt(get(j, "prompt_tokens", NULL), 256);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "backend");
    cr_expect(cJSON_IsString(b) && !strcmp(b->valuestring, "cpu"));
    cJSON_Delete(j);
    tu_remove_tree(dir);
    free(dir);
}

/* MFU's peak: the datasheet bf16 dense figure of the card CUDA names, the most specific entry first
 * (an H100 PCIe is not an SXM, an A10 is not an A100, an L4 is not an L40); none for a CPU or an
 * unknown device. */
Test(bench, datasheet_peak_by_device_name) {
    static const struct {
        const char *name;
        double tflops;
    } known[] = {
        {"NVIDIA H100 80GB HBM3", 989}, {"NVIDIA H100 PCIe", 756},     {"NVIDIA H100 NVL", 835},
        {"NVIDIA H200", 989},           {"NVIDIA GH200 480GB", 989},   {"NVIDIA A100-SXM4-80GB", 312},
        {"NVIDIA A100 80GB PCIe", 312}, {"NVIDIA A10", 125},           {"NVIDIA L40S", 362},
        {"NVIDIA L40", 181},            {"NVIDIA L4", 121},            {"NVIDIA GeForce RTX 4090", 165},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        double t = 0;
        const char *card = NULL;
        cr_expect(lisa_bench_datasheet_peak(known[i].name, &t, &card), "%s", known[i].name);
        cr_expect_eq(t, known[i].tflops, "%s: %g", known[i].name, t);
        cr_expect(card && card[0]);
    }
    static const char *unknown[] = {"AMD EPYC 7R13 Processor", "cpu", "NVIDIA GeForce RTX 3090", "", "H1000"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        double t = -1;
        cr_expect(!lisa_bench_datasheet_peak(unknown[i], &t, NULL), "%s", unknown[i]);
        cr_expect_eq(t, -1);
    }
}

/* On the CPU there is no peak to divide by unless --peak-tflops gives one: MFU is null. */
Test(bench, no_mfu_on_the_cpu_without_a_peak, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-bench");
    char cmd[8192], out[1200];
    snprintf(out, sizeof out, "%s/out.json", dir);
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 '%s' bench --model '%s' --vision-tower '%s' --requests 1 --warmup 0 "
             "--max-new-tokens 2 --size 32x24 --threads 2 --backend cpu --json > '%s' 2> '%s/err.txt'",
             LISA_TOOL_PATH, TINY_LISA_DIR, TINY_CLIP_DIR, out, dir);
    const int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    cJSON *j = read_json(out);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "mfu")));
    cr_expect(!cJSON_GetObjectItemCaseSensitive(j, "peak_tflops"));
    cr_expect_gt(get(j, "achieved_tflops", NULL), 0);
    cJSON_Delete(j);
    tu_remove_tree(dir);
    free(dir);
}

/* --queries-per-image K (issue #17): K requests per distinct picture; K - 1 of them find it cached
 * and prefill only past it; the FLOPs count no encoder for them */
Test(bench, queries_per_image, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-bench");
    char cmd[8192], out[1200];
    snprintf(out, sizeof out, "%s/out.json", dir);
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 '%s' bench --model '%s' --vision-tower '%s' --requests 8 --queries-per-image 4 "
             "--max-batch 4 --max-new-tokens 5 --warmup 1 --size 64x48 --threads 2 --json > '%s' 2> '%s/err.txt'",
             LISA_TOOL_PATH, TINY_LISA_DIR, TINY_CLIP_DIR, out, dir);
    const int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "lisa bench failed");
    cJSON *j = read_json(out);
    cr_expect_eq(get(j, "ok", NULL), 8);
    cr_expect_eq(get(j, "queries_per_image", NULL), 4);
    cr_expect_eq(get(j, "engine", "image_cache_misses"), 2, "two pictures, each encoded once");
    cr_expect_eq(get(j, "engine", "image_cache_hits"), 6);
    cr_expect_eq(get(j, "engine", "kv_prefix_hits"), 6);
    lisa_model_params mp = lisa_model_default_params();
    mp.vision_tower = TINY_CLIP_DIR;
    mp.backend = LISA_BACKEND_CPU;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &mp, &m), LISA_OK, "%s", lisa_last_error());
    lisa_flop_dims d;
    cr_assert_eq(lisa_flop_dims_from_model(&d, m), LISA_OK, "%s", lisa_last_error());
    lisa_model_free(m);
    expect_rel(get(j, "flops_per_request", "sam_encoder"), lisa_flops_sam_encoder(&d.sam) * 2 / 8, 1e-9,
               "the SAM encoder ran for 2 of the 8 requests");
    cJSON_Delete(j);
    tu_remove_tree(dir);
    free(dir);
}
