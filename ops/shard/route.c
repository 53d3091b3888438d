/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reshard routes (see shard_internal.h): built once per TyExtern node when
 * the shard is created, run on every step. A route is checked by
 * simulating it on the layout alone, so a route that could not run, or
 * would end in the wrong layout, is known before any data moves.
 *
 * Running a step is one local copy or one collective on contiguous chunks:
 * a slice keeps this rank's part of a dim; an all-gather concatenates the
 * group's blocks along the dim whose minor axis it releases; a
 * reduce-scatter packs the chunks of the dim it splits so chunk j is
 * contiguous for coordinate j; an all-to-all packs by the dim it splits
 * and unpacks along the dim it releases. Buffers are allocated per step:
 * the workload is a few activations per layer, small next to the GEMMs.
 *
 * Blocks may differ by one row (a batch of 64 on 3 ranks: 22, 21, 21;
 * ty_plan_block). The transport moves equal counts, so every chunk is
 * padded to the group's largest and the padding dropped on arrival: the
 * largest block is what the planner charges, and no transport needs
 * per-rank counts.
 */
#include "ops/shard/shard_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ty_shard_copy_block(void *full, const ty_shape *fs, void *block, const int64_t *start,
                         const int64_t *len, size_t elem, bool to_block) {
  int r = fs->rank;
  if (r <= 0) {
    memcpy(to_block ? block : full, to_block ? full : block, elem);
    return;
  }
  int64_t stride[TY_MAX_RANK], idx[TY_MAX_RANK] = {0}, runs = 1;
  stride[r - 1] = 1;
  for (int d = r - 2; d >= 0; d--)
    stride[d] = stride[d + 1] * fs->dims[d + 1];
  for (int d = 0; d < r; d++)
    if (len[d] <= 0) return;
  for (int d = 0; d < r - 1; d++)
    runs *= len[d];
  size_t run = (size_t)len[r - 1] * elem;
  char *b = block;
  for (int64_t k = 0; k < runs; k++) {
    int64_t off = start[r - 1];
    for (int d = 0; d < r - 1; d++)
      off += (start[d] + idx[d]) * stride[d];
    char *f = (char *)full + (size_t)off * elem;
    memcpy(to_block ? b : f, to_block ? f : b, run);
    b += run;
    for (int d = r - 2; d >= 0; d--) {
      if (++idx[d] < len[d]) break;
      idx[d] = 0;
    }
  }
}

/* ---- layouts with their split order ---------------------------------------------------- */

static int mesh_n(const ty_shard *s, int a) {
  return s->plan->mesh[a];
}

void ty__order_of(const ty_plan_layout *l, ty__order *out) {
  memset(out, 0, sizeof *out);
  out->rank = l->rank < 0 ? 0 : l->rank;
  out->partial = l->partial;
  for (int d = 0; d < out->rank; d++)
    for (int a = 0; a < TY_PLAN_AXES; a++)
      if (l->dim_axes[d] >> a & 1u) out->axes[d][out->n[d]++] = (uint8_t)a;
}

/* Drops axes of one device: they cut nothing and sum nothing. */
static void order_trim(const ty_shard *s, ty__order *o) {
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (mesh_n(s, a) <= 1) o->partial &= (uint8_t) ~(1u << a);
  for (int d = 0; d < o->rank; d++) {
    int k = 0;
    for (int i = 0; i < o->n[d]; i++)
      if (mesh_n(s, o->axes[d][i]) > 1) o->axes[d][k++] = o->axes[d][i];
    o->n[d] = (uint8_t)k;
  }
}

static bool order_equal(const ty__order *a, const ty__order *b) {
  if (a->rank != b->rank || a->partial != b->partial) return false;
  for (int d = 0; d < a->rank; d++)
    if (a->n[d] != b->n[d] || memcmp(a->axes[d], b->axes[d], a->n[d]) != 0) return false;
  return true;
}

static uint8_t order_used(const ty__order *o) {
  uint8_t u = 0;
  for (int d = 0; d < o->rank; d++)
    for (int i = 0; i < o->n[d]; i++)
      u |= (uint8_t)(1u << o->axes[d][i]);
  return u;
}

void ty__order_block(const ty_shard *s, const ty__order *o, const ty_shape *full, int64_t *start,
                     int64_t *len) {
  for (int d = 0; d < full->rank; d++) {
    start[d] = 0;
    len[d] = full->dims[d];
    for (int i = 0; d < o->rank && i < o->n[d]; i++) { /* major first, as ty_plan_slice */
      int a = o->axes[d][i];
      int64_t at, n;
      ty_plan_block(len[d], mesh_n(s, a), s->coords[a], &at, &n);
      start[d] += at;
      len[d] = n;
    }
  }
}

