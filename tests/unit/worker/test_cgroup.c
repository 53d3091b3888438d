/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker/cgroup.c on this machine's real cgroup hierarchy (as root; skipped
 * where none is usable): a task's cgroup with its limits, joining it,
 * signalling and killing every member (a double-forked one included),
 * accounting, removal, finding a previous run's tasks, a subtree
 * removed under the worker made again, an ended rank 0's cgroup reused
 * for the next job with its counters reset, and a job's process limit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker/worker.h"

static ty_cgroups *cg;
static char name[64];

static void open_cg(void) {
  if (geteuid() != 0) cr_skip_test("cgroups need root");
  snprintf(name, sizeof name, "tytest-%d", (int)getpid());
  char why[TY_ERR_LEN] = "";
  cg = ty_cgroup_open(NULL, name, 0, why, sizeof why);
  if (!cg) cr_skip_test("no usable cgroup hierarchy: %s", why);
}

static void close_cg(void) {
  if (!cg) return;
  char dir[4096];
  ty_cgroup_task_path(cg, "", 1, UINT32_MAX, dir, sizeof dir);
  *strrchr(dir, '/') = '\0'; /* the subtree itself */
  ty_cgroup_close(cg);
  rmdir(dir);
}

static void nap(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A process in the task's cgroup that forks a grandchild into a new
 * session (escaping any process group), writes its pid to fd[1], sleeps. */
static pid_t start_member(char **procs, int *grandchild) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    for (size_t i = 0; procs[i]; i++) {
      int fd = open(procs[i], O_WRONLY);
      if (fd < 0 || dprintf(fd, "%d\n", (int)getpid()) < 0) _exit(10);
      close(fd);
    }
    pid_t g = fork();
    if (g == 0) {
      setsid();
      execlp("sleep", "sleep", "300", (char *)NULL);
      _exit(11);
    }
    if (write(fds[1], &g, sizeof g) != (ssize_t)sizeof g) _exit(12);
    execlp("sleep", "sleep", "300", (char *)NULL);
    _exit(13);
  }
  close(fds[1]);
  pid_t g = 0;
  cr_assert_eq(read(fds[0], &g, sizeof g), (ssize_t)sizeof g);
  close(fds[0]);
  *grandchild = g;
  return pid;
}

static bool dead(pid_t pid) {
  for (int i = 0; i < 200; i++) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    nap(10);
  }
  return false;
}

static unsigned long long read_ull(const char *dir, const char *file) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "r");
  unsigned long long v = 0;
  if (f && fscanf(f, "%llu", &v) != 1) v = 0;
  if (f) fclose(f);
  return v;
}

Test(cgroup, limits_membership_kill_accounting_and_removal, .init = open_cg, .fini = close_cg) {
  cr_expect(strstr(ty_cgroup_describe(cg), name), "%s", ty_cgroup_describe(cg));
  ty_cgroup_limits lim = {.mem_bytes = 512ull << 20, .cpus = 2};
  char **procs = NULL, err[TY_ERR_LEN];
  cr_assert_eq(ty_cgroup_task_create(cg, 7, 1, &lim, &procs, err, sizeof err), 0, "%s", err);
  char dir[4096];
  if (ty_cgroup_task_path(cg, "memory", 7, UINT32_MAX, dir, sizeof dir) == 0) {
    unsigned long long v = read_ull(dir, "memory.limit_in_bytes");
    if (!v) v = read_ull(dir, "memory.max");
    cr_expect_eq(v, 512ull << 20, "memory limit in %s", dir);
  }
  if (ty_cgroup_task_path(cg, "cpu", 7, 1, dir, sizeof dir) == 0) {
    unsigned long long q = read_ull(dir, "cpu.cfs_quota_us");
    if (q) cr_expect_eq(q, 200000);
  }
  int grandchild = 0;
  pid_t child = start_member(procs, &grandchild);
  ty_cgroup_procs_free(procs);
  cr_expect_not(ty_cgroup_task_empty(cg, 7, 1));
  /* A signal reaches every member, the escaped grandchild included. */
  cr_expect_eq(ty_cgroup_task_signal(cg, 7, 1, SIGSTOP), 0);
  cr_expect_eq(ty_cgroup_task_signal(cg, 7, 1, SIGCONT), 0);
  cr_expect_eq(ty_cgroup_task_kill(cg, 7, 1), 0);
  cr_expect_eq(waitpid(child, NULL, 0), child);
  cr_expect(dead(grandchild), "the double-forked grandchild %d survived", grandchild);
  for (int i = 0; i < 200 && !ty_cgroup_task_empty(cg, 7, 1); i++)
    nap(10);
  cr_expect(ty_cgroup_task_empty(cg, 7, 1));
  cr_expect_eq(ty_cgroup_task_signal(cg, 7, 1, SIGTERM), TY_ENOTFOUND);
  ty_task_usage u;
  ty_cgroup_task_usage(cg, 7, 1, &u);
  cr_expect_gt(u.cpu_usec + u.mem_peak_bytes, 0, "no accounting at all");
  cr_expect_eq(ty_cgroup_task_remove(cg, 7, 1), 0);
  ty_cgroup_task_path(cg, "", 7, UINT32_MAX, dir, sizeof dir);
  struct stat st;
  cr_expect_neq(stat(dir, &st), 0, "the job's cgroup %s outlived its last rank", dir);
}

