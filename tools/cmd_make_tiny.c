/* tools/cmd_make_tiny.c — `lisa make-tiny`: a random-weight LISA checkpoint in the published layout
 * (models/tiny.h does the work, through jobs/make_tiny.h). */
#include "cli_args.h"
#include "jobs/make_tiny.h"
#include "lisa.h"
#include "tools/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAME = "make-tiny";

/* --sam-global I,J,...: up to LISA_TINY_MAX_GLOBAL block indices ("" = none) */
static bool parse_global(const char *s, void *dst) {
    lisa_tiny_params *p = dst;
    int32_t n = 0, v[LISA_TINY_MAX_GLOBAL];
    char buf[512];
    if (strlen(s) >= sizeof buf) return false;
    strcpy(buf, s);
    char *save = NULL;
    for (char *tok = *buf ? strtok_r(buf, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t x;
        if (n == LISA_TINY_MAX_GLOBAL || !cli_parse_i64(tok, 0, 1 << 20, &x)) return false;
        v[n++] = (int32_t)x;
    }
    memcpy(p->sam_global, v, (size_t)n * sizeof v[0]);
    p->n_sam_global = n;
    return true;
}

static bool parse_format(const char *s, void *dst) {
    lisa_tiny_params *p = dst;
    if (!strcmp(s, "safetensors"))
        p->format = LISA_CKPT_SAFETENSORS;
    else if (!strcmp(s, "bin"))
        p->format = LISA_CKPT_TORCH_BIN;
    else
        return false;
    return true;
}

int lisa_cmd_make_tiny(int argc, char **argv) {
    lisa_tiny_params p = lisa_tiny_default_params();
    const char *out = NULL;
    int64_t seed = (int64_t)p.seed;
    bool no_clip = false;
    char global[64];
    snprintf(global, sizeof global, "%d,%d", p.sam_global[0], p.sam_global[1]);
    const cli_opt opts[] = {
        CLI_STR_REQ("out", &out, "DIR", "the output directory (must not exist yet)"),
        CLI_I64("seed", &seed, 0, INT64_MAX, "N", "random seed: the same seed gives the same bytes"),
        CLI_STR("answer", &p.answer, "TEXT",
                "shape the LM head so that greedy decoding answers TEXT then </s> for any\n"
                "image and query (\"\" = no shaping)"),
        CLI_STR_D("tokenizer-model", &p.sp_model, "PATH", "the LLaMA tokenizer.model to copy",
                  "the source tree's tests/data/tokenizer/llama-spm.model"),
        CLI_I64("max-shard-bytes", &p.max_shard_bytes, 1, INT64_MAX, "N", "split the weights into shards of at most N bytes"),
        CLI_FLAG("no-clip", &no_clip, "do not write DIR/clip-vit-large-patch14"),
        CLI_FN("format", &p, parse_format, "safetensors|bin",
               "weight files: safetensors, or torch.save .bin shards with\n"
               "pytorch_model.bin.index.json, as the released LISA checkpoints",
               "safetensors"),
        CLI_FLAG("synthetic", &p.synthetic,
                 "shapes only: each safetensors file lists the tensors and their N(mean, std),\n"
                 "its data is a hole; the weights are drawn at load on the backend (benchmarks,\n"
                 "real-dims checks; no --answer shaping)"),
        CLI_INT("llm-hidden", &p.llm_hidden, 0, 1 << 30, "N", "LLaMA hidden size"),
        CLI_INT("llm-layers", &p.llm_layers, 0, 1 << 30, "N", "LLaMA layers"),
        CLI_INT("llm-heads", &p.llm_heads, 0, 1 << 30, "N", "LLaMA attention heads"),
        CLI_INT("llm-kv-heads", &p.llm_kv_heads, 0, 1 << 30, "N", "LLaMA key/value heads"),
        CLI_INT("llm-intermediate", &p.llm_inter, 0, 1 << 30, "N", "LLaMA MLP size"),
        CLI_INT("llm-max-pos", &p.llm_max_pos, 0, 1 << 30, "N", "max_position_embeddings"),
        CLI_INT("clip-hidden", &p.clip_hidden, 0, 1 << 30, "N", "CLIP hidden size"),
        CLI_INT("clip-layers", &p.clip_layers, 0, 1 << 30, "N", "CLIP layers"),
        CLI_INT("clip-heads", &p.clip_heads, 0, 1 << 30, "N", "CLIP heads"),
        CLI_INT("clip-mlp", &p.clip_mlp, 0, 1 << 30, "N", "CLIP MLP size"),
        CLI_INT("sam-embed", &p.sam_embed, 0, 1 << 30, "N", "SAM image-encoder width"),
        CLI_INT("sam-depth", &p.sam_depth, 0, 1 << 30, "N", "SAM image-encoder blocks"),
        CLI_INT("sam-heads", &p.sam_heads, 0, 1 << 30, "N", "SAM image-encoder heads"),
        CLI_INT("sam-window", &p.sam_window, 0, 1 << 30, "N", "SAM window size"),
        CLI_FN("sam-global", &p, parse_global, "I,J,...", "SAM's global-attention blocks (\"\" = none)", global),
        CLI_INT("out-dim", &p.out_dim, 0, 1 << 30, "N", "LISA out_dim = SAM prompt width (a multiple of 16)"),
    };
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--out DIR [--seed N] [--answer TEXT] [--format safetensors|bin] [dims...]",
        .about = "Writes a tiny random-weight LISA checkpoint directory in the xinlai/LISA-7B-v1 layout (config.json,\n"
                 "tokenizer files, weights with the LISA names and dtypes) plus DIR/clip-vit-large-patch14 in the\n"
                 "openai/clip-vit-large-patch14 layout. The default dims are those of tests/data/tiny-lisa.",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
        .notes = "Random weights give meaningless masks; the model exists to exercise the real code paths.",
    };
    const int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    p.seed = (uint64_t)seed;
    p.write_clip = !no_clip;
    lisa_tiny_report rep;
    const lisa_status s = lisa_make_tiny(&p, out, &rep);
    if (s != LISA_OK) return cli_fail(NAME, NULL, s);
    printf("wrote %s: %d tensors, %lld bytes in %d shard%s, vocab %d%s\n", out, rep.n_tensors,
           (long long)rep.total_bytes, rep.n_shards, rep.n_shards == 1 ? "" : "s", rep.vocab,
           p.write_clip ? ", vision tower in clip-vit-large-patch14/" : "");
    if (rep.n_answer > 0) {
        printf("greedy answer shaped to \"%s\" + </s>: ids", p.answer);
        for (int32_t i = 0; i < rep.n_answer; i++)
            printf(" %d", rep.answer_ids[i]);
        printf(" (min logit margin %.2f)\n", rep.min_margin);
    } else {
        printf("no answer shaping: the LM head is random\n");
    }
    return 0;
}
