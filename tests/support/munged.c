/* SPDX-License-Identifier: Apache-2.0 */
/* A private munged for tests (see munged.h). */
#include "tests/support/munged.h"

#include <errno.h>
#include <fcntl.h>
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

bool ty_test_munged_start(ty_test_munged *m) {
  memset(m, 0, sizeof *m);
  if (access(MUNGED, X_OK) != 0) {
    fprintf(stderr, "munged: %s is not installed (apt-get install munge)\n", MUNGED);
    return false;
  }
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(m->dir, sizeof m->dir, "%s/ty-munged-XXXXXX", tmp);
  if (!mkdtemp(m->dir) || chmod(m->dir, 0755) != 0) {
    fprintf(stderr, "munged: cannot create %s: %s\n", m->dir, strerror(errno));
    return false;
  }
  snprintf(m->socket, sizeof m->socket, "%s/munge.socket", m->dir);
  m->pid = spawn_munged(m);
  for (int i = 0; m->pid > 0 && i < 500; i++) {
    struct stat st;
    if (stat(m->socket, &st) == 0) return true;
    int status;
    if (waitpid(m->pid, &status, WNOHANG) == m->pid) break;
    nap_ms(10);
  }
  fprintf(stderr, "munged: did not start; see %s/munged.log\n", m->dir);
  ty_test_munged_stop(m);
  return false;
}

void ty_test_munged_stop(ty_test_munged *m) {
  if (m->pid <= 0) return;
  kill(m->pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    int status;
    if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
      m->pid = 0;
      return;
    }
    nap_ms(10);
  }
  kill(m->pid, SIGKILL);
  waitpid(m->pid, NULL, 0);
  m->pid = 0;
}
