/* tools/cli_args.c — see cli_args.h. */
#include "cli_args.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
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

bool cli_parse_shard(const char *s, void *dst) {
    const char *slash = s ? strchr(s, '/') : NULL;
    if (!slash || slash == s || strlen(slash + 1) == 0 || slash - s > 7) return false;
    char k[8];
    memcpy(k, s, (size_t)(slash - s));
    k[slash - s] = '\0';
    int64_t kk, nn;
    if (k[0] == '-' || k[0] == '+' || slash[1] == '-' || slash[1] == '+') return false;
    if (!cli_parse_i64(k, 0, 999999, &kk) || !cli_parse_i64(slash + 1, 1, 1000000, &nn) || kk >= nn) return false;
    ((int32_t *)dst)[0] = (int32_t)kk;
    ((int32_t *)dst)[1] = (int32_t)nn;
    return true;
}

static const char *backend_word(lisa_backend_kind k) {
    return k == LISA_BACKEND_CPU ? "cpu" : k == LISA_BACKEND_CUDA ? "cuda" : "auto";
}

/* ---- --help ------------------------------------------------------------------------------------ */

enum { HELP_COL = 27 };

/* The default as --help shows it, "" when there is none to show. */
static void default_text(const cli_opt *o, char *buf, size_t cap) {
    buf[0] = '\0';
    if (o->dflt) {
        snprintf(buf, cap, "%s", o->dflt);
        return;
    }
    switch (o->kind) {
    case CLI_KIND_STR: {
        const char *v = *(const char *const *)o->dst;
        if (v) snprintf(buf, cap, "%s", v);
        break;
    }
    case CLI_KIND_INT: snprintf(buf, cap, "%d", (int)*(const int32_t *)o->dst); break;
    case CLI_KIND_I64: snprintf(buf, cap, "%lld", (long long)*(const int64_t *)o->dst); break;
    case CLI_KIND_DOUBLE: snprintf(buf, cap, "%g", *(const double *)o->dst); break;
    case CLI_KIND_BACKEND: snprintf(buf, cap, "%s", backend_word(*(const lisa_backend_kind *)o->dst)); break;
    case CLI_KIND_FLAG:
    case CLI_KIND_FN: break;
    }
}

static void print_usage_lines(const cli_cmd *c, FILE *f) {
    const int indent = (int)strlen("usage: lisa ") + (int)strlen(c->name) + 1;
    fprintf(f, "usage: lisa %s ", c->name);
    for (const char *p = c->usage; *p;) {
        const size_t n = strcspn(p, "\n");
        fprintf(f, "%.*s\n", (int)n, p);
        p += n;
        if (*p == '\n' && *++p) fprintf(f, "%*s", indent, "");
    }
}

/* Prints `text` (lines split at '\n') starting at the help column; `tail` (" (default: X)") ends
 * the last line, or takes a line of its own when it would make that line longer than HELP_WIDTH. */
enum { HELP_WIDTH = 110 };
static void print_help_text(FILE *f, const char *text, const char *tail) {
    bool first = true;
    size_t last = 0;
    for (const char *p = text ? text : ""; first || *p; first = false) {
        const size_t n = strcspn(p, "\n");
        if (!first) fprintf(f, "%*s", HELP_COL, "");
        fprintf(f, "%.*s", (int)n, p);
        last = n;
        p += n;
        if (*p == '\n') p++;
        if (*p) fputc('\n', f);
    }
    if (*tail && HELP_COL + last + strlen(tail) > HELP_WIDTH)
        fprintf(f, "\n%*s%s\n", HELP_COL, "", tail + 1);
    else
        fprintf(f, "%s\n", tail);
}

