/* tests/test_preprocess_pipeline.c — the SAM and CLIP input pipelines on the sample photos,
 * bit-exact against the reference stack, and the preprocessor_config.json loader.
 *
 * Golden data: tests/data/preprocess/photos.txt (tests/golden/gen_preprocess.py), made by running
 * LISA's own code: ResizeLongestSide(1024).apply_image + chat.py `preprocess` (torch 1.13.1,
 * torchvision 0.14.1, Pillow 9.4.0) for SAM, and transformers 4.31 CLIPImageProcessor().preprocess
 * for CLIP, on the image decoded by cv2.imread + BGR2RGB. Each f32 tensor is compared by CRC32 of
 * its exact little-endian bytes; the intermediate u8 images (resized, cropped) are compared too,
 * so a failure says which step differs, and sampled values are printed.
 */
#include "imgtest.h"
#include "loader/image.h"
#include "models/preprocessor_config.h"
#include "core/error.h"
#include "models/preprocess.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool contains(const char *hay, const char *needle) { return hay && needle && strstr(hay, needle) != NULL; }

static void load_photo(lisa_bitmap *img, const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "images/%s", name);
    char *path = it_data_path(rel);
    cr_assert_eq(lisa_image_load(img, path, NULL), LISA_OK, "%s", lisa_last_error());
    free(path);
}

/* Checks "index f32bits" samples after `p` against t (flat), logging mismatches. */
static void check_f32_samples(const char *what, const float *t, const char *p, int n) {
    for (int i = 0; i < n; i++) {
        long idx;
        unsigned bits;
        int used;
        cr_assert(sscanf(p, "%ld %x%n", &idx, &bits, &used) == 2);
        p += used;
        float ref;
        memcpy(&ref, &bits, 4);
        uint32_t got_bits;
        memcpy(&got_bits, &t[idx], 4);
        cr_expect_eq(got_bits, bits, "%s: element %ld = %.9g (0x%08x), reference %.9g (0x%08x)", what, idx,
                     (double)t[idx], got_bits, (double)ref, bits);
    }
}

Test(preprocess_pipeline, sam_matches_lisa_reference) {
    char *path = it_data_path("preprocess/photos.txt");
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 4, 1, 3, 1024, 1024);
    while (it_next_line(f, &line, &cap)) {
        char kind[16], name[128];
        int hr_ref, wr_ref, ns, off = 0;
        unsigned crc_resized, crc_tensor;
        if (sscanf(line, "%15s %127s %d %d %x %x %d%n", kind, name, &hr_ref, &wr_ref, &crc_resized, &crc_tensor, &ns,
                   &off) != 7 ||
            strcmp(kind, "sam") != 0)
            continue;
        lisa_bitmap img;
        load_photo(&img, name);
        lisa_sam_preprocess_params p = lisa_sam_preprocess_default_params();

        /* Step 1: ResizeLongestSide shape and the Pillow-bilinear u8 image. */
        int32_t hr, wr;
        lisa_sam_resize_shape(&hr, &wr, img.h, img.w, 1024);
        cr_expect(hr == hr_ref && wr == wr_ref, "%s: resize to %dx%d, reference %dx%d", name, hr, wr, hr_ref, wr_ref);
        uint8_t *resized = malloc((size_t)hr * wr * 3);
        size_t rws = lisa_resample_u8_workspace_size(hr, wr, img.h, img.w, 3, LISA_RESAMPLE_BILINEAR);
        void *ws = malloc(rws);
        cr_assert(resized && ws);
        cr_assert_eq(lisa_resample_u8(resized, hr, wr, img.data, img.h, img.w, 3, LISA_RESAMPLE_BILINEAR, ws, rws),
                     LISA_OK);
        cr_expect_eq(it_crc32(resized, (size_t)hr * wr * 3), crc_resized, "%s: resized u8 image differs", name);
        free(ws);
        free(resized);

        /* Step 2: the whole branch into a poisoned tensor. */
        tu_poison(&x);
        size_t need = lisa_sam_preprocess_workspace_size(&p, img.h, img.w);
        ws = malloc(need);
        cr_assert(ws);
        int32_t hr2 = 0, wr2 = 0;
        cr_assert_eq(lisa_sam_preprocess(&x, &hr2, &wr2, img.data, img.h, img.w, &p, ws, need), LISA_OK, "%s: %s",
                     name, lisa_last_error());
        cr_expect(hr2 == hr_ref && wr2 == wr_ref);
        uint32_t got = it_crc32(x.data, (size_t)3 * 1024 * 1024 * 4);
        cr_expect_eq(got, crc_tensor, "%s: SAM input tensor differs from LISA's (crc %08x, expected %08x)", name, got,
                     crc_tensor);
        check_f32_samples(name, x.data, line + off, ns);
        /* The pad is exactly 0.0 (not -0.0, not poison) on both sides of the boundary. */
        const float *ch2 = (const float *)x.data + 2 * 1024 * 1024;
        if (wr2 < 1024) cr_expect(ch2[(size_t)(hr2 - 1) * 1024 + wr2] == 0.0f && !signbit(ch2[wr2]));
        if (hr2 < 1024) cr_expect(ch2[(size_t)hr2 * 1024] == 0.0f);
        free(ws);
        lisa_bitmap_free(&img);
        n++;
    }
    lisa_tensor_free(&x);
    free(line);
    fclose(f);
    free(path);
    cr_expect_eq(n, 5);
}

