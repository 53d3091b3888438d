/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli internals shared by the files of the cli library: the option iterator
 * behind every subcommand's parser. It is small on purpose: long options
 * ("--gpus 2", "--gpus=2"), single-letter aliases ("-f", "-r 1"), positional
 * arguments anywhere, and "--" ending the options. getopt would do most of
 * this, but its messages cannot name our options the way our errors do and
 * its state is global.
 */
#ifndef TY_CLI_CLI_INTERNAL_H
#define TY_CLI_CLI_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"

typedef struct ty__cli_opt {
  const char *name; /* long name without the dashes */
  char short_name;  /* 0 = none */
  bool has_arg;
  int id; /* >= 0, returned by ty__cli_args_next */
} ty__cli_opt;

enum {
  TY__ARG_END = -1,        /* no arguments left */
  TY__ARG_POSITIONAL = -2, /* *out_val is a positional argument */
  TY__ARG_ERROR = -3,      /* err says why */
};

typedef struct ty__cli_args {
  int argc;
  char **argv;             /* borrowed */
  int i;                   /* next argv index */
  const ty__cli_opt *opts; /* borrowed */
  size_t nopts;
  /* Set by the caller (or by "--"): everything left is positional. */
  bool only_positional;
} ty__cli_args;

void ty__cli_args_init(ty__cli_args *it, int argc, char **argv, const ty__cli_opt *opts,
                       size_t nopts);
/* Returns an option id (*out_val its value, or NULL for flags), or one of the
 * TY__ARG_* values above. */
int ty__cli_args_next(ty__cli_args *it, const char **out_val, char *err, size_t err_len);

/* Number parsing that names the option in its error messages. */
int ty__cli_parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                      char *err, size_t err_len);
int ty__cli_parse_i32(const char *what, const char *s, int32_t *out, char *err, size_t err_len);

#endif