static void count(uint64_t job, uint32_t rank, void *ud) {
  int *n = ud;
  cr_expect(job == 9 && (rank == 0 || rank == 3), "job %lu rank %u", (unsigned long)job, rank);
  (*n)++;
}

Test(cgroup, a_previous_runs_tasks_are_found, .init = open_cg, .fini = close_cg) {
  ty_cgroup_limits lim = {.cpus = 1};
  char **procs = NULL, err[TY_ERR_LEN];
  cr_assert_eq(ty_cgroup_task_create(cg, 9, 0, &lim, &procs, err, sizeof err), 0, "%s", err);
  ty_cgroup_procs_free(procs);
  cr_assert_eq(ty_cgroup_task_create(cg, 9, 3, &lim, &procs, err, sizeof err), 0, "%s", err);
  ty_cgroup_procs_free(procs);
  int n = 0;
  ty_cgroup_scan(cg, count, &n);
  cr_expect_eq(n, 2);
  cr_expect_eq(ty_cgroup_task_remove(cg, 9, 0), 0);
  cr_expect_eq(ty_cgroup_task_remove(cg, 9, 3), 0);
  n = 0;
  ty_cgroup_scan(cg, count, &n);
  cr_expect_eq(n, 0);
}

Test(cgroup, a_subtree_removed_under_the_worker_is_made_again, .init = open_cg, .fini = close_cg) {
  /* Someone (an admin, another service manager) removed the worker's
   * subtree: the next task's cgroup makes it again instead of failing the
   * job, and the task runs in it. */
  char dir[4096];
  ty_cgroup_task_path(cg, "", 11, UINT32_MAX, dir, sizeof dir);
  *strrchr(dir, '/') = '\0';
  cr_assert_eq(rmdir(dir), 0, "%s: %s", dir, strerror(errno));
  char **procs = NULL, err[TY_ERR_LEN] = "";
  ty_cgroup_limits lim = {.cpus = 1};
  cr_assert_eq(ty_cgroup_task_create(cg, 11, 0, &lim, &procs, err, sizeof err), 0, "%s", err);
  cr_assert(procs && procs[0]);
  struct stat st;
  cr_expect_eq(stat(dir, &st), 0, "%s is back", dir);
  ty_cgroup_procs_free(procs);
  cr_expect_eq(ty_cgroup_task_remove(cg, 11, 0), 0);
  cr_expect_eq(ty_cgroup_task_remove(cg, 12, 0), 0, "removing what does not exist is fine");
}

