/* tools/lisa.c — the `lisa` command: dispatches to the subcommands listed in tools/commands.def.
 * The subcommands parse their options with one table each (tools/cli_args.h) and call the library
 * through include/lisa.h and the entry points of jobs/ (annotate, eval, bench, sam, inspect,
 * convert, tokenize, make-tiny) or server/server.h. */
#include "lisa.h"
#include "tools/commands.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
#define LISA_CMD(name, help) {#name, lisa_cmd_##name, help},
#include "tools/commands.def"
#undef LISA_CMD
};

/* Command names are C identifiers in commands.def (make_tiny); users type them with '-' (make-tiny). */
static void dashed(char *out, size_t cap, const char *name) {
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = name[i] == '_' ? '-' : name[i];
    out[i] = '\0';
}

static void usage(FILE *f) {
    fprintf(f, "lisa %s — LISA reasoning-segmentation engine\n\nusage: lisa <command> [options]\n\ncommands:\n",
            lisa_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char name[64];
        dashed(name, sizeof name, commands[i].name);
        fprintf(f, "  %-12s %s\n", name, commands[i].help);
    }
    fprintf(f, "\n'lisa <command> --help' describes each command.\n");
}

int main(int argc, char **argv) {
    /* the library is silent unless asked: its warnings (a fallback it took) go to stderr here */
    lisa_log_set(lisa_log_stderr, NULL);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lisa %s\n", lisa_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char name[64];
        dashed(name, sizeof name, commands[i].name);
        if (!strcmp(argv[1], name)) return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "lisa: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
