/* tools/cli_args.h — option values shared by the `lisa` subcommands: one strict integer parser
 * (the whole string, in range, no overflow; "" and "12abc" are rejected) and one --backend parser,
 * so every subcommand accepts and rejects the same spellings. */
#ifndef LISA_TOOLS_CLI_ARGS_H
#define LISA_TOOLS_CLI_ARGS_H

#include "lisa.h"

#include <stdbool.h>
#include <stdint.h>

/* Base-10 integer in [lo, hi]; false (and *out untouched) for NULL, "", trailing characters,
 * overflow or out of range. */
bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* The same for an int-sized option ([lo, hi] must fit an int). */
bool cli_parse_int(const char *s, int lo, int hi, int *out);

/* "cpu", "cuda" or "auto"; false for anything else (the caller names the option and the value). */
bool cli_parse_backend(const char *s, lisa_backend_kind *out);

#endif
