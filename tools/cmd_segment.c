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
#include "tools/cli_masks.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAME = "segment";

int lisa_cmd_segment(int argc, char **argv) {
    const char *model_dir = NULL, *image = NULL, *query = NULL, *out = NULL, *overlay = NULL;
    bool json = false;
    lisa_model_params mp = lisa_model_default_params();
    lisa_segment_params sp = lisa_segment_default_params();
    const cli_opt opts[] = {
        CLI_STR_REQ("model", &model_dir, "DIR", "a LISA checkpoint directory (config.json, tokenizer, weights)"),
        CLI_STR_REQ("image", &image, "FILE", "the image (PNG or JPEG; EXIF orientation applied, as cv2.imread)"),
        CLI_STR_REQ("query", &query, "TEXT", "the question or instruction"),
        CLI_STR("out", &out, "FILE", "write each [SEG]'s mask as a 0/255 PNG: FILE, then <stem>_1.png, ..."),
        CLI_STR("overlay", &overlay, "FILE",
                "write the image with each mask tinted red (chat.py): FILE, then\n<stem>_1.png, ..."),
        CLI_FLAG("json", &json,
                 "print one JSON object: answer, text_output, token ids, masks as COCO RLE\n"
                 "({rle: {size, counts}, bbox, area, score, file, overlay}), timings"),
        CLI_STR_D("vision-tower", &mp.vision_tower, "DIR",
                  "the CLIP directory (default: config.json's vision_tower, found as a\n"
                  "directory, inside DIR, or in the Hugging Face cache)",
                  ""),
        CLI_INT("max-new-tokens", &sp.max_new_tokens, 1, 1 << 20, "N", "generation limit (as chat.py)"),
        CLI_BACKEND("backend", &mp.backend),
        CLI_INT_D("threads", &mp.n_threads, 0, 4096, "N", "CPU threads (0: all cores)", "all cores"),
        CLI_INT("tp", &mp.tensor_parallel, 1, 4096, "N",
                "tensor parallelism over N MPI ranks (mpirun -np N lisa segment --tp N ...);\n"
                "rank 0 writes the outputs"),
    };
    mp.tensor_parallel = 1;
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--model DIR --image FILE --query TEXT [--out mask.png] [--overlay overlay.png]\n"
                 "[--json] [options]",
        .about = "Runs LISA on one image and one query, greedy decoding as chat.py does; prints the answer and\n"
                 "one line per mask (or --json). An answer without [SEG] writes no file (exit 0).",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
        .notes = "Exit status: 0 ok, 1 runtime failure (the library's message on stderr), 2 usage error.",
    };
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    if ((out && !cli_output_dir_ok(NAME, out)) || (overlay && !cli_output_dir_ok(NAME, overlay))) return 1;

    /* the image first: a bad path fails before a (possibly large) model is loaded */
    uint8_t *rgb = NULL;
    int32_t img_h = 0, img_w = 0;
    lisa_status s = lisa_rgb_load_file(image, sp.max_image_pixels, &rgb, &img_h, &img_w);
    if (s != LISA_OK) return cli_fail(NAME, NULL, s);
    lisa_model *m = NULL;
    s = cli_model_load(NAME, model_dir, &mp, &m);
    if (s != LISA_OK) {
        lisa_free(rgb);
        return cli_fail(NAME, NULL, s);
    }
    if (lisa_model_tp_rank(m) != 0) { /* a TP follower: serves rank 0's steps, writes nothing */
        lisa_free(rgb);
        s = lisa_model_tp_follow(m);
        lisa_model_free(m);
        return s == LISA_OK ? 0 : cli_fail(NAME, NULL, s);
    }
    lisa_result *r = NULL;
    s = lisa_segment(m, rgb, img_h, img_w, query, &sp, &r);
    if (s != LISA_OK) {
        lisa_model_free(m);
        lisa_free(rgb);
        return cli_fail(NAME, NULL, s);
    }

    const int32_t n = lisa_result_n_masks(r);
    cli_written written = {0};
    /* the library's JSON (answer, tokens, text_output, masks as COCO RLE, timings), plus the CLI's
     * own members: seg_token_id, image, and each mask's file / overlay */
    cJSON *root = NULL, *masks = NULL;
    if (json) {
        char *text = NULL;
        s = lisa_result_to_json(r, LISA_JSON_TOKENS | LISA_JSON_TEXT_OUTPUT | LISA_JSON_TIMINGS, &text);
        if (s == LISA_OK && !(root = cJSON_Parse(text))) s = lisa_fail(LISA_ERR_OOM, "out of memory reading the JSON");
        lisa_free(text);
        if (s == LISA_OK) {
            cJSON_AddNumberToObject(root, "seg_token_id", lisa_model_seg_token_id(m));
            cJSON *im = cJSON_AddObjectToObject(root, "image");
            cJSON_AddStringToObject(im, "path", image);
            cJSON_AddNumberToObject(im, "height", img_h);
            cJSON_AddNumberToObject(im, "width", img_w);
            masks = cJSON_GetObjectItemCaseSensitive(root, "masks");
        }
    } else {
        printf("%s\n", lisa_result_answer(r));
    }
    /* files first (all or nothing), then the report */
    char(*paths)[2][CLI_PATH_MAX] = calloc((size_t)(n ? n : 1), sizeof *paths);
    if (s == LISA_OK && !paths) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    for (int32_t i = 0; i < n && s == LISA_OK; i++)
        s = cli_write_mask(&written, out, overlay, r, i, rgb, paths[i][0], paths[i][1]);
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
    rc = 0;
    if (s != LISA_OK) {
        cli_written_remove_all(&written);
        rc = cli_fail(NAME, "writing the masks", s);
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
    lisa_free(rgb);
    return rc;
}