/* Burns CPU in the task's cgroup until it has used some, then exits. */
static void burn_in(char **procs) {
  pid_t pid = fork();
  if (pid == 0) {
    for (size_t i = 0; procs[i]; i++) {
      int fd = open(procs[i], O_WRONLY);
      if (fd < 0 || dprintf(fd, "%d\n", (int)getpid()) < 0) _exit(10);
      close(fd);
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 20000000L);
    _exit(0);
  }
  cr_assert_eq(waitpid(pid, NULL, 0), pid);
}

Test(cgroup, an_ended_rank0s_cgroup_is_reused_with_its_counters_reset, .init = open_cg,
     .fini = close_cg) {
  ty_cgroup_limits lim = {.cpus = 1};
  char **procs = NULL, err[TY_ERR_LEN];
  cr_assert_eq(ty_cgroup_task_create(cg, 20, 0, &lim, &procs, err, sizeof err), 0, "%s", err);
  burn_in(procs);
  ty_cgroup_procs_free(procs);
  ty_task_usage u;
  ty_cgroup_task_usage(cg, 20, 0, &u);
  cr_expect_geq(u.cpu_usec, 10000, "the first task's CPU time: %lu us", (unsigned long)u.cpu_usec);
  cr_expect_eq(ty_cgroup_task_remove(cg, 20, 0), 0);
  char dir[4096];
  struct stat st;
  ty_cgroup_task_path(cg, "", 20, UINT32_MAX, dir, sizeof dir);
  cr_expect_neq(stat(dir, &st), 0, "job 20's cgroup %s outlived its task", dir);
  /* On v1 its CPU accounting cgroup waits as a spare (rank0 inside). */
  char spare[4200] = "";
  if (strstr(ty_cgroup_describe(cg), "cgroup v1") &&
      ty_cgroup_task_path(cg, "cpuacct", 20, UINT32_MAX, dir, sizeof dir) == 0) {
    *strrchr(dir, '/') = '\0';
    snprintf(spare, sizeof spare, "%s/spare0/rank0", dir);
    cr_expect_eq(stat(spare, &st), 0, "no spare %s", spare);
  }
  /* The next job starts from zero, with its own limits, wherever its cgroup
   * came from. */
  lim.cpus = 3;
  cr_assert_eq(ty_cgroup_task_create(cg, 21, 0, &lim, &procs, err, sizeof err), 0, "%s", err);
  ty_cgroup_task_usage(cg, 21, 0, &u);
  cr_expect_eq(u.cpu_usec, 0, "job 21 inherited %lu us of CPU", (unsigned long)u.cpu_usec);
  cr_expect_eq(u.io_read_bytes + u.io_write_bytes, 0);
  if (ty_cgroup_task_path(cg, "cpu", 21, 0, dir, sizeof dir) == 0) {
    unsigned long long q = read_ull(dir, "cpu.cfs_quota_us");
    if (q) cr_expect_eq(q, 300000);
  }
  ty_cgroup_task_path(cg, "", 21, 0, dir, sizeof dir);
  cr_expect_eq(stat(dir, &st), 0, "%s", dir);
  if (spare[0]) cr_expect_neq(stat(spare, &st), 0, "job 21 did not take the spare %s", spare);
  /* What a task joins: v1's tasks file (the thread moves itself without the
   * global lock), v2's cgroup.procs. */
  for (size_t i = 0; procs[i]; i++)
    cr_expect(strstr(procs[i], "/job21/rank0/tasks") ||
                  strstr(procs[i], "/job21/rank0/cgroup.procs"),
              "%s", procs[i]);
  burn_in(procs);
  ty_cgroup_procs_free(procs);
  ty_cgroup_task_usage(cg, 21, 0, &u);
  cr_expect_geq(u.cpu_usec, 10000);
  cr_expect_lt(u.cpu_usec, 5000000);
  cr_expect_eq(ty_cgroup_task_remove(cg, 21, 0), 0);
}

/* --max-pids-per-job: the job level's pids.max (v1 takes the pids
 * hierarchy beside a freezer for it), never a pooled spare (its count of
 * refused forks would carry over); a fork past it fails with EAGAIN and
 * is counted. */
