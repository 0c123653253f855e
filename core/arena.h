/* core/arena.h — bump allocators: one allocation per lifetime (docs/style.md §10).
 *
 * An arena hands out aligned slices of one block and is reset, never freed piecewise. It is sized
 * by a counting pass: create it with lisa_arena_init_measure(), run the same code that will run
 * for real (allocations return NULL data but are counted), read `peak`, then lisa_arena_init()
 * with that size. Marks give scoped scratch: m = mark(); ...; reset(m).
 *
 * Ownership: an arena made by lisa_arena_init owns `base` (host malloc) and frees it in
 * lisa_arena_free; one made by lisa_arena_init_external borrows `base` (e.g. device memory from a
 * backend) and never frees it. A measuring arena has no memory.
 */
#ifndef LISA_CORE_ARENA_H
#define LISA_CORE_ARENA_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_ARENA_ALIGN 256 /* enough for AVX-512 and for cuBLASLt / TMA operands */

typedef struct lisa_arena {
    const char *name; /* for error messages ("activations", "scratch") */
    unsigned char *base;
    size_t cap;
    size_t used;
    size_t peak;      /* high-water mark of `used` since init */
    bool measuring;   /* count-only: allocations succeed with NULL data and are not bounded */
    bool owns_base;
} lisa_arena;

/* Host arena of `cap` bytes in one aligned allocation. */
lisa_status lisa_arena_init(lisa_arena *a, const char *name, size_t cap);
/* Arena over caller memory `base[0..cap)`, which must be LISA_ARENA_ALIGN-aligned. */
void lisa_arena_init_external(lisa_arena *a, const char *name, void *base, size_t cap);
/* Count-only arena. */
void lisa_arena_init_measure(lisa_arena *a, const char *name);
void lisa_arena_free(lisa_arena *a);

/* Aligned slice of `bytes`. On exhaustion returns LISA_ERR_OOM naming the arena and sizes.
 * In a measuring arena *out is NULL and the call succeeds. */
lisa_status lisa_arena_alloc(lisa_arena *a, size_t bytes, void **out);

static inline size_t lisa_arena_mark(const lisa_arena *a) { return a->used; }
void lisa_arena_reset(lisa_arena *a, size_t mark);

#ifdef __cplusplus
}
#endif

#endif
