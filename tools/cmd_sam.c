/* tools/cmd_sam.c — `lisa sam`: SAM alone, prompted by text embeddings as LISA prompts it (issue #4).
 * The embeddings come from a safetensors file holding `text_embeds` F32 [N, 1, D] or [N, D]
 * (D = SAM's prompt dim, LISA's out_dim); one mask per embedding, named as in `lisa segment`
 * (mask.png, mask_1.png, ...). Exit: 0 ok, 1 runtime failure, 2 usage error. */
#include "cli_args.h"
#include "lisa.h"
#include "loader/checkpoint.h"
#include "loader/image.h"
#include "models/sam_predict.h"
#include "runtime/result_json.h"
#include "tools/cli_masks.h"
#include "tools/commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: lisa sam --model PATH --image FILE --text-embedding FILE [--out mask.png] [--overlay FILE]\n"
               "                [--json] [--threads N]\n"
               "\n"
               "Runs SAM alone: image encoder, prompt encoder with each text embedding as the sparse prompt,\n"
               "mask decoder (mask 0), postprocess to the image size; mask = logit > 0.\n"
               "  --model PATH            a LISA checkpoint directory (model.visual_model.*) or a segment-anything\n"
               "                          safetensors file (image_encoder.*, prompt_encoder.*, mask_decoder.*)\n"
               "  --text-embedding FILE   safetensors with `text_embeds` F32 [N, 1, D] or [N, D]\n"
               "  --out FILE              mask i as a 0/255 PNG: FILE, then <stem>_1.png, ...\n"
               "  --overlay FILE          the image with mask i tinted red (chat.py), numbered the same way\n"
               "  --json                  print {masks: [{rle: {size, counts}, bbox, area, score}], timings}\n"
               "  --threads N             CPU threads (default: all cores)\n");
}

static int fail(lisa_status s) {
    fprintf(stderr, "lisa sam: %s: %s\n", lisa_status_name(s), lisa_last_error());
    return 1;
}

/* Copies text_embeds out of the file into a malloc'd F32 [n, dim] array. */
static int read_embeds(const char *path, int32_t dim, float **out, int32_t *n) {
    lisa_checkpoint *ck = NULL;
    lisa_status s = lisa_checkpoint_open(&ck, path);
    if (s != LISA_OK) return fail(s);
    const lisa_ckpt_tensor *t = lisa_checkpoint_find(ck, "text_embeds");
    int rc = 0;
    if (!t) {
        fprintf(stderr, "lisa sam: LISA_ERR_NOT_FOUND: %s: no tensor 'text_embeds'\n", path);
        rc = 1;
    } else if (t->dtype != LISA_DTYPE_F32) {
        fprintf(stderr, "lisa sam: LISA_ERR_FORMAT: %s: text_embeds is %s, F32 expected\n", path,
                lisa_dtype_name(t->dtype));
        rc = 1;
    } else if (!((t->n_dims == 3 && t->shape[1] == 1 && t->shape[2] == dim) ||
                 (t->n_dims == 2 && t->shape[1] == dim)) ||
               t->shape[0] < 1 || t->shape[0] > 4096) {
        lisa_tensor v = lisa_ckpt_tensor_view(t);
        char buf[96];
        fprintf(stderr,
                "lisa sam: LISA_ERR_SHAPE: %s: text_embeds is %s; [N, 1, %d] or [N, %d] with 1 <= N <= 4096 expected\n",
                path, lisa_tensor_shape_str(&v, buf, sizeof buf), dim, dim);
        rc = 1;
    } else {
        *n = (int32_t)t->shape[0];
        *out = malloc(t->nbytes);
        if (!*out) {
            fprintf(stderr, "lisa sam: out of memory\n");
            rc = 1;
        } else {
            memcpy(*out, t->data, t->nbytes);
        }
    }
    lisa_checkpoint_close(ck);
    return rc;
}

