/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A private munged for tests (as bench/slurm-local.sh runs one): its own
 * random key, socket, log and seed in a fresh directory, started in the
 * foreground with PR_SET_PDEATHSIG so it never outlives the test process,
 * stopped by PID. The directory is world-searchable so tests that run a
 * client as another user reach the socket. It is removed with its munged:
 * at stop, at the exit of a test process that did not stop it (a failed
 * assertion), or, when that process was killed, by the next start in any
 * test process.
 */
#ifndef TY_TESTS_SUPPORT_MUNGED_H
#define TY_TESTS_SUPPORT_MUNGED_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct ty_test_munged {
  pid_t pid;
  char dir[256];
  char socket[300];
} ty_test_munged;

/* Starts munged; false (with the reason on stderr) when it cannot, e.g. the
 * munge package is not installed. */
bool ty_test_munged_start(ty_test_munged *m);
/* SIGTERM, wait, SIGKILL if needed; then removes the directory (the log
 * with it). Accepts a never-started one (zeroed, or a failed start). */
void ty_test_munged_stop(ty_test_munged *m);

#endif
