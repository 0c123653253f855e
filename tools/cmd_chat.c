/* tools/cmd_chat.c — `lisa chat`: LISA's chat.py loop with the model loaded once (issue #17). Asks
 * for a query and an image path (empty: the previous image), prints the answer, writes masks and
 * overlays to --out-dir; further queries on an image reuse its encoding and KV prefix. Ctrl-D ends
 * it. The loop is jobs/chat.c. Exit: 0 ok, 1 runtime failure, 2 usage error. */
#include "cli_args.h"
#include "jobs/chat.h"
#include "lisa.h"
#include "tools/commands.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const NAME = "chat";

int lisa_cmd_chat(int argc, char **argv) {
    const char *model_dir = NULL, *out_dir = "./vis_output";
    lisa_model_params mp = lisa_model_default_params();
    lisa_segment_params sp = lisa_segment_default_params();
    lisa_engine_params ep = lisa_engine_default_params();
    int64_t image_mib = ep.image_cache_bytes >> 20;
    const cli_opt opts[] = {
        CLI_STR_REQ("model", &model_dir, "DIR", "a LISA checkpoint directory"),
        CLI_STR_D("vision-tower", &mp.vision_tower, "DIR", "the CLIP directory (default: as `lisa segment`)", ""),
        CLI_STR("out-dir", &out_dir, "DIR", "where masks and overlays go (created; chat.py's vis_output)"),
        CLI_INT("max-new-tokens", &sp.max_new_tokens, 1, 1 << 20, "N", "generation limit (as chat.py)"),
        CLI_I64("image-cache-mib", &image_mib, 0, 1 << 24, "N",
                "images kept encoded for reuse (0: every query encodes its image)"),
        CLI_BACKEND("backend", &mp.backend),
        CLI_INT_D("threads", &mp.n_threads, 0, 4096, "N", "CPU threads (0: all cores)", "all cores"),
    };
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--model DIR [--out-dir DIR] [options]",
        .about = "LISA's chat.py with the model loaded once. Each turn asks for a query, then an image path (press\n"
                 "Enter to ask about the previous image again), prints the answer and saves each [SEG]'s mask and\n"
                 "overlay as <out-dir>/<image stem>_q<turn>_mask_<i>.png and _masked_img_<i>.png. A further query\n"
                 "on the same image reuses its CLIP + SAM encoding and its prompt prefix: only the new query's\n"
                 "tokens are computed. Ctrl-D (end of input) ends the conversation; input may be piped in.",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
        .notes = "Exit status: 0 ok, 1 runtime failure (the library's message on stderr), 2 usage error.",
    };
    const int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "lisa chat: cannot create %s: %s\n", out_dir, strerror(errno));
        return 1;
    }
    lisa_model *m = NULL;
    lisa_status s = cli_model_load(NAME, model_dir, &mp, &m);
    if (s != LISA_OK) return cli_fail(NAME, NULL, s);
    ep.max_batch = 1;
    ep.max_images = 1;
    ep.n_workers = 1;
    ep.image_cache_bytes = image_mib << 20;
    lisa_engine *e = NULL;
    s = lisa_engine_create(m, &ep, &e);
    if (s != LISA_OK) {
        lisa_model_free(m);
        return cli_fail(NAME, "creating the engine", s);
    }
    lisa_chat_params cp = {.engine = e, .in = stdin, .out = stdout, .err = stderr, .out_dir = out_dir, .seg = sp};
    lisa_chat_stats st;
    s = lisa_chat_run(&cp, &st);
    fprintf(stderr, "lisa chat: %lld quer%s on %lld image%s (%lld encoded, the rest reused), %lld files written\n",
            (long long)st.queries, st.queries == 1 ? "y" : "ies", (long long)st.images, st.images == 1 ? "" : "s",
            (long long)st.encoded, (long long)st.files);
    lisa_engine_free(e);
    lisa_model_free(m);
    return s == LISA_OK ? 0 : cli_fail(NAME, NULL, s);
}
