/* runtime/image_cache.h — the engine's image-embedding cache (issue #17): what the vision stage
 * computes once per image and every query on that image reuses.
 *
 * Key: a 128-bit hash of the decoded RGB pixels (core/hash.h, seeded per process) with the image
 * size and the model's preprocessing identity (CLIP and SAM preprocessing parameters), so the same
 * pixels decoded from a PNG, a JPEG re-encoded losslessly, raw RGB or a lisa_image handle all meet.
 * Value: the CLIP patch features after mm_projector [1, P, C] (what the LLM splices at the image
 * placeholder), the SAM image embedding [1, O, G, G] (what the mask decoder reads), and the
 * original (H0, W0) and SAM-resized (h_r, w_r) sizes the mask postprocessing needs.
 *
 * Slots. The cache is a fixed array of n_slots = max_batch + n_retain entries carved out of one
 * backend block at creation (device memory on CUDA, host memory on the CPU; docs/style.md §10: no
 * allocation after creation). An entry is
 *   FREE      unused;
 *   ENCODING  allocated to an image whose vision stage runs in the current step (pinned);
 *   READY     holding an image; pinned while refs > 0 (running requests read it), else retained
 *             for reuse and evictable, least recently used first.
 * Running requests pin at most max_batch entries, so a request being admitted always finds a FREE
 * or an evictable entry. At most n_retain entries are retained unpinned (the byte budget
 * lisa_engine_params.image_cache_bytes divided by the entry size); n_retain = 0 turns reuse off:
 * lookups then never hit and an entry is freed as soon as its request finishes.
 *
 * Eviction calls on_evict(ctx, slot) first, so that the KV prefixes computed from that image
 * (runtime/prefix_tree.h) go with it.
 *
 * Ownership: a lisa_image_cache owns its backend block and its entry array; it borrows the backend.
 * Not thread-safe: the engine serializes every call under its mutex.
 */
#ifndef LISA_RUNTIME_IMAGE_CACHE_H
#define LISA_RUNTIME_IMAGE_CACHE_H

#include "kernels/ops.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_image_key {
    uint64_t hash[2]; /* of the RGB bytes, seeded, mixed with the preprocessing identity */
    int32_t height, width;
} lisa_image_key;

static inline bool lisa_image_key_eq(const lisa_image_key *a, const lisa_image_key *b) {
    return a->hash[0] == b->hash[0] && a->hash[1] == b->hash[1] && a->height == b->height && a->width == b->width;
}

typedef enum lisa_image_entry_state {
    LISA_IMAGE_ENTRY_FREE = 0,
    LISA_IMAGE_ENTRY_ENCODING,
    LISA_IMAGE_ENTRY_READY,
} lisa_image_entry_state;

typedef struct lisa_image_entry {
    lisa_image_key key;
    lisa_image_entry_state state;
    int32_t refs;             /* running requests that read it */
    uint64_t used;            /* LRU clock of the last lookup or release */
    int32_t H0, W0, h_r, w_r; /* original and SAM-resized size (READY) */
    lisa_tensor proj;         /* [1, P, C] view into the cache block (activation dtype) */
    lisa_tensor emb;          /* [1, O, G, G] view into the cache block */
} lisa_image_entry;

typedef struct lisa_image_cache {
    lisa_backend *be;
    void *mem; /* n_slots entries, each proj then emb */
    size_t entry_bytes;
    int32_t n_slots, n_retain;
    lisa_image_entry *e; /* [n_slots] */
    int32_t n_retained;  /* READY entries with refs == 0 */
    uint64_t clock;
    int64_t hits, misses, evictions;
    void (*on_evict)(void *ctx, int32_t slot);
    void *evict_ctx;
} lisa_image_cache;

/* Bytes of one entry (features + embedding). */
size_t lisa_image_cache_entry_bytes(lisa_dtype dt, int32_t P, int32_t C, int32_t O, int32_t G);

/* n_inflight entries for running requests plus cache_bytes / entry_bytes retained ones. */
lisa_status lisa_image_cache_init(lisa_image_cache *c, lisa_backend *be, lisa_dtype dt, int32_t P, int32_t C, int32_t O,
                                  int32_t G, int32_t n_inflight, int64_t cache_bytes);
void lisa_image_cache_free(lisa_image_cache *c);

static inline bool lisa_image_cache_enabled(const lisa_image_cache *c) { return c->n_retain > 0; }

/* The entry holding (or encoding) `key`, or -1. Touches nothing (a peek: workers decide with it
 * whether to preprocess pixels). Always -1 when the cache is disabled. */
int32_t lisa_image_cache_find(const lisa_image_cache *c, const lisa_image_key *key);
/* A hit on a READY entry: pinned (refs++), counted, marked recently used. */
void lisa_image_cache_pin(lisa_image_cache *c, int32_t slot);
/* A miss: a FREE entry, else the least recently used retained one (evicted), now ENCODING for
 * `key` and pinned once. Never fails while fewer than n_inflight entries are pinned (asserted). */
int32_t lisa_image_cache_acquire(lisa_image_cache *c, const lisa_image_key *key);
/* The vision stage filled the entry. */
void lisa_image_cache_ready(lisa_image_cache *c, int32_t slot, int32_t H0, int32_t W0, int32_t h_r, int32_t w_r);
/* A request is done with the entry (refs--). At zero the entry is retained (READY, reuse on) or
 * freed (reuse off, or its encoding failed); beyond n_retain retained entries the least recently
 * used is evicted. */
void lisa_image_cache_unpin(lisa_image_cache *c, int32_t slot);
/* Bytes of the entries holding an image (READY or ENCODING). */
int64_t lisa_image_cache_bytes(const lisa_image_cache *c);

#ifdef __cplusplus
}
#endif

#endif
