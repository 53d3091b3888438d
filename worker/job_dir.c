/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A job's directory on the node, DIR/jobs/JOB (its ranks' logs, a graph
 * rank's model and config, the token key): the worker's (0755), so a
 * task's user cannot swap its files, and this job's only.
 *
 * Job ids are given again by a controller whose store was reset or
 * restored from a backup (docs/security.md), so the directory is stamped
 * with the job's identity, its id and submit time (.trainyard-job, the
 * worker's, 0644), and kept for a launch only when the stamp names the
 * same job: a requeued run appends to its log. One stamped for another
 * job of the same id is moved aside, as JOB.replaced-TIME, before this
 * job's first file goes in, so that a new job never reads, nor is given,
 * an earlier job's logs; retention removes it later (logs.c). A directory
 * without a stamp (made before stamps) is stamped and kept, as it always
 * was, and so is one when the controller sent no submit time (an older
 * traind): there the log itself is replaced when another user owns it
 * (spawn.c's ty__open_task_log).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "worker/worker_internal.h"

#define STAMP ".trainyard-job"

static void stamp_of(const ty_task_spec *spec, char *out, size_t len) {
  snprintf(out, len, "job %" PRIu64 " submitted %" PRIu64 "\n", spec->job_id, spec->job_submit_ms);
}

typedef enum { STAMP_SAME, STAMP_MISSING, STAMP_OTHER } stamp_state;

/* What dir's stamp says of spec's job. The directory is the worker's:
 * nothing in it is the user's to plant. */
static stamp_state stamp_in(const char *dir, const ty_task_spec *spec) {
  char path[4200], got[96] = "", want[96];
  snprintf(path, sizeof path, "%s/" STAMP, dir);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 && errno == ENOTDIR) { /* dir is not a directory, or a folder above it */
    struct stat st;
    return lstat(dir, &st) == 0 ? STAMP_OTHER : STAMP_MISSING; /* mkdir then says which */
  }
  if (fd < 0) return errno == ENOENT ? STAMP_MISSING : STAMP_OTHER;
  ssize_t n = read(fd, got, sizeof got - 1);
  close(fd);
  stamp_of(spec, want, sizeof want);
  return n > 0 && strcmp(got, want) == 0 ? STAMP_SAME : STAMP_OTHER;
}

static int write_stamp(const char *dir, const ty_task_spec *spec, const char *node, char *err,
                       size_t err_len) {
  char path[4200], stamp[96];
  snprintf(path, sizeof path, "%s/" STAMP, dir);
  stamp_of(spec, stamp, sizeof stamp);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  size_t n = strlen(stamp);
  int rc = fd >= 0 && write(fd, stamp, n) == (ssize_t)n ? 0 : -1;
  if (rc != 0)
    rc = ty_errf(err, err_len, TY_EIO, "job directory %s on node %s: cannot write its %s: %s", dir,
                 node, STAMP, strerror(errno));
  if (fd >= 0) close(fd);
  return rc;
}

/* Moves an earlier job's dir aside (JOB.replaced-TIME, which retention
 * removes) and forgets the cuts of its logs (logs.c). */
static int move_aside(ty_tasks *t, const char *dir, const ty_task_spec *spec, char *err,
                      size_t err_len) {
  char aside[4200];
  snprintf(aside, sizeof aside, "%s" TY__JOB_DIR_REPLACED "%lld", dir, (long long)time(NULL));
  if (rename(dir, aside) != 0)
    return ty_errf(err, err_len, TY_EIO,
                   "job directory %s on node %s holds an earlier job %" PRIu64
                   "'s logs and cannot be moved aside: %s",
                   dir, t->node, spec->job_id, strerror(errno));
  ty_warn("job %" PRIu64 ": %s was an earlier job's of the same id (ids were given again, as "
          "after a reset or restored store): moved aside to %s",
          spec->job_id, dir, aside);
  ty__logs_forget(t->logs, spec->job_id);
  return 0;
}

int ty__job_dir_claim(ty_tasks *t, const ty_task_spec *spec, char *out, size_t n, char *err,
                      size_t err_len) {
  int len = snprintf(out, n, "%s/jobs/%" PRIu64, t->state_dir, spec->job_id);
  if (len < 0 || (size_t)len >= n)
    return ty_errf(err, err_len, TY_EINVAL, "job directory of job %" PRIu64 ": path too long",
                   spec->job_id);
  stamp_state st = spec->job_submit_ms ? stamp_in(out, spec) : STAMP_SAME;
  if (st == STAMP_OTHER) {
    int rc = move_aside(t, out, spec, err, err_len);
    if (rc != 0) return rc;
  }
  int made = mkdir(out, 0755) == 0 || errno == EEXIST ? 0 : ty_mkdir_p(out);
  if (made != 0 || chmod(out, 0755) != 0)
    return ty_errf(err, err_len, TY_EIO, "cannot create job directory %s on node %s: %s", out,
                   t->node, strerror(errno));
  return st == STAMP_SAME ? 0 : write_stamp(out, spec, t->node, err, err_len);
}
