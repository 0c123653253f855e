/* tools/cmd_make_tiny.c — `lisa make-tiny`: a random-weight LISA checkpoint in the published layout
 * (models/tiny.h does the work). */
#include "cli_args.h"
#include "lisa.h"
#include "models/tiny.h"
#include "tools/commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    lisa_tiny_params d = lisa_tiny_default_params();
    fprintf(f,
            "usage: lisa make-tiny --out DIR [--seed N] [--answer TEXT] [dims...]\n"
            "\n"
            "Writes a tiny random-weight LISA checkpoint directory in the xinlai/LISA-7B-v1 layout (config.json,\n"
            "tokenizer files, safetensors weights with the LISA names and dtypes) plus DIR/clip-vit-large-patch14\n"
            "in the openai/clip-vit-large-patch14 layout. Same seed, same bytes. DIR must not exist yet.\n"
            "\n"
            "  --out DIR                 output directory (required)\n"
            "  --seed N                  random seed (default %llu)\n"
            "  --answer TEXT             shape the LM head so greedy decoding answers TEXT then </s> for any\n"
            "                            image and query (default \"%s\"; \"\" = no shaping)\n"
            "  --tokenizer-model PATH    the LLaMA tokenizer.model to copy (default: the source tree's\n"
            "                            tests/data/tokenizer/llama-spm.model)\n"
            "  --max-shard-bytes N       split the weights into shards of at most N bytes (default %lld)\n"
            "  --no-clip                 do not write DIR/clip-vit-large-patch14\n"
            "  --format safetensors|bin  weight files: safetensors (default) or torch.save .bin shards with\n"
            "                            pytorch_model.bin.index.json, as the released LISA checkpoints\n"
            "  --synthetic               shapes only: each safetensors file lists the tensors and their\n"
            "                            N(mean, std), its data is a hole; the weights are drawn at load on\n"
            "                            the backend (benchmarks, real-dims checks; no --answer shaping)\n"
            "dims (defaults = tests/data/tiny-lisa):\n"
            "  --llm-hidden N (%d) --llm-layers N (%d) --llm-heads N (%d) --llm-kv-heads N (%d)\n"
            "  --llm-intermediate N (%d) --llm-max-pos N (%d)\n"
            "  --clip-hidden N (%d) --clip-layers N (%d) --clip-heads N (%d) --clip-mlp N (%d)\n"
            "  --sam-embed N (%d) --sam-depth N (%d) --sam-heads N (%d) --sam-window N (%d)\n"
            "  --sam-global I,J,... (%d,%d; global-attention blocks) --out-dim N (%d; multiple of 16)\n"
            "Random weights give meaningless masks; the model exists to exercise the real code paths.\n",
            (unsigned long long)d.seed, d.answer, (long long)d.max_shard_bytes, d.llm_hidden, d.llm_layers, d.llm_heads,
            d.llm_kv_heads, d.llm_inter, d.llm_max_pos, d.clip_hidden, d.clip_layers, d.clip_heads, d.clip_mlp,
            d.sam_embed, d.sam_depth, d.sam_heads, d.sam_window, d.sam_global[0], d.sam_global[1], d.out_dim);
}

static bool parse_list(const char *s, int32_t *out, int32_t cap, int32_t *n) {
    *n = 0;
    if (!*s) return true; /* "" = no global blocks */
    char buf[512];
    if (strlen(s) >= sizeof buf) return false;
    strcpy(buf, s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int64_t v;
        if (*n == cap || !cli_parse_i64(tok, 0, 1 << 20, &v)) return false;
        out[(*n)++] = (int32_t)v;
    }
    return true;
}

int lisa_cmd_make_tiny(int argc, char **argv) {
    lisa_tiny_params p = lisa_tiny_default_params();
    const char *out = NULL;
    const struct {
        const char *flag;
        int32_t *dst;
    } dims[] = {
        {"--llm-hidden", &p.llm_hidden},     {"--llm-layers", &p.llm_layers},      {"--llm-heads", &p.llm_heads},
        {"--llm-kv-heads", &p.llm_kv_heads}, {"--llm-intermediate", &p.llm_inter}, {"--llm-max-pos", &p.llm_max_pos},
        {"--clip-hidden", &p.clip_hidden},   {"--clip-layers", &p.clip_layers},    {"--clip-heads", &p.clip_heads},
        {"--clip-mlp", &p.clip_mlp},         {"--sam-embed", &p.sam_embed},        {"--sam-depth", &p.sam_depth},
        {"--sam-heads", &p.sam_heads},       {"--sam-window", &p.sam_window},      {"--out-dim", &p.out_dim},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
        int64_t v;
        bool matched = false;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
            if (strcmp(a, dims[k].flag)) continue;
            matched = true;
            if (!has || !cli_parse_i64(argv[++i], 0, 1 << 30, &v)) {
                fprintf(stderr, "lisa make-tiny: %s needs a non-negative integer\n", a);
                return 2;
            }
            *dims[k].dst = (int32_t)v;
        }
        if (matched) continue;
        if (!strcmp(a, "--out") && has) {
            out = argv[++i];
        } else if (!strcmp(a, "--seed") && has) {
            if (!cli_parse_i64(argv[++i], 0, INT64_MAX, &v)) {
                fprintf(stderr, "lisa make-tiny: --seed needs a non-negative integer\n");
                return 2;
            }
            p.seed = (uint64_t)v;
        } else if (!strcmp(a, "--answer") && has) {
            p.answer = argv[++i];
        } else if (!strcmp(a, "--tokenizer-model") && has) {
            p.sp_model = argv[++i];
        } else if (!strcmp(a, "--max-shard-bytes") && has) {
            if (!cli_parse_i64(argv[++i], 1, INT64_MAX, &v)) {
                fprintf(stderr, "lisa make-tiny: --max-shard-bytes needs a positive integer\n");
                return 2;
            }
            p.max_shard_bytes = v;
        } else if (!strcmp(a, "--sam-global") && has) {
            if (!parse_list(argv[++i], p.sam_global, LISA_TINY_MAX_GLOBAL, &p.n_sam_global)) {
                fprintf(stderr, "lisa make-tiny: --sam-global needs up to %d comma-separated block indices\n",
                        LISA_TINY_MAX_GLOBAL);
                return 2;
            }
        } else if (!strcmp(a, "--no-clip")) {
            p.write_clip = false;
        } else if (!strcmp(a, "--format") && has) {
            const char *f = argv[++i];
            if (!strcmp(f, "safetensors")) {
                p.format = LISA_CKPT_SAFETENSORS;
            } else if (!strcmp(f, "bin")) {
                p.format = LISA_CKPT_TORCH_BIN;
            } else {
                fprintf(stderr, "lisa make-tiny: --format is safetensors or bin, not '%s'\n", f);
                return 2;
            }
        } else if (!strcmp(a, "--synthetic")) {
            p.synthetic = true;
        } else {
            fprintf(stderr, "lisa make-tiny: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "lisa make-tiny: --out DIR is required\n\n");
        usage(stderr);
        return 2;
    }
    lisa_tiny_report rep;
    lisa_status s = lisa_make_tiny(&p, out, &rep);
    if (s != LISA_OK) {
        fprintf(stderr, "lisa make-tiny: %s: %s\n", lisa_status_name(s), lisa_last_error());
        return 1;
    }
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
