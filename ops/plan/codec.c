/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plan file: a plan as bytes (the binary format plan.h documents field
 * by field), its decoder, the fingerprint that ties a plan to the graph it
 * was made for, and the plan's lifecycle.
 *
 * The decoder reads untrusted bytes (a file a user names, later a field of
 * LaunchTask), so it checks the CRC first, then every count against the
 * bytes left before allocating from it (memory grows with bytes received,
 * never with bytes announced), every enum and index against its range, and
 * every layout against the mesh; each rejection names the field:
 *   plan: collectives[3].mesh_axis: 2 is not a mesh axis (0 or 1)
 * Cross-checks against a graph (ty_plan_check) are separate: decoding needs
 * no graph.
 */
#include "ops/plan/plan_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAGIC "TYPL"
#define MAX_STR 4096u
#define NO_STR 0xFFFFFFFFu
#define MAX_SLOTS 64u
/* The fixed part before the op list plus the four counts and the CRC. */
#define MIN_BYTES (8 + 8 + 4 * 5 + 8 + 8 * 4 + 8 * 3 + 8 * 2 + 8 + 1 + 4 * 4 + 4)

/* ---- writing --------------------------------------------------------------------- */

typedef struct wr {
  ty_buf *b;
  int rc;
} wr;

static void put(wr *w, const void *p, size_t n) {
  if (w->rc == 0) w->rc = ty_buf_append(w->b, p, n);
}
static void put_u8(wr *w, uint8_t v) {
  put(w, &v, 1);
}
static void put_u32(wr *w, uint32_t v) {
  uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put(w, p, 4);
}
static void put_u64(wr *w, uint64_t v) {
  put_u32(w, (uint32_t)v);
  put_u32(w, (uint32_t)(v >> 32));
}
static void put_f64(wr *w, double d) {
  uint64_t v;
  memcpy(&v, &d, sizeof v);
  put_u64(w, v);
}
static void put_str(wr *w, const char *s) {
  if (!s) {
    put_u32(w, NO_STR);
    return;
  }
  size_t n = strlen(s);
  put_u32(w, (uint32_t)n);
  put(w, s, n);
}
static void put_layout(wr *w, const ty_plan_layout *l) {
  put_u8(w, (uint8_t)(int8_t)l->rank);
  for (int d = 0; d < l->rank && d < TY_MAX_RANK; d++)
    put_u8(w, l->dim_axes[d]);
  put_u8(w, l->partial);
  put_u8(w, l->grad_partial);
}

static void put_op(wr *w, const ty_plan_op *o) {
  put_u32(w, (uint32_t)o->node);
  put_str(w, o->name);
  put_u32(w, (uint32_t)o->op);
  put_str(w, o->strategy);
  put_u8(w, o->fallback);
  put_str(w, o->note);
  put_u32(w, (uint32_t)o->n_inputs);
  for (int i = 0; i < o->n_inputs; i++)
    put_layout(w, &o->inputs[i]);
  put_u32(w, (uint32_t)o->n_outputs);
  for (int i = 0; i < o->n_outputs; i++)
    put_layout(w, &o->outputs[i]);
  put_f64(w, o->compute_s);
  put_f64(w, o->comm_s);
  put_u64(w, o->memory_bytes);
}

static void put_coll(wr *w, const ty_plan_collective *c) {
  put_u8(w, (uint8_t)c->kind);
  put_u8(w, (uint8_t)c->phase);
  put_u8(w, (uint8_t)c->mesh_axis);
  put_u32(w, (uint32_t)c->value);
  put_str(w, c->tensor);
  put_u32(w, (uint32_t)c->node);
  put_u32(w, (uint32_t)c->input);
  put_u32(w, (uint32_t)c->dim);
  put_u32(w, (uint32_t)c->src_dim);
  put_u64(w, c->bytes);
  put_f64(w, c->seconds);
}

static void put_alt(wr *w, const ty_plan_alternative *a) {
  put_str(w, a->name);
  put_u32(w, (uint32_t)a->mesh[0]);
  put_u32(w, (uint32_t)a->mesh[1]);
  put_u8(w, a->applicable);
  put_f64(w, a->step_s);
  put_u64(w, a->memory_bytes);
  put_u8(w, a->fits);
  put_str(w, a->why);
}

