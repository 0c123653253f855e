/* runtime/prefix_tree.h — the KV prefix cache: a radix tree of KV pages keyed by prompt segments
 * (issue #17; the idea of SGLang's RadixAttention, over runtime/kv_cache.h's page pool).
 *
 * A request's prompt is ids[0..n_ids) with the image placeholder at ids[k], expanded to positions
 * [0, L0) with the image's P feature rows at positions [k, k + P). Its prefill is cut into
 * segments, always at the same places whether or not anything is reused:
 *     [0, S)          the system prompt's full pages (S = a multiple of the page size; the engine
 *                     prefills it once at creation: a pinned node)
 *     [S, k + P)      the rest of the system prompt, the image features        ("image segment")
 *     [k + P, L0)     the query and the assistant tag
 * Each segment is prefilled as its own sequence of the batch plan (its own attention call and its
 * own GEMM row group on the CPU), so its KV depends only on the segment's tokens and the KV before
 * it, never on what follows. That is what makes reuse exact: a node holds the KV pages of one
 * segment, its key is the segment's token ids (and, for an image segment, the image's identity,
 * runtime/image_cache.h), and the path from the root to a node is a prefix of every prompt that
 * starts with those segments. A request walks the tree as far as its segments match and prefills
 * only the rest; the results are bitwise those of prefilling everything (CPU backend).
 *
 * Pages. A node covering positions [pos0, pos1) holds one reference on each page that holds them
 * (pages floor(pos0/ps) .. ceil(pos1/ps) - 1). A node ending inside a page (the image segment
 * usually does) shares that partial page with the request that created it, which keeps appending
 * its own tokens after pos1 there; everyone else reads only positions < pos1 of it. A request that
 * continues from such a node gets a private copy of the partial page (copy-on-write: the copy is
 * part of its prefill plan, so TP followers make it too) and appends to the copy.
 *
 * Eviction. Nodes are kept after their requests finish, LRU. When the pool lacks free pages, the
 * least recently used leaves that no running request reads (users == 0) and that are not pinned
 * are dropped (lisa_prefix_tree_evict); their pages return to the pool when no sequence holds them.
 * Dropping an image's nodes when the image leaves the image cache keeps the two caches coherent.
 *
 * Ownership: a lisa_prefix_tree owns its nodes (their key arrays and page references); it borrows
 * the pool. Not thread-safe: the engine's scheduler serializes every call.
 */
#ifndef LISA_RUNTIME_PREFIX_TREE_H
#define LISA_RUNTIME_PREFIX_TREE_H

#include "runtime/image_cache.h"
#include "runtime/kv_cache.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_prefix_node {
    struct lisa_prefix_node *parent, *child, *next; /* first child, next sibling */
    int32_t *ids; /* the segment's prompt ids (owned), the placeholder included if any */
    int32_t n_ids;
    int32_t id_end; /* prompt ids covered from the root through this node */
    bool has_image;
    lisa_image_key image; /* the image spliced at the placeholder (has_image) */
    int32_t pos0, pos1;   /* positions whose KV this node holds */
    int32_t *pages;       /* pages covering [pos0, pos1), one reference each (owned array) */
    int32_t n_pages;
    int32_t users; /* running sequences that continue from this node */
    uint64_t used; /* LRU clock */
    bool pinned;   /* never evicted (the system prompt) */
} lisa_prefix_node;

typedef struct lisa_prefix_tree {
    lisa_kv_pool *pool;       /* borrowed */
    lisa_prefix_node root;    /* covers nothing */
    int32_t n_nodes, n_pages; /* nodes and pages held (pages of different nodes never coincide) */
    uint64_t clock;
    int64_t evictions;
} lisa_prefix_tree;

void lisa_prefix_tree_init(lisa_prefix_tree *t, lisa_kv_pool *pool);
/* Drops every node (and its page references). */
void lisa_prefix_tree_free(lisa_prefix_tree *t);

/* A new child of `parent` (NULL = the root) for the segment ids[0..n_ids) (with `image` if the
 * segment holds the placeholder) at positions [parent end, pos1), taking references on the pages
 * seq_pages[] (the creating sequence's page table) that hold them. NULL on out of memory (nothing
 * is changed then). */
lisa_prefix_node *lisa_prefix_tree_insert(lisa_prefix_tree *t, lisa_prefix_node *parent, const int32_t *ids,
                                          int32_t n_ids, const lisa_image_key *image, int32_t pos1,
                                          const int32_t *seq_pages, bool pinned);

/* The deepest node whose path matches the prompt ids[0..n_ids) (placeholder at ids[k], `image` its
 * identity or NULL when images are not cached) and ends before position `L0` (a request always
 * prefills its last segment: its logits come from it). NULL when nothing matches. Marks the path
 * recently used. */
lisa_prefix_node *lisa_prefix_tree_match(lisa_prefix_tree *t, const int32_t *ids, int32_t n_ids,
                                         const lisa_image_key *image, int32_t L0);
/* The child of `parent` (NULL = root) for exactly this segment, or NULL. */
lisa_prefix_node *lisa_prefix_tree_child(lisa_prefix_tree *t, lisa_prefix_node *parent, const int32_t *ids,
                                         int32_t n_ids, const lisa_image_key *image);

/* Starts sequence s on node's path (node may be NULL: an empty sequence): s->pages = the path's
 * pages, s->len = node->pos1. When node ends inside a page, that last page is replaced by a fresh
 * one and *cow_src / *cow_dst name the copy the caller must make before s appends (else both are
 * -1). LISA_ERR_BUSY (no message) when the pool has no page for the copy. */
lisa_status lisa_prefix_tree_seq_init(lisa_prefix_tree *t, const lisa_prefix_node *node, lisa_kv_seq *s,
                                      int32_t *cow_src, int32_t *cow_dst);

/* Drops least recently used unpinned leaves with no users until the pool has n_free free pages;
 * false if it cannot. `keep` (may be NULL) and its ancestors are never dropped. */
bool lisa_prefix_tree_evict(lisa_prefix_tree *t, int32_t n_free, const lisa_prefix_node *keep);
/* Drops every node (and its subtree) whose image is `image`. */
void lisa_prefix_tree_drop_image(lisa_prefix_tree *t, const lisa_image_key *image);

#ifdef __cplusplus
}
#endif

#endif
