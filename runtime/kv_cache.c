/* runtime/kv_cache.c — page pool, reference counts, page tables (layout in kv_cache.h). */
#include "runtime/kv_cache.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

size_t lisa_kv_page_bytes(int32_t n_layers, int32_t page_size, int32_t n_kv_heads, int32_t head_dim, lisa_dtype dt) {
    return (size_t)n_layers * 2 * (size_t)page_size * (size_t)n_kv_heads * (size_t)head_dim * lisa_dtype_size(dt);
}

lisa_status lisa_kv_pool_init(lisa_kv_pool *p, lisa_backend *be, int32_t n_layers, int32_t n_pages, int32_t page_size,
                              int32_t n_kv_heads, int32_t head_dim, lisa_dtype dtype) {
    memset(p, 0, sizeof *p);
    if (n_layers < 1 || n_pages < 1 || page_size < 1 || n_kv_heads < 1 || head_dim < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "KV pool: %d layers, %d pages of %d tokens", n_layers, n_pages, page_size);
    const size_t layer_bytes = (size_t)n_pages * page_size * n_kv_heads * head_dim * lisa_dtype_size(dtype);
    p->k = calloc((size_t)n_layers, sizeof *p->k);
    p->v = calloc((size_t)n_layers, sizeof *p->v);
    p->refcount = calloc((size_t)n_pages, sizeof *p->refcount);
    p->free_list = malloc((size_t)n_pages * sizeof *p->free_list);
    if (!p->k || !p->v || !p->refcount || !p->free_list) {
        lisa_kv_pool_free(p);
        return lisa_fail(LISA_ERR_OOM, "KV pool: out of memory");
    }
    lisa_status s = be->mem_alloc(be, layer_bytes * 2 * (size_t)n_layers, &p->mem);
    if (s != LISA_OK) {
        lisa_kv_pool_free(p);
        return lisa_fail_context(s, "KV pool of %d pages x %d tokens (%zu bytes)", n_pages, page_size,
                                 layer_bytes * 2 * (size_t)n_layers);
    }
    p->be = be;
    p->n_layers = n_layers;
    p->n_pages = n_pages;
    p->page_size = page_size;
    p->n_kv_heads = n_kv_heads;
    p->head_dim = head_dim;
    p->dtype = dtype;
    const int64_t shape[4] = {n_pages, page_size, n_kv_heads, head_dim};
    for (int32_t l = 0; l < n_layers; l++) {
        p->k[l] = lisa_tensor_view((char *)p->mem + layer_bytes * (size_t)(2 * l), dtype, 4, shape);
        p->v[l] = lisa_tensor_view((char *)p->mem + layer_bytes * (size_t)(2 * l + 1), dtype, 4, shape);
        p->k[l].device = p->v[l].device = be->device;
        p->k[l].device_id = p->v[l].device_id = be->device_id;
    }
    /* Free list as a stack, lowest ids handed out first. */
    for (int32_t i = 0; i < n_pages; i++) p->free_list[i] = n_pages - 1 - i;
    p->n_free = n_pages;
    return LISA_OK;
}

void lisa_kv_pool_free(lisa_kv_pool *p) {
    if (p->mem && p->be) p->be->mem_free(p->be, p->mem);
    free(p->k);
    free(p->v);
    free(p->refcount);
    free(p->free_list);
    memset(p, 0, sizeof *p);
}

static void unref(lisa_kv_pool *p, int32_t page) {
    LISA_ASSERT(page >= 0 && page < p->n_pages && p->refcount[page] > 0);
    if (--p->refcount[page] == 0) p->free_list[p->n_free++] = page;
}

static lisa_status grow_table(lisa_kv_seq *s, int32_t n) {
    if (n <= s->cap_pages) return LISA_OK;
    int32_t cap = s->cap_pages ? s->cap_pages : 8;
    while (cap < n) cap *= 2;
    int32_t *np = realloc(s->pages, (size_t)cap * sizeof *np);
    if (!np) return lisa_fail(LISA_ERR_OOM, "KV page table: out of memory");
    s->pages = np;
    s->cap_pages = cap;
    return LISA_OK;
}

lisa_status lisa_kv_seq_init(lisa_kv_pool *p, lisa_kv_seq *s, const int32_t *shared, int32_t n_shared) {
    memset(s, 0, sizeof *s);
    LISA_TRY(grow_table(s, n_shared > 0 ? n_shared : 1));
    for (int32_t i = 0; i < n_shared; i++) {
        LISA_ASSERT(shared[i] >= 0 && shared[i] < p->n_pages && p->refcount[shared[i]] > 0);
        p->refcount[shared[i]]++;
        s->pages[i] = shared[i];
    }
    s->n_pages = s->n_shared = n_shared;
    s->len = n_shared * p->page_size;
    return LISA_OK;
}

lisa_status lisa_kv_seq_reserve(lisa_kv_pool *p, lisa_kv_seq *s, int32_t n_tokens) {
    const int32_t need = lisa_kv_pages_for(p, n_tokens);
    if (need <= s->n_pages) return LISA_OK;
    if (need - s->n_pages > p->n_free) return LISA_ERR_BUSY;
    LISA_TRY(grow_table(s, need));
    while (s->n_pages < need) {
        int32_t page = p->free_list[--p->n_free];
        LISA_ASSERT(p->refcount[page] == 0);
        p->refcount[page] = 1;
        s->pages[s->n_pages++] = page;
    }
    return LISA_OK;
}

void lisa_kv_page_ref(lisa_kv_pool *p, int32_t page) {
    LISA_ASSERT(page >= 0 && page < p->n_pages && p->refcount[page] > 0);
    p->refcount[page]++;
}

void lisa_kv_page_unref(lisa_kv_pool *p, int32_t page) { unref(p, page); }

lisa_status lisa_kv_seq_cow_last(lisa_kv_pool *p, lisa_kv_seq *s, int32_t *src, int32_t *dst) {
    LISA_ASSERT(s->n_pages > 0);
    if (p->n_free == 0) return LISA_ERR_BUSY;
    const int32_t page = p->free_list[--p->n_free];
    LISA_ASSERT(p->refcount[page] == 0);
    p->refcount[page] = 1;
    *src = s->pages[s->n_pages - 1];
    *dst = page;
    s->pages[s->n_pages - 1] = page;
    if (s->n_shared > s->n_pages - 1) s->n_shared = s->n_pages - 1;
    unref(p, *src); /* the tree still holds it */
    return LISA_OK;
}

void lisa_kv_seq_release(lisa_kv_pool *p, lisa_kv_seq *s) {
    for (int32_t i = 0; i < s->n_pages; i++) unref(p, s->pages[i]);
    free(s->pages);
    memset(s, 0, sizeof *s);
}