Test(preprocess_pipeline, clip_matches_transformers) {
    char *path = it_data_path("preprocess/photos.txt");
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 3, 3, 224, 224, 0);
    const lisa_clip_preprocess_params p = lisa_clip_preprocess_default_params();
    while (it_next_line(f, &line, &cap)) {
        char kind[16], name[128];
        int rh_ref, rw_ref, ns, off = 0;
        unsigned crc_resized, crc_crop, crc_tensor;
        if (sscanf(line, "%15s %127s %d %d %x %x %x %d%n", kind, name, &rh_ref, &rw_ref, &crc_resized, &crc_crop,
                   &crc_tensor, &ns, &off) != 8 ||
            strcmp(kind, "clip") != 0)
            continue;
        lisa_bitmap img;
        load_photo(&img, name);
        int32_t rh, rw, oh, ow;
        lisa_clip_resize_shape(&rh, &rw, &p, img.h, img.w);
        lisa_clip_output_shape(&oh, &ow, &p, img.h, img.w);
        cr_expect(rh == rh_ref && rw == rw_ref, "%s: resize to %dx%d, reference %dx%d", name, rh, rw, rh_ref, rw_ref);
        cr_expect(oh == 224 && ow == 224);

        /* Intermediate u8 images: Pillow bicubic resize, then the floor center crop. */
        uint8_t *resized = malloc((size_t)rh * rw * 3), *crop = malloc(224 * 224 * 3);
        size_t rws = lisa_resample_u8_workspace_size(rh, rw, img.h, img.w, 3, LISA_RESAMPLE_BICUBIC);
        void *ws = malloc(rws);
        cr_assert(resized && crop && ws);
        cr_assert_eq(lisa_resample_u8(resized, rh, rw, img.data, img.h, img.w, 3, LISA_RESAMPLE_BICUBIC, ws, rws),
                     LISA_OK);
        cr_expect_eq(it_crc32(resized, (size_t)rh * rw * 3), crc_resized, "%s: resized u8 differs", name);
        const int top = (rh - 224) / 2, left = (rw - 224) / 2;
        for (int y = 0; y < 224; y++) memcpy(crop + y * 224 * 3, resized + ((size_t)(top + y) * rw + left) * 3, 224 * 3);
        cr_expect_eq(it_crc32(crop, 224 * 224 * 3), crc_crop, "%s: cropped u8 differs", name);
        free(ws);

        tu_poison(&x);
        size_t need = lisa_clip_preprocess_workspace_size(&p, img.h, img.w);
        ws = malloc(need);
        cr_assert(ws);
        cr_assert_eq(lisa_clip_preprocess(&x, img.data, img.h, img.w, &p, ws, need), LISA_OK, "%s: %s", name,
                     lisa_last_error());
        uint32_t got = it_crc32(x.data, (size_t)3 * 224 * 224 * 4);
        cr_expect_eq(got, crc_tensor, "%s: CLIP pixel_values differ from transformers (crc %08x, expected %08x)", name,
                     got, crc_tensor);
        check_f32_samples(name, x.data, line + off, ns);

        /* Independent of the golden data: every value is ((float)(v/255) - mean) / std of the
         * cropped pixel, within 1 ulp-ish of the double formula. */
        const float *t = x.data;
        double max_err = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 224 * 224; i++) {
                double ref = (crop[i * 3 + ch] / 255.0 - p.image_mean[ch]) / p.image_std[ch];
                double e = fabs(t[ch * 224 * 224 + i] - ref);
                if (e > max_err) max_err = e;
            }
        cr_expect(max_err < 1e-6, "%s: max |clip - formula| = %g", name, max_err);
        free(ws);
        free(resized);
        free(crop);
        lisa_bitmap_free(&img);
        n++;
    }
    lisa_tensor_free(&x);
    free(line);
    fclose(f);
    free(path);
    cr_expect_eq(n, 5);
}

