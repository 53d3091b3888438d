/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rendezvous client: RendezvousPut / RendezvousGet on the controller
 * over one blocking lib/rpc connection. A get of an absent key is answered
 * at once with found = false; this client polls (10 ms doubling to 200 ms) until
 * the key appears or the deadline passes. Rendezvous happens once per job
 * start, so polling costs nothing that matters and keeps the controller's
 * handler stateless.
 *
 * The controller admits only the job's ranks: the worker puts the rank's
 * token (lib/token, hex) in TRAINYARD_RENDEZVOUS_TOKEN, and this client sends
 * it as the credential of every request.
 */
#include "ops/collective/collective.h"

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "proto/methods.h"
#include "proto/trainyard.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ty_rdv {
  ty_rpc_client *cl;
  uint64_t job_id;
  uint32_t timeout_ms;
  char addr[256];
};

static int hex_nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* TRAINYARD_RENDEZVOUS_TOKEN (hex), which trainworkerd sets for a job's ranks,
 * becomes the envelope credential. Unset or malformed fails here, before any
 * connection: the controller would refuse the rendezvous anyway. */
static int read_token(uint8_t *tok, size_t cap, size_t *out_len, char *err, size_t err_len) {
  const char *hex = getenv("TRAINYARD_RENDEZVOUS_TOKEN");
  size_t n = hex ? strlen(hex) : 0;
  if (n == 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "TRAINYARD_RENDEZVOUS_TOKEN is not set: several trainrun ranks rendezvous "
                   "only as a job started by trainworkerd");
  bool ok = n % 2 == 0 && n / 2 <= cap;
  for (size_t i = 0; ok && i < n / 2; i++) {
    int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    if (ok) tok[i] = (uint8_t)(hi << 4 | lo);
  }
  if (!ok)
    return ty_errf(err, err_len, TY_EINVAL,
                   "TRAINYARD_RENDEZVOUS_TOKEN is not a token (hex digits, as trainworkerd "
                   "sets it)");
  *out_len = n / 2;
  return 0;
}

int ty_rdv_create(const char *addr, uint64_t job_id, uint32_t timeout_ms, ty_rdv **out_rdv,
                  char *err, size_t err_len) {
  const char *colon = addr ? strrchr(addr, ':') : NULL;
  char *end = NULL;
  long port = colon ? strtol(colon + 1, &end, 10) : 0;
  if (!colon || colon == addr || !end || *end || port <= 0 || port > 65535 ||
      (size_t)(colon - addr) >= 200)
    return ty_errf(err, err_len, TY_EINVAL, "rendezvous: \"%s\" is not HOST:PORT",
                   addr ? addr : "");
  uint8_t tok[128];
  size_t tok_len = 0;
  int rc = read_token(tok, sizeof tok, &tok_len, err, err_len);
  if (rc != 0) return rc;
  ty_rdv *r = calloc(1, sizeof *r);
  if (!r) return TY_ENOMEM;
  char host[256];
  snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
  snprintf(r->addr, sizeof r->addr, "%s", addr);
  r->job_id = job_id;
  r->timeout_ms = timeout_ms ? timeout_ms : 60000;
  rc = ty_rpc_client_open(host, (int)port, r->timeout_ms, &r->cl);
  if (rc != 0) {
    free(r);
    return ty_errf(err, err_len, rc, "rendezvous: cannot reach the controller at %s: %s", addr,
                   ty_strerror(rc));
  }
  ty_rpc_client_set_credential(r->cl, tok, tok_len);
  *out_rdv = r;
  return 0;
}

void ty_rdv_destroy(ty_rdv *r) {
  if (!r) return;
  ty_rpc_client_close(r->cl);
  free(r);
}

