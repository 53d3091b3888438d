/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The harness's own hygiene (cleanup.h): a cluster start removes what test
 * processes that are gone left behind (their old directories, their
 * workers' cgroups) and nothing of a test process that still runs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/cleanup.h"
#include "tests/integration/harness.h"

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
