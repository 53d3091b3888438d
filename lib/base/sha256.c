/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), so that the request
 * credentials of lib/auth need no libcrypto: loading libcrypto (its
 * relocations, symbol lookups and initialisation) was the largest part of
 * every trainctl process's start-up (issue 20 item 3, bench/RESULTS.md).
 *
 * The workload is one digest per RPC over its payload: a few hundred bytes
 * for most requests, up to the 64 MiB frame cap for a graph job carrying
 * its model. Where the CPU has the SHA extensions (x86 SHA-NI) the block
 * function uses them (several times the portable loop's speed); the choice
 * is made once per process. Both paths are checked against the FIPS
 * vectors and against libcrypto over many lengths
 * (tests/unit/lib/base/test_sha256.c).
 */
#include "lib/base/base.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define TY_SHA_NI 1
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

/* One round of the portable block function: the eight working variables
 * rotate through the macro's arguments instead of being moved. */
#define ROUND(a, b, c, d, e, f, g, h, i)                                                           \
  do {                                                                                             \
    uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];  \
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));           \
    d += t1;                                                                                       \
    h = t1 + t2;                                                                                   \
  } while (0)

/* The portable block function: n blocks of 64 bytes into the state. */
static void blocks_c(uint32_t h[8], const uint8_t *p, size_t n) {
  for (; n; n--, p += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)ty_get_be(p + 4 * i, 4);
    for (int i = 16; i < 64; i++) {
      uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i += 8) {
      ROUND(a, b, c, d, e, f, g, hh, i);
      ROUND(hh, a, b, c, d, e, f, g, i + 1);
      ROUND(g, hh, a, b, c, d, e, f, i + 2);
      ROUND(f, g, hh, a, b, c, d, e, i + 3);
      ROUND(e, f, g, hh, a, b, c, d, i + 4);
      ROUND(d, e, f, g, hh, a, b, c, i + 5);
      ROUND(c, d, e, f, g, hh, a, b, i + 6);
      ROUND(b, c, d, e, f, g, hh, a, i + 7);
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
}

#ifdef TY_SHA_NI
/* Four rounds over the message words m, with the round constants from K[k]. */
#define NI_ROUNDS(m, k)                                                                            \
  do {                                                                                             \
    __m128i wk = _mm_add_epi32((m), _mm_loadu_si128((const __m128i *)(K + (k))));                  \
    cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                                  \
    abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0e));                         \
  } while (0)

/* The next four message words from the previous sixteen (m0 oldest). */
static inline __attribute__((target("sha,sse4.1"))) __m128i ni_next(__m128i m0, __m128i m1,
                                                                    __m128i m2, __m128i m3) {
  __m128i t = _mm_sha256msg1_epu32(m0, m1);
  t = _mm_add_epi32(t, _mm_alignr_epi8(m3, m2, 4));
  return _mm_sha256msg2_epu32(t, m3);
}

/* The block function on the SHA extensions (Intel's published sequence). */
static __attribute__((target("sha,sse4.1"))) void blocks_ni(uint32_t h[8], const uint8_t *p,
                                                            size_t n) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0xb1);          /* CDAB */
  __m128i cdgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(h + 4)), 0x1b); /* EFGH */
  __m128i abef = _mm_alignr_epi8(t, cdgh, 8);
  cdgh = _mm_blend_epi16(cdgh, t, 0xf0);
  for (; n; n--, p += 64) {
    __m128i abef0 = abef, cdgh0 = cdgh, m[4];
    for (int i = 0; i < 4; i++)
      m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
    for (int i = 0; i < 4; i++)
      NI_ROUNDS(m[i], 4 * i);
    for (int i = 4; i < 16; i++) {
      __m128i next = ni_next(m[i & 3], m[(i + 1) & 3], m[(i + 2) & 3], m[(i + 3) & 3]);
      m[i & 3] = next;
      NI_ROUNDS(next, 4 * i);
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
  }
  t = _mm_shuffle_epi32(abef, 0x1b);                                 /* FEBA */
  cdgh = _mm_shuffle_epi32(cdgh, 0xb1);                              /* DCHG */
  _mm_storeu_si128((__m128i *)h, _mm_blend_epi16(t, cdgh, 0xf0));    /* DCBA */
  _mm_storeu_si128((__m128i *)(h + 4), _mm_alignr_epi8(cdgh, t, 8)); /* HGFE */
}

