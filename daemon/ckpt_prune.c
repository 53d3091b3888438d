/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Removing a pruned graph job's checkpoint directory, CHECKPOINT_DIR/JOB:
 * the job's rank-0 worker made it for the job's user under traind's root
 * 0711 CHECKPOINT_DIR (worker/graph_ckpt_dir.c), so neither the user nor
 * anyone else can remove it once the job is gone. The committer's thread
 * does, once a prune that deleted the job committed (commit.c): only a
 * directory whose stamp (.trainyard-job) names this very job, its id and
 * submit time, removed by lib/base/rmtree.c (never following a link nor
 * leaving its filesystem), so that an earlier job of the same id or anything
 * planted there stays.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "lib/base/rmtree.h"

#define STAMP ".trainyard-job"

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

int ty_ckpt_dir_prune(const char *root, uint64_t id, int64_t submit_ms) {
  if (!root || !root[0]) return 0;
  char name[32];
  snprintf(name, sizeof name, "%" PRIu64, id);
  int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return 0; /* no checkpoint directory: nothing of the job's */
  int fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  bool ours = fd >= 0 && fstat(fd, &st) == 0 && stamp_matches(fd, id, submit_ms);
  if (fd >= 0) close(fd);
  char err[TY_ERR_LEN];
  int rc = !ours ? 0 : ty_rmtree_at(root_fd, name, &st, err, sizeof err) == 0 ? 1 : -1;
  if (rc < 0)
    ty_warn("job %" PRIu64 " pruned: its checkpoint directory %s/%s: %s", id, root, name, err);
  close(root_fd);
  return rc;
}
