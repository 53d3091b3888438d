/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The harness's own hygiene (cleanup.h): a cluster start removes what test
 * processes that are gone left behind (their old directories, their
 * workers' cgroups) and nothing of a test process that still runs; the
 * private munged's directory goes with its munged (munged.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/cleanup.h"
#include "tests/integration/harness.h"
#include "tests/support/munged.h"

/* A pid that names no process: a child's, once reaped. */
static pid_t gone_pid(void) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) _exit(0);
  cr_assert_eq(waitpid(pid, NULL, 0), pid);
  cr_assert(it_pid_dead(pid));
  return pid;
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* DIR/trainyard-it-<owner>-<tag>, with a file in it; `old` dates it back
 * past IT_KEEP_FAILED_S. */
static void make_dir(char *out, size_t len, const char *tmp, pid_t owner, const char *tag,
                     bool old) {
  snprintf(out, len, "%s/trainyard-it-%d-%s", tmp, (int)owner, tag);
  cr_assert_eq(mkdir(out, 0755), 0, "%s: %s", out, strerror(errno));
  char file[600], cmd[1300];
  snprintf(file, sizeof file, "%s/traind.stderr", out);
  FILE *f = fopen(file, "w");
  cr_assert(f);
  fclose(f);
  if (!old) return;
  snprintf(cmd, sizeof cmd, "touch -d '%d seconds ago' '%s'", IT_KEEP_FAILED_S + 60, out);
  cr_assert_eq(system(cmd), 0);
}

/* A worker's cgroup subtree <hier>/tyit-<owner>-w1/job1/rank0 in the first
 * writable v1 hierarchy (or the v2 root); false when there is none. */
static bool make_cgroup(char *out, size_t len, pid_t owner) {
  const char *hiers[] = {"/sys/fs/cgroup/pids", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup"};
  for (size_t i = 0; i < sizeof hiers / sizeof hiers[0]; i++) {
    char deep[600];
    snprintf(out, len, "%s/tyit-%d-w1", hiers[i], (int)owner);
    snprintf(deep, sizeof deep, "%s/job1", out);
    if (mkdir(out, 0755) != 0) continue;
    if (mkdir(deep, 0755) == 0) return true;
    rmdir(out);
  }
  return false;
}

Test(harness, a_cluster_start_removes_only_what_gone_tests_left, .timeout = 120) {
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  pid_t gone = gone_pid(), live = getppid(); /* criterion's runner, alive meanwhile */
  char old_gone[512], new_gone[512], old_live[512], cg_gone[512], cg_live[512];
  make_dir(old_gone, sizeof old_gone, tmp, gone, "old", true);
  make_dir(new_gone, sizeof new_gone, tmp, gone, "new", false);
  make_dir(old_live, sizeof old_live, tmp, live, "old", true);
  bool cgroups = geteuid() == 0 && make_cgroup(cg_gone, sizeof cg_gone, gone) &&
                 make_cgroup(cg_live, sizeof cg_live, live);
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  cr_expect_not(exists(old_gone), "%s: its test is gone and it is old", old_gone);
  cr_expect(exists(new_gone), "%s: a failed test's files stay for the post-mortem", new_gone);
  cr_expect(exists(old_live), "%s: its test still runs", old_live);
  if (cgroups) {
    cr_expect_not(exists(cg_gone), "%s: its test is gone", cg_gone);
    cr_expect(exists(cg_live), "%s: its test still runs", cg_live);
    char deep[600];
    snprintf(deep, sizeof deep, "%s/job1", cg_live);
    rmdir(deep), rmdir(cg_live);
  }
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", new_gone, old_live);
  cr_assert_eq(system(cmd), 0);
  it_cluster_stop(&c);
  if (!cgroups) cr_skip_test("no cgroup hierarchy to write here: the cgroup half was not checked");
}

/* ---- the private munged's directory (tests/support/munged.h) ------------------------------- */

/* Runs in a child: starts a munged, sends its directory and pid up `fd`,
 * then ends as `how` says: 'x' exit(1) (a failed assertion ends a test
 * process so), 'k' SIGKILL (no exit handler runs). */
static void munged_child(int fd, char how) {
  ty_test_munged m;
  if (!ty_test_munged_start(&m)) _exit(3);
  dprintf(fd, "%d %s\n", (int)m.pid, m.dir);
  close(fd);
  if (how == 'k') raise(SIGKILL);
  exit(1);
}

/* The directory and munged pid of a child that ended as `how` says. */
static void munged_in_child(char how, char *dir, size_t len, pid_t *munged) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    munged_child(fds[1], how);
  }
  close(fds[1]);
  FILE *f = fdopen(fds[0], "r");
  char fmt[32];
  snprintf(fmt, sizeof fmt, "%%d %%%zus", len - 1);
  int mp = 0;
  cr_assert_eq(fscanf(f, fmt, &mp, dir), 2, "the child started no munged");
  fclose(f);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  *munged = (pid_t)mp;
}

