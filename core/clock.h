/* Monotonic wall clock for stage timings and deadlines (never the calendar clock: a time step of
 * the system clock must not make a stage take negative time). */
#ifndef LISA_CORE_CLOCK_H
#define LISA_CORE_CLOCK_H

#include <time.h>

static inline double lisa_clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static inline double lisa_clock_s(void) { return lisa_clock_ms() * 1e-3; }

#endif