/* CPUID: SHA is leaf 7's EBX bit 29, SSE4.1 leaf 1's ECX bit 19 (asked
 * directly: clang's __builtin_cpu_supports knows no "sha"). */
static bool have_sha_ni(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19))) return false;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));
}
#endif

static void blocks(ty_sha256 *c, const uint8_t *p, size_t n) {
#ifdef TY_SHA_NI
  if (!c->portable) {
    blocks_ni(c->h, p, n);
    return;
  }
#endif
  blocks_c(c->h, p, n);
}

void ty_sha256_init(ty_sha256 *c) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memset(c, 0, sizeof *c);
  memcpy(c->h, iv, sizeof iv);
#ifdef TY_SHA_NI
  c->portable = !have_sha_ni();
#else
  c->portable = true;
#endif
}

void ty_sha256_update(ty_sha256 *c, const void *data, size_t len) {
  if (!len) return; /* data may be NULL then */
  const uint8_t *p = data;
  c->total += len;
  if (c->used) {
    size_t take = 64 - c->used < len ? 64 - c->used : len;
    memcpy(c->buf + c->used, p, take);
    c->used += take, p += take, len -= take;
    if (c->used < 64) return;
    blocks(c, c->buf, 1);
    c->used = 0;
  }
  if (len >= 64) blocks(c, p, len / 64);
  p += len / 64 * 64, len %= 64;
  memcpy(c->buf, p, len);
  c->used = len;
}

void ty_sha256_final(ty_sha256 *c, uint8_t out[TY_SHA256_LEN]) {
  uint64_t bits = c->total * 8;
  uint8_t pad[72] = {0x80};
  size_t n = (c->used < 56 ? 56 : 120) - c->used;
  ty_put_be(pad + n, bits, 8);
  ty_sha256_update(c, pad, n + 8);
  for (int i = 0; i < 8; i++)
    ty_put_be(out + 4 * i, c->h[i], 4);
  ty_secure_zero(c, sizeof *c);
}

void ty_sha256_digest(const void *data, size_t len, uint8_t out[TY_SHA256_LEN]) {
  ty_sha256 c;
  ty_sha256_init(&c);
  ty_sha256_update(&c, data, len);
  ty_sha256_final(&c, out);
}

void ty_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                    uint8_t out[TY_SHA256_LEN]) {
  uint8_t k[64] = {0}, pad[64], inner[TY_SHA256_LEN];
  if (key_len > sizeof k)
    ty_sha256_digest(key, key_len, k);
  else if (key_len)
    memcpy(k, key, key_len);
  ty_sha256 c;
  for (int i = 0; i < 64; i++)
    pad[i] = k[i] ^ 0x36;
  ty_sha256_init(&c);
  ty_sha256_update(&c, pad, sizeof pad);
  ty_sha256_update(&c, msg, len);
  ty_sha256_final(&c, inner);
  for (int i = 0; i < 64; i++)
    pad[i] = k[i] ^ 0x5c;
  ty_sha256_init(&c);
  ty_sha256_update(&c, pad, sizeof pad);
  ty_sha256_update(&c, inner, sizeof inner);
  ty_sha256_final(&c, out);
  ty_secure_zero(k, sizeof k);
  ty_secure_zero(pad, sizeof pad);
}

bool ty_equal_ct(const void *a, const void *b, size_t len) {
  const volatile uint8_t *x = a, *y = b;
  uint8_t d = 0;
  for (size_t i = 0; i < len; i++)
    d |= x[i] ^ y[i];
  return d == 0;
}

void ty_secure_zero(void *p, size_t len) {
  explicit_bzero(p, len);
}
