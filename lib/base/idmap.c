/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A map from 64-bit ids to nodes embedded in the caller's structs (see
 * base.h): RPC connections keep their outstanding requests in it, the
 * controller its finished-job cache and its dependency waiters. Lookups
 * happen once per answer frame or per job event, so they must not scan.
 * Nodes are intrusive: the map never allocates per entry, only its bucket
 * array.
 */
#include "lib/base/base.h"

#include <stdlib.h>

static size_t bucket_of(const ty_idmap *m, uint64_t id) {
  return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (m->nbuckets - 1);
}

void ty_idmap_close(ty_idmap *m) {
  free(m->buckets);
  m->buckets = NULL;
  m->nbuckets = m->count = m->pop_from = 0;
}

static int grow(ty_idmap *m) {
  size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
  ty_id_node **b = calloc(n, sizeof *b);
  if (!b) return TY_ENOMEM;
  ty_idmap old = *m;
  m->buckets = b;
  m->nbuckets = n;
  m->pop_from = 0;
  for (size_t i = 0; i < old.nbuckets; i++) {
    ty_id_node *node = old.buckets[i];
    while (node) {
      ty_id_node *next = node->next;
      size_t k = bucket_of(m, node->id);
      node->next = b[k];
      b[k] = node;
      node = next;
    }
  }
  free(old.buckets);
  return 0;
}

ty_id_node *ty_idmap_get(const ty_idmap *m, uint64_t id) {
  if (m->nbuckets == 0) return NULL;
  for (ty_id_node *n = m->buckets[bucket_of(m, id)]; n; n = n->next)
    if (n->id == id) return n;
  return NULL;
}

int ty_idmap_put(ty_idmap *m, ty_id_node *n) {
  if (ty_idmap_get(m, n->id)) return TY_EEXIST;
  if (m->count >= m->nbuckets) {
    int rc = grow(m);
    if (rc < 0) return rc;
  }
  size_t k = bucket_of(m, n->id);
  n->next = m->buckets[k];
  m->buckets[k] = n;
  m->count++;
  if (k < m->pop_from) m->pop_from = k;
  return 0;
}

ty_id_node *ty_idmap_del(ty_idmap *m, uint64_t id) {
  if (m->nbuckets == 0) return NULL;
  for (ty_id_node **p = &m->buckets[bucket_of(m, id)]; *p; p = &(*p)->next) {
    if ((*p)->id == id) {
      ty_id_node *n = *p;
      *p = n->next;
      m->count--;
      return n;
    }
  }
  return NULL;
}

ty_id_node *ty_idmap_pop(ty_idmap *m) {
  for (size_t i = m->pop_from; m->count > 0 && i < m->nbuckets; i++) {
    ty_id_node *n = m->buckets[i];
    if (n) {
      m->pop_from = i;
      m->buckets[i] = n->next;
      m->count--;
      return n;
    }
  }
  return NULL;
}
