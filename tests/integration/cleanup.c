/* SPDX-License-Identifier: Apache-2.0 */
/* What the integration tests leave on the host, and its removal (see cleanup.h). */
#include "tests/integration/cleanup.h"
#include "tests/support/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CGROUP_FS "/sys/fs/cgroup"
#define CGROUP_DEPTH 8 /* how deep below a hierarchy's mount tyit-* cgroups are looked for */
#define DIR_PREFIX "trainyard-it-"
#define CG_PREFIX "tyit-"
#define MAX_PIDS 64
#define MAX_DIRS 16

static pid_t pids[MAX_PIDS]; /* daemons started, 0 = free slot */
static struct {
  char path[PATH_MAX];
  bool done; /* its cluster was stopped: removed at exit */
} dirs[MAX_DIRS];

/* ---- owners ---------------------------------------------------------------------------------- */

int it_owner_pid(const char *name, const char *prefix) {
  size_t k = strlen(prefix);
  if (strncmp(name, prefix, k) != 0) return 0;
  char *end;
  long pid = strtol(name + k, &end, 10);
  return end != name + k && pid > 0 && pid <= INT_MAX ? (int)pid : 0;
}

bool it_pid_dead(int pid) {
  return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- directories ------------------------------------------------------------------------------
 */

/* A dead owner's directory, once it is old enough to be nobody's post-mortem. */
static void sweep_dirs(const char *tmpdir) {
  DIR *d = opendir(tmpdir);
  time_t now = time(NULL);
  for (struct dirent *e; d && (e = readdir(d));) {
    char path[PATH_MAX];
    struct stat st;
    if (!it_pid_dead(it_owner_pid(e->d_name, DIR_PREFIX))) continue;
    snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && now - st.st_mtime >= IT_KEEP_FAILED_S)
      ty_test_remove_tree(path);
  }
  if (d) closedir(d);
}

/* ---- cgroups ----------------------------------------------------------------------------------
 */

/* SIGKILLs every process in dir and below (v2: cgroup.kill does it at once). */
static void kill_members(const char *dir, int depth) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/cgroup.kill", dir);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (write(fd, "1", 1) == 1) {
      close(fd);
      return;
    }
    close(fd);
  }
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "r");
  for (long pid; f && fscanf(f, "%ld", &pid) == 1;)
    if (pid > 1) kill((pid_t)pid, SIGKILL);
  if (f) fclose(f);
  DIR *d = depth < CGROUP_DEPTH ? opendir(dir) : NULL;
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    kill_members(path, depth + 1);
  }
  if (d) closedir(d);
}

/* rmdir of dir's cgroups, children first; true when dir is gone. */
static bool remove_cgroups(const char *dir, int depth) {
  DIR *d = depth < CGROUP_DEPTH ? opendir(dir) : NULL;
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    (void)remove_cgroups(path, depth + 1);
  }
  if (d) closedir(d);
  return rmdir(dir) == 0 || errno == ENOENT;
}

/* Kills what runs in a worker's subtree and removes it; the members die
 * within milliseconds of SIGKILL, so a few rounds suffice. */
static void remove_subtree(const char *dir) {
  for (int i = 0; i < 100; i++) {
    kill_members(dir, 0);
    if (remove_cgroups(dir, 0)) return;
    nap_ms(10);
  }
  fprintf(stderr, "cleanup: cgroup %s could not be removed\n", dir);
}

/* Removes the tyit-<pid>-* cgroups below dir: of `owner`, or of any dead
 * owner when owner is 0. Another test's subtree is never entered. */
static void sweep_cgroups(const char *dir, int depth, int owner) {
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
    int pid = it_owner_pid(e->d_name, CG_PREFIX);
    if (pid && (owner ? pid == owner : it_pid_dead(pid)))
      remove_subtree(path);
    else if (!pid && depth < CGROUP_DEPTH)
      sweep_cgroups(path, depth + 1, owner);
  }
  if (d) closedir(d);
}

/* ---- at exit ----------------------------------------------------------------------------------
 */

/* Whether pid is a child of ours still running, asked without reaping it
 * (the test may still wait for it): a pid that was reaped, and may name
 * another process by now, is not ours. */
static bool running_child(pid_t pid) {
  siginfo_t info = {0};
  return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
}

/* Whether pid is a child of ours not yet reaped (running, or a zombie). */
static bool unreaped_child(pid_t pid) {
  siginfo_t info = {0};
  return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* Daemons this process started and did not stop: a failed test's. */
static void kill_daemons(void) {
  for (size_t i = 0; i < MAX_PIDS; i++) {
    if (pids[i] > 0 && running_child(pids[i])) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], NULL, 0);
    }
    pids[i] = 0;
  }
}

static void at_exit(void) {
  kill_daemons();
  sweep_cgroups(CGROUP_FS, 0, (int)getpid());
  const char *keep = getenv("TY_IT_KEEP");
  bool keep_all = keep && keep[0] && strcmp(keep, "0") != 0;
  for (size_t i = 0; i < MAX_DIRS; i++) {
    if (dirs[i].path[0] && dirs[i].done && !keep_all)
      ty_test_remove_tree(dirs[i].path);
    else if (dirs[i].path[0] && !keep_all)
      fprintf(stderr,
              "cleanup: %s kept (its cluster was not stopped: the test failed or was skipped)\n",
              dirs[i].path);
    dirs[i].path[0] = '\0';
  }
}

static void register_at_exit(void) {
  static bool registered;
  if (!registered) atexit(at_exit);
  registered = true;
}

/* ---- entry points ------------------------------------------------------------------------------
 */

bool it_cleanup_mkdtemp(const char *tmpdir, char *out, size_t out_len) {
  int n = snprintf(out, out_len, "%s/" DIR_PREFIX "%d-XXXXXX", tmpdir, (int)getpid());
  if (n < 0 || (size_t)n >= out_len || !mkdtemp(out)) return false;
  register_at_exit();
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < MAX_DIRS; i++) {
      if (!dirs[i].path[0]) {
        snprintf(dirs[i].path, sizeof dirs[i].path, "%s", out);
        dirs[i].done = false;
        return true;
      }
    }
    /* Full (tests run in one process, criterion's --no-fork): the stopped
     * clusters' directories go now, their tests are over. */
    for (size_t i = 0; i < MAX_DIRS; i++)
      if (dirs[i].done) ty_test_remove_tree(dirs[i].path), dirs[i].path[0] = '\0';
  }
  return true;
}

void it_cleanup_dir_done(const char *dir) {
  for (size_t i = 0; i < MAX_DIRS; i++)
    if (dirs[i].path[0] && !strcmp(dirs[i].path, dir)) dirs[i].done = true;
}

void it_cleanup_track_pid(pid_t pid) {
  register_at_exit();
  for (size_t i = 0; i < MAX_PIDS; i++) {
    /* A slot whose daemon was reaped meanwhile is free again. */
    if (pids[i] > 0 && !unreaped_child(pids[i])) pids[i] = 0;
    if (pids[i] == 0) {
      pids[i] = pid;
      return;
    }
  }
}

void it_cleanup_sweep_stale(const char *tmpdir) {
  static bool swept;
  if (swept) return;
  swept = true;
  sweep_dirs(tmpdir);
  sweep_cgroups(CGROUP_FS, 0, 0);
}