static int64_t parts_of(const ty_shard *s, const ty__order *o, int d) {
  int64_t p = 1;
  for (int i = 0; i < o->n[d]; i++)
    p *= mesh_n(s, o->axes[d][i]);
  return p;
}

/* Applies step st to o; false when it cannot run on the blocks o holds. */
static bool step_apply(const ty_shard *s, const ty_shape *full, ty__order *o, const ty__step *st) {
  int a = st->axis, d = st->dim, sd = st->src_dim;
  uint8_t bit = (uint8_t)(1u << a);
  if (a >= TY_PLAN_AXES || mesh_n(s, a) <= 1) return false;
  if ((d >= 0 && d >= o->rank) || (sd >= 0 && sd >= o->rank)) return false;
  bool last_d = d >= 0 && o->n[d] && o->axes[d][o->n[d] - 1] == a;
  bool last_s = sd >= 0 && o->n[sd] && o->axes[sd][o->n[sd] - 1] == a;
  switch (st->kind) {
  case TY_PLAN_ALL_REDUCE:
    if (!(o->partial & bit)) return false;
    o->partial &= (uint8_t)~bit;
    return true;
  case TY_PLAN_ALL_GATHER:
    if (!last_d) return false;
    o->n[d]--;
    return true;
  case TY_PLAN_ALL_TO_ALL:
    if (!last_s || d < 0 || d == sd) return false; /* a reorder within one dim: the generic route */
    o->n[sd]--;
    break;
  case TY_PLAN_REDUCE_SCATTER:
    if (!(o->partial & bit) || (order_used(o) & bit) || d < 0) return false;
    o->partial &= (uint8_t)~bit;
    break;
  case TY__SLICE:
    if ((o->partial & bit) || (order_used(o) & bit) || d < 0) return false;
    break;
  default:
    return false;
  }
  if (full->dims[d] < parts_of(s, o, d) * mesh_n(s, a)) return false; /* an empty block */
  o->axes[d][o->n[d]++] = (uint8_t)a;
  return true;
}

/* All-reduce every partial axis, gather every split axis, slice to dst. */
static void generic_route(const ty__order *src, const ty__order *dst, ty__route *r) {
  r->start = *src;
  r->n = 0;
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (src->partial >> a & 1u) r->s[r->n++] = (ty__step){TY_PLAN_ALL_REDUCE, (uint8_t)a, -1, -1};
  for (int d = 0; d < src->rank; d++)
    for (int i = src->n[d]; i-- > 0;)
      r->s[r->n++] = (ty__step){TY_PLAN_ALL_GATHER, src->axes[d][i], (int8_t)d, -1};
  for (int d = 0; d < dst->rank; d++)
    for (int i = 0; i < dst->n[d]; i++)
      r->s[r->n++] = (ty__step){TY__SLICE, dst->axes[d][i], (int8_t)d, -1};
}

/* The free slices a route starts with: axes the source neither splits
 * nor sums over that split a dim of the target. */
static int slices(const ty_shard *s, const ty__order *src, const ty__order *dst, ty__step *out) {
  int n = 0;
  uint8_t used = order_used(src) | src->partial;
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    if (mesh_n(s, a) <= 1 || (used >> a & 1u)) continue;
    for (int d = 0; d < dst->rank; d++)
      for (int i = 0; i < dst->n[d]; i++)
        if (dst->axes[d][i] == a) out[n++] = (ty__step){TY__SLICE, (uint8_t)a, (int8_t)d, -1};
  }
  return n;
}

static void order_format(const ty__order *o, char *buf, size_t len) {
  ty_plan_layout l = {.rank = o->rank, .partial = o->partial};
  for (int d = 0; d < o->rank; d++)
    for (int i = 0; i < o->n[d]; i++)
      l.dim_axes[d] |= (uint8_t)(1u << o->axes[d][i]);
  ty_plan_layout_format(&l, buf, len);
}

static int route_check(const ty_shard *s, const ty_shape *full, const ty__route *r,
                       ty__order *out) {
  *out = r->start;
  for (int i = 0; i < r->n; i++)
    if (!step_apply(s, full, out, &r->s[i])) return i;
  return -1;
}

