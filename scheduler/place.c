/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node index and topology-aware gang placement.
 *
 * Invariants: every schedulable node sits in exactly one list, the one of
 * its switch group and its current free GPU count; counts match the lists.
 * Unschedulable nodes sit in no list. The per-switch counts are kept as
 * "nodes with at least g free GPUs", laid out switch after switch for each
 * g, so a search reads one row to rank every switch.
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
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/* Adds d to the counts of node i's switch for every g up to its bucket. */
static void count_node(ty__idx *x, uint32_t i, uint32_t d) {
  for (uint32_t g = 0; g <= x->bucket[i]; g++)
    x->ge[(size_t)g * x->n_sw + x->sw[i]] += d;
  x->gcnt[x->bucket[i]] += d;
}

static void unlink_node(ty__idx *x, uint32_t i) {
  size_t b = (size_t)x->sw[i] * x->nb + x->bucket[i];
  if (x->prev[i] >= 0)
    x->next[x->prev[i]] = x->next[i];
  else
    x->head[b] = x->next[i];
  if (x->next[i] >= 0) x->prev[x->next[i]] = x->prev[i];
  count_node(x, i, (uint32_t)-1);
}

/* Files node i under its switch and free GPU count; the counts are the
 * caller's (count_node, or link_all's). */
static void link_only(ty__idx *x, uint32_t i) {
  uint32_t g = ty__popcount(x->free[i].gpus);
  if (g >= x->nb) g = x->nb - 1;
  x->bucket[i] = (uint8_t)g;
  size_t b = (size_t)x->sw[i] * x->nb + g;
  x->prev[i] = -1;
  x->next[i] = x->head[b];
  if (x->head[b] >= 0) x->prev[x->head[b]] = (int32_t)i;
  x->head[b] = (int32_t)i;
}

static void link_node(ty__idx *x, uint32_t i) {
  link_only(x, i);
  count_node(x, i, 1);
}

/* Files every schedulable node (in reverse, so each list starts in input
 * order) and counts it under its bucket and switch in the same walk; then
 * gcnt sums each bucket's row, and ge, per switch, is summed from the top
 * bucket down ("at least g"). */
static void link_all(ty__idx *x) {
  uint32_t *ge = x->ge, n_sw = x->n_sw;
  for (size_t k = x->n; k-- > 0;) {
    if (x->sw[k] == TY_SCHED_NO_SWITCH) x->sw[k] = n_sw - 1;
    if (!x->ok[k]) continue;
    link_only(x, (uint32_t)k);
    ge[(size_t)x->bucket[k] * n_sw + x->sw[k]]++;
  }
  for (uint32_t g = 0; g < x->nb; g++)
    for (uint32_t s = 0; s < n_sw; s++)
      x->gcnt[g] += ge[(size_t)g * n_sw + s];
  for (uint32_t g = x->nb - 1; g-- > 0;)
    for (uint32_t s = 0; s < n_sw; s++)
      ge[(size_t)g * n_sw + s] += ge[(size_t)(g + 1) * n_sw + s];
}

/* Copies what the pass reads of each node into x's per-node arrays and
 * totals (the only pass over the large node structs) and sizes x: buckets
 * and switches. */
static void idx_copy_nodes(ty__idx *x, const ty_sched_node *nodes, size_t n) {
  uint32_t max_g = 0, max_sw = 0;
  ty__sizes *z = &x->sizes;
  for (size_t k = 0; k < n; k++) {
    const ty_sched_node *nd = &nodes[k];
    uint32_t g = nd->gpus_total > 64 ? 64 : nd->gpus_total;
    if (g > max_g) max_g = g;
    if (nd->switch_id != TY_SCHED_NO_SWITCH && nd->switch_id > max_sw) max_sw = nd->switch_id;
    x->free[k] =
        (ty__res){nd->cpus_free, nd->gpus_free & ty__gpu_mask(nd->gpus_total), nd->mem_free};
    x->sw[k] = nd->switch_id;
    x->ok[k] = nd->schedulable;
    x->gpus_total[k] = nd->gpus_total;
    x->n_up += nd->schedulable;
    z->gpus += nd->gpus_total;
    z->cpus += nd->cpus_total;
    if (nd->gpus_total > z->big_gpus) z->big_gpus = nd->gpus_total;
    if (nd->cpus_total > z->big_cpus) z->big_cpus = nd->cpus_total;
  }
  x->nb = max_g + 1;
  x->n_sw = max_sw + 2; /* the last group holds nodes of no switch */
}

