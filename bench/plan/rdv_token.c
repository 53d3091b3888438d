/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prints the rendezvous token a worker would give rank RANK of job JOB
 * (hex, for TRAINYARD_RENDEZVOUS_TOKEN), signed with the job key derived
 * from a traind state dir's secret: what a benchmark needs to start ranks
 * by hand against its own controller.
 *
 *   rdv_token STATE_DIR JOB RANK
 */
#include "lib/base/base.h"
#include "lib/token/token.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: rdv_token STATE_DIR JOB RANK\n");
    return 2;
  }
  char path[4096], err[256] = "";
  snprintf(path, sizeof path, "%s/attach.key", argv[1]);
  uint8_t secret[TY_TOKEN_SECRET_LEN], key[TY_TOKEN_KEY_LEN], tok[TY_TOKEN_LEN];
  if (ty_token_secret_load(path, secret, err, sizeof err) != 0) {
    fprintf(stderr, "rdv_token: %s\n", err);
    return 1;
  }
  uint64_t job = strtoull(argv[2], NULL, 10);
  ty_token_job_key(secret, job, key);
  ty_token_sign(key, job, (uint32_t)strtoul(argv[3], NULL, 10), ty_now_ms() + 3600 * 1000, tok);
  for (size_t i = 0; i < TY_TOKEN_LEN; i++)
    printf("%02x", tok[i]);
  printf("\n");
  return 0;
}
