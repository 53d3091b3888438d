/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A checkpoint's directory, before the first step (rank 0 alone writes):
 * made when missing (0700, as the job's user, whose rights trainrun runs
 * with), refused when another user planted it in a world-writable
 * directory, refused when a file other than a checkpoint (the model
 * being trained among them) stands at the path, probed with the very
 * temporary file a save writes through, and rid of the temporaries a save killed mid-write left
 * (each as large as a checkpoint, and nothing else would ever remove them).
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"
#include "lib/wire/wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether `dir`'s parent lets anyone make entries (world-writable), as
 * /tmp does (traind's CHECKPOINT_DIR once did): there, an entry another user
 * made may have been planted to read or redirect this job's checkpoints. */
static bool parent_is_shared(const char *dir) {
  char *copy = strdup(dir);
  struct stat st;
  bool shared = copy && stat(dirname(copy), &st) == 0 && (st.st_mode & S_IWOTH);
  free(copy);
  return shared;
}

/* An existing checkpoint directory (or a link in its place) in a
 * world-writable parent must be this user's or root's: another user may
 * have planted it before the job started, to read or redirect its
 * checkpoints. */
static int check_owner(const char *path, const char *dir, char *err, size_t err_len) {
  struct stat st;
  if (lstat(dir, &st) != 0)
    return ty_errf(err, err_len, TY_EINVAL, "checkpoint_path: %s: %s: %s", path, dir,
                   strerror(errno));
  if (st.st_uid == geteuid() || st.st_uid == 0 || !parent_is_shared(dir)) return 0;
  return ty_errf(err, err_len, TY_EPERM,
                 "checkpoint_path: %s: the directory %s%s belongs to uid %u, not to this job's "
                 "user (uid %u), in a world-writable directory: refusing to write checkpoints "
                 "where another user could read or redirect them",
                 path, dir, S_ISLNK(st.st_mode) ? " (a symbolic link)" : "", (unsigned)st.st_uid,
                 (unsigned)geteuid());
}

/* The checkpoint's directory, made here (0700) when missing: trainrun runs
 * as the job's user, so it is made with exactly that user's rights, never
 * the worker's (docs/security.md, "Secrets"); one that exists passes
 * check_owner. */
static int prepare_dir(const char *path, char *err, size_t err_len) {
  char *copy = strdup(path);
  if (!copy) return TY_ENOMEM;
  char *dir = dirname(copy);
  int rc = 0;
  bool top = strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0;
  if (!top && mkdir(dir, 0700) != 0 && errno != EEXIST)
    rc = ty_errf(err, err_len, TY_EINVAL, "checkpoint_path: %s: cannot create the directory %s: %s",
                 path, dir, strerror(errno));
  else if (!top)
    rc = check_owner(path, dir, err, err_len);
  free(copy);
  return rc;
}

/* Whether name (an entry of path's directory) is a temporary that a save
 * of path writes through: "FILE.tmp.PID", FILE being path's own name, a
 * step pair's model, or either's ".state"; *out_pid is its writer's. */
static bool save_temporary(const char *path, const char *name, pid_t *out_pid) {
  const char *tmp = NULL;
  for (const char *at = strstr(name, ".tmp."); at; at = strstr(at + 1, ".tmp."))
    tmp = at; /* the last: path's own name may hold ".tmp." */
  if (!tmp || tmp[5] < '1' || tmp[5] > '9' || tmp[5 + strspn(tmp + 5, "0123456789")] != '\0')
    return false;
  char file[NAME_MAX + 1];
  size_t n = (size_t)(tmp - name);
  if (n >= sizeof file || strlen(tmp + 5) > 9) return false;
  memcpy(file, name, n);
  file[n] = '\0';
  if (n > 6 && strcmp(file + n - 6, ".state") == 0) file[n - 6] = '\0';
  const char *base = strrchr(path, '/');
  uint64_t step;
  *out_pid = (pid_t)atol(tmp + 5);
  return strcmp(file, base ? base + 1 : path) == 0 || ty_ckpt_step_of(path, file, &step);
}

/* Removes what a save killed mid-write (out of memory, preempted past its
 * grace) left beside path: nothing else ever would, and each is as large
 * as a checkpoint. Only this user's regular files whose writer is gone. */
static void remove_stale_temporaries(const ty_train *t, const char *path) {
  char *dcopy = strdup(path);
  const char *dir = dcopy ? dirname(dcopy) : NULL;
  DIR *d = dir ? opendir(dir) : NULL;
  for (struct dirent *e; d && (e = readdir(d));) {
    pid_t pid;
    struct stat st;
    if (!save_temporary(path, e->d_name, &pid) || pid == getpid()) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue; /* its writer may still run */
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != geteuid())
      continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0)
      fprintf(ty__train_log(t), "checkpoint: removed %s/%s, left by an interrupted save\n", dir,
              e->d_name);
  }
  if (d) closedir(d);
  free(dcopy);
}