int ty__idx_init(ty__idx *x, const ty_sched_node *nodes, size_t n, ty__arena *arena) {
  memset(x, 0, sizeof(*x));
  x->nodes = nodes;
  x->n = n;
  size_t m = n ? n : 1;
  /* Written for every node; links only for the nodes linked. */
  x->free = ty__arena_alloc(arena, m * sizeof(*x->free));
  x->ok = ty__arena_alloc(arena, m * sizeof(*x->ok));
  x->sw = ty__arena_alloc(arena, m * sizeof(*x->sw));
  x->next = ty__arena_alloc(arena, m * sizeof(*x->next));
  x->prev = ty__arena_alloc(arena, m * sizeof(*x->prev));
  x->bucket = ty__arena_alloc(arena, m * sizeof(*x->bucket));
  x->gpus_total = ty__arena_alloc(arena, m * sizeof(*x->gpus_total));
  if (!x->free || !x->ok || !x->sw || !x->next || !x->prev || !x->bucket || !x->gpus_total) {
    ty__idx_close(x);
    return TY_ENOMEM;
  }
  idx_copy_nodes(x, nodes, n);
  size_t hb = (size_t)x->n_sw * x->nb;
  x->head = ty__arena_alloc(arena, hb * sizeof(*x->head));
  x->ge = ty__arena_zalloc(arena, hb * sizeof(*x->ge));
  x->gcnt = ty__arena_zalloc(arena, x->nb * sizeof(*x->gcnt));
  if (!x->head || !x->ge || !x->gcnt) {
    ty__idx_close(x);
    return TY_ENOMEM;
  }
  for (size_t b = 0; b < hb; b++)
    x->head[b] = -1;
  link_all(x);
  return 0;
}

void ty__idx_close(ty__idx *x) {
  free(x->cap);
  free(x->capped);
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

ty__res ty__idx_avail(const ty__idx *x, uint32_t i, bool use_caps) {
  ty__res r = x->free[i];
  const ty__cap *c = use_caps ? ty__idx_cap(x, i) : NULL;
  if (c) {
    const ty__res *s = &c->spare;
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

uint32_t ty__idx_count_fitting(const ty__idx *x, const ty__need *n, bool use_caps) {
  uint32_t c = 0;
  for (uint32_t b = n->gpus; b < x->nb; b++)
    for (uint32_t s = 0; s < x->n_sw; s++)
      for (int32_t i = x->head[(size_t)s * x->nb + b]; i >= 0; i = x->next[i])
        c += node_fits(x, (uint32_t)i, n, use_caps);
  return c;
}

/* The smallest count of at least want in c (UINT32_MAX if none), and the
 * first switch with a given count: they run for every search, so with SSE2
 * (every x86-64) four switches at a time. SSE2 compares signed 32-bit
 * lanes only: counts are biased by 2^31 so that order is unsigned order. */
#if defined(__SSE2__)
static uint32_t tightest_count(const uint32_t *c, uint32_t n, uint32_t want) {
  const __m128i bias = _mm_set1_epi32(INT32_MIN), none = _mm_set1_epi32(INT32_MAX);
  const __m128i w = _mm_set1_epi32((int32_t)(want ^ 0x80000000u));
  __m128i m = none;
  uint32_t s = 0;
  for (; s + 4 <= n; s += 4) {
    __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(c + s)), bias);
    __m128i below = _mm_cmpgt_epi32(w, v); /* too few: counts as none */
    v = _mm_or_si128(_mm_andnot_si128(below, v), _mm_and_si128(below, none));
    __m128i less = _mm_cmpgt_epi32(m, v);
    m = _mm_or_si128(_mm_and_si128(less, v), _mm_andnot_si128(less, m));
  }
  uint32_t lane[4], best = UINT32_MAX;
  _mm_storeu_si128((__m128i *)(void *)lane, m);
  for (int k = 0; k < 4; k++)
    if ((lane[k] ^ 0x80000000u) < best) best = lane[k] ^ 0x80000000u;
  for (; s < n; s++)
    if (c[s] >= want && c[s] < best) best = c[s];
  return best;
}

static uint32_t first_with_count(const uint32_t *c, uint32_t n, uint32_t k) {
  const __m128i key = _mm_set1_epi32((int32_t)k);
  uint32_t s = 0;
  for (; s + 4 <= n; s += 4) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(c + s));
    int hit = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, key)));
    if (hit) return s + (uint32_t)__builtin_ctz((unsigned)hit);
  }
  for (; s < n; s++)
    if (c[s] == k) return s;
  return UINT32_MAX;
}
#else
static uint32_t tightest_count(const uint32_t *c, uint32_t n, uint32_t want) {
  uint32_t best = UINT32_MAX;
  for (uint32_t s = 0; s < n; s++)
    if (c[s] >= want && c[s] < best) best = c[s];
  return best;
}

