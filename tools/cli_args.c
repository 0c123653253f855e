/* tools/cli_args.c — see cli_args.h. */
#include "cli_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s) return false;
    char *end = NULL;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = (int64_t)v;
    return true;
}

bool cli_parse_int(const char *s, int lo, int hi, int *out) {
    int64_t v;
    if (!cli_parse_i64(s, lo, hi, &v)) return false;
    *out = (int)v;
    return true;
}

bool cli_parse_backend(const char *s, lisa_backend_kind *out) {
    if (!s) return false;
    if (!strcmp(s, "cpu"))
        *out = LISA_BACKEND_CPU;
    else if (!strcmp(s, "cuda"))
        *out = LISA_BACKEND_CUDA;
    else if (!strcmp(s, "auto"))
        *out = LISA_BACKEND_AUTO;
    else
        return false;
    return true;
}
