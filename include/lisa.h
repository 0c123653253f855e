/* lisa.h — the one public C API of the LISA engine.
 *
 * LISA (reasoning segmentation) = CLIP ViT-L/14 + LLaVA/LLaMA decoder + SAM, joined by [SEG].
 * Conventions (see docs/style.md §17): `lisa_` prefix, opaque handles, status returns, sized ints,
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
    int32_t device;            /* CUDA device ordinal; under mpirun/srun task r of a node takes
                                  device + r (one process per GPU), unless CUDA_VISIBLE_DEVICES
                                  names a single device */
    int32_t n_threads;         /* CPU threads; 0 = all cores */
    int32_t tensor_parallel;   /* 0 or 1: off; N > 1: split the LLM over N MPI ranks (launch with
                                  mpirun/srun; consecutive ranks form a group; see lisa_model_tp_follow) */
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
    int32_t n_reused_tokens; /* prompt positions whose KV came from a kept prefix (not prefilled) */
} lisa_timings;
LISA_API lisa_timings lisa_result_timings(const lisa_result *r);
/* LISA_OK, or why this request failed (engine results: a bad image fails its request only). */
LISA_API lisa_status lisa_result_status(const lisa_result *r);
LISA_API const char *lisa_result_error(const lisa_result *r); /* "" when ok */
LISA_API uint64_t lisa_result_id(const lisa_result *r);
LISA_API uint64_t lisa_result_user_data(const lisa_result *r);
LISA_API void lisa_result_free(lisa_result *r);

/* The JSON form of a result (what `lisa serve` answers and `lisa segment --json` prints):
 *   {"answer", "n_tokens", "tokens"?, "text_output"?, "masks": [{"index", "rle": {"size": [h, w],
 *    "counts"}, "bbox": [x, y, w, h], "area", "score", "png"?}], "timings"?}
 * with masks as COCO RLE exactly as pycocotools' mask.encode / toBbox / area give them; the
 * optional members are selected by `flags`. A failed result gives {"error": {"status", "message"}}.
 * *out is a NUL-terminated UTF-8 string owned by the caller (lisa_free). */
enum {
    LISA_JSON_TOKENS = 1u << 0,      /* "tokens": the generated ids */
    LISA_JSON_TEXT_OUTPUT = 1u << 1, /* "text_output": chat.py's printed string (prompt + answer) */
    LISA_JSON_MASK_PNG = 1u << 2,    /* masks[i].png: base64 of the mask as a 0/255 gray PNG */
    LISA_JSON_TIMINGS = 1u << 3,     /* "timings": per-stage milliseconds and token counts */
};
LISA_API lisa_status lisa_result_to_json(const lisa_result *r, uint32_t flags, char **out);
/* Frees memory the library handed to the caller (lisa_result_to_json strings). NULL is a no-op. */
LISA_API void lisa_free(void *p);

/* ---- images ----------------------------------------------------------------------------------
 * A lisa_image is an image decoded (and hashed) once, to submit with any number of requests
 * (lisa_request.image): "encode once, ask many". The engine keys its image-embedding cache by the
 * decoded pixels, so requests on the same picture share one CLIP + SAM encoding and the KV cache of
 * the prompt through the image (see lisa_engine_params.image_cache_bytes) whether they come as a
 * handle, a file, bytes or RGB; a handle also skips the per-request decode.
 *
 * Lifetime: lisa_image_create_* returns one reference, dropped by lisa_image_free. Each request
 * submitted on the image holds its own reference until it finishes, so the handle may be freed
 * right after submitting. Handles are immutable and thread-safe, and belong to no model or engine. */
typedef struct lisa_image lisa_image;

/* Decodes a PNG or JPEG file (as cv2.imread does: EXIF orientation applied), at most 64 Mpx. */
LISA_API lisa_status lisa_image_create_file(const char *path, lisa_image **out);
/* Same from encoded bytes in memory (copied; the buffer can be reused at once). */
LISA_API lisa_status lisa_image_create_bytes(const void *data, size_t size, lisa_image **out);
/* From RGB u8 pixels, row-major [height, width, 3] (copied). */
LISA_API lisa_status lisa_image_create_rgb(const uint8_t *rgb, int32_t height, int32_t width, lisa_image **out);
LISA_API int32_t lisa_image_height(const lisa_image *img);
LISA_API int32_t lisa_image_width(const lisa_image *img);
/* Drops the caller's reference (the pixels go when no request holds the image). NULL is a no-op. */
LISA_API void lisa_image_free(lisa_image *img);

