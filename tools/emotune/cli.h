// tools/emotune/cli.h - argument handling shared by the emotune subcommands.
// defines: et_cli_opt, et_cli_args, et_cli_parse, et_cli_fail, et_cli_load_config,
//          et_cli_print_usage
//
// et_cli_parse reads "-c/--config FILE", "-h/--help", the command's own options (by index
// into opts: flag[k] set, opt_val[k] = the value for options that take one) and
// section.key=value overrides; anything else prints a message and returns 2 (0 on success).
// et_cli_fail prints "emotune: error: <message>", frees the status and returns 1.
// et_cli_load_config loads -c FILE + overrides and checks that every input path of `need`
// (ET_RC_NEED_* of train/runconfig.h) exists, listing all missing ones in one error; with a
// non-zero need, a missing -c is an error that says so. Returns 0, or the exit code after
// printing the message (c is then not to be freed).
#ifndef ET_CLI_H
#define ET_CLI_H

#include <stdbool.h>

#include "core/status.h"
#include "train/runconfig.h"

#define ET_CLI_MAX_OPTS 16
#define ET_CLI_MAX_OVERRIDES 256

typedef struct {
    const char *name;  // "--resume"
    bool takes_value;
} et_cli_opt;

typedef struct {
    const char *config;
    int n_over;
    const char *over[ET_CLI_MAX_OVERRIDES];
    const char *opt_val[ET_CLI_MAX_OPTS];  // values of the command's options, by index
    bool flag[ET_CLI_MAX_OPTS];
    bool help;
} et_cli_args;

int et_cli_parse(int argc, char **argv, const et_cli_opt *opts, int n_opts, et_cli_args *a);
int et_cli_fail(et_status st);
// Prints usage, then the common options (-c, key=value, -h) and, with keys, every config key.
void et_cli_print_usage(const char *usage, bool keys);
int et_cli_load_config(const et_cli_args *a, const char *cmd, unsigned need, et_run_config *c);
// Subcommands in their own files (cmd_pretrain.c).
int et_cli_pretrain_tower(int argc, char **argv);
int et_cli_pretrain_face(int argc, char **argv);
int et_cli_probe(int argc, char **argv);

#endif
