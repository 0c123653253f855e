/* lisa.h — the one public C API of the LISA engine.
 *
 * LISA (reasoning segmentation) = CLIP ViT-L/14 + LLaVA/LLaMA decoder + SAM, joined by [SEG].
 * Conventions (see docs/style.md §17): `lisa_` prefix, opaque handles, status returns, sized ints,
 * `*_default_params()` by value, init/free pairs, no CUDA types. Every pointer a function returns
 * states its lifetime next to the declaration.
 *
 * Threads. Every function may be called from any thread; what may run at the same time:
 *   - lisa_model: immutable once loaded. Any number of threads may call lisa_segment* and create,
 *     use and free engines on one model at once; each call and each engine computes on an execution
 *     context of its own (scratch memory; on CUDA its own stream), so results are the same as
 *     single-threaded ones (CPU: bitwise). lisa_model_free must not overlap any other call on the
 *     model, and every engine on it must be freed first. Exception, tensor parallelism: a TP
 *     leader serves one engine at a time (a second lisa_engine_create, also the private engine of
 *     lisa_segment*, gives LISA_ERR_BUSY until the first is freed).
 *   - lisa_engine: submit, poll, wait, wait_timeout, step and get_stats may be called from any
 *     number of threads at once. lisa_engine_free must not overlap any other call on the engine.
 *   - lisa_result and lisa_image: immutable, so any number of threads may read or submit one;
 *     each is freed once, after its last use.
 *   - lisa_last_error is per thread; a log callback may be called from any library thread.
 */
#ifndef LISA_H
#define LISA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header; lisa_version() gives the library's (they match unless an application
 * runs against a different build than it was compiled with). */
#define LISA_VERSION_MAJOR 0
#define LISA_VERSION_MINOR 1
#define LISA_VERSION_PATCH 0
#define LISA_VERSION_STRING "0.1.0"

/* The export macro, on every function below. The library's own build defines LISA_BUILD to
 * export them; programs linking the static library on Windows define LISA_STATIC (no dllimport);
 * elsewhere the shared library exports exactly these symbols, being compiled with hidden
 * visibility. Define LISA_API before including this header to override it. */
#ifndef LISA_API
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(LISA_STATIC)
#define LISA_API
#elif defined(LISA_BUILD)
#define LISA_API __declspec(dllexport)
#else
#define LISA_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define LISA_API __attribute__((visibility("default")))
#else
#define LISA_API
#endif
#endif

/* printf-style checking of format arguments where the compiler offers it */
#if defined(__GNUC__) || defined(__clang__)
#define LISA_PRINTF(fmt_arg, first_arg) __attribute__((format(printf, fmt_arg, first_arg)))
#else
#define LISA_PRINTF(fmt_arg, first_arg)
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

/* Records "<message>" (printf-style) as the calling thread's last error and returns `s`: for code
 * built on the library (a server, a tool, a binding) that reports its own failures through the
 * same lisa_last_error() channel. Messages name the file/field/value that caused the failure. */
LISA_API lisa_status lisa_fail(lisa_status s, const char *fmt, ...) LISA_PRINTF(2, 3);

/* Version string of the library ("0.1.0" = LISA_VERSION_STRING of its build). Static. */
LISA_API const char *lisa_version(void);

/* ---- logging ----------------------------------------------------------------------------------
 * The library never writes to stdout/stderr by itself: warnings (e.g. "graph capture failed;
 * decode steps run eagerly") and notes go to one process-wide callback, silent until one is set.
 * The callback may be called from any library thread (engine, workers), concurrently; the message
 * is one line without a trailing newline, valid during the call. */
typedef enum lisa_log_level {
    LISA_LOG_ERROR = 0, /* an operation failed in a way its status cannot tell (background work) */
    LISA_LOG_WARN = 1,  /* a fallback was taken or a result may be slower/worse than asked for */
    LISA_LOG_INFO = 2,  /* what the library chose (backend, sizes); a few lines per model or engine */
    LISA_LOG_DEBUG = 3,
} lisa_log_level;

typedef void (*lisa_log_fn)(void *user, lisa_log_level level, const char *message);

/* Sets the callback (NULL: silent, the default) and its `user` pointer. */
LISA_API void lisa_log_set(lisa_log_fn fn, void *user);
/* A ready callback: "lisa: warning: <message>\n" on stderr for every message up to a level: `user`
 * NULL means LISA_LOG_WARN, else it points to a lisa_log_level (the maximum printed). */
LISA_API void lisa_log_stderr(void *user, lisa_log_level level, const char *message);
/* Static name of a level: "error", "warning", "info", "debug". */
LISA_API const char *lisa_log_level_name(lisa_log_level level);

