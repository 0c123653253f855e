/* tools/cli_args.h — the options of the `lisa` subcommands: one table per subcommand, parsed by
 * getopt_long (`--opt value` and `--opt=value`, options and positional arguments in any order,
 * `--` ends the options; abbreviations are refused so that a script's spelling stays valid when
 * options are added), and the --help text generated from the same table with each option's
 * default read from its destination before parsing. Values are checked strictly: integers are the
 * whole string, in range, no overflow ("" and "12abc" are rejected); --backend is cpu, cuda or auto.
 *
 * Each entry is written with one of the CLI_* macros below, whose first argument is the option's
 * name; tests/test_cli_options.c reads the tables from the sources to check that --help lists every
 * entry. Exit statuses: 0 after --help, 2 for a usage error (message on stderr). */
#ifndef LISA_TOOLS_CLI_ARGS_H
#define LISA_TOOLS_CLI_ARGS_H

#include "lisa.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Base-10 integer in [lo, hi]; false (and *out untouched) for NULL, "", trailing characters,
 * overflow or out of range. */
bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* The same for an int-sized option ([lo, hi] must fit an int). */
bool cli_parse_int(const char *s, int lo, int hi, int *out);

/* "cpu", "cuda" or "auto"; false for anything else (the caller names the option and the value). */
bool cli_parse_backend(const char *s, lisa_backend_kind *out);

/* "K/N" with 0 <= K < N <= 1000000 (a shard of a dataset); dst is int32_t[2] = {K, N}. */
bool cli_parse_shard(const char *s, void *dst);

typedef enum cli_kind {
    CLI_KIND_FLAG,    /* no value: *(bool *)dst = true */
    CLI_KIND_STR,     /* *(const char **)dst = the value (points into argv) */
    CLI_KIND_INT,     /* *(int32_t *)dst, an integer in [lo, hi] */
    CLI_KIND_I64,     /* *(int64_t *)dst, an integer in [lo, hi] */
    CLI_KIND_DOUBLE,  /* *(double *)dst, a number in (dlo, dhi] */
    CLI_KIND_BACKEND, /* *(lisa_backend_kind *)dst */
    CLI_KIND_FN,      /* parse(value, dst) decides (K/N, WxH, lists, enumerations) */
} cli_kind;

/* One option. Borrowed by the parser for the call. */
typedef struct cli_opt {
    const char *name; /* without the leading "--" */
    cli_kind kind;
    void *dst;
    const char *arg;  /* the value's name in --help ("DIR", "N"); NULL for flags */
    const char *help; /* may hold '\n' for more lines; the default is appended */
    int64_t lo, hi;   /* CLI_KIND_INT / _I64 range */
    double dlo, dhi;  /* CLI_KIND_DOUBLE range (dlo exclusive) */
    bool (*parse)(const char *value, void *dst); /* CLI_KIND_FN */
    const char *dflt; /* the default as --help shows it; NULL: read from *dst (none for an unset
                         string, a false flag or a CLI_KIND_FN option) */
    bool required;    /* a usage error when absent; --help says "(required)" */
} cli_opt;

#define CLI_FLAG(n, d, h) {.name = (n), .kind = CLI_KIND_FLAG, .dst = (d), .help = (h)}
#define CLI_STR(n, d, a, h) {.name = (n), .kind = CLI_KIND_STR, .dst = (d), .arg = (a), .help = (h)}
#define CLI_STR_REQ(n, d, a, h) {.name = (n), .kind = CLI_KIND_STR, .dst = (d), .arg = (a), .help = (h), .required = true}
#define CLI_INT(n, d, l, u, a, h) {.name = (n), .kind = CLI_KIND_INT, .dst = (d), .arg = (a), .help = (h), .lo = (l), .hi = (u)}
#define CLI_I64(n, d, l, u, a, h) {.name = (n), .kind = CLI_KIND_I64, .dst = (d), .arg = (a), .help = (h), .lo = (l), .hi = (u)}
#define CLI_DOUBLE(n, d, l, u, a, h) {.name = (n), .kind = CLI_KIND_DOUBLE, .dst = (d), .arg = (a), .help = (h), .dlo = (l), .dhi = (u)}
#define CLI_BACKEND(n, d)                                                                                              \
    {.name = (n), .kind = CLI_KIND_BACKEND, .dst = (d), .arg = "cpu|cuda|auto",                                         \
     .help = "compute backend; auto: CUDA when this build has it and a GPU is\n"                                      \
             "present, else the CPU (the choice is printed on stderr)"}
#define CLI_FN(n, d, p, a, h, df) {.name = (n), .kind = CLI_KIND_FN, .dst = (d), .arg = (a), .help = (h), .parse = (p), .dflt = (df)}
/* entries whose default is spelled out rather than read from *dst ("all cores" for 0) */
#define CLI_STR_D(n, d, a, h, df) {.name = (n), .kind = CLI_KIND_STR, .dst = (d), .arg = (a), .help = (h), .dflt = (df)}
#define CLI_INT_D(n, d, l, u, a, h, df) {.name = (n), .kind = CLI_KIND_INT, .dst = (d), .arg = (a), .help = (h), .lo = (l), .hi = (u), .dflt = (df)}
#define CLI_DOUBLE_D(n, d, l, u, a, h, df) {.name = (n), .kind = CLI_KIND_DOUBLE, .dst = (d), .arg = (a), .help = (h), .dlo = (l), .dhi = (u), .dflt = (df)}
#define CLI_I64_D(n, d, l, u, a, h, df) {.name = (n), .kind = CLI_KIND_I64, .dst = (d), .arg = (a), .help = (h), .lo = (l), .hi = (u), .dflt = (df)}

/* A subcommand: its name, usage line(s), description, option table and notes. Static data. */
typedef struct cli_cmd {
    const char *name;     /* "make-tiny" */
    const char *usage;    /* after "usage: lisa <name> "; more lines with '\n' */
    const char *about;    /* paragraphs between the usage and the options (may be NULL) */
    const cli_opt *opts;
    int n_opts;
    const char *notes;    /* after the options (may be NULL) */
    int min_pos, max_pos; /* positional arguments accepted */
} cli_cmd;

enum { CLI_RUN = -1 };

/* Parses argv (argv[0] is the subcommand) into the table's destinations. Returns CLI_RUN when
 * the command should go on, else its exit status: 0 after --help (printed on stdout), 2 after a
 * usage error (the message and the usage line on stderr). The positional arguments (in their
 * order) are left in (*pos)[0..*n_pos); argv is permuted. pos/n_pos may be NULL when max_pos is 0. */
int cli_parse(const cli_cmd *c, int argc, char **argv, char ***pos, int *n_pos);

/* Prints "lisa <name>: <message>" and the usage line(s) on stderr; returns 2. */
int cli_usage_error(const cli_cmd *c, const char *fmt, ...) LISA_PRINTF(2, 3);

/* The whole --help text. */
void cli_print_help(const cli_cmd *c, FILE *f);

/* "lisa <name>: <what>: LISA_ERR_...: <lisa_last_error()>" on stderr (what may be NULL); returns 1. */
int cli_fail(const char *cmd, const char *what, lisa_status s);

/* Loads a model for subcommand `cmd` and, when p->backend is LISA_BACKEND_AUTO, says which backend
 * was chosen on stderr ("lisa segment: backend auto: cuda (NVIDIA H100 80GB HBM3)"). */
lisa_status cli_model_load(const char *cmd, const char *dir, const lisa_model_params *p, lisa_model **out);

#endif
