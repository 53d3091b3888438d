/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The request digest's speed: lib/base's SHA-256 (on the SHA extensions
 * where the CPU has them, and forced portable) against libcrypto's, over
 * one buffer of SIZE MiB (default 64, the frame cap: a graph job carrying
 * its model), the three interleaved ROUNDS times. Both sides of every
 * request hash it (bench/RESULTS.md, "trainctl at the floor").
 *   build/bench/auth/bench_sha256 [SIZE_MIB] [ROUNDS]
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lib/base/base.h"

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* MB/s of CPU time for one digest of buf. */
static double ours(const uint8_t *buf, size_t n, bool portable, bool *out_ni) {
  uint8_t out[TY_SHA256_LEN];
  double t0 = cpu_s();
  ty_sha256 c;
  ty_sha256_init(&c);
  *out_ni = !c.portable;
  if (portable) c.portable = true;
  ty_sha256_update(&c, buf, n);
  ty_sha256_final(&c, out);
  return (double)n / 1e6 / (cpu_s() - t0);
}

static double theirs(const uint8_t *buf, size_t n) {
  uint8_t out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  double t0 = cpu_s();
  EVP_Digest(buf, n, out, &len, EVP_sha256(), NULL);
  return (double)n / 1e6 / (cpu_s() - t0);
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  size_t n = mib << 20;
  uint8_t *buf = malloc(n);
  if (!buf || !mib) return fprintf(stderr, "bench_sha256: bad size\n"), 2;
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t)(i * 131);
  bool ni = false;
  printf("| round | lib/base, default (MB/s) | lib/base, portable (MB/s) | libcrypto (MB/s) |\n");
  printf("| --- | --- | --- | --- |\n");
  for (int r = 1; r <= rounds; r++) {
    double d = ours(buf, n, false, &ni), p = ours(buf, n, true, &ni), l = theirs(buf, n);
    printf("| %d | %.0f | %.0f | %.0f |\n", r, d, p, l);
  }
  printf("SHA extensions used by default: %s; %zu MiB per digest\n", ni ? "yes" : "no", mib);
  free(buf);
  return 0;
}