/* Version 2's pipeline section (plan.h). */
static void put_pipeline(wr *w, const ty_plan *p) {
  put_u32(w, (uint32_t)(p->micro_batches > 0 ? p->micro_batches : 1));
  put_u32(w, (uint32_t)p->n_layers);
  put_f64(w, p->bubble);
  put_u32(w, (uint32_t)p->n_stages);
  for (int k = 0; k < p->n_stages; k++) {
    const ty_plan_stage *st = &p->stages[k];
    put_u32(w, (uint32_t)st->first_rank);
    put_u32(w, (uint32_t)st->first_layer);
    put_u32(w, (uint32_t)st->n_layers);
    put_u32(w, (uint32_t)st->in_flight);
    put_f64(w, st->step_s);
    put_f64(w, st->send_s);
    put_u64(w, st->memory_bytes);
    put_u8(w, st->recompute);
    put_u64(w, st->memory_no_recompute_bytes);
  }
  for (size_t i = 0; p->n_stages > 0 && i < p->n_ops; i++)
    put_u32(w, (uint32_t)p->ops[i].stage);
}

/* The whole encoding; search_ms written as 0 when `stable` (the plan hash). */
static int encode(const ty_plan *p, bool stable, ty_buf *out) {
  size_t start = out->len;
  wr w = {out, 0};
  /* Version 3 only where it adds something: other plans stay readable by
   * builds that read version 2. */
  bool why = p->one_micro_why[0] != 0;
  put(&w, MAGIC, 4);
  put_u32(&w, why ? TY_PLAN_FORMAT_VERSION : 2u);
  put_u64(&w, p->graph_fingerprint);
  put_u32(&w, (uint32_t)p->nodes);
  put_u32(&w, (uint32_t)p->devices_per_node);
  put_u32(&w, (uint32_t)p->devices);
  put_u32(&w, (uint32_t)p->mesh[0]);
  put_u32(&w, (uint32_t)p->mesh[1]);
  put_u64(&w, (uint64_t)p->batch);
  for (int a = 0; a < TY_PLAN_AXES; a++)
    put_f64(&w, p->axis_bw[a]);
  for (int a = 0; a < TY_PLAN_AXES; a++)
    put_f64(&w, p->axis_latency_s[a]);
  put_f64(&w, p->step_s);
  put_f64(&w, p->compute_s);
  put_f64(&w, p->comm_s);
  put_u64(&w, p->memory_bytes);
  put_u64(&w, p->budget_bytes);
  put_f64(&w, stable ? 0 : p->search_ms);
  put_u8(&w, p->exact);
  put_u32(&w, (uint32_t)p->n_ops);
  for (size_t i = 0; i < p->n_ops; i++)
    put_op(&w, &p->ops[i]);
  put_u32(&w, (uint32_t)p->n_params);
  for (size_t i = 0; i < p->n_params; i++) {
    put_u32(&w, (uint32_t)p->params[i].value);
    put_str(&w, p->params[i].name);
    put_layout(&w, &p->params[i].layout);
  }
  put_u32(&w, (uint32_t)p->n_collectives);
  for (size_t i = 0; i < p->n_collectives; i++)
    put_coll(&w, &p->collectives[i]);
  put_u32(&w, (uint32_t)p->n_alternatives);
  for (size_t i = 0; i < p->n_alternatives; i++)
    put_alt(&w, &p->alternatives[i]);
  put_pipeline(&w, p);
  if (why) put_str(&w, p->one_micro_why);
  if (w.rc == 0) put_u32(&w, (uint32_t)crc32_z(0L, out->data + start, out->len - start));
  return w.rc;
}

int ty_plan_encode(const ty_plan *p, ty_buf *out) {
  return encode(p, false, out);
}

uint64_t ty_plan_hash(const ty_plan *p) {
  ty_buf b;
  ty_buf_init(&b);
  uint64_t h = 0xcbf29ce484222325ull;
  if (encode(p, true, &b) == 0)
    for (size_t i = 0; i < b.len; i++)
      h = (h ^ b.data[i]) * 0x100000001b3ull;
  else
    h = 0;
  ty_buf_close(&b);
  return h;
}

/* ---- reading --------------------------------------------------------------------- */

typedef struct rd {
  const uint8_t *p;
  size_t n, off;
  char where[96]; /* the field being read, for messages */
  char *err;
  size_t err_len;
  int rc;
} rd;

