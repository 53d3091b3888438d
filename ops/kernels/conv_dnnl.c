/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conv (1-D to 3-D, one group) forward, backward-data and
 * backward-weights through oneDNN (Debian's libdnnl), the library
 * PyTorch's CPU convolutions use: its direct AVX2/AVX-512 kernels run on
 * blocked layouts (nChw16c), which beat the per-image im2col GEMMs of
 * conv.c by 2 to 3x on the small planes of a CNN. Built only when meson
 * finds the library; conv.c and the backward kernels fall back to im2col
 * whenever a call here answers TY_EUNSUPPORTED.
 *
 * Threads: the batch is cut into blocks of TY__DNNL_BLOCK images, a
 * partition fixed by the batch size alone, and ops/workers.c's threads
 * take whole blocks; oneDNN runs each block on the calling thread alone
 * (its OpenMP threads set to one around every call), so a block's result
 * does not depend on the thread count, and the filter gradient's
 * per-block partials are added in block order by the caller.
 *
 * Each call reorders the plain NCHW/OIHW (NCDHW/OIDHW) tensors into the layouts the
 * primitive chose and back, in per-thread scratch. Primitives, with the
 * reorders they need, are cached for the process's life keyed by kind
 * and geometry (a training step asks for the same few every time); the
 * cache owns them.
 */
#include "ops/exec.h"
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { CD_ARGS = 4, CD_ALIGN = 64 };

/* One primitive of one shape, with what a call needs around it. */
typedef struct cd_prim {
  ty__conv_dnnl_kind kind;
  ty__conv_geom g;
  int64_t n, m;
  bool bias;
  dnnl_primitive_t op;
  int n_args;
  int arg[CD_ARGS];  /* DNNL_ARG_* */
  bool out[CD_ARGS]; /* written by the primitive (reordered back) */
  dnnl_memory_desc_t user[CD_ARGS], inner[CD_ARGS];
  dnnl_primitive_t reorder[CD_ARGS]; /* user <-> inner; NULL when they are the same */
  size_t inner_bytes[CD_ARGS];       /* rounded to CD_ALIGN; 0 without a reorder */
  dnnl_memory_desc_t scratch_md;
  size_t scratch_bytes;
  struct cd_prim *next;
} cd_prim;

static pthread_once_t cd_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t cd_engine;
static pthread_mutex_t cd_mu = PTHREAD_MUTEX_INITIALIZER;
static cd_prim *cd_cache; /* guarded by cd_mu; entries are never freed */
static atomic_bool cd_off;
static atomic_llong cd_calls; /* convs run through oneDNN, for the tests */

void ty__conv_dnnl_enable(bool on) {
  atomic_store(&cd_off, !on);
}

int64_t ty__conv_dnnl_calls(void) {
  return atomic_load(&cd_calls);
}

static void cd_init(void) {
  if (dnnl_engine_create(&cd_engine, dnnl_cpu, 0) != dnnl_success) cd_engine = NULL;
}

static size_t round_up(size_t n) {
  return (n + CD_ALIGN - 1) / CD_ALIGN * CD_ALIGN;
}

/* OpenMP threads of the calling thread set to one for oneDNN; returns the
 * old setting for cd_threads_restore. */
static int cd_threads_one(void) {
  int old = omp_get_max_threads();
  if (old != 1) omp_set_num_threads(1);
  return old;
}

static void cd_threads_restore(int old) {
  if (old != 1) omp_set_num_threads(old);
}

static int md_plain(dnnl_memory_desc_t *md, int nd, const int64_t *d, dnnl_format_tag_t tag) {
  dnnl_dims_t dims;
  for (int i = 0; i < nd; i++)
    dims[i] = d[i];
  return dnnl_memory_desc_init_by_tag(md, nd, dims, dnnl_f32, tag) == dnnl_success
             ? 0
             : TY_EUNSUPPORTED;
}

/* True for a 3-D conv whose depth is not trivially one: 5-D tensors. */
static bool cd_3d(const ty__conv_geom *g) {
  return g->id != 1 || g->od != 1 || g->kd != 1 || g->pd != 0;
}

/* The descriptors of x, w, y and the bias of p: 4-D (NCHW, OIHW) for 1-D
 * and 2-D convs, 5-D (NCDHW, OIDHW) for 3-D ones; in the plain layouts,
 * or with any, in those oneDNN chooses. */
static int cd_mds(const cd_prim *p, bool any, dnnl_memory_desc_t *x, dnnl_memory_desc_t *w,
                  dnnl_memory_desc_t *y, dnnl_memory_desc_t *b) {
  const ty__conv_geom *g = &p->g;
  bool d3 = cd_3d(g);
  int nd = d3 ? 5 : 4;
  int64_t xd[5] = {p->n, g->c, g->id, g->h, g->w}, wd[5] = {p->m, g->c, g->kd, g->kh, g->kw},
          yd[5] = {p->n, p->m, g->od, g->oh, g->ow};
  if (!d3)
    for (int i = 2; i < 4; i++)
      xd[i] = xd[i + 1], wd[i] = wd[i + 1], yd[i] = yd[i + 1];
  dnnl_format_tag_t xt = any  ? dnnl_format_tag_any
                         : d3 ? dnnl_ncdhw
                              : dnnl_nchw,
                    wt = any  ? dnnl_format_tag_any
                         : d3 ? dnnl_oidhw
                              : dnnl_oihw;
  return md_plain(x, nd, xd, xt) || md_plain(w, nd, wd, wt) || md_plain(y, nd, yd, xt) ||
                 md_plain(b, 1, (int64_t[]){p->m}, dnnl_a)
             ? TY_EUNSUPPORTED
             : 0;
}

/* The op descriptor of kind for p's shape; the tensors' layouts left to
 * oneDNN (format "any"). */
static int cd_desc(const cd_prim *p, ty__conv_dnnl_kind kind, dnnl_convolution_desc_t *d) {
  const ty__conv_geom *g = &p->g;
  dnnl_memory_desc_t x, w, y, b;
  int64_t ked = (g->kd - 1) * g->dd + 1, keh = (g->kh - 1) * g->dh + 1,
          kew = (g->kw - 1) * g->dw + 1;
  dnnl_dims_t strides = {g->sd, g->sh, g->sw}, dil = {g->dd - 1, g->dh - 1, g->dw - 1},
              pl = {g->pd, g->ph, g->pw},
              pr = {(g->od - 1) * g->sd + ked - g->id - g->pd,
                    (g->oh - 1) * g->sh + keh - g->h - g->ph,
                    (g->ow - 1) * g->sw + kew - g->w - g->pw};
  if (!cd_3d(g)) /* 2-D: drop the depth */
    for (int i = 0; i < 2; i++)
      strides[i] = strides[i + 1], dil[i] = dil[i + 1], pl[i] = pl[i + 1], pr[i] = pr[i + 1];
  if (cd_mds(p, true, &x, &w, &y, &b)) return TY_EUNSUPPORTED;
  dnnl_status_t s;
  if (kind == TY__DNNL_FWD)
    s = dnnl_dilated_convolution_forward_desc_init(d, dnnl_forward_training,
                                                   dnnl_convolution_direct, &x, &w,
                                                   p->bias ? &b : NULL, &y, strides, dil, pl, pr);
  else if (kind == TY__DNNL_BWD_DATA)
    s = dnnl_dilated_convolution_backward_data_desc_init(d, dnnl_convolution_direct, &x, &w, &y,
                                                         strides, dil, pl, pr);
  else
    s = dnnl_dilated_convolution_backward_weights_desc_init(d, dnnl_convolution_direct, &x, &w,
                                                            NULL, &y, strides, dil, pl, pr);
  return s == dnnl_success ? 0 : TY_EUNSUPPORTED;
}

/* Argument i of p: its DNNL_ARG_*, the query of its chosen layout, its
 * plain layout and whether the primitive writes it. */
static int cd_arg(cd_prim *p, int i, int arg, dnnl_query_t q, const dnnl_memory_desc_t *user,
                  bool out, const_dnnl_primitive_desc_t pd) {
  /* The bias is the forward's second weights argument. */
  const dnnl_memory_desc_t *inner = dnnl_primitive_desc_query_md(pd, q, arg == DNNL_ARG_BIAS);
  if (!inner) return TY_EUNSUPPORTED;
  p->arg[i] = arg;
  p->out[i] = out;
  p->user[i] = *user;
  p->inner[i] = *inner;
  if (dnnl_memory_desc_equal(user, inner)) return 0;
  const dnnl_memory_desc_t *from = out ? inner : user, *to = out ? user : inner;
  dnnl_primitive_desc_t rpd;
  if (dnnl_reorder_primitive_desc_create(&rpd, from, cd_engine, to, cd_engine, NULL) !=
      dnnl_success)
    return TY_EUNSUPPORTED;
  dnnl_status_t s = dnnl_primitive_create(&p->reorder[i], rpd);
  dnnl_primitive_desc_destroy(rpd);
  if (s != dnnl_success) return TY_EUNSUPPORTED;
  p->inner_bytes[i] = round_up(dnnl_memory_desc_get_size(inner));
  return 0;
}

static void cd_prim_free(cd_prim *p) {
  for (int i = 0; i < CD_ARGS; i++)
    if (p->reorder[i]) dnnl_primitive_destroy(p->reorder[i]);
  if (p->op) dnnl_primitive_destroy(p->op);
  free(p);
}

/* The primitive descriptor of kind with a user-managed scratchpad, and,
 * for the backward kinds, the forward one oneDNN wants as a hint. */
static int cd_pd(cd_prim *p, dnnl_primitive_desc_t *pd) {
  dnnl_convolution_desc_t d, fd;
  dnnl_primitive_desc_t hint = NULL;
  dnnl_primitive_attr_t attr;
  int rc = cd_desc(p, p->kind, &d);
  if (rc != 0) return rc;
  if (p->kind != TY__DNNL_FWD) {
    if ((rc = cd_desc(p, TY__DNNL_FWD, &fd)) != 0) return rc;
    if (dnnl_primitive_desc_create(&hint, &fd, NULL, cd_engine, NULL) != dnnl_success)
      return TY_EUNSUPPORTED;
  }
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) rc = TY_ENOMEM;
  if (rc == 0 &&
      dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success)
    rc = TY_EUNSUPPORTED;
  if (rc == 0 && dnnl_primitive_desc_create(pd, &d, attr, cd_engine, hint) != dnnl_success)
    rc = TY_EUNSUPPORTED;
  if (attr) dnnl_primitive_attr_destroy(attr);
  if (hint) dnnl_primitive_desc_destroy(hint);
  return rc;
}

