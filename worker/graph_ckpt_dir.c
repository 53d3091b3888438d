/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A graph job's default checkpoint directory, CHECKPOINT_DIR/JOB, made by
 * a root worker before the job's rank 0 starts: traind keeps CHECKPOINT_DIR
 * root's and closed to other users' entries (0711), so the job's user could
 * not make it, and nobody can plant it for them. Made 0700 and given to the
 * job's user; one already there that is a directory of that user (a
 * requeued job's) is kept, anything else moved aside as
 * .stale-JOB-TIME and replaced. A worker that does not run as root leaves
 * it to trainrun, which makes it as the job's (its own) user.
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

/* Moves aside CHECKPOINT_DIR/name, which is not the job user's directory. */
static int move_aside(int root_fd, const ty_task_spec *spec, const char *name,
                      const struct stat *st, char *err, size_t err_len) {
  char stale[64];
  snprintf(stale, sizeof stale, ".stale-%" PRIu64 "-%lld", spec->job_id, (long long)time(NULL));
  if (renameat(root_fd, name, root_fd, stale) != 0)
    return ty_errf(err, err_len, TY_EIO,
                   "checkpoint directory %s/%s: cannot move aside what is there (%s)",
                   spec->checkpoint_root, name, strerror(errno));
  ty_warn("job %" PRIu64 ": %s/%s belonged to uid %u, not to the job's user (uid %u): moved "
          "aside to %s/%s",
          spec->job_id, spec->checkpoint_root, name, (unsigned)st->st_uid, (unsigned)spec->uid,
          spec->checkpoint_root, stale);
  return 0;
}

/* Makes CHECKPOINT_DIR/name (0700) unless the job user's directory is
 * there already; whatever else is there goes aside first. */
static int make_fresh(int root_fd, const ty_task_spec *spec, const char *name, char *err,
                      size_t err_len) {
  struct stat st;
  if (fstatat(root_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode) && st.st_uid == spec->uid) return 0; /* a requeued job's: kept */
    int rc = move_aside(root_fd, spec, name, &st, err, err_len);
    if (rc != 0) return rc;
  }
  if (mkdirat(root_fd, name, 0700) != 0 && errno != EEXIST)
    return ty_errf(err, err_len, TY_EIO, "checkpoint directory %s/%s: cannot create it: %s",
                   spec->checkpoint_root, name, strerror(errno));
  return 0;
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
  if (spec->rank != 0 || !spec->checkpoint_root || !spec->checkpoint_root[0] || geteuid() != 0 ||
      !spec->has_uid)
    return 0;
  char name[32];
  snprintf(name, sizeof name, "%" PRIu64, spec->job_id);
  int root_fd = open(spec->checkpoint_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0)
    return ty_errf(err, err_len, TY_EIO, "checkpoint directory %s: cannot open it: %s",
                   spec->checkpoint_root, strerror(errno));
  int rc = make_fresh(root_fd, spec, name, err, err_len);
  if (rc == 0) rc = give_to_user(root_fd, spec, name, err, err_len);
  close(root_fd);
  return rc;
}
