/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batch scripts (cli/script.c), as sbatch takes them: `trainctl submit
 * [OPTIONS] SCRIPT [ARGS...]` where SCRIPT starts with "#!". Reading the
 * script, handing its #SBATCH/#TRAINYARD directives to the submit parser
 * (cli/opts_submit.c), and the /bin/sh command that runs it on the node.
 * Kept apart from cli/cli.h because only submit's parser, `show`'s
 * rendering (cli/format.c) and their tests need it.
 *
 * Ownership and errors as in cli/cli.h: err gets a one-line message (the
 * script's path, and its line where a directive is wrong).
 */
#ifndef TY_CLI_SCRIPT_H
#define TY_CLI_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/wire/wire.h" /* ty_job_spec */

/* The largest script a job carries. */
#define TY_CLI_SCRIPT_MAX 65000
/* Whether the file at path starts with "#!" (false when it cannot be read). */
bool ty_cli_is_script(const char *path);
/* The whole script (heap, caller frees): TY_EIO unreadable, TY_EINVAL over
 * TY_CLI_SCRIPT_MAX bytes or not text; err names the path. */
int ty_cli_script_read(const char *path, char **out, char *err, size_t err_len);
/* Called with the words of each #SBATCH or #TRAINYARD line of the script's
 * header; 0 or an error with err set. */
typedef int (*ty_cli_directive_fn)(char **words, int n, void *ud, char *err, size_t err_len);
/* Hands each directive of text's header to `on`; an error (a bad quote, or
 * on's) names path, the line's number and the line. */
int ty_cli_script_directives(const char *path, const char *text, ty_cli_directive_fn on, void *ud,
                             char *err, size_t err_len);
/* Makes j run text: j->argv (the script's arguments) becomes /bin/sh's
 * command that writes the script to a private file and runs it with them,
 * its output and errors sent where the patterns say (NULL: kept by the
 * worker, as any task's), named j->name for %x. */
void ty_cli_script_command(ty_job_spec *j, const char *text, const char *output, const char *error);
/* Whether j runs a batch script (made by ty_cli_script_command); if so its
 * text, output and error patterns ("" when not given) and arguments, all
 * borrowed from j. */
bool ty_cli_script_view(const ty_job_spec *j, const char **text, const char **output,
                        const char **error, char *const **args, size_t *nargs);

#endif