static int bad(rd *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(rd *r, int code, const char *fmt, ...) {
  if (r->rc) return r->rc;
  char msg[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->rc = ty_errf(r->err, r->err_len, code, "plan: %s%s%s", r->where, r->where[0] ? ": " : "", msg);
  return r->rc;
}

static void at(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void at(rd *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->where, sizeof r->where, fmt, ap);
  va_end(ap);
}

static const uint8_t *take(rd *r, size_t n) {
  if (r->rc) return NULL;
  if (r->n - r->off < n) {
    bad(r, TY_EPROTO, "truncated (the plan ends at byte %zu)", r->n);
    return NULL;
  }
  const uint8_t *p = r->p + r->off;
  r->off += n;
  return p;
}
static uint8_t get_u8(rd *r) {
  const uint8_t *p = take(r, 1);
  return p ? p[0] : 0;
}
static uint32_t get_u32(rd *r) {
  const uint8_t *p = take(r, 4);
  return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}
static uint64_t get_u64(rd *r) {
  uint64_t lo = get_u32(r);
  return lo | (uint64_t)get_u32(r) << 32;
}
static int32_t get_i32(rd *r) {
  return (int32_t)get_u32(r);
}
/* A time, rate or size: finite and not negative. */
static double get_f64(rd *r, const char *field) {
  uint64_t v = get_u64(r);
  double d;
  memcpy(&d, &v, sizeof d);
  if (!r->rc && !(isfinite(d) && d >= 0))
    bad(r, TY_EINVAL, "%s: %g is not a finite non-negative number", field, d);
  return d;
}

/* A string of at most max bytes without NULs; *out NULL for "none" when
 * optional. */
static int get_str(rd *r, const char *field, size_t max, bool optional, char **out) {
  *out = NULL;
  uint32_t n = get_u32(r);
  if (r->rc) return r->rc;
  if (n == NO_STR && optional) return 0;
  if (n == NO_STR || n > max)
    return bad(r, TY_EINVAL, "%s: length %u (at most %zu)", field, n, max);
  const uint8_t *p = take(r, n);
  if (!p) return r->rc;
  if (memchr(p, 0, n)) return bad(r, TY_EINVAL, "%s: holds a NUL byte", field);
  if (!(*out = malloc((size_t)n + 1))) return r->rc = TY_ENOMEM;
  memcpy(*out, p, n);
  (*out)[n] = 0;
  return 0;
}

/* A count of entries each at least `min` bytes long, checked against what
 * is left so no announced size is allocated unread. */
static size_t get_count(rd *r, const char *what, size_t min, size_t max) {
  uint32_t n = get_u32(r);
  if (r->rc) return 0;
  size_t left = (r->n - r->off) / min;
  if (n > max || n > left) {
    at(r, "%s", what);
    bad(r, TY_EPROTO, "%u entries announced, the plan holds at most %zu", n,
        left < max ? left : max);
    return 0;
  }
  return n;
}

static void get_layout(rd *r, bool optional, ty_plan_layout *l) {
  int8_t rank = (int8_t)get_u8(r);
  memset(l, 0, sizeof *l);
  l->rank = rank;
  if (r->rc) return;
  if (rank < (optional ? -1 : 0) || rank > TY_MAX_RANK) {
    bad(r, TY_EINVAL, "rank %d (%s..%d)", rank, optional ? "-1" : "0", TY_MAX_RANK);
    return;
  }
  uint8_t used = 0;
  for (int d = 0; d < rank; d++) {
    l->dim_axes[d] = get_u8(r);
    if (!r->rc && (l->dim_axes[d] & ~3u))
      bad(r, TY_EINVAL, "dim %d: axes 0x%x name no mesh axis", d, l->dim_axes[d]);
    if (!r->rc && (l->dim_axes[d] & used))
      bad(r, TY_EINVAL, "dim %d: a mesh axis splits two dims", d);
    used |= l->dim_axes[d];
  }
  l->partial = get_u8(r);
  if (!r->rc && (l->partial & ~3u))
    bad(r, TY_EINVAL, "partial axes 0x%x name no mesh axis", l->partial);
  if (!r->rc && (l->partial & used))
    bad(r, TY_EINVAL, "a mesh axis both splits a dim and is partial");
  l->grad_partial = get_u8(r);
  if (!r->rc && (l->grad_partial & ~3u))
    bad(r, TY_EINVAL, "gradient-partial axes 0x%x name no mesh axis", l->grad_partial);
}

static void get_op(rd *r, size_t i, ty_plan_op *o) {
  at(r, "ops[%zu]", i);
  int32_t node = get_i32(r);
  if (!r->rc && node != (int32_t)i)
    bad(r, TY_EINVAL, "node %d, expected %zu (ops are in node order)", node, i);
  get_str(r, "name", MAX_STR, false, &o->name);
  uint32_t op = get_u32(r);
  if (!r->rc && op >= (uint32_t)TY_OP_COUNT_) bad(r, TY_EINVAL, "op %u is not an operator", op);
  get_str(r, "strategy", MAX_STR, false, &o->strategy);
  o->fallback = get_u8(r) != 0;
  get_str(r, "note", MAX_STR, true, &o->note);
  o->node = (int)i;
  o->op = (ty_op)op;
  for (int side = 0; side < 2 && !r->rc; side++) {
    uint32_t n = get_u32(r);
    if (!r->rc && n > MAX_SLOTS)
      bad(r, TY_EINVAL, "%u %s (at most %u)", n, side ? "outputs" : "inputs", MAX_SLOTS);
    if (r->rc) return;
    ty_plan_layout *l = calloc((size_t)n + 1, sizeof *l);
    if (!l) {
      r->rc = TY_ENOMEM;
      return;
    }
    *(side ? &o->outputs : &o->inputs) = l;
    *(side ? &o->n_outputs : &o->n_inputs) = (int)n;
    for (uint32_t k = 0; k < n && !r->rc; k++) {
      at(r, "ops[%zu].%s[%u]", i, side ? "outputs" : "inputs", k);
      get_layout(r, true, &l[k]);
    }
  }
  at(r, "ops[%zu]", i);
  o->compute_s = get_f64(r, "compute_s");
  o->comm_s = get_f64(r, "comm_s");
  o->memory_bytes = get_u64(r);
}

/* Kind-specific dims: gathers and scatters name one, all-to-all two. */
static void check_coll(rd *r, const ty_plan *p, ty_plan_collective *c) {
  if (c->kind > TY_PLAN_ALL_TO_ALL) {
    bad(r, TY_EINVAL, "kind %u is not a collective (0..3)", (unsigned)c->kind);
    return;
  }
  if (c->phase > TY_PLAN_GRAD_SYNC)
    bad(r, TY_EINVAL, "phase %u is not a phase (0..2)", (unsigned)c->phase);
  if (c->mesh_axis >= TY_PLAN_AXES)
    bad(r, TY_EINVAL, "mesh_axis: %d is not a mesh axis (0 or 1)", c->mesh_axis);
  if (c->node < -1 || c->node >= (int)p->n_ops)
    bad(r, TY_EINVAL, "node: %d is not an op of the plan", c->node);
  if (!r->rc && c->node >= 0 && (c->input < -1 || c->input >= p->ops[c->node].n_inputs))
    bad(r, TY_EINVAL, "input: op %d has no input %d", c->node, c->input);
  if (c->node < 0 && c->input != -1)
    bad(r, TY_EINVAL, "input: %d for a graph output (expected -1)", c->input);
  if (c->value < -1) bad(r, TY_EINVAL, "value: %d", c->value);
  bool one = c->kind == TY_PLAN_ALL_GATHER || c->kind == TY_PLAN_REDUCE_SCATTER,
       two = c->kind == TY_PLAN_ALL_TO_ALL;
  int want_dim = one || two, want_src = two;
  const char *name = ty_plan_coll_kind_name(c->kind),
             *an = c->kind == TY_PLAN_REDUCE_SCATTER ? "a" : "an";
  if ((c->dim >= 0) != want_dim || c->dim >= TY_MAX_RANK || c->dim < -1)
    bad(r, TY_EINVAL, "dim: %d is wrong for %s %s", c->dim, an, name);
  if ((c->src_dim >= 0) != want_src || c->src_dim >= TY_MAX_RANK || c->src_dim < -1)
    bad(r, TY_EINVAL, "src_dim: %d is wrong for %s %s", c->src_dim, an, name);
}

static void get_coll(rd *r, const ty_plan *p, size_t i, ty_plan_collective *c) {
  at(r, "collectives[%zu]", i);
  c->kind = (ty_plan_coll_kind)get_u8(r);
  c->phase = (ty_plan_phase)get_u8(r);
  c->mesh_axis = get_u8(r);
  c->value = get_i32(r);
  get_str(r, "tensor", MAX_STR, false, &c->tensor);
  c->node = get_i32(r);
  c->input = get_i32(r);
  c->dim = get_i32(r);
  c->src_dim = get_i32(r);
  c->bytes = get_u64(r);
  c->seconds = get_f64(r, "seconds");
  if (!r->rc) check_coll(r, p, c);
}

static void get_alt(rd *r, size_t i, ty_plan_alternative *a) {
  char *name = NULL, *why = NULL;
  at(r, "alternatives[%zu]", i);
  get_str(r, "name", sizeof a->name - 1, false, &name);
  a->mesh[0] = (int)get_u32(r);
  a->mesh[1] = (int)get_u32(r);
  a->applicable = get_u8(r) != 0;
  a->step_s = get_f64(r, "step_s");
  a->memory_bytes = get_u64(r);
  a->fits = get_u8(r) != 0;
  get_str(r, "why", sizeof a->why - 1, false, &why);
  snprintf(a->name, sizeof a->name, "%s", name ? name : "");
  snprintf(a->why, sizeof a->why, "%s", why ? why : "");
  free(name);
  free(why);
}

/* The fixed header: cluster, mesh, batch, link rates, totals. */
static void get_header(rd *r, ty_plan *p) {
  p->graph_fingerprint = get_u64(r);
  p->nodes = (int)get_u32(r);
  p->devices_per_node = (int)get_u32(r);
  p->devices = (int)get_u32(r);
  p->mesh[0] = (int)get_u32(r);
  p->mesh[1] = (int)get_u32(r);
  p->batch = (int64_t)get_u64(r);
  if (r->rc) return;
  if (p->nodes < 1 || p->devices_per_node < 1 ||
      (int64_t)p->nodes * p->devices_per_node != p->devices)
    bad(r, TY_EINVAL, "cluster: %d nodes x %d devices per node is not %d devices", p->nodes,
        p->devices_per_node, p->devices);
  else if (p->mesh[0] < 1 || p->mesh[1] < 1 ||
           (int64_t)p->devices % ((int64_t)p->mesh[0] * p->mesh[1]) != 0)
    bad(r, TY_EINVAL, "mesh: %dx%d does not hold the plan's %d devices", p->mesh[0], p->mesh[1],
        p->devices);
  else if (p->batch < 1)
    bad(r, TY_EINVAL, "batch: %lld (must be positive)", (long long)p->batch);
  for (int a = 0; a < TY_PLAN_AXES; a++)
    p->axis_bw[a] = get_f64(r, "axis_bw");
  for (int a = 0; a < TY_PLAN_AXES; a++)
    p->axis_latency_s[a] = get_f64(r, "axis_latency_s");
  p->step_s = get_f64(r, "step_s");
  p->compute_s = get_f64(r, "compute_s");
  p->comm_s = get_f64(r, "comm_s");
  p->memory_bytes = get_u64(r);
  p->budget_bytes = get_u64(r);
  p->search_ms = get_f64(r, "search_ms");
  p->exact = get_u8(r) != 0;
}

static void get_lists(rd *r, ty_plan *p) {
  p->n_ops = get_count(r, "ops", 24, (size_t)1 << 24);
  if (!r->rc && !(p->ops = calloc(p->n_ops + 1, sizeof *p->ops))) r->rc = TY_ENOMEM;
  for (size_t i = 0; i < p->n_ops && !r->rc; i++) {
    get_op(r, i, &p->ops[i]);
    p->n_fallback += p->ops[i].fallback;
  }
  at(r, "%s", "");
  size_t np = get_count(r, "params", 11, (size_t)1 << 24);
  if (!r->rc && !(p->params = calloc(np + 1, sizeof *p->params))) r->rc = TY_ENOMEM;
  for (size_t i = 0; i < np && !r->rc; i++, p->n_params++) {
    ty_plan_param *pp = &p->params[i];
    at(r, "params[%zu]", i);
    pp->value = get_i32(r);
    if (!r->rc && pp->value < 0) bad(r, TY_EINVAL, "value: %d", pp->value);
    get_str(r, "name", MAX_STR, false, &pp->name);
    get_layout(r, false, &pp->layout);
  }
  at(r, "%s", "");
  size_t nc = get_count(r, "collectives", 43, (size_t)1 << 26);
  if (!r->rc && !(p->collectives = calloc(nc + 1, sizeof *p->collectives))) r->rc = TY_ENOMEM;
  for (size_t i = 0; i < nc && !r->rc; i++, p->n_collectives++)
    get_coll(r, p, i, &p->collectives[i]);
  at(r, "%s", "");
  p->n_alternatives = get_count(r, "alternatives", 34, 16);
  if (!r->rc && !(p->alternatives = calloc(p->n_alternatives + 1, sizeof *p->alternatives)))
    r->rc = TY_ENOMEM;
  for (size_t i = 0; i < p->n_alternatives && !r->rc; i++)
    get_alt(r, i, &p->alternatives[i]);
}

static void get_stage(rd *r, const ty_plan *p, int k, ty_plan_stage *st) {
  at(r, "stages[%d]", k);
  int size = p->mesh[0] * p->mesh[1];
  st->first_rank = (int)get_u32(r);
  st->first_layer = (int)get_u32(r);
  st->n_layers = (int)get_u32(r);
  st->in_flight = (int)get_u32(r);
  st->step_s = get_f64(r, "step_s");
  st->send_s = get_f64(r, "send_s");
  st->memory_bytes = get_u64(r);
  st->recompute = get_u8(r) != 0;
  st->memory_no_recompute_bytes = get_u64(r);
  int prev_end = k == 0 ? 0 : p->stages[k - 1].first_layer + p->stages[k - 1].n_layers;
  if (r->rc) return;
  if (st->first_rank != k * size)
    bad(r, TY_EINVAL, "first_rank: %d, expected %d (stages are rank-major)", st->first_rank,
        k * size);
  else if (st->first_layer != prev_end || st->n_layers < 1 ||
           (int64_t)st->first_layer + st->n_layers > p->n_layers)
    bad(r, TY_EINVAL, "layers %d+%d do not follow the previous stage within %d layers",
        st->first_layer, st->n_layers, p->n_layers);
  else if (st->in_flight < 1 || st->in_flight > p->micro_batches)
    bad(r, TY_EINVAL, "in_flight: %d is not 1 .. %d micro-batches", st->in_flight,
        p->micro_batches);
}

/* Version 2's pipeline section; a version 1 plan has no stages. The
 * stages must cover the devices with the plan's mesh and every layer. */
static void get_pipeline(rd *r, uint32_t version, ty_plan *p) {
  p->micro_batches = 1;
  if (r->rc) return;
  int size = p->mesh[0] * p->mesh[1]; /* the header holds it to at most devices */
  if (version >= 2) {
    at(r, "%s", "pipeline");
    uint32_t mb = get_u32(r), nl = get_u32(r);
    p->bubble = get_f64(r, "bubble");
    p->n_stages = (int)get_count(r, "stages", 49, (size_t)p->devices);
    if (!r->rc && (mb < 1 || mb > 1u << 20))
      bad(r, TY_EINVAL, "micro_batches: %u (1 .. %u)", mb, 1u << 20);
    if (!r->rc && nl > 1u << 24) bad(r, TY_EINVAL, "n_layers: %u (at most %u)", nl, 1u << 24);
    if (!r->rc && p->batch > INT64_MAX / (int64_t)mb)
      bad(r, TY_EINVAL, "micro_batches: %u micro-batches of %lld overflow the global batch", mb,
          (long long)p->batch);
    p->micro_batches = (int)mb;
    p->n_layers = (int)nl;
    if (!r->rc && !(p->stages = calloc((size_t)p->n_stages + 1, sizeof *p->stages)))
      r->rc = TY_ENOMEM;
    for (int k = 0; k < p->n_stages && !r->rc; k++)
      get_stage(r, p, k, &p->stages[k]);
    for (size_t i = 0; p->n_stages > 0 && i < p->n_ops && !r->rc; i++) {
      at(r, "ops[%zu].stage", i);
      p->ops[i].stage = (int)get_u32(r);
      if (!r->rc && p->ops[i].stage >= p->n_stages)
        bad(r, TY_EINVAL, "%d is not one of the %d stages", p->ops[i].stage, p->n_stages);
    }
  }
  at(r, "%s", "");
  if (r->rc) return;
  int last = p->n_stages
                 ? p->stages[p->n_stages - 1].first_layer + p->stages[p->n_stages - 1].n_layers
                 : 0;
  if ((int64_t)size * (p->n_stages ? p->n_stages : 1) != p->devices)
    bad(r, TY_EINVAL, "mesh: %dx%d x %d stages does not hold the plan's %d devices", p->mesh[0],
        p->mesh[1], p->n_stages ? p->n_stages : 1, p->devices);
  else if (p->n_stages && last != p->n_layers)
    bad(r, TY_EINVAL, "stages: they cover %d of the %d layers", last, p->n_layers);
  else if (!p->n_stages && p->micro_batches != 1)
    bad(r, TY_EINVAL, "micro_batches: %d without pipeline stages", p->micro_batches);
}

/* Version 3's reason for one micro-batch: words for the text forms, so
 * no control characters, and only on a plan of one micro-batch. */
static void get_one_micro_why(rd *r, uint32_t version, ty_plan *p) {
  char *why = NULL;
  if (r->rc || version < 3) return;
  if (get_str(r, "one_micro_why", sizeof p->one_micro_why - 1, false, &why) != 0) return;
  size_t n = strlen(why);
  for (size_t i = 0; i < n && !r->rc; i++)
    if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
      bad(r, TY_EINVAL, "one_micro_why: control character 0x%02x at byte %zu", (unsigned)why[i], i);
  if (!r->rc && n == 0) bad(r, TY_EINVAL, "one_micro_why: empty (version 2 plans carry none)");
  if (!r->rc && p->micro_batches != 1)
    bad(r, TY_EINVAL, "one_micro_why: given, but the plan has %d micro-batches", p->micro_batches);
  if (!r->rc) memcpy(p->one_micro_why, why, n + 1);
  free(why);
}

int ty_plan_decode(const uint8_t *data, size_t len, ty_plan **out_plan, char *err, size_t err_len) {
  *out_plan = NULL;
  rd r = {.p = data, .n = len, .err = err, .err_len = err_len};
  if (len < 8 || memcmp(data, MAGIC, 4) != 0)
    return bad(&r, TY_EPROTO, "not a trainyard plan (it does not start with \"%s\")", MAGIC);
  uint32_t version = (uint32_t)data[4] | (uint32_t)data[5] << 8 | (uint32_t)data[6] << 16 |
                     (uint32_t)data[7] << 24;
  if (version < 1 || version > TY_PLAN_FORMAT_VERSION)
    return bad(&r, TY_EVERSION, "format version %u; this build reads versions 1 to %u", version,
               TY_PLAN_FORMAT_VERSION);
  if (len < MIN_BYTES)
    return bad(&r, TY_EPROTO, "truncated (%zu bytes; a plan holds at least %d)", len, MIN_BYTES);
  uint32_t want = (uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 |
                  (uint32_t)data[len - 2] << 16 | (uint32_t)data[len - 1] << 24;
  if (want != (uint32_t)crc32_z(0L, data, len - 4))
    return bad(&r, TY_EPROTO, "corrupt: the CRC-32 of its %zu bytes does not match", len);
  ty_plan *p = calloc(1, sizeof *p);
  if (!p) return TY_ENOMEM;
  r.n = len - 4; /* the CRC is checked */
  r.off = 8;
  get_header(&r, p);
  get_lists(&r, p);
  get_pipeline(&r, version, p);
  get_one_micro_why(&r, version, p);
  at(&r, "%s", "");
  if (!r.rc && r.off != r.n) bad(&r, TY_EPROTO, "%zu bytes after the last field", r.n - r.off);
  if (r.rc) {
    ty_plan_destroy(p);
    return r.rc;
  }
  *out_plan = p;
  return 0;
}

/* ---- the graph a plan belongs to ---------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}
static uint64_t fnv_str(uint64_t h, const char *s) {
  return fnv(h, s ? s : "", s ? strlen(s) + 1 : 1);
}
static uint64_t fnv_i64(uint64_t h, int64_t v) {
  return fnv(h, &v, sizeof v);
}

static uint64_t hash_attr(uint64_t h, const ty_graph_attr *a) {
  h = fnv_str(h, a->name);
  h = fnv_i64(h, a->type);
  switch (a->type) {
  case TY_ATTR_INT:
    return fnv_i64(h, a->i);
  case TY_ATTR_FLOAT:
    return fnv(h, &a->f, sizeof a->f);
  case TY_ATTR_STRING:
    return fnv_str(h, a->s);
  case TY_ATTR_STRINGS:
    for (size_t i = 0; i < a->n; i++)
      h = fnv_str(h, ty_graph_attr_string_at(a, i));
    return h;
  case TY_ATTR_INTS:
    return fnv(h, a->ints, a->n * sizeof *a->ints);
  case TY_ATTR_FLOATS:
    return fnv(h, a->floats, a->n * sizeof *a->floats);
  case TY_ATTR_TENSOR:
    return a->t ? fnv(h, a->t->shape.dims, (size_t)a->t->shape.rank * sizeof(int64_t)) : h;
  }
  return h;
}

uint64_t ty_plan_fingerprint(const ty_graph *g) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < ty_graph_n_values(g); i++) {
    const ty_graph_value *v = ty_graph_value_at(g, (int)i);
    h = fnv_str(h, v->name);
    h = fnv_i64(h, v->dtype);
    h = fnv_i64(h, v->shape.rank);
    if (v->shape.rank > 0) h = fnv(h, v->shape.dims, (size_t)v->shape.rank * sizeof *v->shape.dims);
    h = fnv_i64(h, (v->init != NULL) | v->is_input << 1 | v->is_output << 2);
  }
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    h = fnv_i64(h, n->op);
    h = fnv_str(h, n->name);
    h = fnv(h, n->inputs, (size_t)n->n_inputs * sizeof *n->inputs);
    h = fnv(h, n->outputs, (size_t)n->n_outputs * sizeof *n->outputs);
    for (int k = 0; k < n->n_attrs; k++)
      h = hash_attr(h, &n->attrs[k]);
  }
  return h;
}

uint64_t ty_plan_request_key(const ty_plan_request *req, uint64_t fingerprint) {
  const ty_plan_cluster *c = &req->cluster;
  const double rates[] = {c->device_flops,    c->intra_bw,        c->inter_bw,
                          c->intra_latency_s, c->inter_latency_s, c->launch_s};
  const int64_t ints[] = {req->batch,           c->nodes,           c->devices_per_node,
                          req->optimizer,       req->mode,          req->solver,
                          req->time_limit_ms,   req->fixed_mesh,    (int64_t)c->device_mem_bytes,
                          req->pipeline_stages, req->micro_batches, req->pipeline_if_needed};
  uint64_t h = fnv_i64(0xcbf29ce484222325ull, (int64_t)fingerprint);
  h = fnv(h, rates, sizeof rates);
  h = fnv(h, ints, sizeof ints);
  h = fnv_i64(h, req->trained ? (int64_t)req->n_trained : -1);
  for (size_t i = 0; req->trained && i < req->n_trained; i++)
    h = fnv_str(h, req->trained[i]);
  return fnv_str(h, req->loss);
}

int ty_plan_check(const ty_plan *p, const ty_graph *g, char *err, size_t err_len) {
  if (p->graph_fingerprint != ty_plan_fingerprint(g))
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: made for another graph (fingerprint %016llx, this model and config give "
                   "%016llx): plan again for this model",
                   (unsigned long long)p->graph_fingerprint,
                   (unsigned long long)ty_plan_fingerprint(g));
  if (p->n_ops != ty_graph_n_nodes(g))
    return ty_errf(err, err_len, TY_EINVAL, "plan: %zu ops, the graph has %zu nodes", p->n_ops,
                   ty_graph_n_nodes(g));
  for (size_t i = 0; i < p->n_ops; i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    const ty_plan_op *o = &p->ops[i];
    if (o->op != n->op || o->n_inputs != n->n_inputs || o->n_outputs != n->n_outputs)
      return ty_errf(err, err_len, TY_EINVAL, "plan: ops[%zu] (%s) does not match node \"%s\" (%s)",
                     i, ty_op_name(o->op), n->name, ty_op_name(n->op));
  }
  size_t nv = ty_graph_n_values(g);
  for (size_t i = 0; i < p->n_params; i++) {
    const ty_plan_param *pp = &p->params[i];
    if ((size_t)pp->value >= nv || strcmp(ty_graph_value_at(g, pp->value)->name, pp->name) != 0 ||
        pp->layout.rank != ty_graph_value_at(g, pp->value)->shape.rank)
      return ty_errf(err, err_len, TY_EINVAL,
                     "plan: params[%zu] (\"%s\") is not a value of the graph", i, pp->name);
  }
  for (size_t i = 0; i < p->n_collectives; i++)
    if (p->collectives[i].value >= (int)nv)
      return ty_errf(err, err_len, TY_EINVAL,
                     "plan: collectives[%zu].value %d is not a value of the graph", i,
                     p->collectives[i].value);
  return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

void ty_plan_destroy(ty_plan *p) {
  if (!p) return;
  for (size_t i = 0; p->ops && i < p->n_ops; i++) {
    free(p->ops[i].name);
    free(p->ops[i].strategy);
    free(p->ops[i].note);
    free(p->ops[i].inputs);
    free(p->ops[i].outputs);
  }
  for (size_t i = 0; p->collectives && i < p->n_collectives; i++)
    free(p->collectives[i].tensor);
  for (size_t i = 0; p->params && i < p->n_params; i++)
    free(p->params[i].name);
  free(p->ops);
  free(p->collectives);
  free(p->params);
  free(p->alternatives);
  free(p->stages);
  free(p);
}
