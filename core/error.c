/* core/error.c — thread-local last-error message and status names. */
#include "core/error.h"

#include <string.h>

#define LISA_ERROR_CAP 8192

static _Thread_local char tls_error[LISA_ERROR_CAP];

const char *lisa_status_name(lisa_status s) {
    switch (s) {
    case LISA_OK: return "LISA_OK";
    case LISA_ERR_INVALID_ARG: return "LISA_ERR_INVALID_ARG";
    case LISA_ERR_IO: return "LISA_ERR_IO";
    case LISA_ERR_FORMAT: return "LISA_ERR_FORMAT";
    case LISA_ERR_SHAPE: return "LISA_ERR_SHAPE";
    case LISA_ERR_UNSUPPORTED: return "LISA_ERR_UNSUPPORTED";
    case LISA_ERR_OOM: return "LISA_ERR_OOM";
    case LISA_ERR_LIMIT: return "LISA_ERR_LIMIT";
    case LISA_ERR_NOT_FOUND: return "LISA_ERR_NOT_FOUND";
    case LISA_ERR_BACKEND: return "LISA_ERR_BACKEND";
    case LISA_ERR_BUSY: return "LISA_ERR_BUSY";
    case LISA_ERR_INTERNAL: return "LISA_ERR_INTERNAL";
    }
    return "LISA_ERR_UNKNOWN";
}

const char *lisa_last_error(void) { return tls_error; }

void lisa_clear_error(void) { tls_error[0] = '\0'; }

const char *lisa_version(void) { return LISA_VERSION_STRING; }

lisa_status lisa_failv(lisa_status s, const char *fmt, va_list ap) {
    vsnprintf(tls_error, sizeof tls_error, fmt, ap);
    return s;
}

lisa_status lisa_fail(lisa_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lisa_failv(s, fmt, ap);
    va_end(ap);
    return s;
}

lisa_status lisa_fail_context(lisa_status s, const char *fmt, ...) {
    char prefix[LISA_ERROR_CAP];
    char old[LISA_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tls_error, sizeof old);
    /* Truncation is acceptable: the message keeps its head (the outermost context). */
    size_t n = strnlen(prefix, sizeof prefix - 1);
    memcpy(tls_error, prefix, n);
    size_t rest = sizeof tls_error - n;
    if (rest > 3) {
        memcpy(tls_error + n, ": ", 2);
        size_t m = strnlen(old, rest - 3);
        memcpy(tls_error + n + 2, old, m);
        tls_error[n + 2 + m] = '\0';
    } else {
        tls_error[n] = '\0';
    }
    return s;
}

lisa_status lisa_check_gen(lisa_status s, const char *file, int line, const char *what, const char *detail) {
    return lisa_fail(s, "%s:%d: %s failed: %s", file, line, what, detail ? detail : "");
}
