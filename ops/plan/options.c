/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cost model's options as people type them: the one parser behind
 * trainrun's --mesh and rates, trainctl plan's, and traind's --plan-*
 * flags, so the three accept the same spellings and say the same things
 * about a bad value. Pure string handling; nothing here measures anything.
 */
#include "ops/plan/plan.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int bad(const char *what, const char *v, const char *want, char *err, size_t err_len) {
  return ty_errf(err, err_len, TY_EINVAL, "%s: expected %s, got \"%s\"", what, want, v ? v : "");
}

/* A finite non-negative number times scale. */
static int number(const char *what, const char *v, double scale, double *out, char *err,
                  size_t err_len) {
  char *end;
  errno = 0;
  double d = v ? strtod(v, &end) : 0;
  if (!v || !*v || *end || errno || !isfinite(d) || d < 0)
    return bad(what, v, "a non-negative number", err, err_len);
  *out = d * scale;
  return 0;
}

/* A bandwidth in GB/s, as bytes per second: zero is no link at all, which
 * the cost model cannot divide by, so it is refused here, naming the flag. */
static int gbps(const char *what, const char *v, double *out, char *err, size_t err_len) {
  double b = 0;
  int rc = number(what, v, 1e9, &b, err, err_len);
  if (rc == 0 && b <= 0) rc = bad(what, v, "a positive rate in GB/s", err, err_len);
  if (rc == 0) *out = b;
  return rc;
}

/* BYTES with an optional K, M, G or T (powers of 1024). */
static int bytes(const char *what, const char *v, uint64_t *out, char *err, size_t err_len) {
  char *end;
  errno = 0;
  unsigned long long n = v && v[0] != '-' ? strtoull(v, &end, 10) : 0;
  if (!v || !*v || v[0] == '-' || errno || end == v)
    return bad(what, v, "bytes, e.g. 8G", err, err_len);
  int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : *end == 'T' ? 40 : 0;
  if ((shift && end[1]) || (!shift && *end) || n == 0 || n > (UINT64_MAX >> shift))
    return bad(what, v, "a positive byte count, e.g. 8G", err, err_len);
  *out = (uint64_t)n << shift;
  return 0;
}

/* Leading decimal digits of *p (advanced past them) or -1 when none. */
static long digits(const char **p) {
  long n = 0;
  const char *s = *p;
  while (*s >= '0' && *s <= '9' && n <= (1L << 30))
    n = n * 10 + (*s++ - '0');
  if (s == *p || (*s >= '0' && *s <= '9')) return -1;
  *p = s;
  return n;
}

int ty_plan_parse_mesh(const char *what, const char *v, int *out_nodes, int *out_per, char *err,
                       size_t err_len) {
  const char *s = v ? v : "";
  long a = digits(&s), b = *s == 'x' ? (s++, digits(&s)) : -1;
  if (a < 0 || b < 0 || *s) return bad(what, v, "NODESxDEVICES, e.g. 2x4", err, err_len);
  if (a == 0 || b == 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: %s is a mesh of 0 devices; NODES and DEVICES must both be at least 1", what,
                   v);
  if (a > (1 << 20) || b > (1 << 20) || a * b > (1 << 20))
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s has more than %d devices", what, v, 1 << 20);
  *out_nodes = (int)a;
  *out_per = (int)b;
  return 0;
}

int ty_plan_cluster_set(ty_plan_cluster *c, const char *key, const char *what, const char *v,
                        char *err, size_t err_len) {
  if (strcmp(key, "device-flops") == 0) {
    if (v && strcmp(v, "cpu") == 0) {
      c->device_flops = 0;
      return 0;
    }
    double f = 0;
    int rc = number(what, v, 1, &f, err, err_len);
    if (rc == 0 && f <= 0) rc = bad(what, v, "a positive rate or \"cpu\"", err, err_len);
    if (rc == 0) c->device_flops = f;
    return rc;
  }
  if (strcmp(key, "device-mem") == 0) return bytes(what, v, &c->device_mem_bytes, err, err_len);
  if (strcmp(key, "intra-gbps") == 0) return gbps(what, v, &c->intra_bw, err, err_len);
  if (strcmp(key, "inter-gbps") == 0) return gbps(what, v, &c->inter_bw, err, err_len);
  if (strcmp(key, "latency-us") == 0)
    return number(what, v, 1e-6, &c->intra_latency_s, err, err_len);
  if (strcmp(key, "inter-latency-us") == 0)
    return number(what, v, 1e-6, &c->inter_latency_s, err, err_len);
  if (strcmp(key, "launch-us") == 0) return number(what, v, 1e-6, &c->launch_s, err, err_len);
  return ty_errf(err, err_len, TY_EINVAL, "%s: not an option of the cost model", what);
}