/* spec §2.5 worked example (W0 = 640, H0 = 480) and other shape rules. */
Test(preprocess_pipeline, shapes) {
    int32_t a, b;
    lisa_sam_resize_shape(&a, &b, 480, 640, 1024);
    cr_expect(a == 768 && b == 1024);
    lisa_sam_resize_shape(&a, &b, 427, 256, 1024); /* 256 * 1024/427 = 613.9 -> 614 */
    cr_expect(a == 1024 && b == 614);
    lisa_sam_resize_shape(&a, &b, 1, 3000, 1024); /* short side rounds to 0 */
    cr_expect(a == 0 && b == 1024);
    lisa_clip_preprocess_params p = lisa_clip_preprocess_default_params();
    lisa_clip_resize_shape(&a, &b, &p, 480, 640); /* int(298.67) = 298 */
    cr_expect(a == 224 && b == 298);
    lisa_clip_resize_shape(&a, &b, &p, 640, 480);
    cr_expect(a == 298 && b == 224);
    lisa_clip_resize_shape(&a, &b, &p, 224, 224);
    cr_expect(a == 224 && b == 224);
    lisa_clip_resize_shape(&a, &b, &p, 300, 300);
    cr_expect(a == 224 && b == 224);
    p.do_center_crop = false;
    lisa_clip_output_shape(&a, &b, &p, 480, 640);
    cr_expect(a == 224 && b == 298);
}

Test(preprocess_pipeline, argument_errors) {
    uint8_t img[4 * 6 * 3] = {0};
    lisa_tensor wrong = tu_tensor(LISA_DTYPE_F32, 3, 3, 1024, 1000, 0);
    lisa_tensor small = tu_tensor(LISA_DTYPE_F32, 3, 3, 16, 16, 0);
    static uint8_t ws[1 << 20];
    int32_t hr, wr;
    cr_expect_eq(lisa_sam_preprocess(&wrong, &hr, &wr, img, 4, 6, NULL, ws, sizeof ws), LISA_ERR_SHAPE);
    cr_expect(contains(lisa_last_error(), "[3, 1024, 1024]") && contains(lisa_last_error(), "[3, 1024, 1000]"), "%s",
              lisa_last_error());
    lisa_sam_preprocess_params sp = lisa_sam_preprocess_default_params();
    sp.target_size = 16;
    cr_expect_eq(lisa_sam_preprocess(&small, &hr, &wr, img, 4, 6, &sp, ws, 10), LISA_ERR_OOM);
    cr_expect(contains(lisa_last_error(), "workspace"), "%s", lisa_last_error());
    cr_expect_eq(lisa_sam_preprocess(&small, &hr, &wr, img, 4, 6, &sp, ws, sizeof ws), LISA_OK, "%s",
                 lisa_last_error());
    cr_expect(hr == 11 && wr == 16); /* 4 * 16/6 + 0.5 = 11.17 */
    cr_expect_eq(lisa_sam_preprocess(&small, &hr, &wr, img, 1, 40, &sp, ws, sizeof ws), LISA_ERR_INVALID_ARG);
    cr_expect_eq(lisa_sam_preprocess(&small, &hr, &wr, NULL, 4, 6, &sp, ws, sizeof ws), LISA_ERR_INVALID_ARG);

    lisa_clip_preprocess_params cp = lisa_clip_preprocess_default_params();
    cp.shortest_edge = 8;
    cp.crop_h = cp.crop_w = 16; /* crop bigger than the resized image: transformers pads (buggy) */
    cr_expect_eq(lisa_clip_preprocess(&small, img, 4, 6, &cp, ws, sizeof ws), LISA_ERR_UNSUPPORTED);
    cr_expect(contains(lisa_last_error(), "smaller than crop_size"), "%s", lisa_last_error());
    cp = lisa_clip_preprocess_default_params();
    cp.shortest_edge = cp.crop_h = cp.crop_w = 16;
    cr_expect_eq(lisa_clip_preprocess(&small, img, 4, 6, &cp, ws, sizeof ws), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_clip_preprocess(&wrong, img, 4, 6, &cp, ws, sizeof ws), LISA_ERR_SHAPE);
    cp.resample = (lisa_resample_filter)1;
    cr_expect_eq(lisa_clip_preprocess(&small, img, 4, 6, &cp, ws, sizeof ws), LISA_ERR_UNSUPPORTED);
    cr_expect(contains(lisa_last_error(), "resample 1"), "%s", lisa_last_error());
    lisa_tensor_free(&wrong);
    lisa_tensor_free(&small);
}