int ty__route_build(const ty_shard *s, const ty_shape *full, const ty_plan_layout *src,
                    const ty_plan_layout *dst, const ty__step *listed, int n_listed,
                    const char *what, ty__route *out, char *err, size_t err_len) {
  ty__order a, b, o;
  ty_plan_layout whole = *dst;
  whole.partial = 0;
  ty__order_of(src, &a);
  ty__order_of(&whole, &b);
  order_trim(s, &a);
  order_trim(s, &b);
  memset(out, 0, sizeof *out);
  out->start = a;
  out->n = slices(s, &a, &b, out->s);
  if (out->n + n_listed > TY__ROUTE_MAX)
    return ty_errf(err, err_len, TY_EINVAL, "plan: %s: %d collectives (at most %d)", what, n_listed,
                   TY__ROUTE_MAX - out->n);
  memcpy(out->s + out->n, listed, (size_t)n_listed * sizeof *listed);
  out->n += n_listed;
  if (route_check(s, full, out, &o) >= 0) { /* the blocks say no: the generic route */
    generic_route(&a, &b, out);
    out->generic = true;
    if (route_check(s, full, out, &o) >= 0)
      return ty_errf(err, err_len, TY_EINVAL, "plan: %s: a split does not divide its dim", what);
  }
  if (order_equal(&o, &b)) return 0;
  char got[64], want[64];
  order_format(&o, got, sizeof got);
  order_format(&b, want, sizeof want);
  return ty_errf(err, err_len, TY_EINVAL,
                 "plan: %s: its collectives lead to layout %s, the reader wants %s (an "
                 "inconsistent plan)",
                 what, got, want);
}

/* ---- running ----------------------------------------------------------------------- */

/* A buffer of the route in flight: its layout, local shape and data. */
typedef struct cur {
  ty__order o;
  ty_shape local;
  float *data; /* owned */
} cur;

static void local_shape(const ty_shard *s, const ty_shape *full, const ty__order *o,
                        ty_shape *out) {
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  ty__order_block(s, o, full, start, len);
  *out = ty_shape_make(full->rank, len);
}

static int fail(ty_shard *s, int rc, const char *what, const char *step) {
  snprintf(s->err, sizeof s->err, "%s: %s failed: %s", what, step, ty_strerror(rc));
  return rc;
}

static int run_slice(ty_shard *s, cur *c, const ty__step *st, const ty_shape *next, float *out) {
  int64_t start[TY_MAX_RANK] = {0}, len[TY_MAX_RANK];
  for (int d = 0; d < next->rank; d++)
    len[d] = next->dims[d];
  ty_plan_block(c->local.dims[st->dim], mesh_n(s, st->axis), s->coords[st->axis], &start[st->dim],
                &len[st->dim]);
  ty_shard_copy_block(c->data, &c->local, out, start, len, sizeof(float), true);
  return 0;
}

/* Chunk j (along dim d, j < n) of a tensor of shape sh, as start and len. */
static void chunk(const ty_shape *sh, int d, int64_t j, int n, int64_t *start, int64_t *len) {
  for (int k = 0; k < sh->rank; k++) {
    start[k] = 0;
    len[k] = sh->dims[k];
  }
  ty_plan_block(sh->dims[d], n, j, &start[d], &len[d]);
}

/* The largest chunk of sh cut n ways along d (and along d2 too, d2 >= 0,
 * its length there l2 before the cut): what every rank sends. */
static size_t padded(const ty_shape *sh, int d, int n, int d2, int64_t l2) {
  size_t p = 1;
  for (int k = 0; k < sh->rank; k++)
    p *= (size_t)(k == d ? (sh->dims[k] + n - 1) / n : k == d2 ? (l2 + n - 1) / n : sh->dims[k]);
  return p;
}

static int run_gather(ty_shard *s, cur *c, const ty__step *st, const ty_shape *next, float *out,
                      const char *what) {
  int n = mesh_n(s, st->axis);
  size_t cnt = (size_t)ty_shape_numel(&c->local), per = padded(next, st->dim, n, -1, 0);
  float *mine = calloc(per + 1, sizeof *mine), *tmp = malloc(per * (size_t)n * sizeof *tmp + 1);
  int rc = mine && tmp ? 0 : TY_ENOMEM;
  if (rc == 0) {
    memcpy(mine, c->data, cnt * sizeof *mine);
    rc = s->comm.all_gather(st->axis, mine, per, tmp, what, s->comm.user);
  }
  for (int j = 0; rc == 0 && j < n; j++) {
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    chunk(next, st->dim, j, n, start, len);
    ty_shard_copy_block(out, next, tmp + (size_t)j * per, start, len, sizeof(float), false);
  }
  free(mine);
  free(tmp);
  return rc;
}

/* Packs chunk j of dim d for coordinate j, contiguous, at j x per (the
 * rest of each chunk zero). */
static void pack(const cur *c, int d, int n, size_t per, float *packed) {
  for (int j = 0; j < n; j++) {
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    chunk(&c->local, d, j, n, start, len);
    ty_shard_copy_block(c->data, &c->local, packed + (size_t)j * per, start, len, sizeof(float),
                        true);
  }
}

