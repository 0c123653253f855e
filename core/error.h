/* core/error.h — two-tier errors (docs/style.md §14).
 *
 * Runtime failures a user can cause return a lisa_status and record a message in the calling
 * thread's last-error buffer via lisa_fail(); bugs (broken invariants) abort via LISA_ASSERT.
 * Only tools/ and tests/ programs exit().
 */
#ifndef LISA_CORE_ERROR_H
#define LISA_CORE_ERROR_H

#include "lisa.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* lisa_fail(status, fmt, ...) records "<message>" as the calling thread's last error and returns
 * `status`; it is public (include/lisa.h). Messages name the file/field/value:
 * lisa_fail(LISA_ERR_FORMAT, "%s: header field '%s': ...", path, key). */
lisa_status lisa_failv(lisa_status s, const char *fmt, va_list ap);

/* Prepends "<context>: " to the current last-error message (for adding the file name or the
 * stage at an outer level) and returns `s` unchanged. */
lisa_status lisa_fail_context(lisa_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Aborts with file:line and the failed expression. For invariants only, never for user input. */
#define LISA_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: LISA_ASSERT(%s) failed\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Evaluates a lisa_status expression and returns it from the enclosing function on failure. */
#define LISA_TRY(expr)                                                                             \
    do {                                                                                           \
        lisa_status lisa_try_s_ = (expr);                                                          \
        if (lisa_try_s_ != LISA_OK) return lisa_try_s_;                                            \
    } while (0)

/* Shared by CUDA_CHECK / CUBLAS_CHECK / NCCL_CHECK: records "file:line: what failed: detail". */
lisa_status lisa_check_gen(lisa_status s, const char *file, int line, const char *what, const char *detail);

#ifdef __cplusplus
}
#endif

#endif
