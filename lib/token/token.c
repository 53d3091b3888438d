/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task tokens (see token.h for the format). Signing and verifying cost one
 * HMAC-SHA256 over 24 bytes, once per attach; the controller derives a
 * job's key (one HMAC) at every launch. HMAC and SHA-256 are Nettle's, as
 * in lib/auth: OpenSSL 3's one-shot HMAC fetched its algorithm from the
 * provider on every call, 26k instructions per launch against ~3k.
 */
#include "lib/token/token.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "lib/base/base.h"

#define MAGIC "TYT1"
#define SIGNED_LEN 24u /* magic + job_id + rank + expires_ms */

static void hmac(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len,
                 uint8_t out[32]) {
  struct hmac_sha256_ctx h;
  hmac_sha256_set_key(&h, key_len, key);
  hmac_sha256_update(&h, len, msg);
  hmac_sha256_digest(&h, SHA256_DIGEST_SIZE, out);
}

void ty_token_job_key(const uint8_t secret[TY_TOKEN_SECRET_LEN], uint64_t job_id,
                      uint8_t out_key[TY_TOKEN_KEY_LEN]) {
  static const char label[] = "trainyard attach key v1";
  uint8_t msg[sizeof label - 1 + 8];
  memcpy(msg, label, sizeof label - 1);
  ty_put_be(msg + sizeof label - 1, job_id, 8);
  hmac(secret, TY_TOKEN_SECRET_LEN, msg, sizeof msg, out_key);
}

void ty_token_sign(const uint8_t key[TY_TOKEN_KEY_LEN], uint64_t job_id, uint32_t rank,
                   int64_t expires_ms, uint8_t out_token[TY_TOKEN_LEN]) {
  memcpy(out_token, MAGIC, 4);
  ty_put_be(out_token + 4, job_id, 8);
  ty_put_be(out_token + 12, rank, 4);
  ty_put_be(out_token + 16, (uint64_t)expires_ms, 8);
  hmac(key, TY_TOKEN_KEY_LEN, out_token, SIGNED_LEN, out_token + SIGNED_LEN);
}

int ty_token_verify(const uint8_t key[TY_TOKEN_KEY_LEN], const uint8_t *token, size_t len,
                    uint64_t job_id, uint32_t rank, int64_t now_ms, char *why, size_t why_len) {
  if (!token || len == 0) return ty_errf(why, why_len, TY_EPERM, "no task token");
  if (len != TY_TOKEN_LEN || memcmp(token, MAGIC, 4) != 0)
    return ty_errf(why, why_len, TY_EPERM, "malformed task token (%zu bytes)", len);
  uint64_t tjob = ty_get_be(token + 4, 8);
  uint32_t trank = (uint32_t)ty_get_be(token + 12, 4);
  int64_t expires = (int64_t)ty_get_be(token + 16, 8);
  uint8_t mac[32];
  hmac(key, TY_TOKEN_KEY_LEN, token, SIGNED_LEN, mac);
  if (!memeql_sec(mac, token + SIGNED_LEN, sizeof mac))
    return ty_errf(why, why_len, TY_EPERM, "task token has a bad signature");
  if (tjob != job_id || trank != rank)
    return ty_errf(why, why_len, TY_EPERM, "task token is for job %" PRIu64 " rank %" PRIu32, tjob,
                   trank);
  if (expires <= now_ms) return ty_errf(why, why_len, TY_EPERM, "task token expired");
  return 0;
}

static int create_secret(const char *path, uint8_t *out, char *err, size_t err_len) {
  if (getrandom(out, TY_TOKEN_SECRET_LEN, 0) != (ssize_t)TY_TOKEN_SECRET_LEN)
    return ty_errf(err, err_len, TY_EIO, "cannot draw random bytes for %s: %s", path,
                   strerror(errno));
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write(fd, out, TY_TOKEN_SECRET_LEN) == (ssize_t)TY_TOKEN_SECRET_LEN &&
            fsync(fd) == 0;
  if (fd >= 0 && close(fd) != 0) ok = false;
  if (!ok || rename(tmp, path) != 0) {
    ty_errf(err, err_len, TY_EIO, "cannot create the token secret %s: %s", path, strerror(errno));
    unlink(tmp);
    return TY_EIO;
  }
  return 0;
}

int ty_token_secret_load(const char *path, uint8_t out_secret[TY_TOKEN_SECRET_LEN], char *err,
                         size_t err_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return create_secret(path, out_secret, err, err_len);
  if (fd < 0)
    return ty_errf(err, err_len, TY_EIO, "cannot open the token secret %s: %s", path,
                   strerror(errno));
  uint8_t buf[TY_TOKEN_SECRET_LEN + 1];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  if (n != (ssize_t)TY_TOKEN_SECRET_LEN)
    return ty_errf(err, err_len, TY_EIO, "token secret %s has %zd bytes, expected %u", path, n,
                   TY_TOKEN_SECRET_LEN);
  memcpy(out_secret, buf, TY_TOKEN_SECRET_LEN);
  return 0;
}

/* ---- web console tokens ----------------------------------------------------------------- */

static void hex(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", p[i]);
}

int ty_token_web_new(char out[TY_TOKEN_WEB_LEN + 1]) {
  uint8_t r[16];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) return TY_EIO;
  memcpy(out, TY_TOKEN_WEB_PREFIX, sizeof TY_TOKEN_WEB_PREFIX - 1);
  hex(r, sizeof r, out + sizeof TY_TOKEN_WEB_PREFIX - 1);
  return 0;
}

int ty_token_web_check(const char *s) {
  size_t p = sizeof TY_TOKEN_WEB_PREFIX - 1;
  if (strlen(s) != TY_TOKEN_WEB_LEN || strncmp(s, TY_TOKEN_WEB_PREFIX, p) != 0) return TY_EINVAL;
  for (const char *c = s + p; *c; c++)
    if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return TY_EINVAL;
  return 0;
}

void ty_token_web_hash(const char *token, char out[TY_TOKEN_WEB_HASH_LEN + 1]) {
  uint8_t md[32];
  struct sha256_ctx c;
  sha256_init(&c);
  sha256_update(&c, strlen(token), (const uint8_t *)token);
  sha256_digest(&c, sizeof md, md);
  hex(md, sizeof md, out);
}
