/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli internals shared by the files of the cli library: the option style
 * every trainctl subcommand and rlaunch parse with (ty_opts of lib/base:
 * getopt_long, exact long names, messages that name the option) and the
 * number parsers whose errors name the option.
 */
#ifndef TY_CLI_CLI_INTERNAL_H
#define TY_CLI_CLI_INTERNAL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"

/* Ids of long options without a short alias start here, above every letter
 * a short alias returns. */
#define TY__CLI_OPT_FIRST 256
/* ty_opts_init, with the message a parser gives when it fails. */
int ty__cli_opts_init(ty_opts *it, int argc, char **argv, const char *shortopts,
                      const struct option *opts, char *err, size_t err_len);

/* Number parsing that names the option in its error messages. */
int ty__cli_parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                      char *err, size_t err_len);
int ty__cli_parse_i32(const char *what, const char *s, int32_t *out, char *err, size_t err_len);

#endif
