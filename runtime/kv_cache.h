/* runtime/kv_cache.h — the paged KV cache (FlashInfer page.cuh / vLLM block tables).
 *
 * Layout. One block of backend memory holds every layer's keys and values:
 *     [n_layers][2 (K, V)][n_pages][page_size][n_kv_heads][head_dim]   (dtype of the activations)
 * k[l], v[l] are the per-layer pool views [n_pages, page_size, n_kv_heads, head_dim] that the
 * KV_APPEND / PAGED_ATTENTION ops take. A sequence owns a page table (page ids, in order): its
 * token j lives in page pages[j / page_size] at slot j % page_size, i.e. KV slot
 * pages[j / page_size] * page_size + j % page_size. A batch's plan is the CSR form FlashInfer uses:
 * kv_indptr[B+1] into kv_indices (the concatenated page tables), kv_len[B] (tokens per sequence),
 * qo_indptr[B+1] (query rows per sequence); slot -1 = padding.
 *
 * Sharing. Pages are reference counted. Prefixes (the system prompt, a prompt through its image)
 * are kept as nodes of a radix tree (runtime/prefix_tree.h) that hold references on their pages;
 * every sequence that starts with a node's path puts the path's pages first in its table and takes
 * a reference on each. Shared pages are read-only below the prefix's end: a sequence appends only
 * into pages it holds alone, except the creator of a prefix that ends inside a page, which goes on
 * appending after that end (nobody else reads there). A sequence continuing from such a partial
 * page replaces it by a private copy first (lisa_kv_seq_cow_last: copy-on-write). A page returns to
 * the free list when its last reference goes.
 *
 * Ownership: a lisa_kv_pool owns the device block, the per-layer views, the refcounts and the free
 * list; it borrows the backend. A lisa_kv_seq owns its page-table array (host) and holds one
 * reference on each of its pages until lisa_kv_seq_release. Not thread-safe: the engine's
 * scheduler thread is the only user.
 */
#ifndef LISA_RUNTIME_KV_CACHE_H
#define LISA_RUNTIME_KV_CACHE_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_kv_pool {
    lisa_backend *be;
    void *mem;
    int32_t n_layers, n_pages, page_size, n_kv_heads, head_dim;
    lisa_dtype dtype;
    lisa_tensor *k, *v;   /* [n_layers] */
    int32_t *refcount;    /* [n_pages] */
    int32_t *free_list;   /* stack of free page ids */
    int32_t n_free;
} lisa_kv_pool;

/* Bytes of one page across all layers (K and V). */
size_t lisa_kv_page_bytes(int32_t n_layers, int32_t page_size, int32_t n_kv_heads, int32_t head_dim, lisa_dtype dt);

lisa_status lisa_kv_pool_init(lisa_kv_pool *p, lisa_backend *be, int32_t n_layers, int32_t n_pages, int32_t page_size,
                              int32_t n_kv_heads, int32_t head_dim, lisa_dtype dtype);
void lisa_kv_pool_free(lisa_kv_pool *p);

typedef struct lisa_kv_seq {
    int32_t *pages;  /* page table (owned) */
    int32_t n_pages, cap_pages;
    int32_t len;      /* tokens written */
    int32_t n_shared; /* leading pages shared with a prefix (read-only) */
} lisa_kv_seq;

/* Pages needed to hold n_tokens. */
static inline int32_t lisa_kv_pages_for(const lisa_kv_pool *p, int32_t n_tokens) {
    return (n_tokens + p->page_size - 1) / p->page_size;
}

/* Starts a sequence whose first `n_shared` pages (each full) are `shared` (refs are taken). */
lisa_status lisa_kv_seq_init(lisa_kv_pool *p, lisa_kv_seq *s, const int32_t *shared, int32_t n_shared);
/* Grows the page table so that it holds n_tokens in total. All or nothing: LISA_ERR_BUSY (no
 * message) if the pool lacks free pages, with nothing allocated. */
lisa_status lisa_kv_seq_reserve(lisa_kv_pool *p, lisa_kv_seq *s, int32_t n_tokens);
/* Drops every reference of the sequence and frees its table. */
void lisa_kv_seq_release(lisa_kv_pool *p, lisa_kv_seq *s);
/* One more / one less reference on a page (a prefix-tree node holding it); the last unref frees it. */
void lisa_kv_page_ref(lisa_kv_pool *p, int32_t page);
void lisa_kv_page_unref(lisa_kv_pool *p, int32_t page);
/* Copy-on-write of the sequence's last page: a free page replaces it in the table (the reference on
 * the old one is dropped). *src / *dst: the page to copy from / into (the caller copies the KV).
 * LISA_ERR_BUSY (no message) when no page is free. */
lisa_status lisa_kv_seq_cow_last(lisa_kv_pool *p, lisa_kv_seq *s, int32_t *src, int32_t *dst);
/* KV slot of token j (j < capacity). */
static inline int32_t lisa_kv_seq_slot(const lisa_kv_pool *p, const lisa_kv_seq *s, int32_t j) {
    return s->pages[j / p->page_size] * p->page_size + j % p->page_size;
}

#ifdef __cplusplus
}
#endif

#endif
