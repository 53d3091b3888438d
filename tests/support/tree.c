/* SPDX-License-Identifier: Apache-2.0 */
/* Removing a test's tree from the temporary directory (see tree.h). */
#include "tests/support/tree.h"

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  (void)remove(path); /* another sweeper may have been first */
  return 0;
}

void ty_test_remove_tree(const char *path) {
  (void)nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