Test(cgroup, a_process_limit_is_the_jobs_pids_max_and_counts_refused_forks) {
  if (geteuid() != 0) cr_skip_test("cgroups need root");
  snprintf(name, sizeof name, "tytest-%d", (int)getpid());
  char why[TY_ERR_LEN] = "", dir[4096], err[TY_ERR_LEN];
  cg = ty_cgroup_open(NULL, name, 3, why, sizeof why);
  if (!cg) cr_skip_test("no usable cgroup hierarchy: %s", why);
  if (ty_cgroup_task_path(cg, "pids", 30, UINT32_MAX, dir, sizeof dir) != 0) {
    close_cg();
    cr_skip_test("no pids controller: %s", ty_cgroup_describe(cg));
  }
  cr_expect_eq(ty_cgroup_pids_max(cg), 3u);
  ty_cgroup_limits lim = {.cpus = 1};
  char **procs = NULL;
  cr_assert_eq(ty_cgroup_task_create(cg, 30, 0, &lim, &procs, err, sizeof err), 0, "%s", err);
  cr_expect_eq(read_ull(dir, "pids.max"), 3);
  cr_expect_eq(ty_cgroup_task_forks_refused(cg, 30, 0), 0u);
  /* A shell in the task starting 5 sleeps: the limit stops the third. */
  pid_t pid = fork();
  if (pid == 0) {
    for (size_t i = 0; procs[i]; i++) {
      int fd = open(procs[i], O_WRONLY);
      if (fd < 0 || dprintf(fd, "%d\n", (int)getpid()) < 0) _exit(10);
      close(fd);
    }
    execl("/bin/sh", "sh", "-c", "for i in 1 2 3 4 5; do sleep 5 & done; wait", (char *)NULL);
    _exit(11);
  }
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_expect_neq(status, 0, "the shell forked past pids.max");
  cr_expect_geq(ty_cgroup_task_forks_refused(cg, 30, 0), 1u);
  cr_expect_eq(ty_cgroup_task_kill(cg, 30, 0), 0);
  for (int i = 0; i < 200 && !ty_cgroup_task_empty(cg, 30, 0); i++)
    nap(10);
  ty_cgroup_procs_free(procs);
  cr_expect_eq(ty_cgroup_task_remove(cg, 30, 0), 0);
  struct stat st;
  *strrchr(dir, '/') = '\0';
  snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/spare0");
  cr_expect_neq(stat(dir, &st), 0, "the pids cgroup became a spare: %s", dir);
  close_cg();
}

Test(cgroup, a_rank0_with_other_ranks_left_keeps_their_job, .init = open_cg, .fini = close_cg) {
  ty_cgroup_limits lim = {.cpus = 1};
  char **procs = NULL, err[TY_ERR_LEN];
  cr_assert_eq(ty_cgroup_task_create(cg, 30, 0, &lim, &procs, err, sizeof err), 0, "%s", err);
  ty_cgroup_procs_free(procs);
  cr_assert_eq(ty_cgroup_task_create(cg, 30, 1, &lim, &procs, err, sizeof err), 0, "%s", err);
  ty_cgroup_procs_free(procs);
  cr_expect_eq(ty_cgroup_task_remove(cg, 30, 0), 0);
  char dir[4096];
  struct stat st;
  ty_cgroup_task_path(cg, "", 30, 1, dir, sizeof dir);
  cr_expect_eq(stat(dir, &st), 0, "rank 1 lost its cgroup %s", dir);
  ty_cgroup_task_path(cg, "", 30, 0, dir, sizeof dir);
  cr_expect_neq(stat(dir, &st), 0, "rank 0's cgroup %s remains", dir);
  /* A new rank 0 of that job is made next to rank 1. */
  cr_assert_eq(ty_cgroup_task_create(cg, 30, 0, &lim, &procs, err, sizeof err), 0, "%s", err);
  ty_cgroup_procs_free(procs);
  cr_expect_eq(stat(dir, &st), 0, "%s", dir);
  cr_expect_eq(ty_cgroup_task_remove(cg, 30, 1), 0);
  cr_expect_eq(ty_cgroup_task_remove(cg, 30, 0), 0);
  int n = 0;
  ty_cgroup_scan(cg, count, &n);
  cr_expect_eq(n, 0);
}

