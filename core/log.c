/* core/log.c — see core/log.h and lisa_log_set in include/lisa.h. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

/* The callback and its user pointer, read and written together under the mutex (a message never
 * pairs one callback with another's user pointer); the callback itself runs outside it. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static lisa_log_fn log_fn;
static void *log_user;

void lisa_log_set(lisa_log_fn fn, void *user) {
    pthread_mutex_lock(&log_mu);
    log_fn = fn;
    log_user = user;
    pthread_mutex_unlock(&log_mu);
}

const char *lisa_log_level_name(lisa_log_level level) {
    switch (level) {
    case LISA_LOG_ERROR: return "error";
    case LISA_LOG_WARN: return "warning";
    case LISA_LOG_INFO: return "info";
    case LISA_LOG_DEBUG: return "debug";
    }
    return "log";
}

void lisa_log_stderr(void *user, lisa_log_level level, const char *message) {
    const lisa_log_level max = user ? *(const lisa_log_level *)user : LISA_LOG_WARN;
    if (level > max) return;
    fprintf(stderr, "lisa: %s: %s\n", lisa_log_level_name(level), message);
}

void lisa_log(lisa_log_level level, const char *fmt, ...) {
    pthread_mutex_lock(&log_mu);
    const lisa_log_fn fn = log_fn;
    void *user = log_user;
    pthread_mutex_unlock(&log_mu);
    if (!fn) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(user, level, msg);
}