/* What already stands at path: nothing, or a checkpoint this trainer
 * wrote (a regular file with PATH.state beside it), which may also be the
 * model this run trains (--model PATH or one of its step files: the model
 * is loaded, and a save links a new file there, the step files keeping
 * the old). A directory, or any other file (a save would rename the
 * newest checkpoint over it), the model file this run trains among them,
 * is refused. */
static int check_existing(const ty_train *t, const char *path, char *err, size_t err_len) {
  struct stat st, ms;
  if (stat(path, &st) != 0) return 0;
  if (S_ISDIR(st.st_mode))
    return ty_errf(err, err_len, TY_EINVAL,
                   "checkpoint_path: %s: is a directory (name a file in it)", path);
  char state[4200];
  snprintf(state, sizeof state, "%s.state", path);
  if (access(state, F_OK) == 0 || errno != ENOENT) return 0; /* a checkpoint of ours */
  const char *model = t->opts.model_path;
  if (model && stat(model, &ms) == 0 && ms.st_dev == st.st_dev && ms.st_ino == st.st_ino)
    return ty_errf(err, err_len, TY_EINVAL,
                   "checkpoint_path: %s is the model file this run trains (--model %s); a save "
                   "would replace it: name another file",
                   path, model);
  return ty_errf(err, err_len, TY_EINVAL,
                 "checkpoint_path: %s exists and is not a trainyard checkpoint (no %s beside "
                 "it); a save would replace it",
                 path, state);
}

/* The lock of path's checkpoints (ty_ckpt_lock_path: B.lock, B the name
 * its step files share), locked (flock) for the run: another run holding
 * it is waited for up to wait_s, then refused; a filesystem without locks
 * goes on unlocked. *out_fd: the open lock, or -1. */
static int lock_path(const char *path, uint32_t wait_s, FILE *log, int *out_fd, char *err,
                     size_t err_len) {
  *out_fd = -1;
  char lock[4096];
  if (ty_ckpt_lock_path(path, lock, sizeof lock) != 0)
    return ty_errf(err, err_len, TY_EINVAL, "checkpoint_path: %s: too long", path);
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return ty_errf(err, err_len, TY_EINVAL, "checkpoint_path: %s: cannot be written (%s: %s)", path,
                   lock, strerror(errno));
  bool said = false;
  for (uint32_t tries = 0;; tries++) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 || (errno != EWOULDBLOCK && errno != EINTR)) break;
    if (tries >= wait_s * 10) {
      close(fd);
      return ty_errf(err, err_len, TY_ESTATE,
                     "checkpoint_path: %s: another run writes it (it holds %s, waited for %u s): "
                     "two runs would resume from each other's state; choose another "
                     "checkpoint_path, or end that run",
                     path, lock, wait_s);
    }
    if (!said)
      fprintf(log, "checkpoint: %s is locked by another run: waiting up to %u s\n", lock, wait_s);
    said = true;
    usleep(100 * 1000);
  }
  *out_fd = fd;
  return 0;
}

int ty__train_probe_checkpoint(ty_train *t, char *err, size_t err_len) {
  const char *path = t->cfg->checkpoint_path;
  if (!path || t->opts.rank != 0) return 0; /* rank 0 alone writes */
  int prc = prepare_dir(path, err, err_len);
  if (prc == 0) prc = check_existing(t, path, err, err_len);
  if (prc == 0)
    prc = lock_path(path, t->opts.checkpoint_lock_wait_s, ty__train_log(t), &t->ckpt_lock, err,
                    err_len);
  if (prc != 0) return prc;
  remove_stale_temporaries(t, path);
  /* Create and remove the very temporary file a checkpoint is written
   * through: that needs exactly the rights the first save needs. */
  size_t pl = strlen(path) + 32;
  char *tmp = malloc(pl);
  if (!tmp) return TY_ENOMEM;
  snprintf(tmp, pl, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = 0;
  if (fd < 0) {
    char why[256];
    snprintf(why, sizeof why, " (cannot create %s: %s)", tmp, strerror(errno));
    rc = ty_errf(err, err_len, TY_EINVAL, "checkpoint_path: %s: cannot be written%s", path, why);
  } else {
    close(fd);
    unlink(tmp);
  }
  free(tmp);
  return rc;
}
