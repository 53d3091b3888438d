/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/base/rmtree.c: a tree of files and nested directories goes; a link in
 * it to a directory outside is removed as a link, and what it pointed to
 * survives; an `expect`ed directory, or other entry, that was replaced is
 * left alone.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/base/rmtree.h"

static char root[64];

static void setup(void) {
  snprintf(root, sizeof root, "/tmp/ty-rmtree-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  cr_expect_eq(system(cmd), 0);
}

static void sh(const char *fmt) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cd %s && %s", root, fmt);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static bool exists(const char *rel) {
  char p[256];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", root, rel);
  return lstat(p, &st) == 0;
}

TestSuite(rmtree, .init = setup, .fini = teardown);

Test(rmtree, removes_a_tree_but_not_what_its_links_point_to) {
  sh("mkdir -p t/a/b/c outside/keep && echo 1 > t/f && echo 2 > t/a/b/c/g && "
     "echo 3 > outside/keep/h && ln -s ../outside t/a/link && ln -s ../../outside/keep/h t/a/flink "
     "&& mkfifo t/a/fifo && chmod 000 t/a/b");
  int fd = open(root, O_RDONLY | O_DIRECTORY);
  char err[256] = "";
  cr_expect_eq(ty_rmtree_at(fd, "t", NULL, err, sizeof err), 0, "%s", err);
  cr_expect_not(exists("t"));
  cr_expect(exists("outside/keep/h"), "the link's target was removed");
  cr_expect(exists("outside/keep"));
  /* what is not there is gone already */
  cr_expect_eq(ty_rmtree_at(fd, "t", NULL, err, sizeof err), 0, "%s", err);
  close(fd);
}

Test(rmtree, a_link_in_place_of_the_tree_is_removed_not_followed) {
  sh("mkdir -p outside && echo 3 > outside/h && ln -s outside t");
  int fd = open(root, O_RDONLY | O_DIRECTORY);
  char err[256] = "";
  cr_expect_eq(ty_rmtree_at(fd, "t", NULL, err, sizeof err), 0, "%s", err);
  cr_expect_not(exists("t"));
  cr_expect(exists("outside/h"));
  close(fd);
}

Test(rmtree, an_expected_directory_that_was_replaced_is_left) {
  sh("mkdir t && echo 1 > t/f");
  int fd = open(root, O_RDONLY | O_DIRECTORY);
  struct stat old;
  cr_assert_eq(fstatat(fd, "t", &old, AT_SYMLINK_NOFOLLOW), 0);
  sh("mv t t.old && mkdir t && echo 2 > t/g");
  char err[256] = "";
  cr_expect_eq(ty_rmtree_at(fd, "t", &old, err, sizeof err), TY_EEXIST, "%s", err);
  cr_expect(exists("t/g"));
  cr_expect_eq(ty_rmtree_at(fd, "t.old", NULL, err, sizeof err), 0, "%s", err);
  cr_expect_not(exists("t.old"));
  close(fd);
}

/* An `expect`ed entry that is no directory (a link or a file planted in
 * place of a TMPDIR, moved aside and recorded) is removed when it is that
 * very one, as a link, never followed; one put there since is left. */
Test(rmtree, an_expected_entry_that_is_no_directory_goes_only_if_the_same) {
  sh("mkdir -p outside && echo 3 > outside/h && ln -s outside t && echo 4 > u");
  int fd = open(root, O_RDONLY | O_DIRECTORY);
  struct stat link, file;
  cr_assert_eq(fstatat(fd, "t", &link, AT_SYMLINK_NOFOLLOW), 0);
  cr_assert_eq(fstatat(fd, "u", &file, AT_SYMLINK_NOFOLLOW), 0);
  char err[256] = "";
  cr_expect_eq(ty_rmtree_at(fd, "t", &link, err, sizeof err), 0, "%s", err);
  cr_expect_not(exists("t"));
  cr_expect(exists("outside/h"));
  sh("mv u u.old && echo 5 > u");
  cr_expect_eq(ty_rmtree_at(fd, "u", &file, err, sizeof err), TY_EEXIST, "%s", err);
  cr_expect(exists("u"));
  cr_expect_eq(ty_rmtree_at(fd, "u.old", &file, err, sizeof err), 0, "%s", err);
  cr_expect_not(exists("u.old"));
  close(fd);
}
