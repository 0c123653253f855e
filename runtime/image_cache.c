/* runtime/image_cache.c — slots, lookups, pinning and LRU eviction (see image_cache.h). */
#include "runtime/image_cache.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

size_t lisa_image_cache_entry_bytes(lisa_dtype dt, int32_t P, int32_t C, int32_t O, int32_t G) {
    return ((size_t)P * C + (size_t)O * G * G) * lisa_dtype_size(dt);
}

lisa_status lisa_image_cache_init(lisa_image_cache *c, lisa_backend *be, lisa_dtype dt, int32_t P, int32_t C, int32_t O,
                                  int32_t G, int32_t n_inflight, int64_t cache_bytes) {
    memset(c, 0, sizeof *c);
    c->entry_bytes = lisa_image_cache_entry_bytes(dt, P, C, O, G);
    if (n_inflight < 1 || cache_bytes < 0 || c->entry_bytes == 0)
        return lisa_fail(LISA_ERR_INVALID_ARG, "image cache: %d in flight, %lld bytes", n_inflight,
                         (long long)cache_bytes);
    const int64_t n_retain = cache_bytes / (int64_t)c->entry_bytes;
    if (n_retain > 1 << 20)
        return lisa_fail(LISA_ERR_LIMIT, "image cache: %lld bytes make %lld entries of %zu bytes (at most %d)",
                         (long long)cache_bytes, (long long)n_retain, c->entry_bytes, 1 << 20);
    c->n_retain = (int32_t)n_retain;
    c->n_slots = n_inflight + c->n_retain;
    if (!(c->e = calloc((size_t)c->n_slots, sizeof *c->e)))
        return lisa_fail(LISA_ERR_OOM, "image cache: out of memory");
    lisa_status s = be->mem_alloc(be, c->entry_bytes * (size_t)c->n_slots, &c->mem);
    if (s != LISA_OK) {
        free(c->e);
        c->e = NULL;
        return lisa_fail_context(s, "image cache of %d entries x %zu bytes (image_cache_bytes %lld)", c->n_slots,
                                 c->entry_bytes, (long long)cache_bytes);
    }
    c->be = be;
    const size_t proj_bytes = (size_t)P * C * lisa_dtype_size(dt);
    for (int32_t i = 0; i < c->n_slots; i++) {
        char *base = (char *)c->mem + c->entry_bytes * (size_t)i;
        c->e[i].proj = lisa_tensor_view(base, dt, 3, (int64_t[]){1, P, C});
        c->e[i].emb = lisa_tensor_view(base + proj_bytes, dt, 4, (int64_t[]){1, O, G, G});
        c->e[i].proj.device = c->e[i].emb.device = be->device;
        c->e[i].proj.device_id = c->e[i].emb.device_id = be->device_id;
    }
    return LISA_OK;
}

void lisa_image_cache_free(lisa_image_cache *c) {
    if (c->mem && c->be) c->be->mem_free(c->be, c->mem);
    free(c->e);
    memset(c, 0, sizeof *c);
}

int32_t lisa_image_cache_find(const lisa_image_cache *c, const lisa_image_key *key) {
    if (!lisa_image_cache_enabled(c)) return -1;
    for (int32_t i = 0; i < c->n_slots; i++)
        if (c->e[i].state != LISA_IMAGE_ENTRY_FREE && lisa_image_key_eq(&c->e[i].key, key)) return i;
    return -1;
}

void lisa_image_cache_pin(lisa_image_cache *c, int32_t slot) {
    lisa_image_entry *e = &c->e[slot];
    LISA_ASSERT(e->state == LISA_IMAGE_ENTRY_READY);
    if (e->refs++ == 0) c->n_retained--;
    e->used = ++c->clock;
    c->hits++;
}

static void evict(lisa_image_cache *c, int32_t slot) {
    lisa_image_entry *e = &c->e[slot];
    LISA_ASSERT(e->state == LISA_IMAGE_ENTRY_READY && e->refs == 0);
    if (c->on_evict) c->on_evict(c->evict_ctx, slot);
    e->state = LISA_IMAGE_ENTRY_FREE;
    c->n_retained--;
    c->evictions++;
}

/* the least recently used retained entry, or -1 */
static int32_t lru_retained(const lisa_image_cache *c) {
    int32_t best = -1;
    for (int32_t i = 0; i < c->n_slots; i++) {
        const lisa_image_entry *e = &c->e[i];
        if (e->state == LISA_IMAGE_ENTRY_READY && e->refs == 0 && (best < 0 || e->used < c->e[best].used)) best = i;
    }
    return best;
}

int32_t lisa_image_cache_acquire(lisa_image_cache *c, const lisa_image_key *key) {
    int32_t slot = -1;
    for (int32_t i = 0; i < c->n_slots && slot < 0; i++)
        if (c->e[i].state == LISA_IMAGE_ENTRY_FREE) slot = i;
    if (slot < 0) {
        slot = lru_retained(c);
        LISA_ASSERT(slot >= 0); /* more than n_inflight entries pinned: an engine bug */
        evict(c, slot);
    }
    lisa_image_entry *e = &c->e[slot];
    e->key = *key;
    e->state = LISA_IMAGE_ENTRY_ENCODING;
    e->refs = 1;
    e->used = ++c->clock;
    c->misses++;
    return slot;
}

void lisa_image_cache_ready(lisa_image_cache *c, int32_t slot, int32_t H0, int32_t W0, int32_t h_r, int32_t w_r) {
    lisa_image_entry *e = &c->e[slot];
    LISA_ASSERT(e->state == LISA_IMAGE_ENTRY_ENCODING);
    e->state = LISA_IMAGE_ENTRY_READY;
    e->H0 = H0, e->W0 = W0, e->h_r = h_r, e->w_r = w_r;
}

void lisa_image_cache_unpin(lisa_image_cache *c, int32_t slot) {
    lisa_image_entry *e = &c->e[slot];
    LISA_ASSERT(e->refs > 0 && e->state != LISA_IMAGE_ENTRY_FREE);
    if (--e->refs > 0) return;
    e->used = ++c->clock;
    if (e->state != LISA_IMAGE_ENTRY_READY || c->n_retain == 0) { /* a failed encode, or no reuse */
        if (e->state == LISA_IMAGE_ENTRY_READY && c->on_evict) c->on_evict(c->evict_ctx, slot);
        e->state = LISA_IMAGE_ENTRY_FREE;
        return;
    }
    c->n_retained++;
    while (c->n_retained > c->n_retain)
        evict(c, lru_retained(c));
}

int64_t lisa_image_cache_bytes(const lisa_image_cache *c) {
    int64_t n = 0;
    for (int32_t i = 0; i < c->n_slots; i++)
        n += c->e[i].state != LISA_IMAGE_ENTRY_FREE;
    return n * (int64_t)c->entry_bytes;
}
