/* tests/common/plain_check.h — CHECK and MUST for the tests that are plain programs, not Criterion
 * suites (tests/threads: Criterion cannot start under TSan; tests/mpi: one process per rank).
 * CHECK counts (plain_n_pass / plain_n_fail, call it from one thread) and prints a failure with its
 * location; MUST ends the program (exit 2) when a setup step fails. */
#ifndef LISA_TESTS_PLAIN_CHECK_H
#define LISA_TESTS_PLAIN_CHECK_H

#include "lisa.h"

#include <stdio.h>
#include <stdlib.h>

static int plain_n_pass, plain_n_fail;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond)                                                                                                      \
            plain_n_pass++;                                                                                            \
        else {                                                                                                         \
            plain_n_fail++;                                                                                            \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);                                         \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

/* a setup step that must work for the test to mean anything */
#define MUST(expr)                                                                                                     \
    do {                                                                                                               \
        lisa_status s_ = (expr);                                                                                       \
        if (s_ != LISA_OK) {                                                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, lisa_last_error());                          \
            exit(2);                                                                                                   \
        }                                                                                                              \
    } while (0)

#endif
