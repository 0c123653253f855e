/* tools/cmd_tokenize.c — `lisa tokenize --model DIR`: JSON lines in, JSON lines out (the protocol
 * and the work are jobs/tokenize.c). Exit 0; 1 if the tokenizer cannot be loaded; 2 on a usage
 * error. */
#include "cli_args.h"
#include "jobs/tokenize.h"
#include "lisa.h"
#include "tools/commands.h"

#include <stdio.h>

static const char *const NAME = "tokenize";

int lisa_cmd_tokenize(int argc, char **argv) {
    lisa_tokenize_job j = {.legacy = -1};
    const cli_opt opts[] = {
        CLI_STR("model", &j.model_dir, "DIR",
                "holds tokenizer.model, added_tokens.json, special_tokens_map.json,\ntokenizer_config.json"),
        CLI_STR("sp-model", &j.sp_model, "PATH", "take tokenizer.model from elsewhere"),
        CLI_INT_D("legacy", &j.legacy, 0, 1, "0|1", "override tokenizer_config.json's `legacy`",
                  "from tokenizer_config.json"),
    };
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--model DIR [--sp-model PATH] [--legacy 0|1]",
        .about = "Reads one JSON object per line on stdin and prints one per line:\n"
                 "  {\"text\": S, \"add_special_tokens\": B}      encode (B defaults to true)\n"
                 "  {\"prompt\": S, \"image\": true}              tokenizer_image_token (\"<image>\" -> -200)\n"
                 "  {\"query\": S, \"use_mm_start_end\": B}       chat.py's llava_v1 prompt for S, encoded\n"
                 "  {\"ids\": [..], \"skip_special_tokens\": B,   decode (B defaults to false;\n"
                 "   \"chat_cleanup\": C}                        C: chat.py's newline/double-space cleanup)\n"
                 "Output: {\"ids\": [..], \"tokens\": [..]} or {\"text\": S}; errors as {\"error\": S}.",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
    };
    const int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    if (!j.model_dir && !j.sp_model) return cli_usage_error(&cmd, "--model DIR is required");
    const lisa_status s = lisa_tokenize_job_run(&j, stdin, stdout);
    return s == LISA_OK ? 0 : cli_fail(NAME, NULL, s);
}
