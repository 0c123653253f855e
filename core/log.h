/* core/log.h — the library's log messages (include/lisa.h lisa_log_set). Code that has something
 * to say that no status carries (a fallback taken in the background) calls lisa_log; the message
 * goes to the callback the embedder set, or nowhere: the library never writes to stderr itself. */
#ifndef LISA_CORE_LOG_H
#define LISA_CORE_LOG_H

#include "lisa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Formats one line (no trailing newline) and hands it to the callback, if one is set. */
void lisa_log(lisa_log_level level, const char *fmt, ...) LISA_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif

#endif