/* ---- models -------------------------------------------------------------------------------- */

/* A loaded LISA checkpoint (LLM + CLIP + SAM + tokenizer). Threads ("Threads" at the top):
 * immutable once loaded; lisa_segment*, engines and the read-only queries (lisa_model_get_info,
 * lisa_model_count_tokens, lisa_model_prompt_tokens, the TP getters, lisa_model_seg_token_id) may
 * all run at once; lisa_model_free must not overlap any other use. */
typedef struct lisa_model lisa_model;
/* The outcome of one request. Immutable once returned: its accessors may be called from any
 * number of threads; lisa_result_free once, after the last use. */
typedef struct lisa_result lisa_result;

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
/* After every engine on the model is freed and no call on it is in progress. */
LISA_API void lisa_model_free(lisa_model *m);
/* The [SEG] token id (e.g. 32003 for LISA-7B-v1). */
LISA_API int32_t lisa_model_seg_token_id(const lisa_model *m);

/* What a loaded model is: dims of its three networks, where it runs, what it holds. The struct
 * grows at its end in later versions: set `size` to sizeof(lisa_model_info) before the call; the
 * library fills the fields that fit in `size` bytes (older callers keep working). */
typedef struct lisa_model_info {
    uint32_t size;                 /* in: sizeof(lisa_model_info) as the caller compiled it; out: the
                                      bytes filled (the smaller of it and the library's sizeof; a
                                      larger caller's extra tail is zeroed) */
    /* language model (LLaMA, config.json) */
    int32_t llm_hidden, llm_layers, llm_heads, llm_kv_heads, llm_head_dim, llm_intermediate;
    int32_t vocab_size;            /* embedding rows (added tokens, [SEG] included) */
    int32_t max_position;          /* max_position_embeddings: prompt + generated tokens */
    /* vision tower (CLIP ViT, its own directory) */
    int32_t clip_hidden, clip_layers, clip_heads, clip_image_size, clip_patch_size;
    int32_t clip_layers_run;       /* layers LLaVA runs (mm_vision_select_layer = -2: all but one) */
    int32_t n_patches;             /* image positions spliced into the prompt (256) */
    /* SAM */
    int32_t sam_image_size;        /* the square side SAM encodes (1024) */
    int32_t sam_embed_dim, sam_depth, sam_heads; /* image encoder (ViT-H: 1280, 32, 16) */
    int32_t sam_prompt_dim;        /* text_hidden_fcs output = SAM prompt width (256) */
    int32_t seg_token_id;
    /* where it runs */
    lisa_backend_kind backend;     /* LISA_BACKEND_CPU or LISA_BACKEND_CUDA (what AUTO chose) */
    char backend_name[16];         /* "cpu", "cuda" */
    char device_name[128];         /* "NVIDIA H100 80GB HBM3"; on the CPU its model name */
    int32_t device;                /* CUDA device ordinal (0 on the CPU) */
    int32_t n_threads;             /* CPU compute threads (1 on CUDA) */
    char activation_dtype[8];      /* "f32" (CPU), "bf16" (CUDA default) */
    /* memory */
    int64_t weight_bytes;          /* the weights as the backend holds them (CPU: views of the
                                      mapped files; CUDA: device memory) */
    int64_t checkpoint_bytes;      /* tensor bytes of the checkpoint files (LISA + CLIP) */
    int64_t scratch_bytes;         /* the backend's per-op workspace */
    int64_t device_memory_bytes;   /* total memory of the device (0 on the CPU) */
    /* tensor parallelism (lisa_model_tp_rank / _size / _group) */
    int32_t tp_rank, tp_size, tp_group, tp_groups;
    /* fused ops (one kernel where the unfused ops would make several passes, e.g. SAM's attention
     * with its rel-pos terms computed inside): how many the backend has, and how many it runs
     * natively (CUDA: all; the CPU runs each as the composition of unfused ops, bit for bit) */
    int32_t fused_ops, fused_ops_native;
} lisa_model_info;

/* Fills *info (info->size must be set; LISA_ERR_INVALID_ARG if it is 0). */
LISA_API lisa_status lisa_model_get_info(const lisa_model *m, lisa_model_info *info);

/* Token ids the checkpoint's tokenizer gives `text` (len bytes; SentencePiece as LLaMA's slow
 * tokenizer), plus one for BOS when add_bos. What `lisa serve --max-query-tokens` counts. */
LISA_API lisa_status lisa_model_count_tokens(const lisa_model *m, const char *text, size_t len, bool add_bos,
                                             int32_t *n_tokens);
