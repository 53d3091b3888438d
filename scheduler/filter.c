/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A job's node filter (sbatch's -w/--nodelist and -x/--exclude) for one
 * pass, and the node search of a job that has one.
 *
 * The filter marks each node 0 (excluded: never used), 1 (may be used) or 2
 * (required: every one is among the job's nodes). It is built once per pass
 * for the job being tried (a job is tried once a pass; reserve, preempt and
 * explain reuse it), only for jobs with a list: the common job's need has
 * no filter (NULL) and its search is ty__idx_find's, untouched. Names are
 * resolved through a sorted index of the node names, built on the first
 * filtered job of the pass.
 *
 * The search (ty__filter_find): every required node must fit, or the job
 * does not; the other nodes come from the non-excluded ones, by the index's
 * best fit (fewest free GPUs first), the required nodes' switch first.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

static int by_name(const void *a, const void *b) {
  return strcmp(((const ty__named *)a)->name, ((const ty__named *)b)->name);
}

ty__named *ty__names_index(const ty_sched_node *nodes, size_t n) {
  ty__named *x = malloc((n ? n : 1) * sizeof(*x));
  if (!x) return NULL;
  for (uint32_t i = 0; i < n; i++)
    x[i] = (ty__named){nodes[i].name ? nodes[i].name : "", i};
  qsort(x, n, sizeof(*x), by_name);
  return x;
}

int64_t ty__names_find(const ty__named *x, size_t n, const char *name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(x[mid].name, name);
    if (c == 0) return x[mid].i;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

static int64_t find_name(const ty__pass *p, const char *name) {
  return ty__names_find(p->by_name, p->in->n_nodes, name);
}

static int filter_init(ty__pass *p) {
  size_t nn = p->in->n_nodes ? p->in->n_nodes : 1;
  p->by_name = ty__names_index(p->in->nodes, p->in->n_nodes);
  p->filt.mark = malloc(nn);
  p->filt.req = malloc(nn * sizeof(*p->filt.req));
  return p->by_name && p->filt.mark && p->filt.req ? 0 : TY_ENOMEM;
}

int ty__job_need(ty__pass *p, size_t ji, ty__need *out) {
  const ty_sched_job *j = &p->in->jobs[ji];
  *out = ty__need_of(j);
  if (!ty__has_filter(j)) return 0;
  if (!p->by_name && filter_init(p) != 0) return TY_ENOMEM;
  out->filter = &p->filt;
  if (p->filt.ji == ji && p->filt.built) return 0;
  ty__filter *f = &p->filt;
  f->ji = ji, f->built = true, f->n_req = 0, f->n_excluded = 0, f->missing = NULL;
  memset(f->mark, 1, p->in->n_nodes);
  for (uint32_t k = 0; k < j->n_exc_nodes; k++) {
    int64_t i = find_name(p, j->exc_nodes[k]);
    if (i >= 0 && f->mark[i]) f->mark[i] = 0, f->n_excluded++;
  }
  for (uint32_t k = 0; k < j->n_req_nodes; k++) {
    int64_t i = find_name(p, j->req_nodes[k]);
    if (i < 0) {
      if (!f->missing) f->missing = j->req_nodes[k];
      continue;
    }
    if (f->mark[i] == 2) continue; /* named twice */
    f->mark[i] = 2;
    f->req[f->n_req++] = (uint32_t)i;
  }
  return 0;
}

/* Whether node i fits n in the index (the caps with use_caps). */
static bool fits_now(const ty__idx *x, uint32_t i, const ty__need *n, bool use_caps) {
  if (!x->ok[i]) return false;
  ty__res r = ty__idx_avail(x, i, use_caps);
  return ty__fits_on(&x->nodes[i], &r, n);
}

/* The allowed, not required nodes of switch s that fit, best fit first,
 * into picked[*got..want). */
static void take_switch(const ty__idx *x, uint32_t s, const ty__need *n, uint32_t want,
                        bool use_caps, uint32_t *picked, uint32_t *got) {
  for (uint32_t b = n->gpus; b < x->nb && *got < want; b++)
    for (int32_t i = x->head[(size_t)s * x->nb + b]; i >= 0 && *got < want; i = x->next[i])
      if (n->filter->mark[i] == 1 && fits_now(x, (uint32_t)i, n, use_caps))
        picked[(*got)++] = (uint32_t)i;
}

bool ty__filter_find(const ty__idx *x, const ty__need *n, uint32_t want, bool use_caps,
                     uint32_t *picked) {
  const ty__filter *f = n->filter;
  uint32_t got = 0;
  bool all_req = !f->missing;
  for (uint32_t k = 0; k < f->n_req; k++) {
    if (fits_now(x, f->req[k], n, use_caps))
      picked[got++] = f->req[k];
    else
      all_req = false;
  }
  if (n->gpus < x->nb) {
    uint32_t first_sw = got ? x->sw[picked[0]] : 0;
    if (got < want && all_req) take_switch(x, first_sw, n, want, use_caps, picked, &got);
    for (uint32_t s = 0; s < x->n_sw && got < want && all_req; s++)
      if (s != first_sw) take_switch(x, s, n, want, use_caps, picked, &got);
  }
  return all_req && got >= want;
}

uint32_t ty__filter_count(const ty__idx *x, const ty__need *n, bool use_caps) {
  uint32_t have = 0;
  for (uint32_t i = 0; i < x->n; i++)
    have += n->filter->mark[i] != 0 && fits_now(x, i, n, use_caps);
  return have;
}
