/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Retry-safe submits (trainctl submit, rlaunch). A SubmitJob carries a
 * request id the client draws once (128 random bits, so two clients never
 * collide); the controller answers a repeated id with the job the first
 * copy created. That makes the request safe to send again whenever the
 * answer was lost: the connection could not be opened (a controller
 * restarting), broke before the answer (killed mid-commit), the call timed
 * out, or the controller said it is shutting down. Retries back off
 * exponentially (100 ms doubling to 2 s, each with up to 50% jitter, so
 * clients that lost one controller together do not return together) until
 * the caller's overall time is spent (ty_cli_backoff, which trainctl's
 * followers -- submit -W, watch, top -- reconnect with too). A reopened connection signs its
 * requests as the first did (ty_cli_open), and every copy sent carries a
 * credential made for it: munged refuses a credential it has decoded once,
 * so resending the first copy's would be refused as a replay. trainctl
 * cancel and the job changes that set a value are retried the same way:
 * a second copy changes nothing the first did not.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#define FIRST_DELAY_MS 100u
#define MAX_DELAY_MS 2000u

int ty_cli_request_id(char out[TY_CLI_REQUEST_ID_LEN + 1]) {
  uint8_t r[TY_CLI_REQUEST_ID_LEN / 2];
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t n = getrandom(r + got, sizeof r - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return TY_EIO;
    got += (size_t)n;
  }
  for (size_t i = 0; i < sizeof r; i++)
    snprintf(out + 2 * i, 3, "%02x", r[i]);
  return 0;
}

void ty_cli_sleep_ms(uint32_t ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void ty_cli_backoff_start(ty_cli_backoff *b, uint32_t window_ms) {
  int64_t now = ty_mono_ms();
  b->deadline_ms = window_ms ? now + window_ms : 0;
  b->delay_ms = FIRST_DELAY_MS;
  b->rng = ty_rng_make((uint64_t)now ^ (uint64_t)(uintptr_t)b);
}

uint32_t ty_cli_backoff_next(ty_cli_backoff *b) {
  uint32_t d = b->delay_ms;
  uint32_t wait = d / 2 + (uint32_t)(ty_rng_next(&b->rng) % (d / 2 + 1));
  b->delay_ms = d * 2 < MAX_DELAY_MS ? d * 2 : MAX_DELAY_MS;
  if (b->deadline_ms && ty_mono_ms() + wait >= b->deadline_ms) return 0;
  return wait;
}

/* Whether an attempt's outcome says the request may not have been seen
 * through: a transport error, or the controller stopping under it. */
static bool worth_retrying(int rc, const ty_rpc_result *res) {
  return rc != 0 || res->status == TY_ECLOSED;
}

int ty_cli_call_retrying(ty_rpc_sync **client, const char *host, int port,
                         struct ty_cli_signer *signer, const char *method, const ty_buf *req,
                         uint32_t timeout_ms, ty_rpc_result *out, ty_cli_retry_cb on_retry,
                         void *ud) {
  int64_t deadline = ty_mono_ms() + timeout_ms;
  ty_cli_backoff b;
  ty_cli_backoff_start(&b, timeout_ms ? timeout_ms : 1);
  for (int attempt = 1;; attempt++) {
    int64_t left = deadline - ty_mono_ms();
    uint32_t budget = left > 0 ? (uint32_t)left : 1;
    /* Each call signs anew: a retry never resends a credential munged saw. */
    int rc = *client ? 0 : ty_cli_open(host, port, budget, signer, client);
    if (rc == 0) rc = ty_rpc_sync_call(*client, method, req->data, req->len, budget, out);
    if (!worth_retrying(rc, out)) return 0;
    if (rc == 0) rc = out->status;
    ty_rpc_sync_close(*client); /* a broken connection is not reused */
    *client = NULL;
    uint32_t wait = ty_cli_backoff_next(&b);
    if (wait == 0) {
      if (out->message == NULL) { /* the caller closes *out either way */
        ty_rpc_result_close(out);
        *out = (ty_rpc_result){.status = rc};
      }
      return rc;
    }
    ty_rpc_result_close(out);
    if (on_retry) on_retry(attempt, rc, wait, ud);
    ty_cli_sleep_ms(wait);
  }
}
