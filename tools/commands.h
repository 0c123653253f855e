/* tools/commands.h — subcommand entry points (see commands.def). */
#ifndef LISA_TOOLS_COMMANDS_H
#define LISA_TOOLS_COMMANDS_H

#define LISA_CMD(name, help) int lisa_cmd_##name(int argc, char **argv);
#include "tools/commands.def"
#undef LISA_CMD

#endif
