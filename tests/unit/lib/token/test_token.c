/* SPDX-License-Identifier: Apache-2.0 */
/* lib/token: signing, every refusal, and the secret file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/token/token.h"

static void key_for(uint64_t job, uint8_t key[TY_TOKEN_KEY_LEN]) {
  uint8_t secret[TY_TOKEN_SECRET_LEN];
  memset(secret, 7, sizeof secret);
  ty_token_job_key(secret, job, key);
}

Test(token, valid_token_verifies) {
  uint8_t key[TY_TOKEN_KEY_LEN], tok[TY_TOKEN_LEN];
  key_for(42, key);
  ty_token_sign(key, 42, 3, 2000, tok);
  cr_assert_eq(ty_token_verify(key, tok, sizeof tok, 42, 3, 1999, NULL, 0), 0);
}

Test(token, refusals_say_why) {
  uint8_t key[TY_TOKEN_KEY_LEN], other[TY_TOKEN_KEY_LEN], tok[TY_TOKEN_LEN];
  char why[128];
  key_for(42, key);
  key_for(43, other);
  ty_token_sign(key, 42, 3, 2000, tok);
  cr_assert_eq(ty_token_verify(key, NULL, 0, 42, 3, 0, why, sizeof why), TY_EPERM);
  cr_assert_str_eq(why, "no task token");
  cr_assert_eq(ty_token_verify(key, tok, 10, 42, 3, 0, why, sizeof why), TY_EPERM);
  cr_assert(strstr(why, "malformed"), "%s", why);
  cr_assert_eq(ty_token_verify(key, tok, sizeof tok, 42, 4, 0, why, sizeof why), TY_EPERM);
  cr_assert(strstr(why, "job 42 rank 3"), "%s", why);
  cr_assert_eq(ty_token_verify(key, tok, sizeof tok, 42, 3, 2000, why, sizeof why), TY_EPERM);
  cr_assert_str_eq(why, "task token expired");
  /* Another job's key, or one flipped bit, breaks the signature. */
  cr_assert_eq(ty_token_verify(other, tok, sizeof tok, 42, 3, 0, why, sizeof why), TY_EPERM);
  cr_assert(strstr(why, "signature"), "%s", why);
  tok[20] ^= 1;
  cr_assert_eq(ty_token_verify(key, tok, sizeof tok, 42, 3, 0, why, sizeof why), TY_EPERM);
  cr_assert(strstr(why, "signature"), "%s", why);
}

/* Known answers (Python's hmac module): a job key and a token stay the
 * same whichever library computes HMAC-SHA256, so keys the workers keep
 * and tokens already issued verify across an upgrade. */
Test(token, known_answers) {
  uint8_t key[TY_TOKEN_KEY_LEN], tok[TY_TOKEN_LEN];
  key_for(42, key);
  char hex[2 * TY_TOKEN_KEY_LEN + 1];
  for (size_t i = 0; i < sizeof key; i++)
    snprintf(hex + 2 * i, 3, "%02x", key[i]);
  cr_assert_str_eq(hex, "b35a3b535b379540274975743032ed5118a5571e73c087b245ff08fe445ce943");
  ty_token_sign(key, 42, 3, 2000, tok);
  for (size_t i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", tok[TY_TOKEN_LEN - 32 + i]);
  cr_assert_str_eq(hex, "5047f15abd828ccf2e0d98daa498f36128350f4e9d312305b43312e8a51e46e5");
}

Test(token, job_keys_differ) {
  uint8_t a[TY_TOKEN_KEY_LEN], b[TY_TOKEN_KEY_LEN];
  key_for(1, a);
  key_for(2, b);
  cr_assert_neq(memcmp(a, b, sizeof a), 0);
}

Test(token, secret_is_created_once_and_private) {
  char dir[] = "/tmp/ty-token-XXXXXX", path[64], err[256];
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/attach.key", dir);
  uint8_t s1[TY_TOKEN_SECRET_LEN], s2[TY_TOKEN_SECRET_LEN];
  cr_assert_eq(ty_token_secret_load(path, s1, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_token_secret_load(path, s2, err, sizeof err), 0, "%s", err);
  cr_assert_eq(memcmp(s1, s2, sizeof s1), 0);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
  /* A truncated secret is refused, naming the file. */
  FILE *f = fopen(path, "w");
  fputs("short", f);
  fclose(f);
  cr_assert_eq(ty_token_secret_load(path, s2, err, sizeof err), TY_EIO);
  cr_assert(strstr(err, path), "%s", err);
  unlink(path);
  rmdir(dir);
}

/* Web console tokens: fresh ones differ and have the checked shape; the
 * hash is SHA-256 (a known vector) in lowercase hex; anything else is
 * not a token. */
Test(token, web_tokens) {
  char a[TY_TOKEN_WEB_LEN + 1], b[TY_TOKEN_WEB_LEN + 1], h[TY_TOKEN_WEB_HASH_LEN + 1];
  cr_assert_eq(ty_token_web_new(a), 0);
  cr_assert_eq(ty_token_web_new(b), 0);
  cr_assert_str_neq(a, b);
  cr_assert_eq(strlen(a), TY_TOKEN_WEB_LEN);
  cr_assert_eq(ty_token_web_check(a), 0);
  ty_token_web_hash("abc", h);
  cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *bad[] = {"", "tyw1.", "tyw2.0123456789abcdef0123456789abcdef",
                       "tyw1.0123456789ABCDEF0123456789abcdef",
                       "tyw1.0123456789abcdef0123456789abcdef0"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_neq(ty_token_web_check(bad[i]), 0, "\"%s\" passed", bad[i]);
}