/* munged dies with its test process (PR_SET_PDEATHSIG); wait for that
 * (up to 30 s: a loaded machine may be slow to run the death signal). */
static bool gone_soon(pid_t pid) {
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end && !it_pid_dead(pid);)
    it_sleep_ms(10);
  return it_pid_dead(pid);
}

/* $TMPDIR/NAME, made here with a pid file naming pid (none when 0); `old`
 * dates it back past munged.c's STALE_S (600 s). */
static void make_munged_dir(char *out, size_t len, const char *name, pid_t pid, bool old) {
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(out, len, "%s/%s", tmp, name);
  cr_assert_eq(mkdir(out, 0755), 0, "%s: %s", out, strerror(errno));
  char file[600], cmd[1300];
  if (pid) {
    snprintf(file, sizeof file, "%s/munged.pid", out);
    FILE *f = fopen(file, "w");
    cr_assert(f);
    fprintf(f, "%d\n", (int)pid);
    fclose(f);
  }
  if (!old) return;
  snprintf(cmd, sizeof cmd, "touch -d '700 seconds ago' '%s'", out);
  cr_assert_eq(system(cmd), 0);
}

/* A munged's directory goes at stop, at the exit of a test process that
 * never stopped it, and, for a process killed outright, at the next
 * start; a live test's directory, and an old one a live munged runs
 * from, stay. */
Test(harness, munged_directories_go_with_their_munged, .timeout = 120) {
  if (access("/usr/sbin/munged", X_OK) != 0) cr_skip_test("munged is not installed");
  char killed[256], exited[256], legacy[512], live_owner[512], live_pid[512], name[64];
  pid_t mk, mx, live = getppid(); /* criterion's runner, alive meanwhile */
  munged_in_child('k', killed, sizeof killed, &mk);
  cr_assert(gone_soon(mk), "munged %d outlived its killed test process", (int)mk);
  /* Any test process's munged start may sweep `killed` and `legacy` from
   * here on (the host is shared), ours below at the latest. Names carry
   * our pid, so that runs side by side do not collide. */
  snprintf(name, sizeof name, "ty-munged-zz%dL", (int)getpid()); /* the older naming: no owner */
  make_munged_dir(legacy, sizeof legacy, name, 0, true);
  snprintf(name, sizeof name, "ty-munged-%d-zz%d", (int)live, (int)getpid());
  make_munged_dir(live_owner, sizeof live_owner, name, 0, true);
  snprintf(name, sizeof name, "ty-munged-zz%dP", (int)getpid());
  make_munged_dir(live_pid, sizeof live_pid, name, live, true);
  ty_test_munged m;
  cr_assert(ty_test_munged_start(&m), "munged did not start");
  char dir[256];
  snprintf(dir, sizeof dir, "%s", m.dir);
  cr_expect_not(exists(killed), "%s: its test process is gone", killed);
  cr_expect_not(exists(legacy), "%s: old, and no munged runs from it", legacy);
  cr_expect(exists(live_owner), "%s: its test process still runs", live_owner);
  cr_expect(exists(live_pid), "%s: its munged still runs", live_pid);
  ty_test_munged_stop(&m);
  cr_expect_not(exists(dir), "%s: its munged was stopped", dir);
  munged_in_child('x', exited, sizeof exited, &mx);
  cr_expect_not(exists(exited), "%s: its test process exited", exited);
  cr_expect(it_pid_dead(mx), "munged %d outlived its test process's exit", (int)mx);
  char cmd[1700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", legacy, live_owner, live_pid);
  cr_assert_eq(system(cmd), 0);
}
