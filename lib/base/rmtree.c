/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Removing a directory tree its user controls, as root if need be (a
 * task's private TMPDIR, worker/task_tmp.c; a pruned job's checkpoint
 * directory, daemon/ckpt_prune.c), without being led elsewhere: the walk
 * goes from the directory's own descriptor (openat with O_NOFOLLOW and
 * O_DIRECTORY, fstatat with AT_SYMLINK_NOFOLLOW, unlinkat), never through a
 * path string the user could swap for a link, so a symbolic link is removed
 * and never followed. It never crosses into another filesystem (st_dev): a
 * mount inside the tree is left, with the directories above it. A tree
 * deeper than TY_RMTREE_MAX_DEPTH is left below that depth (one
 * descriptor is held per level).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/base/rmtree.h"

typedef struct walk {
  dev_t dev;       /* the tree's filesystem */
  size_t failed;   /* entries left */
  char first[128]; /* what the first of them was */
} walk;

static void note_failure(walk *w, const char *name, const char *why) {
  if (!w->failed++) snprintf(w->first, sizeof w->first, "\"%.60s\": %.60s", name, why);
}

static void empty_dir(int fd, walk *w, int depth);

/* Removes the directory `name` in fd, after what is in it. */
static void remove_subdir(int fd, const char *name, walk *w, int depth) {
  if (depth >= TY_RMTREE_MAX_DEPTH) {
    note_failure(w, name, "too deep");
    return;
  }
  int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (sub < 0 || fstat(sub, &st) != 0) {
    if (errno != ENOENT) note_failure(w, name, strerror(errno));
    if (sub >= 0) close(sub);
    return;
  }
  if (st.st_dev != w->dev) {
    close(sub);
    note_failure(w, name, "another filesystem is mounted there");
    return;
  }
  empty_dir(sub, w, depth + 1);
  close(sub);
  if (unlinkat(fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    note_failure(w, name, strerror(errno));
}

/* Removes every entry of the directory fd (fd stays open, the caller's). */
static void empty_dir(int fd, walk *w, int depth) {
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  DIR *d = own >= 0 ? fdopendir(own) : NULL;
  if (!d) {
    note_failure(w, ".", strerror(errno));
    if (own >= 0) close(own);
    return;
  }
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    struct stat st;
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) note_failure(w, e->d_name, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
      remove_subdir(fd, e->d_name, w, depth);
    } else if (unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT) {
      note_failure(w, e->d_name, strerror(errno));
    }
  }
  closedir(d);
}

int ty_rmtree_at(int parent_fd, const char *name, const struct stat *expect, char *err,
                 size_t err_len) {
  struct stat st;
  if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? 0 : ty_errf(err, err_len, TY_EIO, "%s: %s", name, strerror(errno));
  if (!S_ISDIR(st.st_mode)) {
    if (expect && (st.st_dev != expect->st_dev || st.st_ino != expect->st_ino))
      return ty_errf(err, err_len, TY_EEXIST, "%s: replaced since it was seen: left alone", name);
    if (unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT) return 0;
    return ty_errf(err, err_len, TY_EIO, "%s: %s", name, strerror(errno));
  }
  int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0) {
    int rc = ty_errf(err, err_len, TY_EIO, "%s: cannot open it: %s", name, strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
  }
  if (expect && (st.st_dev != expect->st_dev || st.st_ino != expect->st_ino)) {
    close(fd);
    return ty_errf(err, err_len, TY_EEXIST, "%s: replaced since it was made: left alone", name);
  }
  walk w = {.dev = st.st_dev};
  empty_dir(fd, &w, 1);
  close(fd);
  if (unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    note_failure(&w, name, strerror(errno));
  if (!w.failed) return 0;
  return ty_errf(err, err_len, TY_EIO, "%s: %zu entr%s left, the first %s", name, w.failed,
                 w.failed == 1 ? "y" : "ies", w.first);
}
