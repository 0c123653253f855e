/* runtime/prefix_tree.c — nodes, matching, page tables, eviction (see prefix_tree.h). */
#include "runtime/prefix_tree.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

void lisa_prefix_tree_init(lisa_prefix_tree *t, lisa_kv_pool *pool) {
    memset(t, 0, sizeof *t);
    t->pool = pool;
}

static void unlink_node(lisa_prefix_node *n) {
    for (lisa_prefix_node **pp = &n->parent->child; *pp; pp = &(*pp)->next)
        if (*pp == n) {
            *pp = n->next;
            return;
        }
}

/* frees n and its subtree (n already unlinked, or its parent going too) */
static void free_subtree(lisa_prefix_tree *t, lisa_prefix_node *n) {
    while (n->child) {
        lisa_prefix_node *c = n->child;
        n->child = c->next;
        free_subtree(t, c);
    }
    for (int32_t i = 0; i < n->n_pages; i++)
        lisa_kv_page_unref(t->pool, n->pages[i]);
    t->n_pages -= n->n_pages;
    t->n_nodes--;
    free(n->pages);
    free(n->ids);
    free(n);
}

static void drop(lisa_prefix_tree *t, lisa_prefix_node *n) {
    unlink_node(n);
    free_subtree(t, n);
    t->evictions++;
}

void lisa_prefix_tree_free(lisa_prefix_tree *t) {
    while (t->root.child) {
        lisa_prefix_node *c = t->root.child;
        t->root.child = c->next;
        free_subtree(t, c);
    }
    memset(t, 0, sizeof *t);
}

static bool segment_eq(const lisa_prefix_node *c, const int32_t *ids, int32_t n_ids, const lisa_image_key *image) {
    if (c->n_ids != n_ids || memcmp(c->ids, ids, (size_t)n_ids * sizeof(int32_t)) != 0) return false;
    if (!c->has_image) return image == NULL;
    return image && lisa_image_key_eq(&c->image, image);
}

lisa_prefix_node *lisa_prefix_tree_child(lisa_prefix_tree *t, lisa_prefix_node *parent, const int32_t *ids,
                                         int32_t n_ids, const lisa_image_key *image) {
    for (lisa_prefix_node *c = (parent ? parent : &t->root)->child; c; c = c->next)
        if (segment_eq(c, ids, n_ids, image)) return c;
    return NULL;
}

lisa_prefix_node *lisa_prefix_tree_insert(lisa_prefix_tree *t, lisa_prefix_node *parent, const int32_t *ids,
                                          int32_t n_ids, const lisa_image_key *image, int32_t pos1,
                                          const int32_t *seq_pages, bool pinned) {
    if (!parent) parent = &t->root;
    const int32_t ps = t->pool->page_size, pos0 = parent->pos1;
    LISA_ASSERT(n_ids > 0 && pos1 > pos0);
    lisa_prefix_node *n = calloc(1, sizeof *n);
    const int32_t first = pos0 / ps, last = (pos1 - 1) / ps;
    if (n) {
        n->ids = malloc((size_t)n_ids * sizeof(int32_t));
        n->pages = malloc((size_t)(last - first + 1) * sizeof(int32_t));
    }
    if (!n || !n->ids || !n->pages) {
        if (n) {
            free(n->ids);
            free(n->pages);
        }
        free(n);
        return NULL;
    }
    memcpy(n->ids, ids, (size_t)n_ids * sizeof(int32_t));
    n->n_ids = n_ids;
    n->id_end = parent->id_end + n_ids;
    if (image) {
        n->has_image = true;
        n->image = *image;
    }
    n->pos0 = pos0;
    n->pos1 = pos1;
    for (int32_t p = first; p <= last; p++) {
        lisa_kv_page_ref(t->pool, seq_pages[p]);
        n->pages[n->n_pages++] = seq_pages[p];
    }
    n->pinned = pinned;
    n->used = ++t->clock;
    n->parent = parent;
    n->next = parent->child;
    parent->child = n;
    t->n_nodes++;
    t->n_pages += n->n_pages;
    return n;
}

