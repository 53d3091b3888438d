/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node index and topology-aware gang placement.
 *
 * Invariants: every schedulable node sits in exactly one list, the one of
 * its switch group and its current free GPU count; counts match the lists.
 * Unschedulable nodes sit in no list.
 *
 * Placement of a gang of N nodes, each needing the same resources:
 *   - from the counts, nodes with enough free GPUs are fewer than N: refuse
 *     at once;
 *   - otherwise prefer one switch: of the switches that may hold all N, the
 *     one with the fewest candidates (best fit keeps large groups whole for
 *     large gangs);
 *   - otherwise spread over the fewest switches, largest first;
 *   - within a switch, nodes with the fewest free GPUs that still fit come
 *     first, which packs nodes and leaves whole nodes for whole-node jobs;
 *   - an exclusive job's need is whole: only nodes with every CPU, GPU and
 *     byte free fit (ty__fits_on), and its slot takes them all (ty__take).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

uint64_t ty__gpu_mask(uint32_t total) {
  if (total >= 64) return UINT64_MAX;
  return (UINT64_C(1) << total) - 1;
}

ty__need ty__need_of(const ty_sched_job *j) {
  ty__need n;
  uint64_t cpus = (uint64_t)(j->tasks_per_node ? j->tasks_per_node : 1) *
                  (j->cpus_per_task ? j->cpus_per_task : 1);
  n.cpus = cpus > UINT32_MAX ? UINT32_MAX : (uint32_t)cpus;
  n.gpus = j->gpus_per_node;
  n.mem = j->mem_per_node;
  n.whole = j->exclusive;
  n.filter = NULL;
  return n;
}

ty__res ty__take(const ty_sched_node *nd, const ty__need *n, uint64_t gpus) {
  if (n->whole)
    return (ty__res){nd->cpus_total, gpus & ty__gpu_mask(nd->gpus_total), nd->mem_total};
  return (ty__res){n->cpus, ty__pick_gpus(nd, gpus, n->gpus), n->mem};
}

bool ty__res_fits(const ty__res *r, const ty__need *n) {
  return r->cpus >= n->cpus && ty__popcount(r->gpus) >= n->gpus && r->mem >= n->mem;
}

static void unlink_node(ty__idx *x, uint32_t i) {
  size_t b = (size_t)x->sw[i] * x->nb + x->bucket[i];
  if (x->prev[i] >= 0)
    x->next[x->prev[i]] = x->next[i];
  else
    x->head[b] = x->next[i];
  if (x->next[i] >= 0) x->prev[x->next[i]] = x->prev[i];
  x->cnt[b]--;
  x->gcnt[x->bucket[i]]--;
}

static void link_node(ty__idx *x, uint32_t i) {
  uint32_t g = ty__popcount(x->free[i].gpus);
  if (g >= x->nb) g = x->nb - 1;
  x->bucket[i] = (uint8_t)g;
  size_t b = (size_t)x->sw[i] * x->nb + g;
  x->prev[i] = -1;
  x->next[i] = x->head[b];
  if (x->head[b] >= 0) x->prev[x->head[b]] = (int32_t)i;
  x->head[b] = (int32_t)i;
  x->cnt[b]++;
  x->gcnt[g]++;
}

