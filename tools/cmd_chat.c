/* tools/cmd_chat.c — `lisa chat`: LISA's chat.py loop with the model loaded once (issue #17). Asks
 * for a query and an image path (empty: the previous image), prints the answer, writes masks and
 * overlays to --out-dir; further queries on an image reuse its encoding and KV prefix. Ctrl-D ends
 * it. The loop is jobs/chat.c. Exit: 0 ok, 1 runtime failure, 2 usage error. */
#include "cli_args.h"
#include "lisa.h"
#include "jobs/chat.h"
#include "tools/commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f, "usage: lisa chat --model DIR [--vision-tower DIR] [--out-dir DIR] [--max-new-tokens N]\n"
               "                 [--image-cache-mib N] [--backend cpu|cuda|auto] [--threads N]\n"
               "\n"
               "LISA's chat.py with the model loaded once. Each turn asks for a query, then an image path (press\n"
               "Enter to ask about the previous image again), prints the answer and saves each [SEG]'s mask and\n"
               "overlay as <out-dir>/<image stem>_q<turn>_mask_<i>.png and _masked_img_<i>.png. A further query on\n"
               "the same image reuses its CLIP + SAM encoding and its prompt prefix: only the new query's tokens\n"
               "are computed. Ctrl-D (end of input) ends the conversation; input may be piped in.\n"
               "  --model DIR          a LISA checkpoint directory\n"
               "  --vision-tower DIR   the CLIP directory (default: as `lisa segment`)\n"
               "  --out-dir DIR        where masks and overlays go (default ./vis_output, as chat.py; created)\n"
               "  --max-new-tokens N   generation limit (default 512, as chat.py)\n"
               "  --image-cache-mib N  images kept for reuse (default 256; 0: every query encodes its image)\n"
               "  --backend cpu|cuda|auto, --threads N   as `lisa segment`\n");
}

int lisa_cmd_chat(int argc, char **argv) {
    const char *model_dir = NULL, *out_dir = "./vis_output";
    lisa_model_params mp = lisa_model_default_params();
    lisa_segment_params sp = lisa_segment_default_params();
    lisa_engine_params ep = lisa_engine_default_params();
    enum { O_MODEL = 1, O_VT, O_OUT, O_MAXNEW, O_CACHE, O_BACKEND, O_THREADS, O_HELP };
    static const struct option opts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"vision-tower", required_argument, NULL, O_VT},
        {"out-dir", required_argument, NULL, O_OUT},
        {"max-new-tokens", required_argument, NULL, O_MAXNEW},
        {"image-cache-mib", required_argument, NULL, O_CACHE},
        {"backend", required_argument, NULL, O_BACKEND},
        {"threads", required_argument, NULL, O_THREADS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    optind = 1;
    int c, v;
    int64_t mib;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model_dir = optarg; break;
        case O_VT: mp.vision_tower = optarg; break;
        case O_OUT: out_dir = optarg; break;
        case O_MAXNEW:
            if (!cli_parse_int(optarg, 1, 1 << 20, &v))
                return fprintf(stderr, "lisa chat: --max-new-tokens needs an integer in 1..%d (got '%s')\n", 1 << 20,
                               optarg),
                       2;
            sp.max_new_tokens = v;
            break;
        case O_CACHE:
            if (!cli_parse_i64(optarg, 0, 1 << 24, &mib))
                return fprintf(stderr, "lisa chat: --image-cache-mib needs an integer in 0..%d (got '%s')\n", 1 << 24,
                               optarg),
                       2;
            ep.image_cache_bytes = mib << 20;
            break;
        case O_BACKEND:
            if (!cli_parse_backend(optarg, &mp.backend))
                return fprintf(stderr, "lisa chat: --backend must be cpu, cuda or auto (got '%s')\n", optarg), 2;
            break;
        case O_THREADS:
            if (!cli_parse_int(optarg, 0, 4096, &v))
                return fprintf(stderr, "lisa chat: --threads needs an integer in 0..4096 (got '%s')\n", optarg), 2;
            mp.n_threads = v;
            break;
        case 'h':
        case O_HELP: usage(stdout); return 0;
        default:
            fprintf(stderr, "lisa chat: unknown or incomplete option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lisa chat: unexpected argument '%s'\n\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!model_dir) {
        fprintf(stderr, "lisa chat: --model is required\n\n");
        usage(stderr);
        return 2;
    }
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "lisa chat: cannot create %s: %s\n", out_dir, strerror(errno));
        return 1;
    }
    lisa_model *m = NULL;
    if (lisa_model_load(model_dir, &mp, &m) != LISA_OK) {
        fprintf(stderr, "lisa chat: %s\n", lisa_last_error());
        return 1;
    }
    ep.max_batch = 1;
    ep.max_images = 1;
    ep.n_workers = 1;
    lisa_engine *e = NULL;
    if (lisa_engine_create(m, &ep, &e) != LISA_OK) {
        fprintf(stderr, "lisa chat: creating the engine: %s\n", lisa_last_error());
        lisa_model_free(m);
        return 1;
    }
    lisa_chat_params cp = {.engine = e, .in = stdin, .out = stdout, .err = stderr, .out_dir = out_dir, .seg = sp};
    lisa_chat_stats st;
    const lisa_status s = lisa_chat_run(&cp, &st);
    if (s != LISA_OK) fprintf(stderr, "lisa chat: %s\n", lisa_last_error());
    fprintf(stderr, "lisa chat: %lld quer%s on %lld image%s (%lld encoded, the rest reused), %lld files written\n",
            (long long)st.queries, st.queries == 1 ? "y" : "ies", (long long)st.images, st.images == 1 ? "" : "s",
            (long long)st.encoded, (long long)st.files);
    lisa_engine_free(e);
    lisa_model_free(m);
    return s == LISA_OK ? 0 : 1;
}
