/* models/preprocess.h — bit-exact image preprocessing for the SAM and CLIP branches.
 *
 * Everything here reproduces the reference stack bit for bit (spec docs/inference.md §2,
 * docs/parity.md §2):
 *   - lisa_resample_u8: Pillow 9.4 `Image.resize` with BILINEAR / BICUBIC on 8-bit images
 *     (src/libImaging/Resample.c: double coefficients, 22-bit fixed point, horizontal pass into a
 *     u8 intermediate over only the rows the vertical pass needs, then the vertical pass).
 *   - lisa_sam_preprocess: LISA's ResizeLongestSide(1024).apply_image (Pillow BILINEAR via
 *     torchvision 0.14) + chat.py `preprocess` ((x - mean) / std in f32, zero pad bottom/right).
 *   - lisa_clip_preprocess: transformers 4.31 CLIPImageProcessor.preprocess (shortest-edge
 *     BICUBIC resize in Pillow, floor center crop, rescale in f64 -> f32, normalize in f32, CHW).
 *
 * Images are u8, row-major HWC (`[h, w, c]`), sizes are given height first like tensor shapes.
 *
 * Scratch: no function here allocates. Each takes a caller workspace `ws` of at least the bytes
 * its *_workspace_size() returns (any alignment; it is aligned internally), so a worker thread
 * can keep one buffer for all the images it preprocesses. These run once per image on the
 * caller's thread; they are single-threaded on purpose (the engine preprocesses several images
 * in parallel on its CPU pool).
 */
#ifndef LISA_MODELS_PREPROCESS_H
#define LISA_MODELS_PREPROCESS_H

#include "lisa.h"
#include "core/tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The values are PIL's Image.Resampling codes (as in preprocessor_config.json "resample"). */
typedef enum lisa_resample_filter {
    LISA_RESAMPLE_BILINEAR = 2, /* triangle, support 1 */
    LISA_RESAMPLE_BICUBIC = 3,  /* Keys cubic a = -0.5, support 2 */
} lisa_resample_filter;

/* ---- Pillow-exact resampling ----------------------------------------------------------------- */

/* Workspace bytes for lisa_resample_u8 with these sizes (0 if an argument is out of range; the
 * resample call then reports which). */
size_t lisa_resample_u8_workspace_size(int32_t out_h, int32_t out_w, int32_t in_h, int32_t in_w, int32_t c,
                                       lisa_resample_filter filter);

/* dst [out_h, out_w, c] = Pillow 9.4 `Image.resize((out_w, out_h), filter)` of src [in_h, in_w, c].
 * c = 3 is Pillow mode "RGB", c = 1 is mode "L" (channels are filtered independently; Pillow's
 * RGBA/LA premultiplication is not reproduced, hence no c = 2 or 4). Same size = plain copy, as
 * Pillow. dst must not overlap src. Sides must be >= 1. Returns LISA_ERR_INVALID_ARG naming the
 * bad value, or LISA_ERR_OOM if ws_bytes is smaller than the workspace size. */
lisa_status lisa_resample_u8(uint8_t *dst, int32_t out_h, int32_t out_w, const uint8_t *src, int32_t in_h, int32_t in_w,
                             int32_t c, lisa_resample_filter filter, void *ws, size_t ws_bytes);

/* ---- SAM branch: ResizeLongestSide + normalize + pad (spec §2.3, parity §2.2) ---------------- */

/* Parameters of the SAM branch; by value, defaults from lisa_sam_preprocess_default_params(). */
typedef struct lisa_sam_preprocess_params {
    int32_t target_size;  /* ResizeLongestSide long side and the square pad size: 1024 in LISA */
    float pixel_mean[3];  /* RGB, 0..255 scale: 123.675, 116.28, 103.53 (as torch f32) */
    float pixel_std[3];   /* 58.395, 57.12, 57.375 */
} lisa_sam_preprocess_params;

