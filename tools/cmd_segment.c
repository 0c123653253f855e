/* tools/cmd_segment.c — `lisa segment`: one image + one query through the whole LISA model (chat.py
 * semantics); prints the answer, writes each [SEG]'s mask and overlay, or prints everything as JSON
 * with COCO RLE masks.
 *
 * Outputs: mask i goes to --out for i = 0 and to "<stem>_<i><ext>" for i >= 1 (mask.png,
 * mask_1.png, ...), the same for --overlay. Masks are 8-bit gray PNGs, 255 = object (chat.py writes
 * mask*100 as JPEG; a lossless 0/255 PNG is what annotation tools read). Overlays are chat.py's
 * 50 % red tint, as PNG. Every file is written atomically; if any write fails the files written so
 * far are removed. With no [SEG] in the answer no file is written (exit 0).
 * Exit: 0 ok, 1 runtime failure (the library's message on stderr), 2 usage error. */
#include "cli_args.h"
#include "lisa.h"
#include "loader/image.h"
#include "runtime/result_json.h"
#include "tools/cli_masks.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: lisa segment --model DIR --image FILE --query TEXT [--out mask.png] [--overlay overlay.png]\n"
               "                    [--json] [--vision-tower DIR] [--max-new-tokens N] [--backend cpu] [--threads N]\n"
               "                    [--tp N]\n"
               "\n"
               "Runs LISA on one image (PNG or JPEG) and one query, greedy decoding as chat.py does.\n"
               "  --model DIR          a LISA checkpoint directory (config.json, tokenizer files, weights)\n"
               "  --vision-tower DIR   the CLIP directory (default: config.json's vision_tower, found as a\n"
               "                       directory, inside DIR, or in the Hugging Face cache)\n"
               "  --out FILE           write each [SEG]'s mask as a 0/255 PNG: FILE, then <stem>_1.png, ...\n"
               "  --overlay FILE       write the image with each mask tinted red (chat.py): FILE, <stem>_1.png, ...\n"
               "  --json               print one JSON object: answer, text_output, token ids, masks as COCO RLE\n"
               "                       ({rle: {size, counts}, bbox, area, score}), timings\n"
               "  --max-new-tokens N   generation limit (default 512, as chat.py)\n"
               "  --backend cpu        compute backend (cpu; auto picks the best available)\n"
               "  --threads N          CPU threads (default: all cores)\n"
               "  --tp N               tensor parallelism over N MPI ranks (mpirun -np N lisa segment --tp N ...);\n"
               "                       rank 0 writes the outputs\n");
}

static int fail(const char *what, lisa_status s) {
    fprintf(stderr, "lisa segment: %s%s%s: %s\n", what ? what : "", what ? ": " : "", lisa_status_name(s),
            lisa_last_error());
    return 1;
}

