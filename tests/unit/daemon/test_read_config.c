/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/reconfig.c's reading of --config (at start, on SIGHUP and on
 * `trainctl reconfigure`, on the event loop): a file that is not a regular
 * one, that is too large or that holds a NUL byte is refused at once,
 * naming why.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "scheduler/scheduler.h"

static char dir[64];
static char path[128];

static void setup(void) {
  strcpy(dir, "/tmp/ty-readconfig-XXXXXX");
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/traind.conf", dir);
}

static void teardown(void) {
  unlink(path);
  rmdir(path);
  rmdir(dir);
}

/* read_config's answer for path; its message in err. */
static int read_config(char *err, size_t len) {
  ty_sched_config cfg;
  ty_sched_topology topo;
  ty_auth_policy policy;
  err[0] = '\0';
  int rc = ty_controller_read_config(path, &cfg, &topo, &policy, err, len);
  ty_sched_topology_close(&topo);
  ty_policy_close(&policy);
  return rc;
}

static void write_file(const char *text, size_t n) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  cr_assert_eq(fwrite(text, 1, n, f), n);
  fclose(f);
}

TestSuite(read_config, .init = setup, .fini = teardown);

Test(read_config, a_regular_file_is_read) {
  write_file("auth.nodes = worker[1-2]\n", 25);
  char err[TY_ERR_LEN];
  cr_expect_eq(read_config(err, sizeof err), 0, "%s", err);
}

/* Nobody writes the FIFO: waiting on it would freeze the controller. */
Test(read_config, a_fifo_is_refused_not_waited_on, .timeout = 10) {
  cr_assert_eq(mkfifo(path, 0600), 0);
  char err[TY_ERR_LEN];
  cr_expect_eq(read_config(err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "not a regular file"), "%s", err);
}

Test(read_config, a_device_is_refused, .timeout = 10) {
  cr_assert_eq(symlink("/dev/zero", path), 0);
  char err[TY_ERR_LEN];
  cr_expect_eq(read_config(err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "not a regular file"), "%s", err);
}

Test(read_config, a_directory_is_named) {
  cr_assert_eq(mkdir(path, 0700), 0);
  char err[TY_ERR_LEN];
  cr_expect_eq(read_config(err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "is a directory"), "%s", err);
}

Test(read_config, over_one_mib_is_refused) {
  size_t n = (1u << 20) + 1;
  char *big = malloc(n);
  cr_assert(big);
  memset(big, '#', n);
  write_file(big, n);
  free(big);
  char err[TY_ERR_LEN];
  cr_expect_eq(read_config(err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "larger than"), "%s", err);
}

/* The text after a NUL byte would never be seen (an unknown key there
 * passed): the file is refused, naming the line. */
Test(read_config, a_nul_byte_is_refused_naming_its_line) {
  static const char text[] = "# cluster\nauth.nodes = worker[1-2]\0\nweight.bogus = 1\n";
  write_file(text, sizeof text - 1);
  char err[TY_ERR_LEN];
  cr_expect_eq(read_config(err, sizeof err), TY_EINVAL);
  cr_expect(strstr(err, "line 2: holds a NUL byte"), "%s", err);
}
