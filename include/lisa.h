/* lisa.h — the one public C API of the LISA engine.
 *
 * LISA (reasoning segmentation) = CLIP ViT-L/14 + LLaVA/LLaMA decoder + SAM, joined by [SEG].
 * Conventions (see STYLE.md §17): `lisa_` prefix, opaque handles, status returns, sized ints,
 * `*_default_params()` by value, init/free pairs, no CUDA types. Every pointer a function returns
 * states its lifetime next to the declaration.
 */
#ifndef LISA_H
#define LISA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define LISA_API __declspec(dllexport)
#else
#define LISA_API __attribute__((visibility("default")))
#endif

/* Status codes. Every fallible call returns one; LISA_OK is 0. On failure, lisa_last_error()
 * names the file, field or value that caused it. */
typedef enum lisa_status {
    LISA_OK = 0,
    LISA_ERR_INVALID_ARG = 1, /* a caller-supplied value is out of range or inconsistent */
    LISA_ERR_IO = 2,          /* a file could not be opened, read, mapped or written */
    LISA_ERR_FORMAT = 3,      /* a file or message is malformed (bad JSON, truncated, corrupt) */
    LISA_ERR_SHAPE = 4,       /* tensor shapes/dtypes do not match what the model needs */
    LISA_ERR_UNSUPPORTED = 5, /* valid, but this build/backend does not implement it */
    LISA_ERR_OOM = 6,         /* an allocation or an arena/pool budget was exhausted */
    LISA_ERR_LIMIT = 7,       /* an input exceeds a configured limit (pixels, tokens, bytes) */
    LISA_ERR_NOT_FOUND = 8,   /* a named tensor, file or key is missing */
    LISA_ERR_BACKEND = 9,     /* the compute backend (CUDA, cuBLAS, NCCL, MPI) reported a failure */
    LISA_ERR_BUSY = 10,       /* a queue or pool is full; retry later */
    LISA_ERR_INTERNAL = 11,   /* an unexpected condition that is not the caller's fault */
} lisa_status;

/* Static string naming a status ("LISA_ERR_FORMAT"). Never NULL. */
LISA_API const char *lisa_status_name(lisa_status s);

/* The message of the last failure on the calling thread ("" if none). Thread-local: valid until
 * the next failing lisa_ call on the same thread. */
LISA_API const char *lisa_last_error(void);

/* Clears the calling thread's last-error message. */
LISA_API void lisa_clear_error(void);

/* Version string of the library ("0.1.0"). Static. */
LISA_API const char *lisa_version(void);


/* ---- models -------------------------------------------------------------------------------- */

typedef struct lisa_model lisa_model;   /* a loaded LISA checkpoint (LLM + CLIP + SAM + tokenizer) */
typedef struct lisa_result lisa_result; /* the outcome of one request */

typedef enum lisa_backend_kind {
    LISA_BACKEND_AUTO = 0, /* CUDA when built and a device is present, else CPU */
    LISA_BACKEND_CPU = 1,
    LISA_BACKEND_CUDA = 2,
} lisa_backend_kind;

typedef struct lisa_model_params {
    const char *vision_tower;  /* CLIP directory; NULL: resolved from config.json (see lisa_model_load) */
    lisa_backend_kind backend;
    int32_t device;            /* CUDA device ordinal */
    int32_t n_threads;         /* CPU threads; 0 = all cores */
} lisa_model_params;

LISA_API lisa_model_params lisa_model_default_params(void);

/* Loads a LISA checkpoint directory exactly as published (config.json, tokenizer files, weights as
 * safetensors or PyTorch .bin, single or sharded). The CLIP vision tower comes from
 * p->vision_tower, else from config.json's "vision_tower" when it names an existing directory
 * (absolute, or relative to `path`), else <path>/<last component of it> (e.g.
 * <path>/clip-vit-large-patch14), else the Hugging Face cache
 * ($HF_HOME or ~/.cache/huggingface)/hub/models--openai--clip-vit-large-patch14/snapshots/<rev>.
 * Every missing or mis-shaped tensor is reported at once. The model owns everything it loads and
 * lives until lisa_model_free. */
LISA_API lisa_status lisa_model_load(const char *path, const lisa_model_params *p, lisa_model **out);
LISA_API void lisa_model_free(lisa_model *m);
/* The [SEG] token id (e.g. 32003 for LISA-7B-v1). */
LISA_API int32_t lisa_model_seg_token_id(const lisa_model *m);

typedef struct lisa_segment_params {
    int32_t max_new_tokens;     /* generation limit; chat.py uses 512 */
    int32_t max_query_bytes;    /* longer queries are LISA_ERR_LIMIT; default 4096 */
    int64_t max_image_pixels;   /* decode limit for image files/bytes; default 64 Mpx */
    bool keep_logits;           /* also keep F32 mask logits (for evaluation and debugging) */
} lisa_segment_params;

LISA_API lisa_segment_params lisa_segment_default_params(void);

/* One request: an RGB image (u8, row-major [height, width, 3]) and a query. On success *out holds
 * the answer, the generated token ids and one mask per generated [SEG] (all of them, in order),
 * each at the original image size. The image is borrowed for the call only. */
LISA_API lisa_status lisa_segment(lisa_model *m, const uint8_t *rgb, int32_t height, int32_t width, const char *query,
                                  const lisa_segment_params *p, lisa_result **out);
/* Same with an encoded PNG or JPEG file (decoded as cv2.imread does: EXIF orientation applied). */
LISA_API lisa_status lisa_segment_file(lisa_model *m, const char *image_path, const char *query,
                                       const lisa_segment_params *p, lisa_result **out);

/* Result accessors. Returned pointers live until lisa_result_free. */
LISA_API const char *lisa_result_answer(const lisa_result *r);     /* generated text, chat.py cleanup, no </s> */
LISA_API const char *lisa_result_text_output(const lisa_result *r); /* chat.py's exact text_output (prompt + answer) */
LISA_API int32_t lisa_result_n_tokens(const lisa_result *r);
LISA_API const int32_t *lisa_result_tokens(const lisa_result *r);  /* generated ids (EOS included if produced) */
LISA_API int32_t lisa_result_n_masks(const lisa_result *r);
/* Mask i: 0/1 bytes [height, width] (logit > 0). */
LISA_API const uint8_t *lisa_result_mask(const lisa_result *r, int32_t i, int32_t *height, int32_t *width);
/* Mask logits i [height, width] F32, or NULL unless keep_logits was set. */
LISA_API const float *lisa_result_mask_logits(const lisa_result *r, int32_t i);
/* SAM's IoU prediction for mask i. */
LISA_API float lisa_result_mask_score(const lisa_result *r, int32_t i);

typedef struct lisa_timings {
    double preprocess_ms, clip_ms, prefill_ms, decode_ms, sam_encoder_ms, sam_decoder_ms, postprocess_ms, total_ms;
    int32_t n_prompt_tokens; /* expanded sequence length L0 (image patches included) */
    int32_t n_generated;
} lisa_timings;
LISA_API lisa_timings lisa_result_timings(const lisa_result *r);
LISA_API void lisa_result_free(lisa_result *r);

#ifdef __cplusplus
}
#endif

#endif /* LISA_H */
