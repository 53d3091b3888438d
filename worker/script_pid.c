/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process a batch task's script runs in, for sbatch's --signal=B:
 * (the warning to the batch shell alone, task.c). A batch task is the
 * runner /bin/sh (cli/script.c, the session leader), which runs
 * `trainyard-exec --wait-status FILE -- SCRIPT` (worker/exec_wait.c),
 * whose one child is the script's interpreter: that child is the process.
 * A task without that middle process (a --command job, an older runner)
 * is its leader. Found by one pass over /proc per level, reading each
 * process's parent from /proc/PID/stat and, for the middle one, its
 * command line; a warning is sent once per task.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/worker_internal.h"

/* Process pid's parent, or -1. */
static pid_t parent_of(pid_t pid) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  bool ok = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  const char *p = ok ? strrchr(line, ')') : NULL;
  int ppid;
  /* after ") ": state ppid ... */
  return p && sscanf(p + 1, " %*c %d", &ppid) == 1 ? (pid_t)ppid : -1;
}

/* Whether pid runs `trainyard-exec --wait-status ...` (its argv[1]). */
static bool waits_for_status(pid_t pid) {
  char path[64], cmd[256];
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, cmd, sizeof cmd - 1);
  close(fd);
  if (n <= 0) return false;
  cmd[n] = '\0';
  size_t first = strlen(cmd) + 1;
  return first < (size_t)n && strcmp(cmd + first, "--wait-status") == 0;
}

/* The first child of parent that wanted() accepts (NULL: any), or -1. */
static pid_t child_of(pid_t parent, bool (*wanted)(pid_t)) {
  DIR *d = opendir("/proc");
  if (!d) return -1;
  pid_t found = -1;
  for (struct dirent *e; found < 0 && (e = readdir(d));) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 1) continue;
    if (parent_of((pid_t)pid) == parent && (!wanted || wanted((pid_t)pid))) found = (pid_t)pid;
  }
  closedir(d);
  return found;
}

pid_t ty__task_script_pid(pid_t leader) {
  pid_t waiter = child_of(leader, waits_for_status);
  pid_t script = waiter > 0 ? child_of(waiter, NULL) : -1;
  return script > 0 ? script : leader;
}