int ty__idx_init(ty__idx *x, const ty_sched_node *nodes, size_t n) {
  memset(x, 0, sizeof(*x));
  x->nodes = nodes;
  x->n = n;
  uint32_t max_g = 0, max_sw = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t g = nodes[i].gpus_total > 64 ? 64 : nodes[i].gpus_total;
    if (g > max_g) max_g = g;
    if (nodes[i].switch_id != TY_SCHED_NO_SWITCH && nodes[i].switch_id > max_sw)
      max_sw = nodes[i].switch_id;
  }
  x->nb = max_g + 1;
  x->n_sw = max_sw + 2; /* the last group holds nodes of no switch */
  size_t m = n ? n : 1, hb = (size_t)x->n_sw * x->nb;
  /* Written for every node below; links only for the nodes linked. */
  x->free = malloc(m * sizeof(*x->free));
  x->ok = malloc(m * sizeof(*x->ok));
  x->sw = malloc(m * sizeof(*x->sw));
  x->next = malloc(m * sizeof(*x->next));
  x->prev = malloc(m * sizeof(*x->prev));
  x->bucket = malloc(m * sizeof(*x->bucket));
  x->head = malloc(hb * sizeof(*x->head));
  x->cnt = calloc(hb, sizeof(*x->cnt));
  x->gcnt = calloc(x->nb, sizeof(*x->gcnt));
  if (!x->free || !x->ok || !x->sw || !x->next || !x->prev || !x->bucket || !x->head || !x->cnt ||
      !x->gcnt) {
    ty__idx_close(x);
    return TY_ENOMEM;
  }
  for (size_t b = 0; b < hb; b++)
    x->head[b] = -1;
  /* Link in reverse so each list starts in input order. */
  for (size_t k = n; k-- > 0;) {
    const ty_sched_node *nd = &nodes[k];
    x->free[k] =
        (ty__res){nd->cpus_free, nd->gpus_free & ty__gpu_mask(nd->gpus_total), nd->mem_free};
    x->sw[k] = nd->switch_id == TY_SCHED_NO_SWITCH ? x->n_sw - 1 : nd->switch_id;
    x->ok[k] = nd->schedulable;
    if (x->ok[k]) link_node(x, (uint32_t)k);
  }
  return 0;
}

void ty__idx_close(ty__idx *x) {
  free(x->free);
  free(x->ok);
  free(x->sw);
  free(x->next);
  free(x->prev);
  free(x->bucket);
  free(x->head);
  free(x->cnt);
  free(x->gcnt);
  free(x->cap);
  memset(x, 0, sizeof(*x));
}

void ty__idx_set(ty__idx *x, uint32_t i, const ty__res *r) {
  if (x->ok[i]) unlink_node(x, i);
  x->free[i] = *r;
  if (x->ok[i]) link_node(x, i);
}

uint32_t ty__idx_count_ge(const ty__idx *x, uint32_t g) {
  uint32_t c = 0;
  for (uint32_t b = g; b < x->nb; b++)
    c += x->gcnt[b];
  return c;
}

static uint32_t sw_count_ge(const ty__idx *x, uint32_t s, uint32_t g) {
  uint32_t c = 0;
  for (uint32_t b = g; b < x->nb; b++)
    c += x->cnt[(size_t)s * x->nb + b];
  return c;
}

ty__res ty__idx_avail(const ty__idx *x, uint32_t i, bool use_caps) {
  ty__res r = x->free[i];
  if (use_caps && x->cap && x->cap[i].on) {
    const ty__res *s = &x->cap[i].spare;
    if (s->cpus < r.cpus) r.cpus = s->cpus;
    r.gpus &= s->gpus;
    if (s->mem < r.mem) r.mem = s->mem;
  }
  return r;
}

static bool node_fits(const ty__idx *x, uint32_t i, const ty__need *n, bool use_caps) {
  ty__res r = ty__idx_avail(x, i, use_caps);
  return ty__fits_on(&x->nodes[i], &r, n);
}

uint64_t ty__pick_gpus(const ty_sched_node *node, uint64_t free, uint32_t g) {
  if (g == 0) return 0;
  uint32_t count[TY_SCHED_MAX_GPUS] = {0};
  for (uint32_t i = 0; i < TY_SCHED_MAX_GPUS; i++)
    if (free & (UINT64_C(1) << i)) count[node->gpu_island[i] % TY_SCHED_MAX_GPUS]++;
  uint64_t out = 0;
  uint32_t got = 0;
  while (got < g) {
    /* The island with the fewest free GPUs that holds the rest, else the
     * one with the most. */
    int best = -1;
    for (int s = 0; s < TY_SCHED_MAX_GPUS; s++) {
      if (count[s] == 0) continue;
      bool holds = count[s] >= g - got;
      if (best < 0)
        best = s;
      else if (holds && (count[best] < g - got || count[s] < count[best]))
        best = s;
      else if (!holds && count[best] < g - got && count[s] > count[best])
        best = s;
    }
    if (best < 0) break;
    for (uint32_t i = 0; i < TY_SCHED_MAX_GPUS && got < g; i++) {
      uint64_t bit = UINT64_C(1) << i;
      if ((free & bit) && node->gpu_island[i] % TY_SCHED_MAX_GPUS == (uint32_t)best) {
        out |= bit;
        got++;
      }
    }
    count[best] = 0;
  }
  return out;
}