/* The arguments of p's kind, in the order ty__conv_dnnl_run takes them. */
static int cd_args(cd_prim *p, const_dnnl_primitive_desc_t pd) {
  dnnl_memory_desc_t x, w, y, b;
  if (cd_mds(p, false, &x, &w, &y, &b)) return TY_EUNSUPPORTED;
  int rc;
  switch (p->kind) {
  case TY__DNNL_FWD:
    p->n_args = p->bias ? 4 : 3;
    if ((rc = cd_arg(p, 0, DNNL_ARG_SRC, dnnl_query_src_md, &x, false, pd)) ||
        (rc = cd_arg(p, 1, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, &w, false, pd)) ||
        (rc = cd_arg(p, 2, DNNL_ARG_DST, dnnl_query_dst_md, &y, true, pd)))
      return rc;
    return p->bias ? cd_arg(p, 3, DNNL_ARG_BIAS, dnnl_query_weights_md, &b, false, pd) : 0;
  case TY__DNNL_BWD_DATA:
    p->n_args = 3;
    if ((rc = cd_arg(p, 0, DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, &y, false, pd)) ||
        (rc = cd_arg(p, 1, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, &w, false, pd)))
      return rc;
    return cd_arg(p, 2, DNNL_ARG_DIFF_SRC, dnnl_query_diff_src_md, &x, true, pd);
  default:
    p->n_args = 3;
    if ((rc = cd_arg(p, 0, DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, &y, false, pd)) ||
        (rc = cd_arg(p, 1, DNNL_ARG_SRC, dnnl_query_src_md, &x, false, pd)))
      return rc;
    return cd_arg(p, 2, DNNL_ARG_DIFF_WEIGHTS, dnnl_query_diff_weights_md, &w, true, pd);
  }
}

