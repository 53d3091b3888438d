/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running rlaunch from the integration tests (test_rlaunch.c,
 * test_rlaunch_io.c): the binary from TY_RLAUNCH, its stdout and stderr in
 * files of the cluster's directory, and reading those files back.
 */
#ifndef TY_TESTS_INTEGRATION_RLAUNCH_RUN_H
#define TY_TESTS_INTEGRATION_RLAUNCH_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "tests/integration/harness.h"

/* The rlaunch binary (TY_RLAUNCH); aborts the test when it is not set. */
const char *rl_bin(void);
/* Starts rlaunch with args, stdin from in_path (NULL = /dev/null) and
 * stdout/stderr into DIR/NAME.out and DIR/NAME.err; `env` adds NAME=value
 * entries (NULL-terminated, may be NULL); a first entry "-i" starts from an
 * empty environment, as `env -i` does. */
pid_t rl_start(const it_cluster *c, const char *name, const char *in_path, const char *const *args,
               const char *const *env);
/* Waits for it; its exit code, or 128 + the signal that killed it. */
int rl_wait(pid_t pid);
/* rl_start without extra environment, then rl_wait. */
int rl_run(const it_cluster *c, const char *name, const char *in_path, const char *const *args);
/* rl_run of `rlaunch -- sh -c script`. */
int rl_run_sh(const it_cluster *c, const char *name, const char *script);
/* rl_start of `rlaunch -- sh -c script`, then waits until its stdout holds
 * `ready` (the test fails if it never does). */
pid_t rl_start_sh(const it_cluster *c, const char *name, const char *script, const char *ready);
/* A file's bytes as a heap string ("" when it cannot be read). */
char *rl_slurp(const char *path);
/* DIR/NAME.EXT as a heap string. */
char *rl_output(const it_cluster *c, const char *name, const char *ext);
/* Polls DIR/NAME.EXT until it contains text (false after 30 s). */
bool rl_wait_in(const it_cluster *c, const char *name, const char *ext, const char *text);
/* Asserts that DIR/NAME.EXT contains text (showing the file if not). */
void rl_expect_in(const it_cluster *c, const char *name, const char *ext, const char *text);
/* The same for DIR/NAME.out. */
bool rl_wait_text(const it_cluster *c, const char *name, const char *text);
/* Writes `bytes` random bytes to path. */
void rl_random_file(const char *path, size_t bytes);
/* Whether two files hold the same bytes. */
bool rl_same_file(const char *a, const char *b);

#endif