/* Collects up to `want` fitting nodes of switch s (best fit first) into
 * picked[*got...]. Returns true once *got == want. */
static bool take_from_switch(const ty__idx *x, uint32_t s, const ty__need *n, uint32_t want,
                             bool use_caps, uint32_t *picked, uint32_t *got) {
  for (uint32_t b = n->gpus; b < x->nb && *got < want; b++)
    for (int32_t i = x->head[(size_t)s * x->nb + b]; i >= 0 && *got < want; i = x->next[i])
      if (node_fits(x, (uint32_t)i, n, use_caps)) picked[(*got)++] = (uint32_t)i;
  return *got == want;
}

/* Nodes that fit, counted exactly, stopping once `stop` are seen. */
static uint32_t count_fitting(const ty__idx *x, const ty__need *n, bool use_caps, uint32_t stop) {
  uint32_t c = 0;
  for (uint32_t b = n->gpus; b < x->nb; b++)
    for (uint32_t s = 0; s < x->n_sw; s++)
      for (int32_t i = x->head[(size_t)s * x->nb + b]; i >= 0; i = x->next[i])
        if (node_fits(x, (uint32_t)i, n, use_caps) && ++c >= stop) return c;
  return c;
}

/* Spreads a gang over the fewest switches: the fullest switches first (ties
 * by switch index). pairs holds (candidates, switch) for every switch. A
 * gang takes few switches, so the next fullest is selected each time rather
 * than sorting hundreds of switches for every gang that needs two. */
static bool spread(const ty__idx *x, const ty__need *n, uint32_t want, bool use_caps,
                   uint32_t *pairs, uint32_t *picked) {
  uint32_t got = 0;
  while (got < want) {
    uint32_t best = UINT32_MAX;
    for (uint32_t s = 0; s < x->n_sw; s++)
      if (pairs[2 * s] > 0 && (best == UINT32_MAX || pairs[2 * s] > pairs[2 * best])) best = s;
    if (best == UINT32_MAX) break;
    take_from_switch(x, pairs[2 * best + 1], n, want, use_caps, picked, &got);
    pairs[2 * best] = 0; /* taken */
  }
  return got == want;
}

bool ty__idx_find(const ty__idx *x, const ty__need *n, uint32_t want, bool use_caps,
                  uint32_t *picked, uint32_t *out_have) {
  *out_have = 0;
  if (n->gpus >= x->nb) return false;
  uint32_t upper = ty__idx_count_ge(x, n->gpus);
  if (upper < want) {
    *out_have = count_fitting(x, n, use_caps, UINT32_MAX);
    return false;
  }
  /* Candidates per switch, counted once; then the tightest switch that may
   * hold the whole gang, trying a few in case CPUs or memory say no. */
  uint32_t *pairs = malloc((size_t)x->n_sw * 2 * sizeof(*pairs));
  if (!pairs) return false;
  for (uint32_t s = 0; s < x->n_sw; s++) {
    pairs[2 * s] = sw_count_ge(x, s, n->gpus);
    pairs[2 * s + 1] = s;
  }
  bool ok = false;
  for (int attempt = 0; attempt < 8 && !ok; attempt++) {
    uint32_t best = UINT32_MAX, best_c = UINT32_MAX;
    for (uint32_t s = 0; s < x->n_sw; s++) {
      uint32_t c = pairs[2 * s];
      if (c >= want && c < best_c && pairs[2 * s + 1] != UINT32_MAX) best = s, best_c = c;
    }
    if (best == UINT32_MAX) break;
    pairs[2 * best + 1] = UINT32_MAX; /* tried */
    uint32_t got = 0;
    ok = take_from_switch(x, best, n, want, use_caps, picked, &got);
  }
  if (!ok && x->n_sw > 1) {
    for (uint32_t s = 0; s < x->n_sw; s++)
      pairs[2 * s + 1] = s;
    ok = spread(x, n, want, use_caps, pairs, picked);
  }
  free(pairs);
  if (!ok) *out_have = count_fitting(x, n, use_caps, UINT32_MAX);
  return ok;
}
