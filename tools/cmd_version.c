/* tools/cmd_version.c — `lisa version`. */
#include "lisa.h"
#include "tools/commands.h"

#include <stdio.h>

int lisa_cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("lisa %s\n", lisa_version());
    return 0;
}
