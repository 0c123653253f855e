/* tools/cmd_inspect.c — `lisa inspect DIR`: what a model directory holds and what running it needs
 * (the report and its memory model are jobs/inspect.c). Exit: 0 ok, 1 failure or a checkpoint
 * that does not match its config.json, 2 usage. */
#include "cli_args.h"
#include "jobs/inspect.h"
#include "lisa.h"
#include "tools/commands.h"

#include <stdio.h>

static const char *const NAME = "inspect";

int lisa_cmd_inspect(int argc, char **argv) {
    lisa_inspect_job j = {.batch = 1, .context = 1024, .tp = 1};
    const cli_opt opts[] = {
        CLI_FLAG("config-only", &j.config_only, "read config.json and added_tokens.json only (no weights needed)"),
        CLI_I64("batch", &j.batch, 1, 1ll << 32, "N", "sequences/images per step for the memory estimate"),
        CLI_I64("context", &j.context, 1, 1ll << 32, "T", "tokens per sequence for the KV cache and activations"),
        CLI_I64("tp", &j.tp, 1, 1ll << 32, "N", "tensor-parallel degree: LLM weights and KV cache split over N devices"),
        CLI_STR_D("clip", &j.clip_dir, "DIR", "the CLIP directory", "openai/clip-vit-large-patch14 dims"),
        CLI_FLAG("no-crc", &j.skip_crc, "skip the CRC check of large .bin entries"),
    };
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "DIR [--config-only] [--batch N] [--context T] [--tp N] [--clip DIR] [--no-crc]",
        .about = "  DIR  a LISA, LLaMA or CLIP model directory (config.json + weights)\n"
                 "Prints the model family and dims, the vocabulary and [SEG] id, tensor counts, parameters per\n"
                 "part, bytes per dtype and a per-device memory estimate (bf16 weights, KV cache, activations);\n"
                 "without --config-only the checkpoint is opened and checked against config.json.",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 1,
        .max_pos = 1,
    };
    char **pos = NULL;
    int n_pos = 0;
    const int rc = cli_parse(&cmd, argc, argv, &pos, &n_pos);
    if (rc != CLI_RUN) return rc;
    j.dir = pos[0];
    const lisa_status s = lisa_inspect_run(&j, stdout);
    fflush(stdout);
    return s == LISA_OK ? 0 : cli_fail(NAME, NULL, s);
}