/* Without a crop the output follows the resized shape; without normalize it is the rescaled value;
 * with neither rescale nor normalize it is the u8 value as f32. */
Test(preprocess_pipeline, clip_flag_variants) {
    uint8_t img[2 * 3 * 3];
    for (int i = 0; i < 18; i++) img[i] = (uint8_t)(i * 15);
    static uint8_t ws[1 << 16];
    lisa_clip_preprocess_params p = lisa_clip_preprocess_default_params();
    p.do_resize = false;
    p.do_center_crop = false;
    p.do_normalize = false;
    lisa_tensor t = tu_tensor(LISA_DTYPE_F32, 3, 3, 2, 3, 0);
    cr_assert_eq(lisa_clip_preprocess(&t, img, 2, 3, &p, ws, sizeof ws), LISA_OK, "%s", lisa_last_error());
    const float *v = t.data;
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 6; i++) cr_expect_eq(v[ch * 6 + i], (float)((double)img[i * 3 + ch] * (1.0 / 255.0)));
    p.do_rescale = false;
    cr_assert_eq(lisa_clip_preprocess(&t, img, 2, 3, &p, ws, sizeof ws), LISA_OK);
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 6; i++) cr_expect_eq(v[ch * 6 + i], (float)img[i * 3 + ch]);
    p.do_normalize = true; /* transformers would divide by a uint8-cast std of 0 */
    cr_expect_eq(lisa_clip_preprocess(&t, img, 2, 3, &p, ws, sizeof ws), LISA_ERR_UNSUPPORTED);
    lisa_tensor_free(&t);
}

/* ---- preprocessor_config.json ------------------------------------------------------------------ */

/* openai/clip-vit-large-patch14 preprocessor_config.json, as published on the HF hub. */
static const char *CLIP_L14_CONFIG = "{\n"
                                     "  \"crop_size\": 224,\n"
                                     "  \"do_center_crop\": true,\n"
                                     "  \"do_normalize\": true,\n"
                                     "  \"do_resize\": true,\n"
                                     "  \"feature_extractor_type\": \"CLIPFeatureExtractor\",\n"
                                     "  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n"
                                     "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n"
                                     "  \"resample\": 3,\n"
                                     "  \"size\": 224\n"
                                     "}\n";

