/* core/arena.c — bump allocator. */
#include "core/arena.h"

#include "core/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t align_up(size_t n) { return (n + (LISA_ARENA_ALIGN - 1)) & ~(size_t)(LISA_ARENA_ALIGN - 1); }

lisa_status lisa_arena_init(lisa_arena *a, const char *name, size_t cap) {
    memset(a, 0, sizeof *a);
    a->name = name;
    cap = align_up(cap ? cap : 1);
    a->base = aligned_alloc(LISA_ARENA_ALIGN, cap);
    if (!a->base) return lisa_fail(LISA_ERR_OOM, "arena '%s': cannot allocate %zu bytes", name, cap);
    a->cap = cap;
    a->owns_base = true;
    return LISA_OK;
}

void lisa_arena_init_external(lisa_arena *a, const char *name, void *base, size_t cap) {
    LISA_ASSERT(((uintptr_t)base % LISA_ARENA_ALIGN) == 0);
    memset(a, 0, sizeof *a);
    a->name = name;
    a->base = base;
    a->cap = cap;
}

void lisa_arena_init_measure(lisa_arena *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->measuring = true;
}

void lisa_arena_free(lisa_arena *a) {
    if (a->owns_base) free(a->base);
    memset(a, 0, sizeof *a);
}

lisa_status lisa_arena_alloc(lisa_arena *a, size_t bytes, void **out) {
    size_t need = align_up(bytes);
    if (need < bytes) return lisa_fail(LISA_ERR_OOM, "arena '%s': request of %zu bytes overflows", a->name, bytes);
    if (a->measuring) {
        a->used += need;
        if (a->used > a->peak) a->peak = a->used;
        *out = NULL;
        return LISA_OK;
    }
    if (need > a->cap - a->used) {
        *out = NULL;
        return lisa_fail(LISA_ERR_OOM, "arena '%s': need %zu bytes, %zu of %zu free", a->name, need, a->cap - a->used,
                         a->cap);
    }
    *out = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return LISA_OK;
}

void lisa_arena_reset(lisa_arena *a, size_t mark) {
    LISA_ASSERT(mark <= a->used);
    a->used = mark;
}