lisa_prefix_node *lisa_prefix_tree_match(lisa_prefix_tree *t, const int32_t *ids, int32_t n_ids,
                                         const lisa_image_key *image, int32_t L0) {
    lisa_prefix_node *n = &t->root;
    for (;;) {
        lisa_prefix_node *next = NULL;
        for (lisa_prefix_node *c = n->child; c && !next; c = c->next) {
            if (c->id_end > n_ids || c->pos1 >= L0) continue;
            if (segment_eq(c, ids + n->id_end, c->n_ids, c->has_image ? image : NULL)) next = c;
        }
        if (!next) break;
        n = next;
        n->used = ++t->clock;
    }
    return n == &t->root ? NULL : n;
}

lisa_status lisa_prefix_tree_seq_init(lisa_prefix_tree *t, const lisa_prefix_node *node, lisa_kv_seq *s,
                                      int32_t *cow_src, int32_t *cow_dst) {
    *cow_src = *cow_dst = -1;
    if (!node) return lisa_kv_seq_init(t->pool, s, NULL, 0);
    const int32_t ps = t->pool->page_size;
    /* the path's page table: each node's pages after its ancestors', a node starting inside a page
     * replacing the ancestor's partial copy of it */
    const lisa_prefix_node *path[64];
    int32_t depth = 0;
    for (const lisa_prefix_node *n = node; n && n != &t->root; n = n->parent) {
        LISA_ASSERT(depth < 64);
        path[depth++] = n;
    }
    const int32_t n_pages = (node->pos1 + ps - 1) / ps;
    int32_t stack[256] = {0}, *pages = n_pages <= 256 ? stack : malloc((size_t)n_pages * sizeof(int32_t));
    if (!pages) return lisa_fail(LISA_ERR_OOM, "KV page table: out of memory");
    for (int32_t i = 0; i < n_pages; i++)
        pages[i] = -1;
    for (int32_t d = depth - 1; d >= 0; d--)
        for (int32_t i = 0; i < path[d]->n_pages; i++)
            pages[path[d]->pos0 / ps + i] = path[d]->pages[i];
    lisa_status st = lisa_kv_seq_init(t->pool, s, pages, n_pages);
    if (pages != stack) free(pages);
    LISA_TRY(st);
    s->len = node->pos1;
    if (node->pos1 % ps != 0 && lisa_kv_seq_cow_last(t->pool, s, cow_src, cow_dst) != LISA_OK) {
        lisa_kv_seq_release(t->pool, s);
        return LISA_ERR_BUSY;
    }
    return LISA_OK;
}

static bool on_path(const lisa_prefix_node *n, const lisa_prefix_node *keep) {
    for (; keep; keep = keep->parent)
        if (keep == n) return true;
    return false;
}

static void lru_leaf(lisa_prefix_node *n, const lisa_prefix_node *keep, lisa_prefix_node **best) {
    for (lisa_prefix_node *c = n->child; c; c = c->next) {
        if (c->child) {
            lru_leaf(c, keep, best);
        } else if (!c->pinned && c->users == 0 && !on_path(c, keep) && (!*best || c->used < (*best)->used)) {
            *best = c;
        }
    }
}

bool lisa_prefix_tree_evict(lisa_prefix_tree *t, int32_t n_free, const lisa_prefix_node *keep) {
    while (t->pool->n_free < n_free) {
        lisa_prefix_node *victim = NULL;
        lru_leaf(&t->root, keep, &victim);
        if (!victim) return false;
        drop(t, victim);
    }
    return true;
}

static void drop_image_under(lisa_prefix_tree *t, lisa_prefix_node *n, const lisa_image_key *image) {
    lisa_prefix_node *c = n->child;
    while (c) {
        lisa_prefix_node *next = c->next;
        if (c->has_image && lisa_image_key_eq(&c->image, image))
            drop(t, c);
        else
            drop_image_under(t, c, image);
        c = next;
    }
}

void lisa_prefix_tree_drop_image(lisa_prefix_tree *t, const lisa_image_key *image) {
    drop_image_under(t, &t->root, image);
}