/* ---- the batching engine ---------------------------------------------------------------------
 * Continuous batching over requests: images are decoded and preprocessed on a worker pool; CLIP
 * and the SAM encoder run batched per step; LLM prefill and decode steps run batched over requests
 * of different lengths against a paged KV cache; masks are decoded as requests finish. Results are
 * identical whether a request runs alone or in a batch (CPU: bit-identical).
 * Reuse: each image is encoded once while it stays in the image-embedding cache (LRU, bounded by
 * image_cache_bytes; requests in flight for the same image wait for one encoding), and the KV cache
 * keeps prompt prefixes as a tree of shared pages: the system prompt, and the system prompt plus an
 * image's features, so a further query on a cached image prefills only its own tokens. Results are
 * identical with and without reuse (CPU: bit-identical). Submission is thread-safe. */

typedef struct lisa_engine lisa_engine;

typedef struct lisa_engine_params {
    int32_t max_batch;          /* sequences in flight (decode batch) */
    int32_t max_prefill_tokens; /* prompt rows per prefill step; longer prompts are refused */
    int32_t max_images;         /* images per CLIP / SAM-encoder step */
    int32_t page_size;          /* KV page size in tokens */
    int64_t kv_cache_bytes;     /* KV pool budget; 0 = room for max_batch requests of 1024 tokens */
    int32_t max_queue;          /* unfinished requests accepted; lisa_engine_submit returns LISA_ERR_BUSY beyond */
    int32_t n_workers;          /* preprocessing threads; 0 = number of cores */
    bool share_prefix;          /* keep prompt prefixes in the KV cache and share their pages: the
                                   system prompt, and (with the image cache) the prompt through an image */
    bool background;            /* run the scheduler on an engine thread (else the caller drives it
                                   through lisa_engine_step / lisa_engine_wait) */
    int64_t image_cache_bytes;  /* image embeddings (CLIP features + SAM embedding) kept for reuse, on the
                                   compute device; default 256 MiB; 0 = no reuse: every request encodes
                                   its image and prefills its whole prompt */
} lisa_engine_params;

LISA_API lisa_engine_params lisa_engine_default_params(void);

/* The engine borrows the model (which must outlive it). */
LISA_API lisa_status lisa_engine_create(lisa_model *m, const lisa_engine_params *p, lisa_engine **out);
/* Stops the engine; unfinished requests are dropped, unclaimed results freed. */
LISA_API void lisa_engine_free(lisa_engine *e);

typedef struct lisa_request {
    /* the image: exactly one of encoded bytes (PNG/JPEG), a file path, decoded RGB, or a handle */
    const void *image_data;
    size_t image_size;
    const char *image_path;
    const uint8_t *rgb;
    int32_t height, width;
    const char *query;
    lisa_segment_params params;
    uint64_t user_data;         /* returned with the result */
    lisa_image *image;          /* a lisa_image: the request holds a reference until it finishes */
} lisa_request;

LISA_API lisa_request lisa_request_default(void);

/* Queues a request (inputs are copied, a lisa_image referenced; the caller's buffers can be reused
 * at once). *id > 0. LISA_ERR_BUSY when max_queue requests are unfinished; LISA_ERR_INVALID_ARG
 * for a malformed request (no image, several images, NULL query). Problems found later (corrupt
 * image, empty query) fail that request's result instead. Thread-safe. */
LISA_API lisa_status lisa_engine_submit(lisa_engine *e, const lisa_request *r, uint64_t *id);
/* A finished result if one is ready (LISA_OK), else LISA_ERR_NOT_FOUND. Non-blocking. */
LISA_API lisa_status lisa_engine_poll(lisa_engine *e, lisa_result **out);
/* Blocks until request `id` (or, with id 0, any request) finishes and returns its result; steps the
 * scheduler itself when the engine is not in background mode. LISA_ERR_NOT_FOUND for an unknown id. */