lisa_sam_preprocess_params lisa_sam_preprocess_default_params(void);

/* ResizeLongestSide.get_preprocess_shape: scale = T / max(h, w) in double, h_r = int(h*scale + 0.5),
 * w_r = int(w*scale + 0.5). The long side becomes exactly T. */
void lisa_sam_resize_shape(int32_t *h_r, int32_t *w_r, int32_t h, int32_t w, int32_t target_size);

size_t lisa_sam_preprocess_workspace_size(const lisa_sam_preprocess_params *p, int32_t h, int32_t w);

/* out: F32 CPU contiguous [3, T, T] or [1, 3, T, T] (T = p->target_size). Writes the resized,
 * normalized image in [:, :h_r, :w_r] and 0.0 elsewhere (pad after normalization = mean colour).
 * rgb: [h, w, 3] u8. Returns (h_r, w_r) for mask postprocessing. p may be NULL (defaults). */
lisa_status lisa_sam_preprocess(lisa_tensor *out, int32_t *h_r, int32_t *w_r, const uint8_t *rgb, int32_t h, int32_t w,
                                const lisa_sam_preprocess_params *p, void *ws, size_t ws_bytes);

/* ---- CLIP branch: CLIPImageProcessor (transformers 4.31; spec §2.2, parity §2.3) ------------- */

/* The fields of preprocessor_config.json that CLIPImageProcessor uses. Defaults are those of
 * openai/clip-vit-large-patch14 (= the class defaults): shortest_edge 224, BICUBIC, crop 224x224,
 * rescale 1/255, OPENAI_CLIP_MEAN/STD. Load a file with lisa_clip_preprocess_params_load()
 * (models/preprocessor_config.h). */
typedef struct lisa_clip_preprocess_params {
    bool do_resize;
    int32_t shortest_edge;        /* size["shortest_edge"] */
    lisa_resample_filter resample;
    bool do_center_crop;
    int32_t crop_h, crop_w;       /* crop_size["height"], crop_size["width"] */
    bool do_rescale;
    double rescale_factor;        /* a Python float: the product is computed in double */
    bool do_normalize;
    float image_mean[3];          /* numpy casts the lists to the image dtype, f32 */
    float image_std[3];
} lisa_clip_preprocess_params;

lisa_clip_preprocess_params lisa_clip_preprocess_default_params(void);

/* Checks the combination of fields (LISA_ERR_INVALID_ARG / LISA_ERR_UNSUPPORTED naming the field). */
lisa_status lisa_clip_preprocess_params_check(const lisa_clip_preprocess_params *p);

/* Size after the resize step: the short side becomes shortest_edge, the long side
 * int(shortest_edge * long / short) (Python true division then truncation). Unchanged if
 * !do_resize. */
void lisa_clip_resize_shape(int32_t *rh, int32_t *rw, const lisa_clip_preprocess_params *p, int32_t h, int32_t w);

/* Output spatial size: (crop_h, crop_w) if do_center_crop, else the resized size. */
void lisa_clip_output_shape(int32_t *oh, int32_t *ow, const lisa_clip_preprocess_params *p, int32_t h, int32_t w);

size_t lisa_clip_preprocess_workspace_size(const lisa_clip_preprocess_params *p, int32_t h, int32_t w);

/* out: F32 CPU contiguous [3, oh, ow] or [1, 3, oh, ow] (lisa_clip_output_shape). rgb: [h, w, 3]
 * u8. Always treats the input as HWC; transformers 4.31 instead guesses channels-first for an
 * image whose height is 1 or 3 (infer_channel_dimension_format), which we do not reproduce.
 * p may be NULL (defaults). */
lisa_status lisa_clip_preprocess(lisa_tensor *out, const uint8_t *rgb, int32_t h, int32_t w,
                                 const lisa_clip_preprocess_params *p, void *ws, size_t ws_bytes);

#ifdef __cplusplus
}
#endif

#endif