int lisa_cmd_segment(int argc, char **argv) {
    const char *model_dir = NULL, *image = NULL, *query = NULL, *out = NULL, *overlay = NULL;
    bool json = false;
    lisa_model_params mp = lisa_model_default_params();
    lisa_segment_params sp = lisa_segment_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
        int v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model") && has) {
            model_dir = argv[++i];
        } else if (!strcmp(a, "--vision-tower") && has) {
            mp.vision_tower = argv[++i];
        } else if (!strcmp(a, "--image") && has) {
            image = argv[++i];
        } else if (!strcmp(a, "--query") && has) {
            query = argv[++i];
        } else if (!strcmp(a, "--out") && has) {
            out = argv[++i];
        } else if (!strcmp(a, "--overlay") && has) {
            overlay = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--max-new-tokens") && has) {
            if (!cli_parse_int(argv[++i], 1, 1 << 20, &v)) {
                fprintf(stderr, "lisa segment: --max-new-tokens needs a positive integer\n");
                return 2;
            }
            sp.max_new_tokens = v;
        } else if (!strcmp(a, "--tp") && has) {
            if (!cli_parse_int(argv[++i], 1, 4096, &v)) {
                fprintf(stderr, "lisa segment: --tp needs an integer >= 1\n");
                return 2;
            }
            mp.tensor_parallel = v;
        } else if (!strcmp(a, "--threads") && has) {
            if (!cli_parse_int(argv[++i], 0, 4096, &v)) {
                fprintf(stderr, "lisa segment: --threads needs an integer >= 0\n");
                return 2;
            }
            mp.n_threads = v;
        } else if (!strcmp(a, "--backend") && has) {
            const char *b = argv[++i];
            if (!cli_parse_backend(b, &mp.backend)) {
                fprintf(stderr, "lisa segment: --backend must be cpu, cuda or auto (got '%s')\n", b);
                return 2;
            }
        } else {
            fprintf(stderr, "lisa segment: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model_dir || !image || !query) {
        fprintf(stderr, "lisa segment: --model, --image and --query are required\n\n");
        usage(stderr);
        return 2;
    }
    if ((out && !cli_output_dir_ok("segment", out)) || (overlay && !cli_output_dir_ok("segment", overlay))) return 1;

    /* the image first: a bad path fails before a (possibly large) model is loaded */
    lisa_image_limits lim = lisa_image_default_limits();
    lim.max_pixels = sp.max_image_pixels;
    lisa_bitmap img;
    lisa_status s = lisa_image_load(&img, image, &lim);
    if (s != LISA_OK) return fail(NULL, s);
    lisa_model *m = NULL;
    s = lisa_model_load(model_dir, &mp, &m);
    if (s != LISA_OK) {
        lisa_bitmap_free(&img);
        return fail(NULL, s);
    }
    if (lisa_model_tp_rank(m) != 0) { /* a TP follower: serves rank 0's steps, writes nothing */
        lisa_bitmap_free(&img);
        s = lisa_model_tp_follow(m);
        lisa_model_free(m);
        return s == LISA_OK ? 0 : fail(NULL, s);
    }
    lisa_result *r = NULL;
    s = lisa_segment(m, img.data, img.h, img.w, query, &sp, &r);
    if (s != LISA_OK) {
        lisa_model_free(m);
        lisa_bitmap_free(&img);
        return fail(NULL, s);
    }

    const int32_t n = lisa_result_n_masks(r);
    cli_written written = {0};
    /* the library's JSON (answer, tokens, text_output, masks as COCO RLE, timings), plus the CLI's
     * own members: seg_token_id, image, and each mask's file / overlay */
    cJSON *root = NULL, *masks = NULL;
    if (json) {
        s = lisa_result_json(&root, r, LISA_JSON_TOKENS | LISA_JSON_TEXT_OUTPUT | LISA_JSON_TIMINGS);
        if (s == LISA_OK) {
            cJSON_AddNumberToObject(root, "seg_token_id", lisa_model_seg_token_id(m));
            cJSON *im = cJSON_AddObjectToObject(root, "image");
            cJSON_AddStringToObject(im, "path", image);
            cJSON_AddNumberToObject(im, "height", img.h);
            cJSON_AddNumberToObject(im, "width", img.w);
            masks = cJSON_GetObjectItemCaseSensitive(root, "masks");
        }
    } else {
        printf("%s\n", lisa_result_answer(r));
    }
    /* files first (all or nothing), then the report */
    char(*paths)[2][CLI_PATH_MAX] = calloc((size_t)(n ? n : 1), sizeof *paths);
    if (!paths) s = LISA_ERR_OOM;
    for (int32_t i = 0; i < n && s == LISA_OK; i++) {
        int32_t h, w;
        const uint8_t *mask = lisa_result_mask(r, i, &h, &w);
        s = cli_write_mask(&written, out, overlay, img.data, mask, h, w, i, paths[i][0], paths[i][1]);
    }
    for (int32_t i = 0; i < n && s == LISA_OK; i++) {
        int32_t h, w;
        const uint8_t *mask = lisa_result_mask(r, i, &h, &w);
        const char *mpath = paths[i][0], *opath = paths[i][1];
        if (root) {
            cJSON *o = cJSON_GetArrayItem(masks, i);
            if (mpath[0]) cJSON_AddStringToObject(o, "file", mpath);
            if (opath[0]) cJSON_AddStringToObject(o, "overlay", opath);
        } else {
            size_t area = 0;
            for (size_t k = 0; k < (size_t)h * w; k++)
                area += mask[k] != 0;
            printf("mask %d: %zu of %d x %d pixels (%.1f%%), score %.3f%s%s%s%s\n", i, area, w, h,
                   100.0 * (double)area / ((double)h * w), lisa_result_mask_score(r, i), mpath[0] ? ", " : "", mpath,
                   opath[0] ? ", overlay " : "", opath);
        }
    }
    free(paths);
    int rc = 0;
    if (s != LISA_OK) {
        cli_written_remove_all(&written);
        rc = fail("writing the masks", s);
    } else if (root) {
        char *txt = cJSON_PrintUnformatted(root);
        if (!txt) {
            cli_written_remove_all(&written);
            fprintf(stderr, "lisa segment: out of memory printing JSON\n");
            rc = 1;
        } else {
            printf("%s\n", txt);
            free(txt);
        }
    }
    if (rc == 0 && n == 0) fprintf(stderr, "lisa segment: the answer has no [SEG]: no mask was produced\n");
    cJSON_Delete(root);
    cli_written_free(&written);
    lisa_result_free(r);
    lisa_model_free(m);
    lisa_bitmap_free(&img);
    return rc;
}
