/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ompi-server's directory (rank 0's, ops/collective/collective.c) goes
 * under $TMPDIR, a task's private one that the worker removes however the
 * task ends; /tmp only when TMPDIR is unset or not an absolute path.
 */
#include "ops/collective/server_dir.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void expect_made_in(const char *tmp) {
  char dir[TY__COLL_DIR_MAX], want[TY__COLL_DIR_MAX];
  snprintf(want, sizeof want, "%s/trainyard-mpi-", tmp);
  cr_assert_eq(ty__coll_server_mkdtemp(dir), 0);
  struct stat st;
  cr_expect(!strncmp(dir, want, strlen(want)), "made %s, not in %s", dir, tmp);
  cr_expect(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "%s", dir);
  rmdir(dir);
}

Test(server_dir, goes_under_tmpdir) {
  char tmp[] = "/tmp/ty-coll-tmpdir-XXXXXX";
  cr_assert_not_null(mkdtemp(tmp));
  setenv("TMPDIR", tmp, 1);
  expect_made_in(tmp);
  rmdir(tmp);
}

Test(server_dir, is_in_tmp_without_an_absolute_tmpdir) {
  unsetenv("TMPDIR");
  expect_made_in("/tmp");
  setenv("TMPDIR", "relative/dir", 1);
  expect_made_in("/tmp");
}
