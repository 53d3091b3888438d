/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's plan cache (daemon.h): plan files by their search's key
 * (ops/plan's ty_plan_request_key: the graph's fingerprint, the mesh, the
 * batch and the cost model) and the uid whose model check computed that
 * key, least recently used first out, bounded in entries and in bytes.
 * The key comes from the check's child, which runs as the submitting user,
 * who can change its answer (ptrace): an entry is served only to checks
 * that run as the same uid, so a user can plant a plan for no one else. Workload: a handful of
 * models submitted again and again (sweeps, requeues, `trainctl plan` then `submit`), so a short
 * list searched linearly, most recent first, is all it needs; it lives on the loop thread.
 */
#include "daemon/daemon.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"

typedef struct entry {
  uint32_t owner; /* the uid of the check that computed key */
  uint64_t key;
  uint8_t *plan;
  size_t len;
} entry;

struct ty_plan_cache {
  entry *v; /* most recently used first */
  size_t n, max_entries, max_bytes, bytes;
  uint64_t hits, misses;
};

ty_plan_cache *ty_plan_cache_create(size_t max_entries, size_t max_bytes) {
  ty_plan_cache *c = calloc(1, sizeof *c);
  if (c) c->v = calloc(max_entries ? max_entries : 1, sizeof *c->v);
  if (c && !c->v) {
    free(c);
    c = NULL;
  }
  if (c) c->max_entries = max_entries, c->max_bytes = max_bytes;
  return c;
}

void ty_plan_cache_destroy(ty_plan_cache *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n; i++)
    free(c->v[i].plan);
  free(c->v);
  free(c);
}

/* Moves entry i to the front. */
static void touch(ty_plan_cache *c, size_t i) {
  entry e = c->v[i];
  memmove(c->v + 1, c->v, i * sizeof *c->v);
  c->v[0] = e;
}

int ty_plan_cache_get(ty_plan_cache *c, uint32_t owner, uint64_t key, uint8_t **out,
                      size_t *out_len) {
  for (size_t i = 0; c && i < c->n; i++) {
    if (c->v[i].key != key || c->v[i].owner != owner) continue;
    uint8_t *copy = malloc(c->v[i].len ? c->v[i].len : 1);
    if (!copy) return TY_ENOMEM;
    memcpy(copy, c->v[i].plan, c->v[i].len);
    *out = copy;
    *out_len = c->v[i].len;
    touch(c, i);
    c->hits++;
    return 0;
  }
  if (c) c->misses++;
  return TY_ENOTFOUND;
}

static void remove_at(ty_plan_cache *c, size_t i) {
  c->bytes -= c->v[i].len;
  free(c->v[i].plan);
  memmove(c->v + i, c->v + i + 1, (c->n - i - 1) * sizeof *c->v);
  c->n--;
}

void ty_plan_cache_put(ty_plan_cache *c, uint32_t owner, uint64_t key, const uint8_t *plan,
                       size_t len) {
  if (!c || c->max_entries == 0 || len > c->max_bytes) return;
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].key == key && c->v[i].owner == owner) {
      remove_at(c, i); /* replaced by the new copy below */
      break;
    }
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return; /* a cache may forget */
  memcpy(copy, plan, len);
  while (c->n && (c->n == c->max_entries || c->bytes + len > c->max_bytes))
    remove_at(c, c->n - 1);
  memmove(c->v + 1, c->v, c->n * sizeof *c->v);
  c->v[0] = (entry){owner, key, copy, len};
  c->n++;
  c->bytes += len;
}

void ty_plan_cache_stats(const ty_plan_cache *c, size_t *out_entries, size_t *out_bytes,
                         uint64_t *out_hits, uint64_t *out_misses) {
  *out_entries = c ? c->n : 0;
  *out_bytes = c ? c->bytes : 0;
  *out_hits = c ? c->hits : 0;
  *out_misses = c ? c->misses : 0;
}
