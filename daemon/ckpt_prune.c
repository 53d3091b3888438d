/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Removing a pruned graph job's checkpoint directory, CHECKPOINT_DIR/JOB:
 * the job's rank-0 worker made it for the job's user under traind's root
 * 0711 CHECKPOINT_DIR (worker/graph_ckpt_dir.c), so neither the user nor
 * anyone else can remove it once the job is gone. The committer's thread
 * does, once a prune that deleted the job committed (commit.c): only a
 * directory whose stamp (.trainyard-job) names this very job, its id and
 * submit time, never following a link, so that an earlier job of the same
 * id or anything planted there stays.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"

#define STAMP ".trainyard-job"
#define MAX_DEPTH 64 /* deeper than any checkpoint layout: what is below stays */

/* Whether the directory dir_fd's stamp names job id submitted at submit_ms;
 * read without following a link or blocking on a FIFO. */
static bool stamp_matches(int dir_fd, uint64_t id, int64_t submit_ms) {
  int fd = openat(dir_fd, STAMP, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  char got[96] = "", want[96];
  struct stat st;
  ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, got, sizeof got - 1) : -1;
  close(fd);
  snprintf(want, sizeof want, "job %" PRIu64 " submitted %" PRId64 "\n", id, submit_ms);
  return n > 0 && strcmp(got, want) == 0;
}

/* Empties the directory dir_fd (closed here): links and files unlinked,
 * directories emptied and removed, nothing followed. 0, or -1 with errno. */
static int empty_dir(int dir_fd, int depth) {
  DIR *d = fdopendir(dir_fd);
  if (!d) {
    close(dir_fd);
    return -1;
  }
  int rc = 0;
  for (struct dirent *e; rc == 0 && (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      rc = errno == ENOENT ? 0 : -1;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      rc = unlinkat(dirfd(d), e->d_name, 0) == 0 || errno == ENOENT ? 0 : -1;
      continue;
    }
    int sub = depth < MAX_DEPTH
                  ? openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                  : -1;
    if (depth >= MAX_DEPTH) errno = ELOOP;
    rc = sub >= 0 && empty_dir(sub, depth + 1) == 0 &&
                 unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) == 0
             ? 0
             : -1;
  }
  int saved = errno;
  closedir(d);
  errno = saved;
  return rc;
}

int ty_ckpt_dir_prune(const char *root, uint64_t id, int64_t submit_ms) {
  if (!root || !root[0]) return 0;
  char name[32];
  snprintf(name, sizeof name, "%" PRIu64, id);
  int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return 0; /* no checkpoint directory: nothing of the job's */
  int fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int rc = 0;
  if (fd >= 0 && stamp_matches(fd, id, submit_ms)) {
    rc = empty_dir(fd, 0) == 0 && unlinkat(root_fd, name, AT_REMOVEDIR) == 0 ? 1 : -1;
    if (rc < 0)
      ty_warn("job %" PRIu64 " pruned: cannot remove its checkpoint directory %s/%s: %s", id, root,
              name, strerror(errno));
  } else if (fd >= 0) {
    close(fd);
  }
  close(root_fd);
  return rc;
}
