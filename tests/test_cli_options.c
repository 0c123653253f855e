/* tests/test_cli_options.c — the `lisa` subcommands' options (tools/cli_args.h): every entry of every
 * option table (read from the sources, tools/cmd_<name>.c) appears in that command's --help;
 * unknown options, abbreviations, missing and malformed values are usage errors (exit 2, a message
 * naming the option); --opt=value means --opt value; --max-batch has one default everywhere (the
 * engine's); every command that loads a model takes --backend, and `auto` says what it chose. */
#include "golden.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

typedef struct run_out {
    int status;
    char *out, *err;
} run_out;

static void run_free(run_out *r) {
    free(r->out);
    free(r->err);
}

static char *tmp_dir;

static void setup(void) { tmp_dir = tu_make_tmpdir("lisa-cli-opts"); }
static void teardown(void) {
    tu_remove_tree(tmp_dir);
    free(tmp_dir);
}

/* Runs `lisa <args>` with stdout/stderr captured. */
static run_out run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static run_out run(const char *fmt, ...) {
    char args[8192], cmd[16384], o[1024], e[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s/stdout.txt", tmp_dir);
    snprintf(e, sizeof e, "%s/stderr.txt", tmp_dir);
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 '%s' %s > '%s' 2> '%s'", LISA_TOOL_PATH, args, o, e);
    const int rc = system(cmd);
    run_out r = {.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1};
    size_t n;
    r.out = tu_read_file(o, &n);
    r.err = tu_read_file(e, &n);
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    if (strstr(r.err, "Sanitizer") || strstr(r.err, "runtime error:")) {
        fputs(r.err, stderr);
        cr_expect(false, "sanitizer report from: lisa %s", args);
    }
    return r;
}

/* The subcommands of tools/commands.def, dashed as users type them. */
static int commands(char names[][32], int cap) {
    char *def = tu_read_file(LISA_SOURCE_DIR "/tools/commands.def", NULL);
    cr_assert(def);
    int n = 0;
    for (const char *p = def; (p = strstr(p, "\nLISA_CMD(")) && n < cap; p++) {
        p += strlen("\nLISA_CMD(");
        const size_t len = strcspn(p, ",");
        cr_assert_lt(len, 32);
        for (size_t i = 0; i < len; i++)
            names[n][i] = p[i] == '_' ? '-' : p[i];
        names[n][len] = '\0';
        n++;
    }
    free(def);
    cr_assert_geq(n, 11, "commands.def lists the subcommands");
    return n;
}

/* Option names in the table of tools/cmd_<name>.c: the first argument of each CLI_* entry macro. */
static int table_options(const char *cmd, char opts[][64], int cap) {
    char path[1024], file[64];
    snprintf(file, sizeof file, "%.32s", cmd);
    for (char *c = file; *c; c++)
        if (*c == '-') *c = '_';
    snprintf(path, sizeof path, "%s/tools/cmd_%s.c", LISA_SOURCE_DIR, file);
    char *src = tu_read_file(path, NULL);
    cr_assert(src, "%s", path);
    regex_t re;
    cr_assert_eq(regcomp(&re, "CLI_[A-Z0-9_]+\\(\"([a-z0-9-]+)\"", REG_EXTENDED), 0);
    int n = 0;
    regmatch_t mt[2];
    for (const char *p = src; n < cap && regexec(&re, p, 2, mt, 0) == 0; p += mt[0].rm_eo) {
        const int len = (int)(mt[1].rm_eo - mt[1].rm_so);
        snprintf(opts[n++], 64, "%.*s", len, p + mt[1].rm_so);
    }
    regfree(&re);
    free(src);
    return n;
}

/* True when `--name` appears in text as a whole option (not as a prefix of a longer one). */
static bool has_option(const char *text, const char *name) {
    char want[80];
    if (strlen(name) + 3 > sizeof want) return false; /* option names are < 64 bytes (opts above) */
    snprintf(want, sizeof want, "--%.76s", name);
    for (const char *p = text; (p = strstr(p, want)); p++) {
        const char c = p[strlen(want)];
        if (!(c == '-' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return true;
    }
    return false;
}

TestSuite(cli_options, .init = setup, .fini = teardown);

Test(cli_options, help_lists_every_table_entry) {
    char names[32][32];
    const int n = commands(names, 32);
    int total = 0;
    for (int k = 0; k < n; k++) {
        run_out r = run("%s --help", names[k]);
        if (strstr(r.err, "this build has no server")) { /* -DLISA_SERVER=OFF */
            run_free(&r);
            continue;
        }
        cr_expect_eq(r.status, 0, "lisa %s --help: %s", names[k], r.err);
        char usage[128];
        snprintf(usage, sizeof usage, "usage: lisa %.32s", names[k]);
        cr_expect(strstr(r.out, usage), "lisa %s --help:\n%s", names[k], r.out);
        cr_expect(has_option(r.out, "help"), "lisa %s --help lists --help", names[k]);
        char opts[64][64];
        const int m = table_options(names[k], opts, 64);
        cr_expect(m > 0 || !strcmp(names[k], "version"), "no option table found for %s", names[k]);
        for (int i = 0; i < m; i++)
            cr_expect(has_option(r.out, opts[i]), "lisa %s --help does not list --%s:\n%s", names[k], opts[i], r.out);
        total += m;
        run_free(&r);
    }
    cr_expect_gt(total, 80, "%d table entries in all", total);
}

Test(cli_options, unknown_abbreviated_and_malformed_options) {
    char names[32][32];
    const int n = commands(names, 32);
    for (int k = 0; k < n; k++) { /* every subcommand refuses an unknown option before doing anything */
        run_out r = run("%s --no-such-option", names[k]);
        if (strstr(r.err, "this build has no server")) {
            run_free(&r);
            continue;
        }
        cr_expect_eq(r.status, 2, "lisa %s --no-such-option: status %d", names[k], r.status);
        cr_expect(strstr(r.err, "unknown option '--no-such-option'"), "lisa %s: %s", names[k], r.err);
        cr_expect(strstr(r.err, "usage: lisa"), "lisa %s: %s", names[k], r.err);
        run_free(&r);
    }
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"inspect --config " TINY_LISA_DIR, "unknown option '--config' (did you mean '--config-only'?)"},
        {"segment --model", "option '--model' needs a value (DIR)"},
        {"segment --json=1 --model x --image y --query z", "option '--json' takes no value"},
        {"segment --model x --image y --query z --threads=abc", "--threads needs an integer in 0..4096 (got 'abc')"},
        {"segment --model x --image y --query z --threads=", "--threads needs an integer"},
        {"segment --model x --image y --query z --backend=gpu", "--backend must be cpu, cuda or auto (got 'gpu')"},
        {"segment --model x --image y", "--query is required"},
        {"annotate --model x --out y --images d --query q --shard 2/2", "--shard: '2/2' is not a valid K/N"},
        {"bench --model x --size 0x5", "--size: '0x5' is not a valid WxH"},
        {"serve --model x --timeout -1", "--timeout needs a number in (0, 86400]"},
        {"inspect a b", "unexpected argument 'b'"},
        {"convert onlyone", "2 arguments expected, 1 given"},
        {"version extra", "unexpected argument 'extra'"},
        {"-x", "unknown command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_out r = run("%s", cases[i].args);
        cr_expect_eq(r.status, 2, "lisa %s: status %d", cases[i].args, r.status);
        cr_expect(strstr(r.err, cases[i].message), "lisa %s: %s", cases[i].args, r.err);
        run_free(&r);
    }
}

Test(cli_options, opt_equals_value_means_opt_value, .timeout = 300) {
    /* the same segmentation through both spellings, and options after the values they follow */
    run_out a = run("segment --model '%s' --vision-tower '%s' --image '%s/images/chelsea_tiny.png' --query "
                    "'Where is the cat?' --max-new-tokens 6 --backend cpu --threads 2 --json",
                    TINY_LISA_DIR, TINY_CLIP_DIR, LISA_TESTDATA_DIR);
    run_out b = run("segment --json --threads=2 --backend=cpu --max-new-tokens=6 --query='Where is the cat?' "
                    "--image='%s/images/chelsea_tiny.png' --vision-tower='%s' --model='%s'",
                    LISA_TESTDATA_DIR, TINY_CLIP_DIR, TINY_LISA_DIR);
    cr_assert_eq(a.status, 0, "%s", a.err);
    cr_assert_eq(b.status, 0, "%s", b.err);
    cJSON *ja = cJSON_Parse(a.out), *jb = cJSON_Parse(b.out);
    cr_assert(ja && jb, "%s\n%s", a.out, b.out);
    static const char *keys[] = {"answer", "tokens", "text_output", "masks", "seg_token_id", "image"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_expect(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(ja, keys[i]), cJSON_GetObjectItemCaseSensitive(jb, keys[i]),
                                true),
                  "\"%s\" differs", keys[i]);
    cr_expect(!strstr(a.err, "backend auto"), "an explicit backend is not announced: %s", a.err);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    run_free(&a);
    run_free(&b);
    /* inspect: --batch=2 and --batch 2, the directory before or after the options */
    a = run("inspect --config-only --batch=2 --context=512 '%s'", TINY_LISA_DIR);
    b = run("inspect '%s' --context 512 --config-only --batch 2", TINY_LISA_DIR);
    cr_expect_eq(a.status, 0, "%s", a.err);
    cr_expect_str_eq(a.out, b.out);
    cr_expect(strstr(a.out, "batch 2, context 512"), "%s", a.out);
    run_free(&a);
    run_free(&b);
}

Test(cli_options, one_max_batch_default_and_backend_everywhere, .timeout = 300) {
    char want[64];
    snprintf(want, sizeof want, "(default: %d)", lisa_engine_default_params().max_batch);
    static const char *batched[] = {"annotate", "bench", "serve"};
    for (size_t i = 0; i < 3; i++) {
        run_out r = run("%s --help", batched[i]);
        if (strstr(r.err, "this build has no server")) {
            run_free(&r);
            continue;
        }
        const char *line = strstr(r.out, "\n  --max-batch "); /* the options list, not the usage line */
        cr_assert(line, "%s", r.out);
        line++;
        const char *eol = strchr(line, '\n');
        char text[512];
        snprintf(text, sizeof text, "%.*s", (int)(eol ? eol - line : (long)strlen(line)), line);
        cr_expect(strstr(text, want), "lisa %s: '%s' should say %s", batched[i], text, want);
        run_free(&r);
    }
    static const char *loaders[] = {"segment", "sam", "annotate", "eval", "bench", "serve"};
    for (size_t i = 0; i < sizeof loaders / sizeof loaders[0]; i++) {
        run_out r = run("%s --help", loaders[i]);
        if (!strstr(r.err, "this build has no server"))
            cr_expect(has_option(r.out, "backend") && strstr(r.out, "cpu|cuda|auto"), "lisa %s --help:\n%s", loaders[i],
                      r.out);
        run_free(&r);
    }
    /* auto says which backend it chose (one line on stderr) */
    run_out r = run("segment --model '%s' --vision-tower '%s' --image '%s/images/chelsea_tiny.png' --query q "
                    "--max-new-tokens 2 --threads 2",
                    TINY_LISA_DIR, TINY_CLIP_DIR, LISA_TESTDATA_DIR);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "lisa segment: backend auto: cpu (") || strstr(r.err, "lisa segment: backend auto: cuda ("),
              "%s", r.err);
    run_free(&r);
}
