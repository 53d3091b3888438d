/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train/resume.c's mapping of a checkpoint's .state and .onnx for
 * --resume: a FIFO is refused at once (never waited on in open()), a
 * directory named as one, a regular file mapped.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "ops/train/train_internal.h"
#include "tests/support/tree.h"

static char dir[TY_TEST_DIR_LEN];
static char path[TY_TEST_DIR_LEN + 32];

static void make_dir(void) {
  cr_assert_eq(ty_test_make_dir(dir, "trainmap"), 0);
  snprintf(path, sizeof path, "%s/model.onnx.state", dir);
}

static void remove_dir(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(train_map, .init = make_dir, .fini = remove_dir, .timeout = 10);

Test(train_map, a_regular_file_is_mapped) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs("state", f);
  fclose(f);
  ty__mapped m;
  char err[256] = "";
  cr_assert_eq(ty__train_map(path, &m, err, sizeof err), 0, "%s", err);
  cr_expect_eq(m.len, 5u);
  cr_expect(m.data && memcmp(m.data, "state", 5) == 0);
  ty__train_unmap(&m);
}

Test(train_map, a_fifo_is_refused_not_waited_on) {
  cr_assert_eq(mkfifo(path, 0600), 0);
  ty__mapped m;
  char err[256] = "";
  cr_assert_eq(ty__train_map(path, &m, err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "model.onnx.state: not a regular file"), "%s", err);
  cr_expect_null(m.data);
}

Test(train_map, a_directory_is_named) {
  cr_assert_eq(mkdir(path, 0700), 0);
  ty__mapped m;
  char err[256] = "";
  cr_assert_eq(ty__train_map(path, &m, err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "model.onnx.state: is a directory"), "%s", err);
}
