/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the integration tests leave behind on the host, and its removal:
 * the cluster directories ($TMPDIR/trainyard-it-<pid>-XXXXXX) and the
 * workers' cgroup subtrees (tyit-<pid>-w<N> in every cgroup hierarchy),
 * both named after the test process that made them.
 *
 *   - At exit of a test process (atexit): the daemons it started and did
 *     not reap are killed, the tasks still in its tyit-<pid>-* cgroups are
 *     killed and those cgroups removed, and the directories of the clusters
 *     it stopped (it_cluster_stop: the test got that far) are removed
 *     (TY_IT_KEEP=1 in the environment keeps them all). A
 *     cluster that was never stopped belongs to a failed test: its
 *     directory stays for the post-mortem.
 *   - At the first cluster start of a test process: leftovers of test
 *     processes that are gone (killed by SIGKILL, or failed) are removed;
 *     a failed test's directory only once it is IT_KEEP_FAILED_S old.
 *
 * Only names with a pid are touched, and only when that process is gone,
 * so tests running side by side (meson runs several at once, and other
 * builds on the host run theirs) never lose each other's state.
 */
#ifndef TY_TESTS_INTEGRATION_CLEANUP_H
#define TY_TESTS_INTEGRATION_CLEANUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How long a failed test's directory stays for a post-mortem. */
#define IT_KEEP_FAILED_S 3600

/* The pid in a name "PREFIX<pid>...", or 0 when it has another shape. */
int it_owner_pid(const char *name, const char *prefix);
/* True when pid names no process (a reused pid counts as alive). */
bool it_pid_dead(int pid);

/* Makes DIR/trainyard-it-<pid>-XXXXXX (mkdtemp) into out; false on error. */
bool it_cleanup_mkdtemp(const char *tmpdir, char *out, size_t out_len);
/* The cluster in dir was stopped: its directory goes at exit. */
void it_cleanup_dir_done(const char *dir);
/* A daemon this process started: killed at exit unless reaped by then. */
void it_cleanup_track_pid(pid_t pid);
/* Removes leftovers of test processes that are gone; once per process. */
void it_cleanup_sweep_stale(const char *tmpdir);

#endif