/* The expanded prompt length of a query: the positions its request would prefill (system prompt,
 * image patches, query; lisa_timings.n_prompt_tokens). Validates the query as lisa_segment does
 * (lisa_check_query with default limits) and fails with LISA_ERR_LIMIT when the prompt does not fit
 * max_position. */
LISA_API lisa_status lisa_model_prompt_tokens(const lisa_model *m, const char *query, int32_t *n_positions);

typedef struct lisa_segment_params {
    int32_t max_new_tokens;     /* generation limit; chat.py uses 512 */
    int32_t max_query_bytes;    /* longer queries are LISA_ERR_LIMIT; default 4096 */
    int64_t max_image_pixels;   /* decode limit for image files/bytes; default 64 Mpx */
    bool keep_logits;           /* also keep F32 mask logits (for evaluation and debugging) */
} lisa_segment_params;

LISA_API lisa_segment_params lisa_segment_default_params(void);

/* The query checks every request gets (the engine fails a request's result with them): NULL or
 * blank is LISA_ERR_INVALID_ARG, longer than p->max_query_bytes (if > 0) LISA_ERR_LIMIT, one
 * containing the image placeholder "<image>" LISA_ERR_INVALID_ARG. p NULL: the defaults. */
LISA_API lisa_status lisa_check_query(const char *query, const lisa_segment_params *p);

/* One request: an RGB image (u8, row-major [height, width, 3]) and a query. On success *out holds
 * the answer, the generated token ids and one mask per generated [SEG] (all of them, in order),
 * each at the original image size. The image is borrowed for the call only. Thread-safe: calls on
 * one model run at once (a private one-request engine each). */
LISA_API lisa_status lisa_segment(lisa_model *m, const uint8_t *rgb, int32_t height, int32_t width, const char *query,
                                  const lisa_segment_params *p, lisa_result **out);
/* Same with an encoded PNG or JPEG file (decoded as cv2.imread does: EXIF orientation applied). */
LISA_API lisa_status lisa_segment_file(lisa_model *m, const char *image_path, const char *query,
                                       const lisa_segment_params *p, lisa_result **out);

/* Decodes a PNG or JPEG file to RGB exactly as lisa_segment_file and the engine do (cv2.imread +
 * BGR2RGB: EXIF orientation applied), for callers that need the pixels themselves (overlays).
 * *rgb [height, width, 3] is the caller's (lisa_free). max_pixels <= 0: the default limit (64 Mpx).
 * Errors: LISA_ERR_IO, LISA_ERR_FORMAT (not PNG/JPEG, corrupt, truncated), LISA_ERR_LIMIT. */
LISA_API lisa_status lisa_rgb_load_file(const char *path, int64_t max_pixels, uint8_t **rgb, int32_t *height,
                                        int32_t *width);

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

/* Milliseconds per stage of one request, each measured to the end of its device work: preprocess
 * (decode + resize + normalize, tokenize), clip (CLIP + projector), prefill, decode (all its decode
 * steps), sam_encoder, sam_decoder (text_hidden_fcs + prompt encoder + mask decoder),
 * postprocess (masks to the image size, threshold, detokenize); total from submission to result.
 * The stages sum to at most total (the rest is queueing). In a batch a stage's time is that of
 * the whole batched step. */
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

/* Mask i as an 8-bit gray PNG, 255 = object (chat.py writes mask*100 as JPEG; a lossless 0/255
 * PNG is what annotation tools read). */
LISA_API lisa_status lisa_result_write_mask_png(const lisa_result *r, int32_t i, const char *path);
/* chat.py's overlay of mask i on the request's image rgb [height, width, 3] (the result's mask
 * size): object pixels tinted 50 % red, saved as PNG. Both writers are atomic: the bytes go to
 * "<path>.tmp.<pid>", renamed over `path` once complete, so a failure leaves no partial file. */
LISA_API lisa_status lisa_result_write_overlay_png(const lisa_result *r, int32_t i, const uint8_t *rgb,
                                                   const char *path);

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
    LISA_JSON_ID = 1u << 4,          /* "id": lisa_result_id (last member) */
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
 * identical with and without reuse (CPU: bit-identical). Threads: lisa_engine_submit, _poll, _wait,
 * _wait_timeout, _step and _get_stats may be called from any number of threads at once;
 * lisa_engine_free must not overlap them. Several engines may share one model ("Threads" at the
 * top). */

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

/* The engine borrows the model (which must outlive it) and computes on an execution context of its
 * own (on CUDA: its own stream and workspace), so engines on one model run at once. */
LISA_API lisa_status lisa_engine_create(lisa_model *m, const lisa_engine_params *p, lisa_engine **out);
/* Stops the engine; unfinished requests are dropped, unclaimed results freed. No other call on the
 * engine may be in progress or follow. */
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
