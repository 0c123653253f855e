/* tools/lisa.c — the `lisa` command: dispatches to the subcommands listed in tools/commands.def. */
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

static void usage(FILE *f) {
    fprintf(f, "lisa %s — LISA reasoning-segmentation engine\n\nusage: lisa <command> [options]\n\ncommands:\n",
            lisa_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'lisa <command> --help' describes each command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lisa %s\n", lisa_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lisa: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
