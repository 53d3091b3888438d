/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/base/sha256.c: the FIPS 180-4 and RFC 4231 vectors,
 * and libcrypto's SHA-256 and HMAC-SHA256 over every length from 0 to 300
 * bytes fed in uneven pieces, on both block functions (the SHA extensions'
 * where this CPU has them, and the portable one). */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "lib/base/base.h"

static void hex(const uint8_t *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The digest of data, fed in pieces of `step` bytes, portable or not. */
static void digest(const void *data, size_t len, size_t step, bool portable, uint8_t out[32]) {
  ty_sha256 c;
  ty_sha256_init(&c);
  if (portable) c.portable = true;
  const uint8_t *p = data;
  for (size_t off = 0; off < len; off += step)
    ty_sha256_update(&c, p + off, len - off < step ? len - off : step);
  ty_sha256_final(&c, out);
}

static void check_vector(const char *msg, size_t reps, const char *want) {
  for (int portable = 0; portable < 2; portable++) {
    ty_sha256 c;
    ty_sha256_init(&c);
    if (portable) c.portable = true;
    for (size_t i = 0; i < reps; i++)
      ty_sha256_update(&c, msg, strlen(msg));
    uint8_t d[32];
    char h[65];
    ty_sha256_final(&c, d);
    hex(d, 32, h);
    cr_assert_str_eq(h, want, "\"%s\" x %zu (portable %d)", msg, reps, portable);
  }
}

Test(sha256, fips_vectors) {
  check_vector("", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  check_vector("abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  check_vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  check_vector("a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, matches_libcrypto_at_every_length_and_split) {
  uint8_t data[300];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 131 + 7);
  static const size_t steps[] = {1, 3, 63, 64, 65, 300};
  for (size_t len = 0; len <= sizeof data; len++) {
    uint8_t want[32];
    unsigned n = 0;
    EVP_Digest(data, len, want, &n, EVP_sha256(), NULL);
    for (size_t s = 0; s < TY_ARRAY_LEN(steps); s++)
      for (int portable = 0; portable < 2; portable++) {
        uint8_t got[32];
        digest(data, len, steps[s], portable, got);
        cr_assert(!memcmp(got, want, 32), "length %zu, pieces of %zu, portable %d", len, steps[s],
                  portable);
      }
  }
}

Test(sha256, hmac_rfc4231_and_libcrypto) {
  /* RFC 4231 test case 2, and case 6 (a key longer than the block). */
  uint8_t out[32];
  char h[65];
  ty_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out);
  hex(out, 32, h);
  cr_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  uint8_t key[131];
  memset(key, 0xaa, sizeof key);
  const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
  ty_hmac_sha256(key, sizeof key, msg, strlen(msg), out);
  hex(out, 32, h);
  cr_assert_str_eq(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  for (size_t klen = 0; klen <= sizeof key; klen += 13) {
    uint8_t want[32];
    unsigned n = 0;
    HMAC(EVP_sha256(), key, (int)klen, (const uint8_t *)msg, strlen(msg), want, &n);
    ty_hmac_sha256(key, klen, msg, strlen(msg), out);
    cr_assert(!memcmp(out, want, 32), "key of %zu bytes", klen);
  }
}

Test(sha256, equal_ct) {
  uint8_t a[32] = {0}, b[32] = {0};
  cr_assert(ty_equal_ct(a, b, sizeof a));
  b[31] = 1;
  cr_assert(!ty_equal_ct(a, b, sizeof a));
  cr_assert(ty_equal_ct(a, b, 31));
  cr_assert(ty_equal_ct(a, b, 0));
}
