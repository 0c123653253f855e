/* tools/cmd_version.c — `lisa version`: the library's version (and the header's it was built with). */
#include "cli_args.h"
#include "lisa.h"
#include "tools/commands.h"

#include <stdio.h>

int lisa_cmd_version(int argc, char **argv) {
    const cli_cmd cmd = {.name = "version", .usage = "", .about = "Prints the version of the LISA library."};
    const int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    printf("lisa %s\n", lisa_version());
    return 0;
}
