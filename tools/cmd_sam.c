/* tools/cmd_sam.c — `lisa sam`: SAM alone, prompted by text embeddings as LISA prompts it (the run
 * is jobs/sam.c). One mask per embedding, named as in `lisa segment` (mask.png, mask_1.png, ...).
 * Exit: 0 ok, 1 runtime failure, 2 usage error. */
#include "cli_args.h"
#include "jobs/sam.h"
#include "lisa.h"
#include "tools/cli_masks.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAME = "sam";

int lisa_cmd_sam(int argc, char **argv) {
    const char *image = NULL, *out = NULL, *overlay = NULL;
    bool json = false;
    lisa_sam_job job = {.backend = LISA_BACKEND_AUTO};
    const cli_opt opts[] = {
        CLI_STR_REQ("model", &job.model, "PATH",
                    "a LISA checkpoint directory (model.visual_model.*) or a segment-anything\n"
                    "safetensors file (image_encoder.*, prompt_encoder.*, mask_decoder.*)"),
        CLI_STR_REQ("image", &image, "FILE", "the image (PNG or JPEG)"),
        CLI_STR_REQ("text-embedding", &job.text_embedding, "FILE", "safetensors with `text_embeds` F32 [N, 1, D] or [N, D]"),
        CLI_STR("out", &out, "FILE", "mask i as a 0/255 PNG: FILE, then <stem>_1.png, ..."),
        CLI_STR("overlay", &overlay, "FILE", "the image with mask i tinted red (chat.py), numbered the same way"),
        CLI_FLAG("json", &json,
                 "print {masks: [{index, rle: {size, counts}, bbox, area, score, file,\noverlay}], timings}"),
        CLI_BACKEND("backend", &job.backend),
        CLI_INT_D("threads", &job.n_threads, 0, 4096, "N", "CPU threads (0: all cores)", "all cores"),
    };
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--model PATH --image FILE --text-embedding FILE [--out mask.png] [--overlay FILE]\n"
                 "[--json] [options]",
        .about = "Runs SAM alone: image encoder, prompt encoder with each text embedding as the sparse prompt,\n"
                 "mask decoder (mask 0), postprocess to the image size; mask = logit > 0. CPU backend only.",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
    };
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    if ((out && !cli_output_dir_ok(NAME, out)) || (overlay && !cli_output_dir_ok(NAME, overlay))) return 1;

    uint8_t *rgb = NULL;
    lisa_status s = lisa_rgb_load_file(image, 0, &rgb, &job.height, &job.width);
    if (s != LISA_OK) return cli_fail(NAME, NULL, s);
    job.rgb = rgb;
    if (job.backend == LISA_BACKEND_AUTO) fprintf(stderr, "lisa sam: backend auto: cpu\n");
    lisa_result *r = NULL;
    s = lisa_sam_job_run(&job, &r);
    if (s != LISA_OK) {
        lisa_free(rgb);
        return cli_fail(NAME, NULL, s);
    }
    const int32_t n = lisa_result_n_masks(r);
    cli_written written = {0};
    char(*paths)[2][CLI_PATH_MAX] = calloc((size_t)(n ? n : 1), sizeof *paths);
    if (!paths) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    for (int32_t i = 0; s == LISA_OK && i < n; i++)
        s = cli_write_mask(&written, out, overlay, r, i, rgb, paths[i][0], paths[i][1]);
    cJSON *root = NULL;
    if (s == LISA_OK && json) {
        char *text = NULL;
        s = lisa_result_to_json(r, LISA_JSON_TIMINGS, &text);
        if (s == LISA_OK && !(root = cJSON_Parse(text))) s = lisa_fail(LISA_ERR_OOM, "out of memory reading the JSON");
        lisa_free(text);
        if (s == LISA_OK) { /* SAM alone: no answer, no tokens */
            cJSON_DeleteItemFromObjectCaseSensitive(root, "answer");
            cJSON_DeleteItemFromObjectCaseSensitive(root, "n_tokens");
        }
    }
    for (int32_t i = 0; s == LISA_OK && i < n; i++) {
        if (root) {
            cJSON *o = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "masks"), i);
            if (paths[i][0][0]) cJSON_AddStringToObject(o, "file", paths[i][0]);
            if (paths[i][1][0]) cJSON_AddStringToObject(o, "overlay", paths[i][1]);
            continue;
        }
        int32_t h, w;
        const uint8_t *m = lisa_result_mask(r, i, &h, &w);
        size_t area = 0;
        for (size_t k = 0; k < (size_t)h * w; k++)
            area += m[k] != 0;
        printf("mask %d: %zu of %d x %d pixels (%.1f%%), score %.3f%s%s%s%s\n", i, area, w, h,
               100.0 * (double)area / ((double)h * w), lisa_result_mask_score(r, i), paths[i][0][0] ? ", " : "",
               paths[i][0], paths[i][1][0] ? ", overlay " : "", paths[i][1]);
    }
    if (s == LISA_OK && root) {
        char *txt = cJSON_PrintUnformatted(root);
        if (txt)
            printf("%s\n", txt);
        else
            s = lisa_fail(LISA_ERR_OOM, "out of memory printing the JSON");
        free(txt);
    }
    rc = 0;
    if (s != LISA_OK) {
        cli_written_remove_all(&written);
        rc = cli_fail(NAME, NULL, s);
    }
    cJSON_Delete(root);
    free(paths);
    cli_written_free(&written);
    lisa_result_free(r);
    lisa_free(rgb);
    return rc;
}
