/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A graph job's default checkpoint directory, CHECKPOINT_DIR/JOB, made by
 * the worker running the job's rank 0 before it starts. A root worker
 * makes it because traind keeps CHECKPOINT_DIR root's and closed to other
 * users' entries (0711), so the job's user could not make it, and nobody
 * can plant it for them: made 0700 and given to the job's user. A worker
 * that does not run as root makes it as itself (its tasks' user).
 *
 * One already there is kept only when it is this very job's (a requeue
 * resumes from its checkpoint): a directory of the job's user whose stamp,
 * .trainyard-job, names the job's id and submit time. One of an earlier
 * job of the same id (a store restored from a backup, or a new one, gives
 * ids again), or anything else, is moved aside as .stale-JOB-TIME and
 * replaced, so that a new job never resumes another's checkpoint. A
 * directory without a stamp (made before stamps, or for a traind that
 * sends no submit time) is kept, as it always was.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "worker/worker_internal.h"

#define STAMP ".trainyard-job"

/* The uid that CHECKPOINT_DIR/JOB belongs to: the job's user's, or (a
 * worker not running as root) the worker's, its tasks' user. */
static uid_t owner_of(const ty_task_spec *spec) {
  return geteuid() == 0 ? spec->uid : geteuid();
}

/* The stamp of spec's job: its id and submit time. */
static void stamp_of(const ty_task_spec *spec, char *out, size_t len) {
  snprintf(out, len, "job %" PRIu64 " submitted %" PRIu64 "\n", spec->job_id, spec->job_submit_ms);
}

/* Moves aside CHECKPOINT_DIR/name, which is not this job's; why says whose. */
static int move_aside(int root_fd, const ty_task_spec *spec, const char *name, const char *why,
                      char *err, size_t err_len) {
  char stale[64];
  snprintf(stale, sizeof stale, ".stale-%" PRIu64 "-%lld", spec->job_id, (long long)time(NULL));
  if (renameat(root_fd, name, root_fd, stale) != 0)
    return ty_errf(err, err_len, TY_EIO,
                   "checkpoint directory %s/%s: cannot move aside what is there (%s)",
                   spec->checkpoint_root, name, strerror(errno));
  ty_warn("job %" PRIu64 ": %s/%s %s: moved aside to %s/%s", spec->job_id, spec->checkpoint_root,
          name, why, spec->checkpoint_root, stale);
  return 0;
}

/* Whether the directory dir_fd holds a stamp other than this job's (a
 * missing one is no verdict: kept). The stamp is read without following
 * a link or blocking on a FIFO the directory's user may have put there. */
static bool stamp_differs(int dir_fd, const ty_task_spec *spec) {
  if (!spec->job_submit_ms) return false;
  int fd = openat(dir_fd, STAMP, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;
  char got[96] = "", want[96];
  struct stat st;
  ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, got, sizeof got - 1) : -1;
  close(fd);
  stamp_of(spec, want, sizeof want);
  return n <= 0 || strncmp(got, want, sizeof want) != 0;
}

/* Why CHECKPOINT_DIR/name (st) is not this job's, or NULL when it is. */
static const char *not_this_jobs(int root_fd, const ty_task_spec *spec, const char *name,
                                 const struct stat *st, char *why, size_t len) {
  if (!S_ISDIR(st->st_mode) || st->st_uid != owner_of(spec)) {
    snprintf(why, len, "belonged to uid %u, not to the job's user (uid %u)", (unsigned)st->st_uid,
             (unsigned)owner_of(spec));
    return why;
  }
  int fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  bool other = fd < 0 || stamp_differs(fd, spec);
  if (fd >= 0) close(fd);
  if (!other) return NULL;
  snprintf(why, len,
           "was an earlier job %" PRIu64 "'s (its ids were given again, as after a "
           "restored store), not this one's",
           spec->job_id);
  return why;
}