int lisa_cmd_sam(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *emb_path = NULL, *out = NULL, *overlay = NULL;
    bool json = false;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model") && has) {
            model = argv[++i];
        } else if (!strcmp(a, "--image") && has) {
            image = argv[++i];
        } else if (!strcmp(a, "--text-embedding") && has) {
            emb_path = argv[++i];
        } else if (!strcmp(a, "--out") && has) {
            out = argv[++i];
        } else if (!strcmp(a, "--overlay") && has) {
            overlay = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--threads") && has) {
            if (!cli_parse_int(argv[++i], 0, 4096, &threads)) {
                fprintf(stderr, "lisa sam: --threads needs an integer >= 0\n");
                return 2;
            }
        } else {
            fprintf(stderr, "lisa sam: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || !image || !emb_path) {
        fprintf(stderr, "lisa sam: --model, --image and --text-embedding are required\n\n");
        usage(stderr);
        return 2;
    }
    if ((out && !cli_output_dir_ok("sam", out)) || (overlay && !cli_output_dir_ok("sam", overlay))) return 1;

    lisa_bitmap img;
    lisa_status s = lisa_image_load(&img, image, NULL);
    if (s != LISA_OK) return fail(s);
    lisa_sam_predictor *p = NULL;
    s = lisa_sam_predictor_load(&p, model, threads);
    if (s != LISA_OK) {
        lisa_bitmap_free(&img);
        return fail(s);
    }
    float *emb = NULL;
    int32_t n = 0;
    int rc = read_embeds(emb_path, lisa_sam_predictor_model(p)->dec.dim, &emb, &n);
    lisa_sam_timings t = {0};
    lisa_sam_masks mk = {0};
    if (rc == 0) {
        s = lisa_sam_predictor_set_image(p, img.data, img.h, img.w, &t);
        if (s == LISA_OK) s = lisa_sam_predictor_predict(&mk, p, emb, n, false);
        if (s != LISA_OK) rc = fail(s);
    }
    cli_written written = {0};
    char(*paths)[2][CLI_PATH_MAX] = rc == 0 ? calloc((size_t)n, sizeof *paths) : NULL;
    if (rc == 0 && !paths) rc = fail(LISA_ERR_OOM);
    for (int32_t i = 0; rc == 0 && i < n; i++) {
        s = cli_write_mask(&written, out, overlay, img.data, mk.masks + (size_t)i * mk.h * mk.w, mk.h, mk.w, i,
                           paths[i][0], paths[i][1]);
        if (s != LISA_OK) {
            cli_written_remove_all(&written);
            rc = fail(s);
        }
    }
    if (rc == 0) {
        cJSON *root = json ? cJSON_CreateObject() : NULL, *masks = root ? cJSON_AddArrayToObject(root, "masks") : NULL;
        for (int32_t i = 0; i < n && rc == 0; i++) {
            const uint8_t *m = mk.masks + (size_t)i * mk.h * mk.w;
            if (root) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddItemToArray(masks, o);
                cJSON_AddNumberToObject(o, "index", i);
                if ((s = lisa_json_add_rle(o, m, mk.h, mk.w)) != LISA_OK) rc = fail(s);
                cJSON_AddNumberToObject(o, "score", mk.scores[i]);
                if (paths[i][0][0]) cJSON_AddStringToObject(o, "file", paths[i][0]);
                if (paths[i][1][0]) cJSON_AddStringToObject(o, "overlay", paths[i][1]);
            } else {
                size_t area = 0;
                for (size_t k = 0; k < (size_t)mk.h * mk.w; k++)
                    area += m[k] != 0;
                printf("mask %d: %zu of %d x %d pixels (%.1f%%), score %.3f%s%s%s%s\n", i, area, mk.w, mk.h,
                       100.0 * (double)area / ((double)mk.h * mk.w), mk.scores[i], paths[i][0][0] ? ", " : "",
                       paths[i][0], paths[i][1][0] ? ", overlay " : "", paths[i][1]);
            }
        }
        if (root && rc == 0) {
            cJSON *tj = cJSON_AddObjectToObject(root, "timings");
            cJSON_AddNumberToObject(tj, "preprocess_ms", t.preprocess_ms);
            cJSON_AddNumberToObject(tj, "encoder_ms", t.encoder_ms);
            char *txt = cJSON_PrintUnformatted(root);
            if (txt)
                printf("%s\n", txt);
            else
                rc = fail(LISA_ERR_OOM);
            free(txt);
        }
        if (rc != 0) cli_written_remove_all(&written);
        cJSON_Delete(root);
    }
    free(paths);
    cli_written_free(&written);
    lisa_sam_masks_free(&mk);
    free(emb);
    lisa_sam_predictor_free(p);
    lisa_bitmap_free(&img);
    return rc;
}
