/* placeholder: being written */
#include "config.h"
#include "cmd/cmd.h"
static int info_exec(int argc, char **argv) { return cmd_fail("info: not yet written"); }
const struct aim_cmd cmd_info_entry = { "info", "PATH...", "describe a file", "", info_exec };
