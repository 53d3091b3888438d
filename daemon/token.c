/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's side of task tokens (lib/token/token.h): the secret lives
 * in STATE_DIR/attach.key (created on first start, mode 0600); a job's
 * attach key goes to the workers inside LaunchTask; clients get one token
 * per rank from GetTaskLocations(want_tokens), valid for TOKEN_TTL_MS. The
 * token only admits the Attach itself, so a short validity costs nothing to
 * a long-running session.
 */
#include <stdio.h>
#include <string.h>

#include "daemon/daemon_internal.h"
#include "lib/token/token.h"

#define TOKEN_TTL_MS (10 * 60 * 1000)

int ty__token_init(ty_controller *ctl, char *err, size_t len) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/attach.key", ctl->cfg.state_dir);
  return ty_token_secret_load(path, ctl->attach_secret, err, len);
}

void ty__token_job_key(const ty_controller *ctl, uint64_t job_id, uint8_t *out_key) {
  ty_token_job_key(ctl->attach_secret, job_id, out_key);
}

uint8_t *ty__token_issue(const ty_controller *ctl, const ty_job *j, size_t *out_token_len) {
  return ty__token_issue_n(ctl, j->id, j->n_ranks, out_token_len);
}

uint8_t *ty__token_issue_n(const ty_controller *ctl, uint64_t job_id, uint32_t n_ranks,
                           size_t *out_token_len) {
  uint8_t *tokens = ty_wire_calloc(n_ranks, TY_TOKEN_LEN);
  if (!tokens) return NULL;
  uint8_t key[TY_TOKEN_KEY_LEN];
  ty__token_job_key(ctl, job_id, key);
  int64_t expires = ty_now_ms() + TOKEN_TTL_MS;
  for (uint32_t r = 0; r < n_ranks; r++)
    ty_token_sign(key, job_id, r, expires, tokens + (size_t)r * TY_TOKEN_LEN);
  memset(key, 0, sizeof(key));
  *out_token_len = TY_TOKEN_LEN;
  return tokens;
}
