/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gradient bucket layout: which tensors each all-reduce call carries, so a
 * mismatch can be named ("fc2.weight [10,64], fc2.bias [10]") and hashed.
 * The grouping mirrors ops/train's build_buckets: parameters from the last
 * to the first, a new bucket when the next tensor would exceed bucket_bytes.
 * Calls cycle through the buckets once per step, so call `seq` reduces
 * bucket seq % n_buckets.
 */
#include "ops/collective/coll_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t ty__coll_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

int ty_coll_add_tensor(ty_coll *c, const char *name, const int64_t *dims, size_t rank) {
  ty__tensor_desc *t = realloc(c->tensors, (c->n_tensors + 1) * sizeof *t);
  if (!t) return TY_ENOMEM;
  c->tensors = t;
  t = &c->tensors[c->n_tensors];
  t->name = strdup(name ? name : "?");
  if (!t->name) return TY_ENOMEM;
  t->numel = 1;
  size_t off = (size_t)snprintf(t->shape, sizeof t->shape, "[");
  for (size_t i = 0; i < rank; i++) {
    t->numel *= (size_t)(dims[i] > 0 ? dims[i] : 1);
    if (off < sizeof t->shape)
      off += (size_t)snprintf(t->shape + off, sizeof t->shape - off, "%s%lld", i ? "," : "",
                              (long long)dims[i]);
  }
  if (off < sizeof t->shape) snprintf(t->shape + off, sizeof t->shape - off, "]");
  c->n_tensors++;
  free(c->buckets); /* recomputed on next use */
  c->buckets = NULL;
  c->n_buckets = 0;
  return 0;
}

void ty_coll_set_bucket_bytes(ty_coll *c, size_t bucket_bytes) {
  c->bucket_bytes = bucket_bytes;
  free(c->buckets);
  c->buckets = NULL;
  c->n_buckets = 0;
}

static void describe(ty_coll *c, ty__bucket_desc *b) {
  uint64_t h = 0xcbf29ce484222325ull;
  size_t off = 0;
  for (size_t p = b->first + 1; p-- > b->last;) {
    const ty__tensor_desc *t = &c->tensors[p];
    h = fnv(h, t->name, strlen(t->name) + 1);
    h = fnv(h, t->shape, strlen(t->shape) + 1);
    if (off < sizeof b->desc)
      off += (size_t)snprintf(b->desc + off, sizeof b->desc - off, "%s%s %s",
                              p == b->first ? "" : ", ", t->name, t->shape);
  }
  b->hash = fnv(h, &b->floats, sizeof b->floats);
}

int ty__coll_layout(ty_coll *c) {
  if (c->buckets || c->n_tensors == 0) return 0;
  size_t cap = c->bucket_bytes ? c->bucket_bytes : (size_t)25 << 20;
  c->buckets = calloc(c->n_tensors, sizeof *c->buckets);
  if (!c->buckets) return TY_ENOMEM;
  for (size_t p = c->n_tensors; p-- > 0;) {
    size_t f = c->tensors[p].numel;
    ty__bucket_desc *b = c->n_buckets ? &c->buckets[c->n_buckets - 1] : NULL;
    if (!b || (b->floats + f) * sizeof(float) > cap) {
      b = &c->buckets[c->n_buckets++];
      b->first = p;
      b->floats = 0;
    }
    b->last = p;
    b->floats += f;
  }
  for (size_t k = 0; k < c->n_buckets; k++)
    describe(c, &c->buckets[k]);
  return 0;
}

void ty__coll_bucket_for(ty_coll *c, uint64_t seq, size_t n, uint64_t *out_hash, char *out_desc) {
  if (ty__coll_layout(c) == 0 && c->n_buckets) {
    const ty__bucket_desc *b = &c->buckets[seq % c->n_buckets];
    *out_hash = fnv(b->hash, &n, sizeof n);
    int w = snprintf(out_desc, TY__COLL_DESC, "%.200s", b->desc);
    snprintf(out_desc + w, (size_t)(TY__COLL_DESC - w), " (%zu floats)", n);
    return;
  }
  *out_hash = fnv(0xcbf29ce484222325ull, &n, sizeof n);
  snprintf(out_desc, TY__COLL_DESC, "%zu floats (no tensor layout given)", n);
}
