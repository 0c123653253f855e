/* tools/cmd_convert.c — `lisa convert IN OUT`: rewrite a checkpoint as safetensors or .bin shards,
 * optionally cast (the work is jobs/convert.c). Exit: 0 ok, 1 failure, 2 usage. */
#include "cli_args.h"
#include "jobs/convert.h"
#include "lisa.h"
#include "tools/commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAME = "convert";

/* transformers' convert_file_size_to_int: GiB/MiB/KiB are powers of 2, GB/MB/KB of 10. */
static bool parse_size(const char *s, void *dst) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return false;
    static const struct {
        const char *unit;
        double mul;
    } units[] = {{"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"KiB", 1024.0},
                 {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0) {
            *(uint64_t *)dst = (uint64_t)(v * units[i].mul);
            return true;
        }
    return false;
}

static bool parse_dtype(const char *s, void *dst) {
    if (strcmp(s, "bf16") && strcmp(s, "f16") && strcmp(s, "f32")) return false;
    *(const char **)dst = s;
    return true;
}

static bool parse_format(const char *s, void *dst) {
    if (strcmp(s, "safetensors") && strcmp(s, "bin")) return false;
    *(const char **)dst = s;
    return true;
}

int lisa_cmd_convert(int argc, char **argv) {
    lisa_convert_job j = {.shard_size = 5000000000ull, .verify = true};
    bool no_verify = false;
    const cli_opt opts[] = {
        CLI_FN("dtype", &j.dtype, parse_dtype, "bf16|f16|f32", "cast F32/F16/BF16 tensors (integer tensors are kept)",
               "no cast"),
        CLI_FN("shard-size", &j.shard_size, parse_size, "SIZE",
               "largest shard, as transformers spells it: 5GB = 5e9 bytes, 4GiB = 2^32;\n0 = one file", "5GB"),
        CLI_FN("format", &j.format, parse_format, "safetensors|bin", "output format", "safetensors"),
        CLI_FLAG("no-verify", &no_verify, "do not reopen the output and compare every tensor with the input"),
        CLI_FLAG("no-crc", &j.skip_crc, "skip the CRC check of large .bin entries of IN"),
    };
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "IN OUT [--dtype bf16|f16|f32] [--shard-size 5GB] [--format safetensors|bin]\n"
                 "[--no-verify] [--no-crc]",
        .about = "  IN   checkpoint: a model directory, a .bin/.safetensors file or a *.index.json\n"
                 "  OUT  output directory (created; must be empty if it exists)\n"
                 "Rewrites IN as an HF model directory: the weights as safetensors (or torch.save .bin shards),\n"
                 "the small files of an input directory (config.json, tokenizer files) copied; then reopens OUT and\n"
                 "compares every tensor with IN (bit for bit, or with IN cast the same way).",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 2,
        .max_pos = 2,
    };
    char **pos = NULL;
    int n_pos = 0;
    const int rc = cli_parse(&cmd, argc, argv, &pos, &n_pos);
    if (rc != CLI_RUN) return rc;
    j.in = pos[0];
    j.out = pos[1];
    j.verify = !no_verify;
    lisa_convert_report rep;
    const lisa_status s = lisa_convert_run(&j, &rep);
    if (s != LISA_OK) return cli_fail(NAME, NULL, s);
    printf("lisa convert: %lld tensors from %s written to %s (%s%s%s)%s\n", (long long)rep.n_tensors, j.in, j.out,
           rep.format, rep.cast ? ", cast to " : "", rep.cast ? rep.cast : "", rep.verified ? "; verified" : "");
    return 0;
}