/* A new cache entry for (kind, g, n, m, bias); called with OpenMP at one
 * thread, so the primitive is built for one. */
static int cd_build(cd_prim *key, cd_prim **out) {
  cd_prim *p = calloc(1, sizeof *p);
  if (!p) return TY_ENOMEM;
  p->kind = key->kind;
  p->g = key->g;
  p->n = key->n;
  p->m = key->m;
  p->bias = key->bias;
  dnnl_primitive_desc_t pd;
  int rc = cd_pd(p, &pd);
  if (rc != 0) {
    free(p);
    return rc;
  }
  if ((rc = cd_args(p, pd)) == 0) {
    const dnnl_memory_desc_t *s = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (s) p->scratch_md = *s;
    p->scratch_bytes = s ? round_up(dnnl_memory_desc_get_size(s)) : 0;
    if (dnnl_primitive_create(&p->op, pd) != dnnl_success) rc = TY_EUNSUPPORTED;
  }
  dnnl_primitive_desc_destroy(pd);
  if (rc != 0) {
    cd_prim_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

static bool cd_same(const cd_prim *a, const cd_prim *b) {
  return a->kind == b->kind && a->n == b->n && a->m == b->m && a->bias == b->bias &&
         memcmp(&a->g, &b->g, sizeof a->g) == 0;
}

/* The cached primitive for key, built on first use. */
static int cd_get(cd_prim *key, cd_prim **out) {
  pthread_mutex_lock(&cd_mu);
  cd_prim *p = cd_cache;
  while (p && !cd_same(p, key))
    p = p->next;
  int rc = 0;
  if (!p && (rc = cd_build(key, &p)) == 0) {
    p->next = cd_cache;
    cd_cache = p;
  }
  pthread_mutex_unlock(&cd_mu);
  *out = p;
  return rc;
}

/* Scratch one call of p needs: the reordered tensors and the scratchpad. */
static size_t cd_scratch(const cd_prim *p) {
  size_t n = p->scratch_bytes;
  for (int i = 0; i < p->n_args; i++)
    n += p->inner_bytes[i];
  return n;
}

static int mem(dnnl_memory_t *m, const dnnl_memory_desc_t *md, void *data) {
  return dnnl_memory_create(m, md, cd_engine, data) == dnnl_success ? 0 : TY_ENOMEM;
}

static int reorder(dnnl_primitive_t r, dnnl_stream_t st, dnnl_memory_t from, dnnl_memory_t to) {
  dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  return dnnl_primitive_execute(r, st, 2, a) == dnnl_success ? 0 : TY_EINTERNAL;
}

/* One call of p on the plain tensors data[] (the primitive's argument
 * order; wpre, when not NULL, the weights already in p's layout), scratch holding cd_scratch(p)
 * bytes, on the calling thread's stream st (a CPU stream runs each call to its end before
 * returning). */
static int cd_exec(const cd_prim *p, dnnl_stream_t st, void *const *data, void *wpre,
                   char *scratch) {
  dnnl_memory_t user[CD_ARGS] = {0}, inner[CD_ARGS] = {0}, pad = NULL;
  dnnl_exec_arg_t a[CD_ARGS + 1];
  int rc = 0, n = p->n_args;
  for (int i = 0; rc == 0 && i < n; i++) {
    if ((rc = mem(&user[i], &p->user[i], data[i])) != 0) break;
    if (i == 1 && wpre) { /* the weights, reordered once for every block */
      rc = mem(&inner[i], &p->inner[i], wpre);
    } else if (p->reorder[i]) {
      rc = mem(&inner[i], &p->inner[i], scratch);
      scratch += p->inner_bytes[i];
      if (rc == 0 && !p->out[i]) rc = reorder(p->reorder[i], st, user[i], inner[i]);
    }
    a[i] = (dnnl_exec_arg_t){p->arg[i], inner[i] ? inner[i] : user[i]};
  }
  if (rc == 0 && p->scratch_bytes) {
    rc = mem(&pad, &p->scratch_md, scratch);
    a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
  }
  if (rc == 0 && dnnl_primitive_execute(p->op, st, n, a) != dnnl_success) rc = TY_EINTERNAL;
  for (int i = 0; rc == 0 && i < p->n_args; i++)
    if (p->reorder[i] && p->out[i]) rc = reorder(p->reorder[i], st, inner[i], user[i]);
  for (int i = 0; i < p->n_args; i++) {
    if (user[i]) dnnl_memory_destroy(user[i]);
    if (inner[i]) dnnl_memory_destroy(inner[i]);
  }
  if (pad) dnnl_memory_destroy(pad);
  return rc;
}

/* A job: blocks of images, each one call of the full or the tail
 * primitive. */
typedef struct cd_job {
  ty__conv_dnnl_call c;
  cd_prim *full, *tail;
  void *wpre_full, *wpre_tail; /* the weights in full's and tail's layouts, or NULL */
  char *scratch;               /* one slice per thread */
  size_t slice;
  atomic_int rc;
} cd_job;

static void cd_blocks(void *arg, int64_t begin, int64_t end, int slot) {
  cd_job *j = arg;
  const ty__conv_dnnl_call *c = &j->c;
  const ty__conv_geom *g = &c->g;
  int64_t xs = ty__conv_isz(g), ys = c->m * ty__conv_osz(g), ws = c->m * ty__conv_kdim(g);
  dnnl_stream_t st;
  if (dnnl_stream_create(&st, cd_engine, dnnl_stream_default_flags) != dnnl_success) {
    atomic_store(&j->rc, TY_ENOMEM);
    return;
  }
  int old = cd_threads_one();
  for (int64_t blk = begin; blk < end; blk++) {
    int64_t b0 = blk * TY__DNNL_BLOCK;
    const cd_prim *p = b0 + TY__DNNL_BLOCK <= c->batch ? j->full : j->tail;
    void *x = (void *)(c->x + b0 * xs), *y = (void *)(c->y + b0 * ys), *w = (void *)c->w;
    void *data[CD_ARGS]; /* oneDNN takes every tensor as void *; it writes only outputs */
    if (c->kind == TY__DNNL_FWD) {
      data[0] = x, data[1] = w, data[2] = c->out + b0 * ys, data[3] = (void *)c->bias;
    } else if (c->kind == TY__DNNL_BWD_DATA) {
      data[0] = y, data[1] = w, data[2] = c->out + b0 * xs;
    } else {
      data[0] = y, data[1] = x, data[2] = c->out + blk * ws; /* this block's partial */
    }
    void *wpre = p == j->full ? j->wpre_full : j->wpre_tail;
    int rc = cd_exec(p, st, data, wpre, j->scratch + (size_t)slot * j->slice);
    if (rc != 0) atomic_store(&j->rc, rc);
  }
  cd_threads_restore(old);
  dnnl_stream_destroy(st);
}

/* The full and tail primitives of c (tail NULL when the batch divides). */
static int cd_prims(const ty__conv_dnnl_call *c, cd_job *j) {
  cd_prim key = {.kind = c->kind, .g = c->g, .m = c->m, .bias = c->bias != NULL};
  int64_t full = c->batch < TY__DNNL_BLOCK ? c->batch : TY__DNNL_BLOCK;
  int64_t rest = c->batch % TY__DNNL_BLOCK;
  key.n = full;
  int rc = cd_get(&key, &j->full);
  if (rc == 0 && rest != 0 && c->batch > TY__DNNL_BLOCK) {
    key.n = rest;
    rc = cd_get(&key, &j->tail);
  } else {
    j->tail = j->full;
  }
  return rc;
}

/* The weights reordered once into p's layout (*out NULL when p takes them
 * as they are, or when they are an output), on the caller. */
static int cd_pre_weights(const cd_prim *p, const float *w, void **out) {
  *out = NULL;
  if (p->kind == TY__DNNL_BWD_WEIGHTS || !p->reorder[1]) return 0;
  if (!(*out = aligned_alloc(CD_ALIGN, p->inner_bytes[1]))) return TY_ENOMEM;
  dnnl_stream_t st;
  dnnl_memory_t user = NULL, inner = NULL;
  if (dnnl_stream_create(&st, cd_engine, dnnl_stream_default_flags) != dnnl_success)
    return TY_ENOMEM;
  int rc = mem(&user, &p->user[1], (void *)w);
  if (rc == 0) rc = mem(&inner, &p->inner[1], *out);
  if (rc == 0) rc = reorder(p->reorder[1], st, user, inner);
  if (user) dnnl_memory_destroy(user);
  if (inner) dnnl_memory_destroy(inner);
  dnnl_stream_destroy(st);
  return rc;
}

/* The primitives, the pre-reordered weights and the scratch of j. */
static int cd_prepare(cd_job *j, ty_workers *w) {
  int rc = cd_prims(&j->c, j);
  if (rc == 0) rc = cd_pre_weights(j->full, j->c.w, &j->wpre_full);
  if (rc == 0 && j->tail != j->full) rc = cd_pre_weights(j->tail, j->c.w, &j->wpre_tail);
  if (rc != 0) return rc;
  size_t a = cd_scratch(j->full), b = cd_scratch(j->tail), total;
  j->slice = a > b ? a : b;
  if (ty_mul_overflow(j->slice, (size_t)ty_workers_count(w), &total)) return TY_ETOOBIG;
  if (total && !(j->scratch = aligned_alloc(CD_ALIGN, total))) return TY_ENOMEM;
  return 0;
}

int ty__conv_dnnl_run(const ty__conv_dnnl_call *c, ty_workers *w) {
  if (atomic_load(&cd_off) || c->batch <= 0) return TY_EUNSUPPORTED;
  pthread_once(&cd_once, cd_init);
  if (!cd_engine) return TY_EUNSUPPORTED;
  cd_job j = {.c = *c};
  int old = cd_threads_one();
  int rc = cd_prepare(&j, w);
  cd_threads_restore(old);
  atomic_init(&j.rc, rc);
  if (rc == 0)
    ty__parallel_for(w, (c->batch + TY__DNNL_BLOCK - 1) / TY__DNNL_BLOCK, 1, cd_blocks, &j);
  free(j.scratch);
  free(j.wpre_full);
  free(j.wpre_tail);
  rc = atomic_load(&j.rc);
  if (rc == 0) atomic_fetch_add(&cd_calls, 1);
  return rc;
}