int ty_rdv_put(ty_rdv *r, const char *key, const void *value, size_t len, char *err,
               size_t err_len) {
  Trainyard__RendezvousPutRequest m = TRAINYARD__RENDEZVOUS_PUT_REQUEST__INIT;
  m.job_id = r->job_id;
  m.key = (char *)key;
  m.value.data = (uint8_t *)value;
  m.value.len = len;
  size_t n = trainyard__rendezvous_put_request__get_packed_size(&m);
  uint8_t *buf = malloc(n + 1);
  if (!buf) return TY_ENOMEM;
  trainyard__rendezvous_put_request__pack(&m, buf);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(r->cl, TY_M_RENDEZVOUS_PUT, buf, n, r->timeout_ms, &res);
  free(buf);
  if (rc == 0) rc = res.status;
  if (rc != 0)
    ty_errf(err, err_len, rc, "rendezvous: put \"%s\" at %s: %s", key, r->addr,
            res.message[0] ? res.message : ty_strerror(rc));
  ty_rpc_result_close(&res);
  return rc;
}

/* One get: 0 with the value, TY_ENOTFOUND while absent, or an error. */
static int get_once(ty_rdv *r, const char *key, uint8_t **out_value, size_t *out_len, char *msg,
                    size_t msg_len) {
  Trainyard__RendezvousGetRequest m = TRAINYARD__RENDEZVOUS_GET_REQUEST__INIT;
  m.job_id = r->job_id;
  m.key = (char *)key;
  uint8_t buf[512];
  if (trainyard__rendezvous_get_request__get_packed_size(&m) > sizeof buf) return TY_EINVAL;
  size_t n = trainyard__rendezvous_get_request__pack(&m, buf);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(r->cl, TY_M_RENDEZVOUS_GET, buf, n, r->timeout_ms, &res);
  if (rc == 0) rc = res.status;
  snprintf(msg, msg_len, "%s", res.message[0] ? res.message : ty_strerror(rc));
  if (rc == 0) {
    Trainyard__RendezvousGetResponse *a =
        trainyard__rendezvous_get_response__unpack(NULL, res.payload_len, res.payload);
    if (!a)
      rc = TY_EPROTO;
    else if (!a->found) {
      rc = TY_ENOTFOUND;
      trainyard__rendezvous_get_response__free_unpacked(a, NULL);
    } else {
      *out_value = malloc(a->value.len + 1);
      if (!*out_value)
        rc = TY_ENOMEM;
      else {
        memcpy(*out_value, a->value.data, a->value.len);
        (*out_value)[a->value.len] = 0;
        *out_len = a->value.len;
      }
      trainyard__rendezvous_get_response__free_unpacked(a, NULL);
    }
  }
  ty_rpc_result_close(&res);
  return rc;
}

int ty_rdv_get(ty_rdv *r, const char *key, uint32_t timeout_ms, uint8_t **out_value,
               size_t *out_len, char *err, size_t err_len) {
  if (strlen(key) > 200) return ty_errf(err, err_len, TY_EINVAL, "rendezvous: key too long");
  int64_t deadline = ty_mono_ms() + (timeout_ms ? timeout_ms : r->timeout_ms);
  long sleep_ms = 10;
  char msg[TY_ERR_LEN] = "";
  for (;;) {
    int rc = get_once(r, key, out_value, out_len, msg, sizeof msg);
    if (rc == 0) return 0;
    if (rc != TY_ENOTFOUND)
      return ty_errf(err, err_len, rc, "rendezvous: get \"%s\" at %s: %s", key, r->addr, msg);
    if (ty_mono_ms() >= deadline)
      return ty_errf(err, err_len, TY_ETIMEDOUT,
                     "rendezvous: \"%s\" of job %llu did not appear at %s within %u ms", key,
                     (unsigned long long)r->job_id, r->addr,
                     timeout_ms ? timeout_ms : r->timeout_ms);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = sleep_ms * 1000000L};
    nanosleep(&ts, NULL);
    if (sleep_ms < 200) sleep_ms *= 2;
  }
}
