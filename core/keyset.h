/* core/keyset.h — a set of byte strings (open addressing, FNV-1a), for "is this record done?"
 * over millions of record keys (lisa annotate / lisa eval resume, duplicate checks on merge):
 * O(1) inserts and lookups that interleave freely, where a sorted array would be re-sorted after
 * every append.
 *
 * Ownership: a lisa_keyset owns its slot table and a copy of every key, until lisa_keyset_free.
 */
#ifndef LISA_CORE_KEYSET_H
#define LISA_CORE_KEYSET_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_keyset {
    char **slots;   /* [cap] NULL = empty; each key stored as a 4-byte length + bytes */
    uint64_t *hash; /* [cap] */
    size_t n, cap;  /* cap is 0 or a power of two, kept at most 1/2 full */
} lisa_keyset;

/* Adds key[0..len) (any bytes). *added (may be NULL): false when it was already present.
 * LISA_ERR_OOM when the table cannot grow. A zeroed lisa_keyset is a valid empty set. */
lisa_status lisa_keyset_add(lisa_keyset *s, const void *key, size_t len, bool *added);
bool lisa_keyset_has(const lisa_keyset *s, const void *key, size_t len);
void lisa_keyset_free(lisa_keyset *s);

#ifdef __cplusplus
}
#endif

#endif
