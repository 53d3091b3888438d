/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A private munged for tests (see munged.h), and its directory's removal.
 *
 * The directory, $TMPDIR/ty-munged-<pid>-XXXXXX, is named after the test
 * process that made it and goes with that munged: at ty_test_munged_stop,
 * or, for a test that never got there (a failed assertion ends the test
 * process through exit), at the exit of the process, which stops the
 * munged first so nothing writes there meanwhile. A process killed
 * outright (SIGKILL, a Criterion timeout) runs no exit handler: its
 * directory goes at the next start of a munged in any test process, once
 * its owner is gone. Directories of the older naming (no pid) go there too
 * once they are STALE_S old and no live munged holds their pid file.
 */
#include "tests/support/munged.h"
#include "tests/support/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MUNGED "/usr/sbin/munged"
#define DIR_PREFIX "ty-munged-"
#define MAX_LIVE 8  /* munged instances one test process runs at once */
#define STALE_S 600 /* a pid-less directory's age before it counts as left behind */

/* The munged instances this process started and has not stopped: copies,
 * since the caller's struct may be on a stack gone by exit time. */
static struct {
  pid_t pid;
  char dir[256];
} live[MAX_LIVE];

static void nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static bool write_key(const char *path) {
  uint8_t key[1024];
  int r = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool ok = r >= 0 && read(r, key, sizeof key) == (ssize_t)sizeof key;
  if (r >= 0) close(r);
  int fd = ok ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
  ok = fd >= 0 && write(fd, key, sizeof key) == (ssize_t)sizeof key;
  if (fd >= 0) close(fd);
  return ok;
}

static pid_t spawn_munged(const ty_test_munged *m) {
  char key[300], pid[300], log[300], seed[300];
  snprintf(key, sizeof key, "%s/munge.key", m->dir);
  snprintf(pid, sizeof pid, "%s/munged.pid", m->dir);
  snprintf(log, sizeof log, "%s/munged.log", m->dir);
  snprintf(seed, sizeof seed, "%s/munged.seed", m->dir);
  if (!write_key(key)) return -1;
  pid_t child = fork();
  if (child != 0) return child;
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) dup2(null, 0), dup2(null, 1), dup2(null, 2);
  execl(MUNGED, MUNGED, "-F", "-f", "--key-file", key, "--socket", m->socket, "--pid-file", pid,
        "--log-file", log, "--seed-file", seed, "--num-threads", "4", (char *)NULL);
  _exit(127);
}

/* ---- what is left behind ------------------------------------------------------------------- */

static bool pid_alive(long pid) {
  return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* The owner in "ty-munged-<pid>-XXXXXX", or 0 for the older "ty-munged-XXXXXX". */
static long owner_of(const char *name) {
  const char *p = name + strlen(DIR_PREFIX);
  char *end;
  long pid = strtol(p, &end, 10);
  return end != p && *end == '-' ? pid : 0;
}

/* Whether the pid file in dir names a live process (a munged running). */
static bool holds_live_munged(const char *dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/munged.pid", dir) >= (int)sizeof path) return false;
  FILE *f = fopen(path, "r");
  long pid = 0;
  if (f && fscanf(f, "%ld", &pid) != 1) pid = 0;
  if (f) fclose(f);
  return pid_alive(pid);
}

/* A directory another test process left: its owner is gone, or it has no
 * owner in its name, is old, and no munged runs from it. */
static bool left_behind(const char *tmp, const char *name, time_t now) {
  if (strncmp(name, DIR_PREFIX, strlen(DIR_PREFIX)) != 0) return false;
  char path[PATH_MAX];
  struct stat st;
  if (snprintf(path, sizeof path, "%s/%s", tmp, name) >= (int)sizeof path) return false;
  if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) return false;
  long owner = owner_of(name);
  if (owner) return !pid_alive(owner);
  return now - st.st_mtime >= STALE_S && !holds_live_munged(path);
}

