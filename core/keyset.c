/* core/keyset.c — see keyset.h. */
#include "core/keyset.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a(const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool same(const char *slot, const void *key, size_t len) {
    uint32_t n;
    memcpy(&n, slot, sizeof n);
    return n == len && memcmp(slot + sizeof n, key, len) == 0;
}

/* the slot holding key, or the empty slot where it would go */
static size_t find(const lisa_keyset *s, uint64_t h, const void *key, size_t len) {
    size_t i = (size_t)h & (s->cap - 1);
    while (s->slots[i] && !(s->hash[i] == h && same(s->slots[i], key, len)))
        i = (i + 1) & (s->cap - 1);
    return i;
}

static lisa_status grow(lisa_keyset *s) {
    const size_t cap = s->cap ? s->cap * 2 : 1024;
    lisa_keyset t = {
        .slots = calloc(cap, sizeof(char *)), .hash = malloc(cap * sizeof(uint64_t)), .n = s->n, .cap = cap};
    if (!t.slots || !t.hash) {
        free(t.slots);
        free(t.hash);
        return lisa_fail(LISA_ERR_OOM, "key set: out of memory growing to %zu slots", cap);
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slots[i]) continue;
        size_t j = (size_t)s->hash[i] & (cap - 1);
        while (t.slots[j])
            j = (j + 1) & (cap - 1);
        t.slots[j] = s->slots[i];
        t.hash[j] = s->hash[i];
    }
    free(s->slots);
    free(s->hash);
    *s = t;
    return LISA_OK;
}

lisa_status lisa_keyset_add(lisa_keyset *s, const void *key, size_t len, bool *added) {
    if (added) *added = false;
    if (len > UINT32_MAX) return lisa_fail(LISA_ERR_LIMIT, "key set: key of %zu bytes", len);
    if (2 * (s->n + 1) > s->cap) LISA_TRY(grow(s));
    const uint64_t h = fnv1a(key, len);
    const size_t i = find(s, h, key, len);
    if (s->slots[i]) return LISA_OK;
    const uint32_t n = (uint32_t)len;
    char *copy = malloc(sizeof n + len);
    if (!copy) return lisa_fail(LISA_ERR_OOM, "key set: out of memory");
    memcpy(copy, &n, sizeof n);
    if (len) memcpy(copy + sizeof n, key, len);
    s->slots[i] = copy;
    s->hash[i] = h;
    s->n++;
    if (added) *added = true;
    return LISA_OK;
}

bool lisa_keyset_has(const lisa_keyset *s, const void *key, size_t len) {
    if (s->n == 0) return false;
    const uint64_t h = fnv1a(key, len);
    return s->slots[find(s, h, key, len)] != NULL;
}

void lisa_keyset_free(lisa_keyset *s) {
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    free(s->hash);
    memset(s, 0, sizeof *s);
}