/* Makes CHECKPOINT_DIR/name (0700) unless this job's directory is there
 * already (a requeue); whatever else is there goes aside first. */
static int make_fresh(int root_fd, const ty_task_spec *spec, const char *name, char *err,
                      size_t err_len) {
  struct stat st;
  char why[160];
  if (fstatat(root_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!not_this_jobs(root_fd, spec, name, &st, why, sizeof why)) return 0; /* a requeue's */
    int rc = move_aside(root_fd, spec, name, why, err, err_len);
    if (rc != 0) return rc;
  }
  if (mkdirat(root_fd, name, 0700) != 0 && errno != EEXIST)
    return ty_errf(err, err_len, TY_EIO, "checkpoint directory %s/%s: cannot create it: %s",
                   spec->checkpoint_root, name, strerror(errno));
  return 0;
}

/* Writes the job's stamp into CHECKPOINT_DIR/name, replacing any: never
 * through an entry the directory's user made (unlinked first, then made
 * O_EXCL). */
static int write_stamp(int root_fd, const ty_task_spec *spec, const char *name, char *err,
                       size_t err_len) {
  if (!spec->job_submit_ms) return 0;
  char stamp[96];
  stamp_of(spec, stamp, sizeof stamp);
  int dir = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), fd = -1;
  if (dir >= 0 && (unlinkat(dir, STAMP, 0) == 0 || errno == ENOENT))
    fd = openat(dir, STAMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  size_t n = strlen(stamp);
  int rc = fd >= 0 && write(fd, stamp, n) == (ssize_t)n ? 0 : -1;
  if (rc != 0)
    rc = ty_errf(err, err_len, TY_EIO, "checkpoint directory %s/%s: cannot write its %s: %s",
                 spec->checkpoint_root, name, STAMP, strerror(errno));
  if (fd >= 0) close(fd);
  if (dir >= 0) close(dir);
  return rc;
}

/* Gives CHECKPOINT_DIR/name to the job's user, through a descriptor that
 * cannot be a link: only a directory that is root's (just made) or already
 * the user's. */
static int give_to_user(int root_fd, const ty_task_spec *spec, const char *name, char *err,
                        size_t err_len) {
  int fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  int rc = 0;
  if (fd < 0 || fstat(fd, &st) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "checkpoint directory %s/%s: cannot open it: %s",
                 spec->checkpoint_root, name, strerror(errno));
  else if (st.st_uid != 0 && st.st_uid != spec->uid)
    rc = ty_errf(err, err_len, TY_EPERM,
                 "checkpoint directory %s/%s: replaced by uid %u while it was made: refusing",
                 spec->checkpoint_root, name, (unsigned)st.st_uid);
  else if (fchown(fd, spec->uid, spec->gid) != 0 || fchmod(fd, 0700) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "checkpoint directory %s/%s: cannot give it to uid %u: %s",
                 spec->checkpoint_root, name, (unsigned)spec->uid, strerror(errno));
  if (fd >= 0) close(fd);
  return rc;
}

int ty__graph_ckpt_dir(const ty_task_spec *spec, char *err, size_t err_len) {
  bool root = geteuid() == 0;
  if (spec->rank != 0 || !spec->checkpoint_root || !spec->checkpoint_root[0] ||
      (root && !spec->has_uid))
    return 0;
  char name[32];
  snprintf(name, sizeof name, "%" PRIu64, spec->job_id);
  int root_fd = open(spec->checkpoint_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0)
    return ty_errf(err, err_len, TY_EIO, "checkpoint directory %s: cannot open it: %s",
                   spec->checkpoint_root, strerror(errno));
  int rc = make_fresh(root_fd, spec, name, err, err_len);
  if (rc == 0 && root) rc = give_to_user(root_fd, spec, name, err, err_len);
  if (rc == 0) rc = write_stamp(root_fd, spec, name, err, err_len);
  close(root_fd);
  return rc;
}
