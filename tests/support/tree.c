/* SPDX-License-Identifier: Apache-2.0 */
/* A test's folder in the temporary directory, made and removed (see tree.h). */
#include "tests/support/tree.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int ty_test_make_dir(char dir[TY_TEST_DIR_LEN], const char *tag) {
  int n = snprintf(dir, TY_TEST_DIR_LEN, "/tmp/ty-%s-XXXXXX", tag);
  if (n < 0 || n >= TY_TEST_DIR_LEN) return -ENAMETOOLONG;
  return mkdtemp(dir) ? 0 : -errno;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  (void)remove(path); /* another sweeper may have been first */
  return 0;
}

int ty_test_remove_tree(const char *path) {
  (void)nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  struct stat st;
  return lstat(path, &st) == 0 ? -1 : 0;
}
