/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_store_check, the whole-file integrity check, and its cancellation from
 * another thread (ty_store_cancel): a fire before the check starts or
 * while it runs ends it with UV_ECANCELED, no verdict. The running case
 * holds the check inside SQLite for ten minutes (the test hook), so only a
 * working cancel ends it before the test's timeout.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "tests/support/tree.h"

static char dir[TY_TEST_DIR_LEN];
static char path[128];

static void setup(void) {
  cr_assert_eq(ty_test_make_dir(dir, "check"), 0);
  snprintf(path, sizeof(path), "%s/traind.db", dir);
  ty_store *s = NULL;
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_store_open(path, &s, err, sizeof(err)), 0, "%s", err);
  ty_store_close(s);
}

static void teardown(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(store_check, .init = setup, .fini = teardown, .timeout = 60);

Test(store_check, a_sound_file_passes) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_store_check(path, NULL, err, sizeof(err)), 0, "%s", err);
  ty_store_check_opts o = {.cancel = ty_store_cancel_create()};
  cr_assert_eq(ty_store_check(path, &o, err, sizeof(err)), 0, "%s", err);
  ty_store_cancel_destroy(o.cancel);
}

Test(store_check, a_fired_cancel_stops_the_check_as_it_starts) {
  ty_store_check_opts o = {.cancel = ty_store_cancel_create(), .hold_ms = 600000};
  ty_store_cancel_fire(o.cancel);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_store_check(path, &o, err, sizeof(err)), UV_ECANCELED, "%s", err);
  cr_assert(strstr(err, path) && strstr(err, "integrity check stopped before it started"), "%s",
            err);
  ty_store_cancel_destroy(o.cancel);
}

static void *fire_soon(void *arg) {
  usleep(200000); /* the check is holding by then, or about to start: either is stopped */
  ty_store_cancel_fire(arg);
  return NULL;
}

Test(store_check, a_fire_from_another_thread_stops_a_running_check) {
  ty_store_check_opts o = {.cancel = ty_store_cancel_create(), .hold_ms = 600000};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, fire_soon, o.cancel), 0);
  char err[TY_ERR_LEN] = "";
  int rc = ty_store_check(path, &o, err, sizeof(err));
  pthread_join(th, NULL);
  cr_assert_eq(rc, UV_ECANCELED, "%s", err);
  cr_assert(strstr(err, "integrity check stopped before it"), "%s", err);
  ty_store_cancel_destroy(o.cancel);
}