static int run_scatter(ty_shard *s, cur *c, const ty__step *st, const ty_shape *next, float *out,
                       const char *what) {
  int n = mesh_n(s, st->axis);
  size_t per = padded(&c->local, st->dim, n, -1, 0);
  float *packed = calloc(per * (size_t)n + 1, sizeof *packed),
        *mine = malloc(per * sizeof *mine + 1);
  int rc = packed && mine ? 0 : TY_ENOMEM;
  if (rc == 0) {
    pack(c, st->dim, n, per, packed);
    rc = s->comm.reduce_scatter(st->axis, packed, per, mine, what, s->comm.user);
  }
  if (rc == 0) memcpy(out, mine, (size_t)ty_shape_numel(next) * sizeof *out);
  free(packed);
  free(mine);
  return rc;
}

static int run_all_to_all(ty_shard *s, cur *c, const ty__step *st, const ty_shape *next, float *out,
                          const char *what) {
  int n = mesh_n(s, st->axis);
  size_t per = padded(&c->local, st->dim, n, st->src_dim, next->dims[st->src_dim]);
  float *packed = calloc(per * (size_t)n + 1, sizeof *packed),
        *recv = malloc(per * (size_t)n * sizeof *recv + 1);
  int rc = packed && recv ? 0 : TY_ENOMEM;
  if (rc == 0) {
    pack(c, st->dim, n, per, packed);
    rc = s->comm.all_to_all(st->axis, packed, per, recv, what, s->comm.user);
  }
  for (int j = 0; rc == 0 && j < n; j++) { /* coordinate j's piece goes to chunk j of src_dim */
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    chunk(next, st->src_dim, j, n, start, len);
    ty_shard_copy_block(out, next, recv + (size_t)j * per, start, len, sizeof(float), false);
  }
  free(packed);
  free(recv);
  return rc;
}

static const char *step_name(const ty__step *st) {
  return st->kind == TY__SLICE ? "slice" : ty_plan_coll_kind_name((ty_plan_coll_kind)st->kind);
}

/* Runs one step: c moves to the step's layout. */
static int run_step(ty_shard *s, const ty_shape *full, cur *c, const ty__step *st,
                    const char *what) {
  if (st->kind == TY_PLAN_ALL_REDUCE) {
    int rc = s->comm.all_reduce(1u << st->axis, c->data, (size_t)ty_shape_numel(&c->local), what,
                                s->comm.user);
    if (rc == 0) step_apply(s, full, &c->o, st);
    return rc;
  }
  ty__order o = c->o;
  step_apply(s, full, &o, st);
  ty_shape next;
  local_shape(s, full, &o, &next);
  float *out = malloc((size_t)ty_shape_numel(&next) * sizeof *out + 1);
  if (!out) return TY_ENOMEM;
  int rc;
  switch (st->kind) {
  case TY__SLICE:
    rc = run_slice(s, c, st, &next, out);
    break;
  case TY_PLAN_ALL_GATHER:
    rc = run_gather(s, c, st, &next, out, what);
    break;
  case TY_PLAN_REDUCE_SCATTER:
    rc = run_scatter(s, c, st, &next, out, what);
    break;
  default:
    rc = run_all_to_all(s, c, st, &next, out, what);
    break;
  }
  if (rc != 0) {
    free(out);
    return rc;
  }
  free(c->data);
  c->data = out;
  c->o = o;
  c->local = next;
  return 0;
}

int ty__route_run(ty_shard *s, const ty__route *r, const ty_shape *full, const char *what,
                  const ty_tensor *in, ty_tensor *out) {
  cur c = {.o = r->start};
  local_shape(s, full, &c.o, &c.local);
  size_t n = (size_t)ty_shape_numel(&c.local);
  if (in->dtype != TY_DTYPE_F32 || (size_t)ty_tensor_numel(in) != n) {
    snprintf(s->err, sizeof s->err, "%s: the input holds %lld floats, its layout %zu", what,
             (long long)ty_tensor_numel(in), n);
    return TY_EINTERNAL;
  }
  if (!s->have_comm && r->n > 0) {
    snprintf(s->err, sizeof s->err, "%s: no transport set (ty_shard_set_comm)", what);
    return TY_ESTATE;
  }
  if (!(c.data = malloc(n * sizeof *c.data + 1))) return TY_ENOMEM;
  memcpy(c.data, in->data, n * sizeof *c.data);
  int rc = 0;
  for (int i = 0; rc == 0 && i < r->n; i++)
    if ((rc = run_step(s, full, &c, &r->s[i], what)) != 0) fail(s, rc, what, step_name(&r->s[i]));
  if (rc == 0 && (size_t)ty_tensor_numel(out) != (size_t)ty_shape_numel(&c.local)) {
    snprintf(s->err, sizeof s->err, "%s: the route ends with %lld floats, the output holds %lld",
             what, (long long)ty_shape_numel(&c.local), (long long)ty_tensor_numel(out));
    rc = TY_EINTERNAL;
  }
  if (rc == 0) memcpy(out->data, c.data, out->nbytes);
  free(c.data);
  return rc;
}
