/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for lib/http/token_file.c: what a --metrics-token-file may hold and
 * which files are refused (each refusal names the file).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/http/http.h"

static char dir[64], path[128];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/ty-tokf-XXXXXX");
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/t", dir);
}

static void teardown(void) {
  unlink(path);
  rmdir(dir);
}

static void write_file(const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
  cr_assert_eq(chmod(path, mode), 0);
}

static int read_it(char *tok, char *err) {
  return ty_http_read_token_file(path, tok, TY_HTTP_TOKEN_MAX, err, TY_ERR_LEN);
}

TestSuite(token_file, .init = setup, .fini = teardown);

Test(token_file, first_line_without_blanks) {
  char tok[TY_HTTP_TOKEN_MAX], err[TY_ERR_LEN] = "";
  write_file("  0123456789abcdef/+= \r\nsecond line\n", 0600);
  cr_assert_eq(read_it(tok, err), 0, "%s", err);
  cr_assert_str_eq(tok, "0123456789abcdef/+=");
  write_file("0123456789abcdef", 0640); /* no newline; group-readable is fine */
  cr_assert_eq(read_it(tok, err), 0, "%s", err);
  cr_assert_str_eq(tok, "0123456789abcdef");
}

Test(token_file, world_readable_or_writable_refused) {
  char tok[TY_HTTP_TOKEN_MAX], err[TY_ERR_LEN] = "";
  write_file("0123456789abcdef\n", 0644);
  cr_assert_eq(read_it(tok, err), TY_EPERM);
  cr_assert(strstr(err, path) && strstr(err, "every user"), "%s", err);
  write_file("0123456789abcdef\n", 0602);
  cr_assert_eq(read_it(tok, err), TY_EPERM);
}

Test(token_file, bad_tokens_refused) {
  char tok[TY_HTTP_TOKEN_MAX], err[TY_ERR_LEN] = "";
  write_file("short\n", 0600);
  cr_assert_eq(read_it(tok, err), TY_EINVAL);
  cr_assert(strstr(err, path) && strstr(err, "5 characters"), "%s", err);
  write_file("\n0123456789abcdef\n", 0600); /* the first line is empty */
  cr_assert_eq(read_it(tok, err), TY_EINVAL);
  write_file("0123456789 abcdef\n", 0600);
  cr_assert_eq(read_it(tok, err), TY_EINVAL);
  cr_assert(strstr(err, "a character other than"), "%s", err);
  char longer[TY_HTTP_TOKEN_MAX + 8];
  memset(longer, 'a', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  write_file(longer, 0600);
  cr_assert_eq(read_it(tok, err), TY_EINVAL);
}

Test(token_file, missing_file_named) {
  char tok[TY_HTTP_TOKEN_MAX], err[TY_ERR_LEN] = "";
  cr_assert_eq(read_it(tok, err), TY_EIO);
  cr_assert(strstr(err, path), "%s", err);
}

/* A FIFO is refused naming it, not waited on: open() would block until a
 * writer came (once it hung the daemon past SIGTERM, and reconfigure would
 * freeze traind's loop). The test has a timeout: a hang fails it. */
Test(token_file, fifo_refused_without_waiting, .timeout = 10) {
  cr_assert_eq(mkfifo(path, 0600), 0);
  char tok[TY_HTTP_TOKEN_MAX], err[TY_ERR_LEN] = "";
  cr_assert_eq(read_it(tok, err), TY_EINVAL);
  cr_assert(strstr(err, "is not a regular file"), "%s", err);
}

Test(token_file, token_validity) {
  cr_assert(ty_http_token_valid("abc-._~+/="));
  cr_assert_not(ty_http_token_valid(""));
  cr_assert_not(ty_http_token_valid("a b"));
  cr_assert_not(ty_http_token_valid("a\"b"));
}