LISA_API lisa_status lisa_engine_wait(lisa_engine *e, uint64_t id, lisa_result **out);
/* Same, giving up after timeout_ms milliseconds (< 0: never): LISA_ERR_BUSY then, and the request
 * keeps running (wait again, or claim its result later; the engine cannot cancel a request). */
LISA_API lisa_status lisa_engine_wait_timeout(lisa_engine *e, uint64_t id, int64_t timeout_ms, lisa_result **out);
/* One scheduler iteration (caller-driven mode). *busy tells whether work remains. */
LISA_API lisa_status lisa_engine_step(lisa_engine *e, bool *busy);

#define LISA_ENGINE_BATCH_BUCKETS 9 /* batch sizes 1, 2, 3-4, ..., 129-256 (max_batch <= 256) */
typedef struct lisa_engine_stats {
    int32_t queued;        /* submitted, waiting for preprocessing */
    int32_t ready;         /* preprocessed, waiting for admission (e.g. KV pages) */
    int32_t running;       /* admitted: prefilling, decoding or decoding masks */
    int32_t results;       /* finished, not yet claimed */
    int32_t kv_pages_used, kv_pages_total;
    int32_t kv_prefix_pages; /* pages held by kept prefixes (system prompt, prompts through an image) */
    int64_t completed, failed, steps;
    int32_t last_batch;    /* sequences in the last decode step */
    int64_t decode_steps;  /* decode steps run (one token for every running sequence) */
    int64_t decode_rows;   /* sequences summed over the decode steps (mean batch = rows / steps) */
    /* decode steps by batch size b: bucket 0 holds b = 1, bucket k holds 2^(k-1) < b <= 2^k */
    int64_t decode_batch_hist[LISA_ENGINE_BATCH_BUCKETS];
    /* reuse (see image_cache_bytes, share_prefix) */
    int64_t image_cache_hits;      /* requests whose image embeddings were cached */
    int64_t image_cache_misses;    /* requests that encoded their image */
    int64_t image_cache_evictions; /* images dropped to make room */
    int64_t image_cache_bytes;     /* bytes of the images held (in use or kept) */
    int64_t image_cache_capacity;  /* bytes that may be kept for reuse (image_cache_bytes, whole entries) */
    int32_t image_cache_entries;   /* images held */
    int32_t kv_prefix_nodes;       /* prefixes kept in the KV cache (kv_prefix_pages: their pages) */
    int64_t kv_prefix_hits;        /* requests that reused a prefix through their image */
    int64_t kv_reused_tokens;      /* prompt positions not prefilled thanks to kept prefixes */
    int64_t kv_prefix_evictions;   /* prefixes dropped to make room */
} lisa_engine_stats;

LISA_API lisa_engine_stats lisa_engine_get_stats(lisa_engine *e);

/* ---- tensor parallelism ----------------------------------------------------------------------
 * With lisa_model_params.tensor_parallel = N every MPI rank loads the model: ranks form groups of N
 * consecutive ranks (the world size must be a multiple of N); within a group rank 0 (the leader)
 * is the model the API serves, and ranks 1..N-1 (followers) hold only their LLM shard and must
 * call lisa_model_tp_follow. Results equal the unsplit model's (CPU: logits within 1e-5, tokens
 * identical). Groups are independent: data parallelism over them is up to the caller (e.g. one
 * manifest shard per group, lisa_model_tp_group). */

/* This process's rank in its TP group (0 = leader; 0 without TP) and the group size (1). */
LISA_API int32_t lisa_model_tp_rank(const lisa_model *m);
LISA_API int32_t lisa_model_tp_size(const lisa_model *m);
/* This TP group's index among *n_groups (0 of 1 without TP). */
LISA_API int32_t lisa_model_tp_group(const lisa_model *m, int32_t *n_groups);
/* On a follower: serves the leader's engines (every engine the leader creates, lisa_segment calls
 * included) until the leader frees its model; then returns LISA_OK (free the model after). On a
 * leader or without TP: LISA_ERR_INVALID_ARG. */
LISA_API lisa_status lisa_model_tp_follow(lisa_model *m);

#ifdef __cplusplus
}
#endif

#endif /* LISA_H */
