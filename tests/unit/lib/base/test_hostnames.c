/* SPDX-License-Identifier: Apache-2.0 */
/* Hostlist expressions read into names as -w/-x take them (hostnames.c):
 * every form Slurm takes, and each bad input refused naming its text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/base.h"

/* The names of expr joined by spaces, or the error text. */
static char *parse(const char *expr, size_t max, int *rc) {
  char **names = NULL, err[512] = "";
  size_t n = 0;
  *rc = ty_hostnames_parse(expr, max, &names, &n, err, sizeof err);
  ty_buf b;
  ty_buf_init(&b);
  for (size_t i = 0; i < n; i++)
    ty_buf_printf(&b, "%s%s", i ? " " : "", names[i]);
  if (*rc != 0) {
    cr_expect_eq(n, 0, "%s: names left after a refusal", expr);
    ty_buf_printf(&b, "%s", err);
  }
  ty_buf_append(&b, "", 1);
  ty_hostnames_free(names, n);
  char *out = ty_strdup((const char *)b.data);
  ty_buf_close(&b);
  return out;
}

static void expect_names(const char *expr, const char *want) {
  int rc;
  char *got = parse(expr, 1000, &rc);
  cr_expect_eq(rc, 0, "%s: %s", expr, got);
  cr_expect_str_eq(got, want, "%s", expr);
  free(got);
}

static void expect_refused(const char *expr, size_t max, const char *want) {
  int rc;
  char *got = parse(expr, max, &rc);
  cr_expect_eq(rc, TY_EINVAL, "%s: accepted as %s", expr, got);
  cr_expect(strstr(got, want) != NULL, "%s: \"%s\" lacks \"%s\"", expr, got, want);
  free(got);
}

Test(hostnames, reads_every_form_slurm_takes) {
  expect_names("w1", "w1");
  expect_names("w1,w2", "w1 w2");
  expect_names("w[1-4,7]", "w1 w2 w3 w4 w7");
  expect_names("n[01-10]", "n01 n02 n03 n04 n05 n06 n07 n08 n09 n10");
  expect_names("n[0-2]", "n0 n1 n2");
  expect_names("n[098-101]", "n098 n099 n100 n101");
  expect_names("r[1-2]n[1-3]", "r1n1 r1n2 r1n3 r2n1 r2n2 r2n3");
  expect_names("rack[1-2]-a,head", "rack1-a rack2-a head");
  expect_names("gpu[1,3],login.example-1_a", "gpu1 gpu3 login.example-1_a");
  expect_names("[1-2]x", "1x 2x");
}

Test(hostnames, refuses_bad_input_naming_the_text) {
  expect_refused("", 1000, "no node names given");
  expect_refused("w[1-4", 1000, "unbalanced brackets in \"w[1-4\"");
  expect_refused("w1-4]", 1000, "unbalanced brackets in \"w1-4]\"");
  expect_refused("w[[1]]", 1000, "unbalanced brackets");
  expect_refused("w[4-1]", 1000, "the range \"4-1\" is reversed");
  expect_refused("w[]", 1000, "an empty bracket");
  expect_refused("w[a]", 1000, "\"a\" is not a number or a range N-M");
  expect_refused("w[1-]", 1000, "\"1-\" is not a number");
  expect_refused("w[1,]", 1000, "\"\" is not a number");
  expect_refused("w[1-2-3]", 1000, "\"1-2-3\" is not a number");
  expect_refused("a,,b", 1000, "hostlist \"a,,b\": an empty node name");
  expect_refused("a,", 1000, "an empty node name");
  expect_refused(",a", 1000, "an empty node name");
  expect_refused("w 1", 1000, "' ' may not be in a node name (\"w 1\")");
  expect_refused("w/1", 1000, "'/' may not be in a node name");
  expect_refused("w[1-100000000000]", 1000, "\"w[1-100000000000]\" names more than the 1000");
  expect_refused("r[1-100]n[1-100]", 1000, "names more than the 1000 nodes allowed");
  expect_refused("w[1-600],v[1-600]", 1000, "\"v[1-600]\" names more than");
}

Test(hostnames, appends_to_names_already_read) {
  char **names = NULL, err[256];
  size_t n = 0;
  cr_assert_eq(ty_hostnames_parse("a[1-2]", 10, &names, &n, err, sizeof err), 0);
  cr_assert_eq(ty_hostnames_parse("b", 10, &names, &n, err, sizeof err), 0);
  cr_assert_eq(ty_hostnames_parse("c[1-9]", 10, &names, &n, err, sizeof err), TY_EINVAL);
  cr_assert_eq(n, 3);
  cr_expect_str_eq(names[2], "b");
  ty_hostnames_free(names, n);
}

static char *write_tmp(const char *text) {
  char *path = ty_strdup("/tmp/ty-hostnames-XXXXXX");
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

Test(hostnames, reads_a_file_of_expressions) {
  char *path = write_tmp("w1\n  w[2-3] \n\nn[01-02],x\n");
  char **names = NULL, err[512] = "";
  size_t n = 0;
  cr_assert_eq(ty_hostnames_read_file(path, 100, &names, &n, err, sizeof err), 0, "%s", err);
  cr_assert_eq(n, 6);
  cr_expect_str_eq(names[0], "w1");
  cr_expect_str_eq(names[2], "w3");
  cr_expect_str_eq(names[5], "x");
  ty_hostnames_free(names, n);
  unlink(path);
  free(path);
  path = write_tmp("w1\nw[3-1]\n");
  names = NULL, n = 0;
  cr_assert_eq(ty_hostnames_read_file(path, 100, &names, &n, err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, path) && strstr(err, "the range \"3-1\" is reversed"), "%s", err);
  cr_expect_eq(n, 0);
  free(names);
  unlink(path);
  free(path);
  path = write_tmp("\n \n");
  cr_assert_eq(ty_hostnames_read_file(path, 100, &names, &n, err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "names no nodes"), "%s", err);
  unlink(path);
  free(path);
  cr_assert_eq(ty_hostnames_read_file("/nonexistent/nodes", 100, &names, &n, err, sizeof err),
               TY_EINVAL);
  cr_expect(strstr(err, "/nonexistent/nodes: No such file"), "%s", err);
}