Test(cgroup, a_rank0_with_a_process_left_is_not_reused, .init = open_cg, .fini = close_cg) {
  ty_cgroup_limits lim = {.cpus = 1};
  char **procs = NULL, err[TY_ERR_LEN];
  cr_assert_eq(ty_cgroup_task_create(cg, 40, 0, &lim, &procs, err, sizeof err), 0, "%s", err);
  int grandchild = 0;
  pid_t child = start_member(procs, &grandchild);
  ty_cgroup_procs_free(procs);
  /* Its end reported with a process still inside (as after a kill that
   * did not take): the cgroup stays where it is. */
  cr_expect_neq(ty_cgroup_task_remove(cg, 40, 0), 0);
  char dir[4096];
  struct stat st;
  if (ty_cgroup_task_path(cg, "cpuacct", 40, 0, dir, sizeof dir) == 0)
    cr_expect_eq(stat(dir, &st), 0, "%s was given away with a process in it", dir);
  cr_expect_not(ty_cgroup_task_empty(cg, 40, 0));
  cr_expect_eq(ty_cgroup_task_kill(cg, 40, 0), 0);
  cr_expect_eq(waitpid(child, NULL, 0), child);
  cr_expect(dead(grandchild));
  for (int i = 0; i < 200 && !ty_cgroup_task_empty(cg, 40, 0); i++)
    nap(10);
  cr_expect_eq(ty_cgroup_task_remove(cg, 40, 0), 0);
}

/* The cgroup2 mount and its favordynmods option from mountinfo lines (as
 * Debian 12's systemd mounts it, a hybrid machine's, and other types). */
Test(cgroup, a_cgroup2_mount_and_its_favordynmods_are_read_from_mountinfo) {
  char mount[256];
  bool favor = true;
  cr_assert(ty_cgroup2_mountinfo("35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime "
                                 "shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
                                 mount, sizeof mount, &favor));
  cr_assert_str_eq(mount, "/sys/fs/cgroup");
  cr_assert(!favor);
  cr_assert(ty_cgroup2_mountinfo("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 "
                                 "cgroup2 rw,favordynmods,nsdelegate\n",
                                 mount, sizeof mount, &favor));
  cr_assert_str_eq(mount, "/sys/fs/cgroup/unified");
  cr_assert(favor);
  cr_assert(!ty_cgroup2_mountinfo("33 31 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup "
                                  "rw,memory\n",
                                  mount, sizeof mount, &favor));
  cr_assert(!ty_cgroup2_mountinfo("22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n", mount,
                                  sizeof mount, &favor));
  cr_assert(!ty_cgroup2_mountinfo("no separator here\n", mount, sizeof mount, &favor));
}

/* The working set is usage less inactive page cache (cAdvisor's): v2 reads
 * memory.stat's inactive_file, v1 its total_inactive_file (the hierarchy's,
 * not the cgroup's own inactive_file); never below 0, usage without the line. */
Test(cgroup, the_working_set_leaves_out_inactive_page_cache) {
  const char *v2 = "anon 3145728\nfile 419430400\nactive_file 1048576\n"
                   "inactive_file 418381824\nslab 1024\n";
  cr_assert_eq(ty_cgroup_working_set(452984832, v2, true), 452984832 - 418381824);
  const char *v1 = "cache 419430400\nrss 3145728\ninactive_file 5\nactive_file 1048576\n"
                   "total_cache 419430400\ntotal_rss 3145728\ntotal_inactive_file 418381824\n"
                   "total_active_file 1048576\n";
  cr_assert_eq(ty_cgroup_working_set(452984832, v1, false), 452984832 - 418381824);
  cr_assert_eq(ty_cgroup_working_set(1000, "inactive_file 4096\n", true), 0);
  cr_assert_eq(ty_cgroup_working_set(1000, "anon 1000\n", true), 1000);
  cr_assert_eq(ty_cgroup_working_set(1000, "", false), 1000);
}