static void sweep_left_behind(const char *tmp) {
  static bool swept;
  if (swept) return;
  swept = true;
  DIR *d = opendir(tmp);
  time_t now = time(NULL);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (!left_behind(tmp, e->d_name, now)) continue;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", tmp, e->d_name) < (int)sizeof path)
      ty_test_remove_tree(path);
  }
  if (d) closedir(d);
}

/* ---- this process's instances ---------------------------------------------------------------- */

/* SIGTERM, a wait of up to 3 s, then SIGKILL. */
static void stop_pid(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return;
    nap_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void stop_all_at_exit(void) {
  for (size_t i = 0; i < MAX_LIVE; i++) {
    if (!live[i].dir[0]) continue;
    if (live[i].pid > 0) stop_pid(live[i].pid);
    ty_test_remove_tree(live[i].dir);
    live[i].dir[0] = '\0';
  }
}

/* Notes m's directory (and later its pid) for removal at exit; false when
 * the table is full. */
static bool track(const ty_test_munged *m) {
  static bool registered;
  if (!registered && atexit(stop_all_at_exit) != 0) return false;
  registered = true;
  for (size_t i = 0; i < MAX_LIVE; i++) {
    if (live[i].dir[0]) continue;
    live[i].pid = m->pid;
    snprintf(live[i].dir, sizeof live[i].dir, "%s", m->dir);
    return true;
  }
  return false;
}

/* m's slot in the table, or MAX_LIVE when this process did not make its
 * directory (never started, or a struct that is not this process's). */
static size_t slot_of(const ty_test_munged *m) {
  for (size_t i = 0; m->dir[0] && i < MAX_LIVE; i++)
    if (!strcmp(live[i].dir, m->dir)) return i;
  return MAX_LIVE;
}

/* munged's log on stderr: its directory, and the log with it, goes next. */
static void print_log(const ty_test_munged *m) {
  char path[sizeof m->dir + 16], line[512];
  snprintf(path, sizeof path, "%s/munged.log", m->dir);
  FILE *f = fopen(path, "r");
  while (f && fgets(line, sizeof line, f))
    fprintf(stderr, "  %s", line);
  if (f) fclose(f);
}

bool ty_test_munged_start(ty_test_munged *m) {
  memset(m, 0, sizeof *m);
  if (access(MUNGED, X_OK) != 0) {
    fprintf(stderr, "munged: %s is not installed (apt-get install munge)\n", MUNGED);
    return false;
  }
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  sweep_left_behind(tmp);
  snprintf(m->dir, sizeof m->dir, "%s/" DIR_PREFIX "%d-XXXXXX", tmp, (int)getpid());
  if (!mkdtemp(m->dir)) {
    fprintf(stderr, "munged: cannot create %s: %s\n", m->dir, strerror(errno));
    m->dir[0] = '\0';
    return false;
  }
  if (!track(m) || chmod(m->dir, 0755) != 0) {
    fprintf(stderr, "munged: cannot set up %s: %s\n", m->dir, strerror(errno));
    ty_test_remove_tree(m->dir);
    m->dir[0] = '\0';
    return false;
  }
  snprintf(m->socket, sizeof m->socket, "%s/munge.socket", m->dir);
  m->pid = spawn_munged(m);
  live[slot_of(m)].pid = m->pid;
  for (int i = 0; m->pid > 0 && i < 500; i++) {
    struct stat st;
    if (stat(m->socket, &st) == 0) return true;
    int status;
    if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
      m->pid = 0;
      break;
    }
    nap_ms(10);
  }
  fprintf(stderr, "munged: did not start (its log was in %s/munged.log):\n", m->dir);
  print_log(m);
  ty_test_munged_stop(m);
  return false;
}

void ty_test_munged_stop(ty_test_munged *m) {
  if (m->pid > 0) stop_pid(m->pid);
  m->pid = 0;
  size_t i = slot_of(m);
  if (i == MAX_LIVE) return; /* never started, or not this process's */
  ty_test_remove_tree(m->dir);
  live[i].dir[0] = '\0';
}