Test(preprocess_pipeline, config_real_file_equals_defaults) {
    lisa_clip_preprocess_params p, d = lisa_clip_preprocess_default_params();
    char *tmp = tu_make_tmpdir("lisa-ppc");
    char path[512];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", tmp);
    cr_assert(tu_write_file(path, CLIP_L14_CONFIG, strlen(CLIP_L14_CONFIG)));
    cr_assert_eq(lisa_clip_preprocess_params_load(&p, path), LISA_OK, "%s", lisa_last_error());
    cr_expect(p.do_resize && p.do_center_crop && p.do_rescale && p.do_normalize);
    cr_expect(p.shortest_edge == 224 && p.resample == LISA_RESAMPLE_BICUBIC && p.crop_h == 224 && p.crop_w == 224);
    /* numpy's float32 rounding of the published values */
    uint32_t bits;
    memcpy(&bits, &p.image_mean[0], 4);
    /* np.float32(0.48145466).view(np.uint32) == 0x3ef6813a (0.48145467f) */
    cr_expect_eq(bits, 0x3ef6813au, "image_mean[0] bits %08x", bits);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(p.image_mean[i], d.image_mean[i]);
        cr_expect_eq(p.image_std[i], d.image_std[i]);
    }
    cr_expect_eq(p.rescale_factor, 1.0 / 255.0);
    /* An empty object keeps every class default. */
    cr_assert_eq(lisa_clip_preprocess_params_parse(&p, "{}", "empty.json"), LISA_OK);
    cr_expect(p.shortest_edge == 224 && p.crop_h == 224 && p.crop_w == 224 && p.resample == LISA_RESAMPLE_BICUBIC);
    snprintf(path, sizeof path, "%s/missing.json", tmp);
    cr_expect_eq(lisa_clip_preprocess_params_load(&p, path), LISA_ERR_IO);
    cr_expect(contains(lisa_last_error(), "missing.json"), "%s", lisa_last_error());
    tu_remove_tree(tmp);
    free(tmp);
}

Test(preprocess_pipeline, config_key_forms) {
    lisa_clip_preprocess_params p;
    cr_assert_eq(lisa_clip_preprocess_params_parse(&p,
                                                   "{\"size\": {\"shortest_edge\": 336}, \"crop_size\": {\"height\": "
                                                   "300, \"width\": 336}, \"resample\": 2, \"image_mean\": 0.5, "
                                                   "\"rescale_factor\": 0.00390625, \"do_center_crop\": false, "
                                                   "\"image_std\": null}",
                                                   "a.json"),
                 LISA_OK, "%s", lisa_last_error());
    cr_expect(p.shortest_edge == 336 && p.crop_h == 300 && p.crop_w == 336 && p.resample == LISA_RESAMPLE_BILINEAR);
    cr_expect(p.image_mean[0] == 0.5f && p.image_mean[2] == 0.5f && p.rescale_factor == 0.00390625);
    cr_expect(!p.do_center_crop && p.image_std[1] == 0.26130258f);

    const struct {
        const char *json, *want_in_msg;
        lisa_status s;
    } bad[] = {
        {"{\"size\": ", "invalid JSON", LISA_ERR_FORMAT},
        {"[1, 2]", "not a JSON object", LISA_ERR_FORMAT},
        {"{\"size\": \"224\"}", "\"size\"", LISA_ERR_UNSUPPORTED},
        {"{\"size\": 224.5}", "\"size\" must be an integer", LISA_ERR_FORMAT},
        {"{\"size\": {\"height\": 224, \"width\": 224}}", "shortest_edge", LISA_ERR_UNSUPPORTED},
        {"{\"crop_size\": {\"height\": 224}}", "crop_size", LISA_ERR_UNSUPPORTED},
        {"{\"resample\": 1}", "\"resample\" 1", LISA_ERR_UNSUPPORTED},
        {"{\"do_resize\": 1}", "do_resize", LISA_ERR_FORMAT},
        {"{\"image_mean\": [0.1, 0.2]}", "image_mean", LISA_ERR_FORMAT},
        {"{\"image_std\": [0.1, \"x\", 0.3]}", "image_std\"[1]", LISA_ERR_FORMAT},
        {"{\"image_std\": [0.1, 0, 0.3]}", "image_std[1]", LISA_ERR_INVALID_ARG},
        {"{\"size\": 0}", "shortest_edge 0", LISA_ERR_INVALID_ARG},
        {"{\"do_rescale\": false}", "do_normalize without do_rescale", LISA_ERR_UNSUPPORTED},
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lisa_status s = lisa_clip_preprocess_params_parse(&p, bad[i].json, "cfg.json");
        cr_expect_eq(s, bad[i].s, "%s: got %s (%s)", bad[i].json, lisa_status_name(s), lisa_last_error());
        cr_expect(contains(lisa_last_error(), bad[i].want_in_msg) && contains(lisa_last_error(), "cfg.json"),
                  "%s: message '%s' lacks '%s'", bad[i].json, lisa_last_error(), bad[i].want_in_msg);
        cr_expect_eq(p.shortest_edge, 224, "failure must leave the defaults");
    }
}