void cli_print_help(const cli_cmd *c, FILE *f) {
    print_usage_lines(c, f);
    if (c->about) fprintf(f, "\n%s%s", c->about, c->about[strlen(c->about) - 1] == '\n' ? "" : "\n");
    fprintf(f, "\noptions:\n");
    for (int k = 0; k < c->n_opts; k++) {
        const cli_opt *o = &c->opts[k];
        char left[128], d[256], tail[300];
        const int n = snprintf(left, sizeof left, "  --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        if (n + 1 < HELP_COL)
            fprintf(f, "%-*s", HELP_COL, left);
        else
            fprintf(f, "%s\n%*s", left, HELP_COL, "");
        default_text(o, d, sizeof d);
        if (o->required)
            snprintf(tail, sizeof tail, " (required)");
        else if (d[0])
            snprintf(tail, sizeof tail, " (default: %s)", d);
        else
            tail[0] = '\0';
        print_help_text(f, o->help, tail);
    }
    fprintf(f, "%-*s%s\n", HELP_COL, "  -h, --help", "print this help and exit");
    if (c->notes) fprintf(f, "\n%s%s", c->notes, c->notes[strlen(c->notes) - 1] == '\n' ? "" : "\n");
}

int cli_usage_error(const cli_cmd *c, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lisa %s: %s\n\n", c->name, msg);
    print_usage_lines(c, stderr);
    fprintf(stderr, "('lisa %s --help' describes every option)\n", c->name);
    return 2;
}

/* ---- parsing ---------------------------------------------------------------------------------- */

/* The option text ("--name" or "--name=value") of the long option getopt_long just returned. */
static const char *option_text(char **argv, const cli_opt *o) {
    const char *last = argv[optind - 1];
    if (o->kind != CLI_KIND_FLAG && optarg == last && optind >= 2) return argv[optind - 2]; /* "--name value" */
    return last;
}

static int set_value(const cli_cmd *c, const cli_opt *o, const char *v) {
    switch (o->kind) {
    case CLI_KIND_FLAG: *(bool *)o->dst = true; return CLI_RUN;
    case CLI_KIND_STR: *(const char **)o->dst = v; return CLI_RUN;
    case CLI_KIND_INT:
    case CLI_KIND_I64: {
        int64_t x;
        if (!cli_parse_i64(v, o->lo, o->hi, &x))
            return cli_usage_error(c, "--%s needs an integer in %lld..%lld (got '%s')", o->name, (long long)o->lo,
                                   (long long)o->hi, v);
        if (o->kind == CLI_KIND_INT)
            *(int32_t *)o->dst = (int32_t)x;
        else
            *(int64_t *)o->dst = x;
        return CLI_RUN;
    }
    case CLI_KIND_DOUBLE: {
        char *end = NULL;
        errno = 0;
        const double x = strtod(v, &end);
        if (!*v || errno || *end || !isfinite(x) || !(x > o->dlo) || x > o->dhi)
            return cli_usage_error(c, "--%s needs a number in (%g, %g] (got '%s')", o->name, o->dlo, o->dhi, v);
        *(double *)o->dst = x;
        return CLI_RUN;
    }
    case CLI_KIND_BACKEND:
        if (!cli_parse_backend(v, (lisa_backend_kind *)o->dst))
            return cli_usage_error(c, "--%s must be cpu, cuda or auto (got '%s')", o->name, v);
        return CLI_RUN;
    case CLI_KIND_FN:
        if (!o->parse(v, o->dst))
            return cli_usage_error(c, "--%s: '%s' is not a valid %s", o->name, v, o->arg ? o->arg : "value");
        return CLI_RUN;
    }
    return CLI_RUN;
}

int cli_parse(const cli_cmd *c, int argc, char **argv, char ***pos, int *n_pos) {
    if (pos) *pos = NULL;
    if (n_pos) *n_pos = 0;
    struct option *lo = calloc((size_t)c->n_opts + 2, sizeof *lo);
    bool *given = calloc((size_t)c->n_opts + 1, sizeof *given);
    if (!lo || !given) {
        free(lo);
        free(given);
        fprintf(stderr, "lisa %s: out of memory\n", c->name);
        return 1;
    }
    for (int k = 0; k < c->n_opts; k++) {
        lo[k].name = c->opts[k].name;
        lo[k].has_arg = c->opts[k].kind == CLI_KIND_FLAG ? no_argument : required_argument;
        lo[k].val = 1000 + k;
    }
    lo[c->n_opts].name = "help";
    lo[c->n_opts].val = 'h';
    int rc = CLI_RUN;
    /* pass 1: --help anywhere wins, and is printed with the defaults as they are before parsing */
    opterr = 0;
    optind = 0; /* glibc: reinitialize (a previous parse may have run in this process) */
    for (int ch; (ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1;)
        if (ch == 'h') {
            cli_print_help(c, stdout);
            rc = 0;
            break;
        }
    /* pass 2: the values */
    optind = 0;
    for (int ch; rc == CLI_RUN && (ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        /* glibc: optopt is the option's val for a long option with a missing or unwanted value,
         * 0 for an unknown long option, the character for a short one */
        const int ko = optopt >= 1000 && optopt < 1000 + c->n_opts ? optopt - 1000 : -1;
        if (ch == '?') {
            if (ko >= 0)
                rc = cli_usage_error(c, "option '--%s' takes no value (got '%s')", c->opts[ko].name, argv[optind - 1]);
            else if (optopt == 'h')
                rc = cli_usage_error(c, "option '--help' takes no value");
            else if (optopt)
                rc = cli_usage_error(c, "unknown option '-%c'", optopt);
            else
                rc = cli_usage_error(c, "unknown option '%s'", argv[optind - 1]);
            break;
        }
        if (ch == ':') {
            if (ko >= 0)
                rc = cli_usage_error(c, "option '--%s' needs a value (%s)", c->opts[ko].name, c->opts[ko].arg);
            else
                rc = cli_usage_error(c, "option '%s' needs a value", argv[optind - 1]);
            break;
        }
        const int k = ch - 1000;
        if (k < 0 || k >= c->n_opts) continue; /* 'h': handled by pass 1 */
        const cli_opt *o = &c->opts[k];
        /* getopt_long accepts unique prefixes ("--thread"): the table's spelling only */
        const char *t = option_text(argv, o);
        const size_t len = strcspn(t + 2, "=");
        if (strncmp(t, "--", 2) != 0 || len != strlen(o->name) || strncmp(t + 2, o->name, len) != 0) {
            rc = cli_usage_error(c, "unknown option '%.*s' (did you mean '--%s'?)", (int)(len + 2), t, o->name);
            break;
        }
        given[k] = true;
        rc = set_value(c, o, o->kind == CLI_KIND_FLAG ? NULL : optarg);
    }
    for (int k = 0; rc == CLI_RUN && k < c->n_opts; k++)
        if (c->opts[k].required && !given[k]) rc = cli_usage_error(c, "--%s is required", c->opts[k].name);
    const int np = argc - optind;
    if (rc == CLI_RUN && (np < c->min_pos || np > c->max_pos)) {
        if (np > c->max_pos)
            rc = cli_usage_error(c, "unexpected argument '%s'", argv[optind + c->max_pos]);
        else
            rc = cli_usage_error(c, "%d argument%s expected, %d given", c->min_pos, c->min_pos == 1 ? "" : "s", np);
    }
    if (rc == CLI_RUN && pos) {
        *pos = argv + optind;
        *n_pos = np;
    }
    free(lo);
    free(given);
    return rc;
}

int cli_fail(const char *cmd, const char *what, lisa_status s) {
    fprintf(stderr, "lisa %s: %s%s%s: %s\n", cmd, what ? what : "", what ? ": " : "", lisa_status_name(s),
            lisa_last_error());
    return 1;
}

lisa_status cli_model_load(const char *cmd, const char *dir, const lisa_model_params *p, lisa_model **out) {
    const lisa_status s = lisa_model_load(dir, p, out);
    if (s != LISA_OK || !p || p->backend != LISA_BACKEND_AUTO) return s;
    lisa_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (lisa_model_get_info(*out, &info) == LISA_OK && info.tp_rank == 0)
        fprintf(stderr, "lisa %s: backend auto: %s (%s)\n", cmd, info.backend_name, info.device_name);
    return LISA_OK;
}
