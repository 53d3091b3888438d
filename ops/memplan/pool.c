/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pool: liveness computed once from the schedule (it does not depend
 * on sizes), buffers assigned at run time when the sizes are known, so one
 * plan serves every batch size. Buffers persist across runs; a run only
 * reassigns them, each value taking the buffer it had last run where it
 * can, so a run repeats the first one's assignment and steady-state
 * training allocates nothing (reassigned by best fit, small values came to
 * squat on the large buffers of the run before and the pool grew past its
 * first run's). A buffer that is too small for every request is grown in
 * place of allocating another, which bounds the buffer count by the peak
 * number of live values.
 *
 * Each value has one header (ty_tensor) owned by the pool whose data
 * points into its buffer; the executor never frees those.
 *
 * Views: the output of a Reshape, Flatten, Squeeze or Unsqueeze repeats
 * its data input's bytes, so it shares the input's buffer (the kernel's
 * copy then sees the same address and does nothing). A buffer therefore
 * counts the live values that refer to it and is free when none is left;
 * an elementwise step may write in place over a dying input only while
 * that input is the buffer's one user, so a view never sees its data
 * change. Kept values (graph outputs, watched values) are neither views
 * nor viewed: the caller may modify them after a run.
 */
#include "ops/memplan/memplan_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

#define POOL_ALIGN 64

typedef struct buf {
  void *data;
  size_t cap;
  int users; /* live values whose data is this buffer; 0 when free */
} buf;

struct ty__mpool {
  const ty__sched *s;
  bool simulate;
  size_t nv;
  int *def, *last_use; /* per value, in steps */
  int *vbuf;           /* per value: the buffer it holds a reference to, -1 */
  int *last_buf;       /* per value: the buffer it was given last run, -1 */
  ty_tensor *hdr;      /* per value */
  buf *bufs;
  size_t n_bufs, cap_bufs;
  ty__mpool_stats st;
};

static int liveness(ty__mpool *p) {
  const ty__sched *s = p->s;
  for (size_t v = 0; v < p->nv; v++)
    p->def[v] = p->last_use[v] = -1;
  for (size_t k = 0; k < s->n_steps; k++) {
    const ty__step *st = &s->steps[k];
    for (int i = 0; i < st->n_reads; i++)
      p->last_use[st->reads[i]] = (int)k;
    for (int i = 0; i < st->n_writes; i++)
      p->def[st->writes[i]] = (int)k;
  }
  return 0;
}

int ty__mpool_create(const ty_graph *g, const ty__sched *s, bool simulate, ty__mpool **out_pool) {
  ty__mpool *p = calloc(1, sizeof *p);
  if (!p) return TY_ENOMEM;
  p->s = s;
  p->simulate = simulate;
  p->nv = ty_graph_n_values(g);
  p->def = calloc(p->nv + 1, sizeof *p->def);
  p->last_use = calloc(p->nv + 1, sizeof *p->last_use);
  p->vbuf = calloc(p->nv + 1, sizeof *p->vbuf);
  p->last_buf = malloc((p->nv + 1) * sizeof *p->last_buf);
  p->hdr = calloc(p->nv + 1, sizeof *p->hdr);
  if (!p->def || !p->last_use || !p->vbuf || !p->last_buf || !p->hdr) {
    ty__mpool_destroy(p);
    return TY_ENOMEM;
  }
  for (size_t v = 0; v <= p->nv; v++)
    p->last_buf[v] = -1;
  liveness(p);
  ty__mpool_begin(p);
  *out_pool = p;
  return 0;
}

void ty__mpool_destroy(ty__mpool *p) {
  if (!p) return;
  for (size_t b = 0; b < p->n_bufs; b++)
    free(p->bufs[b].data);
  free(p->bufs);
  free(p->def);
  free(p->last_use);
  free(p->vbuf);
  free(p->last_buf);
  free(p->hdr);
  free(p);
}

void ty__mpool_begin(ty__mpool *p) {
  for (size_t b = 0; b < p->n_bufs; b++)
    p->bufs[b].users = 0;
  for (size_t v = 0; v < p->nv; v++)
    p->vbuf[v] = -1;
  p->st.naive_bytes = 0;
  p->st.n_values = p->st.n_inplace = p->st.n_views = 0;
}

ty_memplan_live ty__mpool_live(const ty__mpool *p, int id) {
  ty_memplan_live l = {-1, -1, false};
  if (id < 0 || (size_t)id >= p->nv) return l;
  l.def = p->def[id];
  l.last_use = p->last_use[id];
  l.kept = p->s->keep[id];
  return l;
}

/* Drops value v's reference to its buffer. */
static void release(ty__mpool *p, int v) {
  if (p->vbuf[v] < 0) return;
  p->bufs[p->vbuf[v]].users--;
  p->vbuf[v] = -1;
}

/* A read of step k that dies there and may donate its buffer: the
 * buffer's only user (no view of it is live), not yet donated. */
static int inplace_donor(const ty__mpool *p, size_t k, ty_dtype dt, size_t nbytes) {
  const ty__step *st = &p->s->steps[k];
  if (!st->elementwise) return -1;
  for (int i = 0; i < st->n_reads; i++) {
    int r = st->reads[i];
    if (p->vbuf[r] < 0 || p->last_use[r] != (int)k || p->s->keep[r]) continue;
    if (p->bufs[p->vbuf[r]].users != 1) continue;
    if (p->hdr[r].dtype == dt && p->hdr[r].nbytes == nbytes) return r;
  }
  return -1;
}

/* The value whose buffer step k's output id may share (see Views), else -1. */
static int view_source(const ty__mpool *p, size_t k, int id, ty_dtype dt, size_t nbytes) {
  int src = p->s->steps[k].view_of;
  if (src < 0 || (size_t)src >= p->nv || p->vbuf[src] < 0) return -1;
  if (p->s->keep[src] || p->s->keep[id]) return -1;
  return p->hdr[src].dtype == dt && p->hdr[src].nbytes == nbytes ? src : -1;
}

/* The buffer the value had last run when it is free and large enough (so a
 * run repeats the one before and allocates nothing); else best fit among
 * free buffers; else the largest free one (grown); else a new one. Returns
 * the buffer index or a negative error. */
static int pick_buffer(ty__mpool *p, int id, size_t need) {
  int last = p->last_buf[id];
  if (last >= 0 && p->bufs[last].users == 0 && p->bufs[last].cap >= need) return last;
  int best = -1, largest = -1;
  for (size_t b = 0; b < p->n_bufs; b++) {
    const buf *x = &p->bufs[b];
    if (x->users > 0) continue;
    if (x->cap >= need && (best < 0 || x->cap < p->bufs[best].cap)) best = (int)b;
    if (largest < 0 || x->cap > p->bufs[largest].cap) largest = (int)b;
  }
  if (best >= 0) return best;
  int b = largest;
  if (b < 0) {
    if (p->n_bufs == p->cap_bufs) {
      size_t cap = p->cap_bufs ? p->cap_bufs * 2 : 16;
      buf *nb = realloc(p->bufs, cap * sizeof *nb);
      if (!nb) return TY_ENOMEM;
      p->bufs = nb;
      p->cap_bufs = cap;
    }
    b = (int)p->n_bufs++;
    p->bufs[b] = (buf){NULL, 0, 0};
  }
  buf *x = &p->bufs[b];
  if (!p->simulate) {
    void *d = aligned_alloc(POOL_ALIGN, need);
    if (!d) return TY_ENOMEM;
    free(x->data);
    x->data = d;
  }
  p->st.bytes += need - x->cap;
  x->cap = need;
  return b;
}

int ty__mpool_alloc(ty__mpool *p, size_t k, int id, ty_dtype dt, const ty_shape *shape,
                    ty_tensor **out_t) {
  size_t es = ty_dtype_size(dt);
  int64_t n = ty_shape_numel(shape);
  if (es == 0 || n < 0 || id < 0 || (size_t)id >= p->nv) return TY_EINVAL;
  size_t nbytes = (size_t)n * es, need = (nbytes + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN;
  if (need == 0) need = POOL_ALIGN;
  release(p, id); /* written twice: the old buffer goes */
  int donor = inplace_donor(p, k, dt, nbytes), src = view_source(p, k, id, dt, nbytes), b;
  if (donor >= 0) {
    b = p->vbuf[donor];
    release(p, donor); /* its one reference passes to id */
    p->st.n_inplace++;
  } else if (src >= 0) {
    b = p->vbuf[src];
    p->st.n_views++;
  } else if ((b = pick_buffer(p, id, need)) < 0) {
    return b;
  } else if (!p->simulate && !p->s->steps[k].overwrites) {
    memset(p->bufs[b].data, 0, nbytes);
  }
  p->bufs[b].users++;
  p->vbuf[id] = p->last_buf[id] = b;
  p->hdr[id] = (ty_tensor){.dtype = dt, .shape = *shape, .data = p->bufs[b].data, .nbytes = nbytes};
  p->st.naive_bytes += need;
  p->st.n_values++;
  *out_t = &p->hdr[id];
  return 0;
}

void ty__mpool_end_step(ty__mpool *p, size_t k) {
  const ty__step *st = &p->s->steps[k];
  for (int i = 0; i < st->n_reads; i++) {
    int r = st->reads[i];
    if (p->last_use[r] == (int)k && !p->s->keep[r]) release(p, r);
  }
  /* A value written here that nobody reads and nobody keeps is dead now. */
  for (int i = 0; i < st->n_writes; i++) {
    int w = st->writes[i];
    if (p->last_use[w] < 0 && !p->s->keep[w]) release(p, w);
  }
}

void ty__mpool_get_stats(const ty__mpool *p, ty__mpool_stats *out) {
  *out = p->st;
  out->n_buffers = p->n_bufs;
}
