/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainyard-exec --wait-status FILE -- CMD [ARGS...]: runs CMD as a child,
 * waits for it and writes how it ended into FILE, one line: "exited N"
 * (WIFEXITED, N its code) or "signaled N" (WIFSIGNALED, N the signal).
 * It then exits as a shell would report CMD: N, or 128+N.
 *
 * Why: a batch script runs under a small /bin/sh runner (cli/script.c)
 * that cleans up after it, and a shell only sees $?, where `exit 137` and
 * a SIGKILL read the same. The runner, given this program's path in
 * TRAINYARD_EXEC by the worker (batch scripts only, worker/launch.c), runs
 * the script through it and reads FILE: a script killed by N ends the task
 * killed by N (Slurm's 0:N), one that exits 137 ends it with 137 (137:0).
 *
 * It runs as the task's user, inside the task (its cgroup, its session),
 * and takes no other option: none of trainyard-exec's root steps. Signals
 * sent to the whole task (a cancel's SIGTERM, --signal's warning: the
 * runner's trap set, HUP INT TERM USR1 USR2) reach CMD directly, so this
 * process only outlives them; caught rather than ignored, they are back
 * at their default in CMD after its exec. Errors (bad usage, no fork) go
 * to stderr with exit 127, as a shell's "cannot run"; FILE is then not
 * written and the runner falls back to $?.
 */
#include "worker/exec_wait.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int passed_on[] = {SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

static void on_signal(int sig) {
  (void)sig; /* CMD got it too: only outlive it */
}

static int usage(const char *why) {
  fprintf(stderr, "trainyard-exec --wait-status FILE -- CMD [ARGS...]: %s\n", why);
  return 127;
}

/* One line into path (created 0600, or truncated); 0 or -1. */
static int write_status(const char *path, const char *line) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  size_t n = strlen(line);
  ssize_t w = write(fd, line, n);
  return close(fd) == 0 && w == (ssize_t)n ? 0 : -1;
}

int ty_exec_wait_main(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[1], "--wait-status") != 0 || strcmp(argv[3], "--") != 0)
    return usage("expected exactly this form");
  const char *path = argv[2];
  if (!path[0]) return usage("FILE is empty");
  struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof passed_on / sizeof *passed_on; i++)
    sigaction(passed_on[i], &sa, NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "trainyard-exec: fork: %s\n", strerror(errno));
    return 127;
  }
  if (pid == 0) {
    execvp(argv[4], argv + 4);
    int e = errno;
    fprintf(stderr, "trainyard-exec: %s: %s\n", argv[4], strerror(e));
    _exit(e == ENOENT ? 127 : 126); /* as sh: not found, or not executable */
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) {
      fprintf(stderr, "trainyard-exec: waitpid: %s\n", strerror(errno));
      return 127;
    }
  char line[32];
  int code = WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st);
  snprintf(line, sizeof line, "%s %d\n", WIFSIGNALED(st) ? "signaled" : "exited", code);
  if (write_status(path, line) != 0)
    fprintf(stderr, "trainyard-exec: %s: %s\n", path, strerror(errno));
  return WIFSIGNALED(st) ? 128 + code : code;
}
