/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the batch-script tests (test_script.c, test_slurm_opts.c,
 * test_batch_runner.c) share: a
 * temporary directory per test, scripts written into it, `trainctl submit`
 * parsed from a literal command line, and a job's argv run under /bin/sh
 * in that directory as a worker would start it.
 */
#ifndef TY_TESTS_UNIT_CLI_SCRIPT_FIXTURE_H
#define TY_TESTS_UNIT_CLI_SCRIPT_FIXTURE_H

#include "cli/cli.h"
#include "tests/support/tree.h"
#include "tests/unit/cli/args.h"

extern char ty_script_dir[TY_TEST_DIR_LEN];

/* A suite's .init and .fini: the directory made, then removed. */
void ty_script_setup(void);
void ty_script_teardown(void);

/* Writes text to DIR/name; its path (a static buffer). */
char *ty_script_write(const char *name, const char *text);
/* DIR/name's contents (up to 511 bytes; a static buffer). */
char *ty_script_read(const char *name);
/* Runs j's argv in DIR with TRAINYARD_JOB_ID=42 and TMPDIR=DIR, then the
 * "NAME=VALUE" entries of env (NULL-ended, may be NULL) and j's own
 * environment; its exit status (128 + N for signal N). */
int ty_script_run(const ty_job_spec *j, const char *const *env);
/* The same run's raw wait status (WIFEXITED/WIFSIGNALED tell them apart). */
int ty_script_run_status(const ty_job_spec *j, const char *const *env);
/* Whether one of s's warnings says want. */
bool ty_script_warned(const ty_cli_slurm *s, const char *want);

#endif
