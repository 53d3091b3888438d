/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rendezvous client's own refusals (ops/collective/rendezvous.c), made
 * before it connects: no controller is started. Port 1 on loopback is
 * closed, so a client that tried to connect would fail naming the address.
 */
#include "ops/collective/collective.h"

#include "lib/base/base.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static int create(const char *token, char *err, size_t err_len) {
  if (token)
    setenv("TRAINYARD_RENDEZVOUS_TOKEN", token, 1);
  else
    unsetenv("TRAINYARD_RENDEZVOUS_TOKEN");
  ty_rdv *r = NULL;
  int rc = ty_rdv_create("127.0.0.1:1", 7, 1000, &r, err, err_len);
  ty_rdv_destroy(r);
  return rc;
}

Test(rendezvous, unset_token_is_named_before_connecting) {
  char err[TY_ERR_LEN] = "";
  cr_expect_eq(create(NULL, err, sizeof err), TY_EINVAL, "%s", err);
  cr_expect_str_eq(err, "TRAINYARD_RENDEZVOUS_TOKEN is not set: several trainrun ranks "
                        "rendezvous only as a job started by trainworkerd");
  cr_expect_eq(create("", err, sizeof err), TY_EINVAL, "%s", err);
  cr_expect(strstr(err, "TRAINYARD_RENDEZVOUS_TOKEN is not set"), "%s", err);
}

Test(rendezvous, malformed_token_is_named_before_connecting) {
  char err[TY_ERR_LEN] = "";
  const char *bad[] = {"abc", "zz11", "0x12"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cr_expect_eq(create(bad[i], err, sizeof err), TY_EINVAL, "%s: %s", bad[i], err);
    cr_expect(strstr(err, "TRAINYARD_RENDEZVOUS_TOKEN is not a token"), "%s: %s", bad[i], err);
  }
}

Test(rendezvous, a_hex_token_goes_on_to_connect) {
  char err[TY_ERR_LEN] = "";
  cr_expect_neq(create("00ff", err, sizeof err), 0);
  cr_expect(strstr(err, "cannot reach the controller at 127.0.0.1:1"), "%s", err);
}