static uint32_t first_with_count(const uint32_t *c, uint32_t n, uint32_t k) {
  for (uint32_t s = 0; s < n; s++)
    if (c[s] == k) return s;
  return UINT32_MAX;
}
#endif

/* The switches that may hold want nodes (c: candidates per switch), in the
 * order (count, index), tightest first: the one after prev, or the first
 * when prev is UINT32_MAX; UINT32_MAX after the last. */
static uint32_t next_switch(const ty__idx *x, const uint32_t *c, uint32_t want, uint32_t prev) {
  if (prev != UINT32_MAX) {
    uint32_t s = first_with_count(c + prev + 1, x->n_sw - prev - 1, c[prev]);
    if (s != UINT32_MAX) return prev + 1 + s;
    want = c[prev] + 1; /* c[prev] < UINT32_MAX: at most the nodes */
  }
  uint32_t m = tightest_count(c, x->n_sw, want);
  return m == UINT32_MAX ? UINT32_MAX : first_with_count(c, x->n_sw, m);
}

/* Spreads a gang over the fewest switches: the fullest switches first (c:
 * candidates per switch), ties by switch index. The switches are filed by
 * count (a list per count, each in index order), so a gang that fails
 * after trying every switch costs one pass over them, not one per switch. */
static bool spread(const ty__idx *x, const ty__need *n, uint32_t want, bool use_caps,
                   const uint32_t *c, uint32_t *picked) {
  uint32_t maxc = 0;
  for (uint32_t s = 0; s < x->n_sw; s++)
    if (c[s] > maxc) maxc = c[s];
  int32_t *head = malloc(((size_t)maxc + 1 + x->n_sw) * sizeof(*head));
  if (!head) return false;
  int32_t *next = head + maxc + 1;
  for (uint32_t k = 0; k <= maxc; k++)
    head[k] = -1;
  for (uint32_t s = x->n_sw; s-- > 0;)
    if (c[s] > 0) next[s] = head[c[s]], head[c[s]] = (int32_t)s;
  uint32_t got = 0;
  for (uint32_t k = maxc; k > 0 && got < want; k--)
    for (int32_t s = head[k]; s >= 0 && got < want; s = next[s])
      take_from_switch(x, (uint32_t)s, n, want, use_caps, picked, &got);
  free(head);
  return got == want;
}

/* The reserved nodes that the counts (ge) hold as candidates for n but
 * that their caps keep from fitting it: a job that outlasts the
 * reservation cannot count on them. */
static uint32_t capped_out(const ty__idx *x, const ty__need *n) {
  uint32_t lost = 0;
  for (uint32_t k = 0; k < x->n_cap; k++) {
    uint32_t i = x->cap[k].node;
    lost += x->ok[i] && x->bucket[i] >= n->gpus && !node_fits(x, i, n, true);
  }
  return lost;
}

bool ty__idx_find(const ty__idx *x, const ty__need *n, uint32_t want, bool use_caps,
                  uint32_t *picked) {
  if (n->gpus >= x->nb) return false;
  /* Refused from the counts when too few nodes have the GPUs: every node
   * that fits is among them, less the capped ones that do not. The
   * searches below would fail anyway, after reading every candidate. */
  uint32_t cand = ty__idx_count_ge(x, n->gpus);
  if (cand < want || (use_caps && cand - capped_out(x, n) < want)) return false;
  /* The tightest switch that may hold the whole gang, trying a few in case
   * CPUs or memory say no; then the gang spread over switches. */
  const uint32_t *c = &x->ge[(size_t)n->gpus * x->n_sw];
  bool ok = false;
  uint32_t sw = UINT32_MAX;
  for (int attempt = 0; attempt < 8 && !ok; attempt++) {
    if ((sw = next_switch(x, c, want, sw)) == UINT32_MAX) break;
    uint32_t got = 0;
    ok = take_from_switch(x, sw, n, want, use_caps, picked, &got);
  }
  if (!ok && x->n_sw > 1) ok = spread(x, n, want, use_caps, c, picked);
  return ok;
}
