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

unsigned char *ty_test_read_file(const char *path, size_t *out_len) {
  FILE *f = fopen(path, "rb");
  long n = -1;
  if (f && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
  unsigned char *b = n >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)n + 1) : NULL;
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  if (f) fclose(f);
  if (!b) return NULL;
  b[n] = 0;
  *out_len = (size_t)n;
  return b;
}
