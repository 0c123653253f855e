/* core/path.h — bounded path building (no silent truncation: an over-long path is an error). */
#ifndef LISA_CORE_PATH_H
#define LISA_CORE_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* out = a + "/" + b (just b when a is empty). Returns false, with out = "", if it does not fit. */
static inline bool lisa_path_join(char *out, size_t cap, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), n = la + (la ? 1 : 0) + lb;
    if (n + 1 > cap) {
        if (cap) out[0] = '\0';
        return false;
    }
    memmove(out, a, la);
    if (la) out[la++] = '/';
    memmove(out + la, b, lb);
    out[la + lb] = '\0';
    return true;
}

#endif
