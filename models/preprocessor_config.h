/* models/preprocessor_config.h — reads a Hugging Face `preprocessor_config.json` of a CLIP vision
 * tower (openai/clip-vit-large-patch14) into lisa_clip_preprocess_params (models/preprocess.h),
 * with the key semantics of transformers 4.31 CLIPImageProcessor:
 *   - a missing key (or null) keeps the class default (lisa_clip_preprocess_default_params());
 *   - "size": an int N means {"shortest_edge": N} (get_size_dict(default_to_square=False)); an
 *     object must be {"shortest_edge": N} (CLIPImageProcessor.resize refuses other keys);
 *   - "crop_size": an int N means {"height": N, "width": N}; an object must be {"height","width"};
 *   - "image_mean"/"image_std": a list of 3 numbers or one number for all channels; cast to f32
 *     like numpy does (0.48145466 -> 0.48145467f);
 *   - "resample": PIL code, 2 (BILINEAR) and 3 (BICUBIC) supported;
 *   - other keys (feature_extractor_type, do_convert_rgb, ...) are ignored.
 */
#ifndef LISA_MODELS_PREPROCESSOR_CONFIG_H
#define LISA_MODELS_PREPROCESSOR_CONFIG_H

#include "lisa.h"
#include "models/preprocess.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parses the JSON text `json` (NUL-terminated); `name` names it in messages. On failure *out is
 * left at the defaults and the status (LISA_ERR_FORMAT for bad JSON or a wrong type,
 * LISA_ERR_UNSUPPORTED for a valid but unsupported value) names the key and value. */
lisa_status lisa_clip_preprocess_params_parse(lisa_clip_preprocess_params *out, const char *json, const char *name);

/* Reads and parses the file at `path` (LISA_ERR_IO if it cannot be read). */
lisa_status lisa_clip_preprocess_params_load(lisa_clip_preprocess_params *out, const char *path);

#ifdef __cplusplus
}
#endif

#endif
