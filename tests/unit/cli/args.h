/* SPDX-License-Identifier: Apache-2.0 */
/* Literal command lines for the cli/ option tests: ARGS(...) is a NULL-ended
 * argv of the words, NARGS(...) their count, and SUBMIT(...) parses them as
 * `trainctl submit` by alice in /home/a into the caller's `a`, with errors in
 * the caller's `err`. */
#ifndef TY_TESTS_UNIT_CLI_ARGS_H
#define TY_TESTS_UNIT_CLI_ARGS_H

#include "cli/cli.h"

#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})
#define NARGS(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define SUBMIT(...)                                                                                \
  ty_cli_parse_submit(NARGS(__VA_ARGS__), ARGS(__VA_ARGS__), "/home/a", "alice", &a, err,          \
                      sizeof err)

#endif
