/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local graph of one rank (see shard.h). Built in three passes:
 *
 *   1. global shapes: each value's shape at the plan's batch
 *      (ty__graph_shapes_at, which also runs shape arithmetic that is
 *      constant at that batch);
 *   2. layouts: each value is held in its writer's output layout, a
 *      parameter in its stored one, a data input or a constant in the one
 *      its readers agree on (replicated when they do not: then a float
 *      input is sliced per reader by a TyExtern, an integer or boolean
 *      one by a Slice node, a constant is copied per reader already
 *      sliced);
 *   3. the local graph: values in the same order (so ids stay), each
 *      initializer its slice, each input its local shape, every node
 *      copied with its inputs routed through a TyExtern where the reader
 *      wants another layout, and the per-node adjustments shard.h lists;
 *      then shapes are inferred and every value's local shape is checked
 *      against its layout, so a plan and a graph that disagree are caught
 *      here, not in the middle of a step.
 */
#include "ops/shard/shard_internal.h"

#include "ops/autodiff/autodiff.h"
#include "ops/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pass 1: global shapes --------------------------------------------------------- */

static int global_shapes(builder *b) {
  ty_shard *s = b->s;
  int rc = ty__graph_shapes_at(b->src, s->plan->batch, s->full, b->err, b->err_len);
  if (rc != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", b->err ? b->err : "");
    return ty_errf(b->err, b->err_len, rc, "shard: the graph at batch %lld: %s",
                   (long long)s->plan->batch, inner);
  }
  for (size_t i = 0; i < s->n_values; i++)
    for (int d = 0; d < s->full[i].rank; d++)
      if (s->full[i].dims[d] < 0)
        return ty_errf(b->err, b->err_len, TY_EUNSUPPORTED,
                       "shard: value \"%s\": dim %d stays unknown",
                       ty_graph_value_at(b->src, (int)i)->name, d);
  return 0;
}

/* ---- pass 2: layouts ------------------------------------------------------------------ */

static bool same_layout(const ty_plan_layout *a, const ty_plan_layout *b) {
  return a->rank == b->rank && a->partial == b->partial &&
         memcmp(a->dim_axes, b->dim_axes, (size_t)(a->rank > 0 ? a->rank : 0)) == 0;
}

static ty_plan_layout replicated(int rank) {
  ty_plan_layout l;
  memset(&l, 0, sizeof l);
  l.rank = rank;
  return l;
}

/* A value no op writes: the layout its readers agree on, else replicated.
 * A Shape does not count: it reads no element (shape_node). */
static ty_plan_layout reader_layout(const builder *b, int v) {
  const ty_plan *p = b->s->plan;
  const ty_plan_layout *first = NULL;
  for (size_t n = 0; n < p->n_ops; n++)
    for (int i = 0; i < p->ops[n].n_inputs; i++) {
      const ty_graph_node *gn = ty_graph_node_at(b->src, n);
      if (gn->inputs[i] != v || gn->op == TY_OP_SHAPE) continue;
      const ty_plan_layout *l = &p->ops[n].inputs[i];
      if (!first)
        first = l;
      else if (!same_layout(first, l))
        return replicated(first->rank);
    }
  ty_plan_layout l = first ? *first : replicated(b->s->full[v].rank);
  l.grad_partial = 0;
  return l;
}

/* Every dim a layout splits must give each rank at least one element:
 * blocks may differ by one (ty_plan_block), but an empty one would leave
 * a rank with a zero-sized tensor and nothing to compute. A dim held
 * whole may have no element at all (h[:, :0], shape[2:] of a 2-D shape:
 * the index arithmetic PyTorch exports for `mask[:, 0] = False`), as in
 * one process. */
static int check_blocks(const builder *b, int v, const ty_plan_layout *l) {
  const ty_shard *s = b->s;
  const char *name = ty_graph_value_at(b->src, v)->name;
  if (l->rank != s->full[v].rank)
    return ty_errf(b->err, b->err_len, TY_EINVAL, "plan: value \"%s\" has rank %d, its layout %d",
                   name, s->full[v].rank, l->rank);
  for (int d = 0; d < l->rank; d++) {
    int64_t parts = 1;
    for (int a = 0; a < TY_PLAN_AXES; a++)
      if (l->dim_axes[d] >> a & 1u) parts *= s->plan->mesh[a];
    if (parts > 1 && s->full[v].dims[d] < parts)
      return ty_errf(b->err, b->err_len, TY_EINVAL,
                     "plan: value \"%s\" dim %d (%lld) cannot split into %lld parts (a rank "
                     "would hold none of it)",
                     name, d, (long long)s->full[v].dims[d], (long long)parts);
  }
  return 0;
}

static int value_layouts(builder *b) {
  ty_shard *s = b->s;
  const ty_plan *p = s->plan;
  for (size_t v = 0; v < s->n_values; v++) {
    const ty_graph_value *gv = ty_graph_value_at(b->src, (int)v);
    if (gv->producer >= 0) {
      const ty_graph_node *n = ty_graph_node_at(b->src, (size_t)gv->producer);
      for (int o = 0; o < n->n_outputs; o++)
        if (n->outputs[o] == (int)v) s->lay[v] = p->ops[gv->producer].outputs[o];
    } else {
      s->lay[v] = reader_layout(b, (int)v);
    }
  }
  for (size_t i = 0; i < p->n_params; i++) {
    s->lay[p->params[i].value] = p->params[i].layout;
    s->is_param[p->params[i].value] = true;
  }
  for (size_t v = 0; v < s->n_values; v++) {
    int rc = check_blocks(b, (int)v, &s->lay[v]);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Which values may carry a gradient, by the planner's rule (ops/plan
 * model.c): those that depend on a parameter the plan trains (a float
 * initializer of its params: not one config.frozen leaves out, such as a
 * causal mask buffer) and that the loss (a one-element float output)
 * depends on, both through differentiable inputs. A value without one needs no backward route, and
 * the planner lists none: shape arithmetic, masks and position ids built from Shape(x), a causal
 * mask sliced from a buffer, scores read only through ArgMax, an output head the loss does not read
 * move forward only. */
static int mark_grads(builder *b) {
  size_t nn = ty_graph_n_nodes(b->src), *order = malloc((nn + 1) * sizeof *order);
  b->grad = calloc(b->s->n_values + 1, sizeof *b->grad);
  int rc = order && b->grad ? ty_graph_topo_order(b->src, order) : TY_ENOMEM;
  for (size_t v = 0; rc == 0 && v < b->s->n_values; v++) {
    const ty_graph_value *gv = ty_graph_value_at(b->src, (int)v);
    b->grad[v] = gv->init && gv->dtype == TY_DTYPE_F32 && b->s->is_param[v];
  }
  bool *live = rc == 0 ? calloc(b->s->n_values + 1, sizeof *live) : NULL;
  if (rc == 0 && !live) rc = TY_ENOMEM;
  for (size_t v = 0; rc == 0 && v < b->s->n_values; v++)
    live[v] = ty_graph_value_at(b->src, (int)v)->is_output &&
              ty_graph_value_at(b->src, (int)v)->dtype == TY_DTYPE_F32 &&
              ty_shape_numel(&b->s->full[v]) == 1;
  for (size_t k = nn;
       rc == 0 && k-- > 0;) { /* what the loss depends on through differentiable slots */
    const ty_graph_node *n = ty_graph_node_at(b->src, order[k]);
    bool out_live = false;
    for (int o = 0; o < n->n_outputs; o++)
      out_live |= n->outputs[o] != TY_NO_VALUE && live[n->outputs[o]];
    for (int i = 0; out_live && i < n->n_inputs; i++)
      if (n->inputs[i] != TY_NO_VALUE && ty_autodiff_input_differentiable(n->op, i))
        live[n->inputs[i]] = true;
  }
  for (size_t k = 0; rc == 0 && k < nn; k++) {
    const ty_graph_node *n = ty_graph_node_at(b->src, order[k]);
    bool any = false;
    for (int i = 0; i < n->n_inputs; i++) {
      int v = n->inputs[i];
      any |= v != TY_NO_VALUE && b->grad[v] &&
             ty_graph_value_at(b->src, v)->dtype == TY_DTYPE_F32 &&
             ty_autodiff_input_differentiable(n->op, i);
    }
    for (int o = 0; o < n->n_outputs; o++)
      if (n->outputs[o] != TY_NO_VALUE)
        b->grad[n->outputs[o]] =
            any && ty_graph_value_at(b->src, n->outputs[o])->dtype == TY_DTYPE_F32;
  }
  for (size_t v = 0; rc == 0 && v < b->s->n_values; v++)
    b->grad[v] = b->grad[v] && live[v];
  free(live);
  free(order);
  return rc;
}

/* ---- pass 3: the local graph --------------------------------------------------------------- */

/* The slice of initializer t (global) that layout l gives this rank. */
static int slice_tensor(const ty_shard *s, const ty_tensor *t, const ty_plan_layout *l,
                        ty_tensor **out) {
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  ty_plan_slice(s->plan, l, &t->shape, s->rank, start, len);
  ty_shape ls = ty_shape_make(t->shape.rank, len);
  int rc = ty_tensor_create(t->dtype, &ls, out);
  if (rc == 0)
    ty_shard_copy_block(t->data, &t->shape, (*out)->data, start, len, ty_dtype_size(t->dtype),
                        true);
  return rc;
}

ty_shape ty__shard_local_of(const ty_shard *s, int v, const ty_plan_layout *l) {
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  ty_plan_slice(s->plan, l, &s->full[v], s->rank, start, len);
  return ty_shape_make(s->full[v].rank, len);
}

/* Initializer id of g without data (ty_graph_drop_init_data), local
 * shape ls: the source's data was dropped, the caller binds the slice. */
static int dropped_init(ty_graph *g, int id, ty_dtype dtype, const ty_shape *ls) {
  ty_tensor *t;
  int rc = ty_tensor_create(dtype, ls, &t);
  if (rc == 0) rc = ty_graph_set_initializer(g, id, t);
  return rc ? rc : ty_graph_drop_init_data(g, id);
}

/* Values 0..n-1 in the same order: inputs local, initializers sliced
 * (a dropped one stays dropped). */
static int add_values(builder *b) {
  ty_shard *s = b->s;
  int rc = 0;
  for (size_t v = 0; rc == 0 && v < s->n_values; v++) {
    const ty_graph_value *gv = ty_graph_value_at(b->src, (int)v);
    ty_shape ls = ty__shard_local_of(s, (int)v, &s->lay[v]);
    int id;
    ty_tensor *t = NULL;
    rc = ty_graph_add_value(b->g, gv->name, gv->dtype, gv->is_input || gv->init ? &ls : NULL, &id);
    if (rc == 0 && gv->init_dropped) /* bound at run time: a placeholder of the local shape */
      rc = dropped_init(b->g, id, gv->dtype, &ls);
    else if (rc == 0 && gv->init && (rc = slice_tensor(s, gv->init, &s->lay[v], &t)) == 0)
      rc = ty_graph_set_initializer(b->g, id, t);
    if (rc == 0 && gv->is_input) rc = ty_graph_mark_input(b->g, id);
  }
  return rc;
}

static int mark_outputs(builder *b) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < ty_graph_n_outputs(b->src); i++)
    rc = ty_graph_mark_output(b->g, ty_graph_output(b->src, i));
  return rc;
}

/* The plan's collectives of (node, input) in a phase set, as route steps. */
static int listed_steps(const ty_plan *p, int node, int input, bool backward, ty__step *out) {
  int n = 0;
  for (size_t i = 0; i < p->n_collectives && n < TY__ROUTE_MAX; i++) {
    const ty_plan_collective *c = &p->collectives[i];
    bool phase = backward ? c->phase != TY_PLAN_FORWARD : c->phase == TY_PLAN_FORWARD;
    if (c->node == node && c->input == input && phase)
      out[n++] =
          (ty__step){(uint8_t)c->kind, (uint8_t)c->mesh_axis, (int8_t)c->dim, (int8_t)c->src_dim};
  }
  return n;
}

int ty__shard_add_point(builder *b, ty__point **out) {
  ty_shard *s = b->s;
  if (s->n_points == s->cap_points) {
    size_t nc = s->cap_points ? 2 * s->cap_points : 16;
    ty__point *np = realloc(s->points, nc * sizeof *np);
    if (!np) return TY_ENOMEM;
    s->points = np;
    s->cap_points = nc;
  }
  *out = &s->points[s->n_points++];
  memset(*out, 0, sizeof **out);
  return 0;
}

int ty__shard_add_extern(builder *b, int v, const ty_shape *ls, const char *name, int64_t id,
                         int *out) {
  int idx, rc = ty_graph_add_value(b->g, name, TY_DTYPE_F32, ls, out);
  if (rc == 0) rc = ty_graph_add_node(b->g, TY_OP_EXTERN, name, &v, 1, out, 1, &idx);
  if (rc == 0) rc = ty_graph_node_set_int(b->g, (size_t)idx, "id", id);
  if (rc == 0) rc = ty_graph_node_set_ints(b->g, (size_t)idx, "shape", ls->dims, (size_t)ls->rank);
  return rc;
}

/* A point for reader (n, i) of v: both routes, and the TyExtern reading
 * local value src (v itself, or v cast to float: cast_point). */
static int point_of(builder *b, size_t n, int i, int v, int src, bool backward, int *out) {
  ty_shard *s = b->s;
  const ty_plan_layout *want = &s->plan->ops[n].inputs[i];
  ty__step fl[TY__ROUTE_MAX], bl[TY__ROUTE_MAX];
  ty__point *pt;
  int rc = ty__shard_add_point(b, &pt), nf = listed_steps(s->plan, (int)n, i, false, fl);
  if (rc != 0) return rc;
  snprintf(pt->what, sizeof pt->what, "%s at %s input %d", ty_graph_value_at(b->src, v)->name,
           ty_graph_node_at(b->src, n)->name, i);
  pt->full = s->full[v];
  rc = ty__route_build(s, &s->full[v], &s->lay[v], want, fl, nf, pt->what, &pt->fwd, b->err,
                       b->err_len);
  if (rc == 0 && backward) {
    ty_plan_layout g = *want;
    g.partial = want->grad_partial;
    int nb = listed_steps(s->plan, (int)n, i, true, bl);
    rc = ty__route_build(s, &s->full[v], &g, &s->lay[v], bl, nb, pt->what, &pt->bwd, b->err,
                         b->err_len);
  }
  char name[300];
  snprintf(name, sizeof name, "%s@%s.%d", ty_graph_value_at(b->src, v)->name,
           ty_graph_node_at(b->src, n)->name, i);
  ty_shape ls = ty__shard_local_of(s, v, want);
  return rc ? rc : ty__shard_add_extern(b, src, &ls, name, (int64_t)(s->n_points - 1), out);
}

static int make_point(builder *b, size_t n, int i, int v, bool backward, int *out) {
  return point_of(b, n, i, v, v, backward, out);
}

/* A Cast of local value x to dtype `to`, named NAME.SUFFIX, of shape ls. */
static int add_cast(builder *b, const char *name, const char *suffix, int x, ty_dtype to,
                    const ty_shape *ls, int *out) {
  char vn[300];
  int idx;
  snprintf(vn, sizeof vn, "%s.%s", name, suffix);
  int rc = ty_graph_add_value(b->g, vn, to, ls, out);
  if (rc == 0) rc = ty_graph_add_node(b->g, TY_OP_CAST, vn, &x, 1, out, 1, &idx);
  if (rc == 0) rc = ty_graph_node_set_int(b->g, (size_t)idx, "to", (int64_t)to);
  return rc;
}

/* An integer or boolean value (indices, positions, a mask) that reader
 * (n, i) wants in a layout only a collective makes: moved as float, which
 * holds every integer up to 2^24 exactly (token ids, positions, indices
 * into tensors of fewer than 16M elements), and cast back. */
static int cast_point(builder *b, size_t n, int i, int v, int *out) {
  const ty_shard *s = b->s;
  const ty_graph_value *gv = ty_graph_value_at(b->src, v);
  char name[300];
  snprintf(name, sizeof name, "%s@%s.%d", gv->name, ty_graph_node_at(b->src, n)->name, i);
  ty_shape held = ty__shard_local_of(s, v, &s->lay[v]),
           want = ty__shard_local_of(s, v, &s->plan->ops[n].inputs[i]);
  int f, moved;
  int rc = add_cast(b, name, "f32", v, TY_DTYPE_F32, &held, &f);
  if (rc == 0) rc = point_of(b, n, i, v, f, false, &moved);
  if (rc == 0) rc = add_cast(b, name, "back", moved, gv->dtype, &want, out);
  return rc;
}

/* True when a route does nothing: no step, same layout both ends. */
static bool route_empty(const ty__route *r) {
  return r->n == 0;
}

/* A constant read in another layout than the one it is held in: its own
 * copy, sliced for this reader. */
static int const_copy(builder *b, size_t n, int i, int v, int *out) {
  const ty_graph_value *gv = ty_graph_value_at(b->src, v);
  if (gv->init_dropped)
    return ty_errf(b->err, b->err_len, TY_EUNSUPPORTED,
                   "shard: node \"%s\" reads \"%s\" in another layout than it is held in, and "
                   "its data is bound at run time (a copy would not follow it)",
                   ty_graph_node_at(b->src, n)->name, gv->name);
  char name[300];
  snprintf(name, sizeof name, "%s@%s.%d", gv->name, ty_graph_node_at(b->src, n)->name, i);
  ty_tensor *t;
  int rc = slice_tensor(b->s, gv->init, &b->s->plan->ops[n].inputs[i], &t);
  if (rc == 0 && (rc = ty_graph_add_value(b->g, name, gv->dtype, &t->shape, out)) != 0)
    ty_tensor_destroy(t);
  else if (rc == 0)
    rc = ty_graph_set_initializer(b->g, *out, t);
  return rc;
}

int ty__shard_add_const(builder *b, const char *node, const char *what, ty_tensor *t, int *id) {
  char name[300];
  snprintf(name, sizeof name, "%s.%s", node, what);
  int rc = ty_graph_add_value(b->g, name, t->dtype, &t->shape, id);
  if (rc != 0) {
    ty_tensor_destroy(t);
    return rc;
  }
  return ty_graph_set_initializer(b->g, *id, t);
}

int ty__shard_add_ints(builder *b, const char *node, const char *what, const int64_t *v, int n,
                       int *id) {
  ty_shape vs = ty_shape_make(1, (int64_t[]){n});
  ty_tensor *t;
  int rc = ty_tensor_create(TY_DTYPE_I64, &vs, &t);
  if (rc != 0) return rc;
  if (n > 0) memcpy(t->data, v, (size_t)n * sizeof *v);
  return ty__shard_add_const(b, node, what, t, id);
}

int ty__shard_add_scalar(builder *b, const char *node, const char *what, ty_dtype dt, double x,
                         int *id) {
  ty_shape vs = ty_shape_make(0, NULL);
  ty_tensor *t, *c;
  int rc = ty_tensor_create(TY_DTYPE_F64, &vs, &t);
  if (rc != 0) return rc;
  *(double *)t->data = x;
  rc = ty_tensor_cast(t, dt, &c);
  ty_tensor_destroy(t);
  return rc ? rc : ty__shard_add_const(b, node, what, c, id);
}

static bool has_split(const ty_plan_layout *l) {
  for (int d = 0; d < l->rank; d++)
    if (l->dim_axes[d]) return true;
  return false;
}

/* Slice(v, starts, ends, axes): this rank's block of a value held whole,
 * for a reader that wants it split; any dtype. */
static int slice_node(builder *b, size_t n, int i, int v, int *out) {
  const ty_shard *s = b->s;
  const char *node = ty_graph_node_at(b->src, n)->name;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK], end[TY_MAX_RANK], axes[TY_MAX_RANK];
  ty_plan_slice(s->plan, &s->plan->ops[n].inputs[i], &s->full[v], s->rank, start, len);
  int r = s->full[v].rank, st, en, ax, idx;
  for (int d = 0; d < r; d++) {
    end[d] = start[d] + len[d];
    axes[d] = d;
  }
  char what[64], name[300];
  snprintf(what, sizeof what, "in%d.starts", i);
  int rc = ty__shard_add_ints(b, node, what, start, r, &st);
  snprintf(what, sizeof what, "in%d.ends", i);
  if (rc == 0) rc = ty__shard_add_ints(b, node, what, end, r, &en);
  snprintf(what, sizeof what, "in%d.axes", i);
  if (rc == 0) rc = ty__shard_add_ints(b, node, what, axes, r, &ax);
  snprintf(name, sizeof name, "%s@%s.%d", ty_graph_value_at(b->src, v)->name, node, i);
  if (rc == 0) rc = ty_graph_add_value(b->g, name, ty_graph_value_at(b->src, v)->dtype, NULL, out);
  ty_graph_set_opset(b->g, 13);
  if (rc == 0)
    rc = ty_graph_add_node(b->g, TY_OP_SLICE, name, (int[]){v, st, en, ax}, 4, out, 1, &idx);
  return rc;
}

/* A value without a gradient (or read where its reader takes none): its
 * forward route only. A float one goes through a TyExtern; any other
 * (Range's positions, integer masks) is sliced locally when held whole,
 * and moved as float when it needs a collective (cast_point). */
static int forward_only(builder *b, size_t n, int i, int v, int *out) {
  ty_shard *s = b->s;
  const ty_graph_value *gv = ty_graph_value_at(b->src, v);
  const ty_plan_layout *want = &s->plan->ops[n].inputs[i];
  ty__route fwd;
  ty__step fl[TY__ROUTE_MAX];
  int nf = listed_steps(s->plan, (int)n, i, false, fl);
  int rc =
      ty__route_build(s, &s->full[v], &s->lay[v], want, fl, nf, gv->name, &fwd, b->err, b->err_len);
  if (rc != 0 || route_empty(&fwd)) return rc;
  if (gv->dtype == TY_DTYPE_F32) return make_point(b, n, i, v, false, out);
  if (!has_split(&s->lay[v]) && !s->lay[v].partial) return slice_node(b, n, i, v, out);
  if (!ty_dtype_is_float(gv->dtype)) return cast_point(b, n, i, v, out);
  char held[64], wanted[64];
  ty_plan_layout_format(&s->lay[v], held, sizeof held);
  ty_plan_layout_format(want, wanted, sizeof wanted);
  return ty_errf(b->err, b->err_len, TY_EUNSUPPORTED,
                 "shard: value \"%s\" (%s) is held as %s and node \"%s\" reads it as %s; only "
                 "FLOAT, integer and boolean values move between ranks",
                 gv->name, ty_dtype_name(gv->dtype), held, ty_graph_node_at(b->src, n)->name,
                 wanted);
}

/* The value reader (n, i) reads v through. */
static int reader_input(builder *b, size_t n, int i, int v, int *out) {
  ty_shard *s = b->s;
  const ty_graph_value *gv = ty_graph_value_at(b->src, v);
  const ty_plan_layout *want = &s->plan->ops[n].inputs[i];
  *out = v;
  if (s->is_param[v]) return s->param_points[v] ? make_point(b, n, i, v, true, out) : 0;
  if (gv->producer < 0 && same_layout(&s->lay[v], want)) return 0;
  if (gv->init) return const_copy(b, n, i, v, out);
  /* Token ids read split by an Embedding and whole by another reader (an
   * op without a sharding rule): fed whole (reader_layout), each reader
   * gets its block by a local Slice. */
  if (gv->producer < 0 && gv->dtype != TY_DTYPE_F32) return slice_node(b, n, i, v, out);
  if (gv->producer < 0) return make_point(b, n, i, v, false, out);
  /* No gradient comes back through a slot its reader does not
   * differentiate (ArgMax of logits, Equal of a causal mask): the planner
   * lists no backward collectives for it. */
  if (!b->grad[v] || !ty_autodiff_input_differentiable(ty_graph_node_at(b->src, n)->op, i))
    return forward_only(b, n, i, v, out);
  /* an activation: a point unless neither direction moves anything */
  ty__route fwd, bwd;
  ty__step fl[TY__ROUTE_MAX], bl[TY__ROUTE_MAX];
  ty_plan_layout g = *want;
  g.partial = want->grad_partial;
  int nf = listed_steps(s->plan, (int)n, i, false, fl),
      nb = listed_steps(s->plan, (int)n, i, true, bl);
  int rc =
      ty__route_build(s, &s->full[v], &s->lay[v], want, fl, nf, gv->name, &fwd, b->err, b->err_len);
  if (rc == 0)
    rc =
        ty__route_build(s, &s->full[v], &g, &s->lay[v], bl, nb, gv->name, &bwd, b->err, b->err_len);
  if (rc != 0 || (route_empty(&fwd) && route_empty(&bwd))) return rc;
  return make_point(b, n, i, v, true, out);
}

/* Parameters: read directly, their gradient summed in buckets after
 * backward over the axes the plan's grad-sync all-reduces name, when
 * every reader reads the stored layout and asks only for all-reduces over
 * the same axes; otherwise through TyExtern nodes that run the listed
 * routes inside backward. */
static void decide_params(builder *b) {
  ty_shard *s = b->s;
  const ty_plan *p = s->plan;
  for (size_t k = 0; k < p->n_params; k++) {
    int v = p->params[k].value;
    bool direct = true, seen = false;
    unsigned axes = 0;
    for (size_t n = 0; n < p->n_ops && direct; n++)
      for (int i = 0; i < p->ops[n].n_inputs && direct; i++) {
        if (ty_graph_node_at(b->src, n)->inputs[i] != v) continue;
        ty__step st[TY__ROUTE_MAX];
        unsigned mine = 0;
        direct = same_layout(&s->lay[v], &p->ops[n].inputs[i]) &&
                 listed_steps(p, (int)n, i, false, st) == 0;
        for (int j = 0, nb = listed_steps(p, (int)n, i, true, st); direct && j < nb; j++) {
          direct = st[j].kind == TY_PLAN_ALL_REDUCE;
          mine |= 1u << st[j].axis;
        }
        direct = direct && (!seen || mine == axes);
        axes = mine;
        seen = true;
      }
    s->param_points[v] = !direct;
    s->grad_axes[v] = direct ? axes : 0;
  }
}

/* The ops whose output shape is an input's value read this rank's block
 * of their global output from the plan, never from the shape arithmetic
 * of the local graph: there Shape(x) of a batch-split x is the local
 * batch, right for a value that follows the split and wrong for one held
 * whole (a replicated Reshape, a Range over the batch). So each reads a
 * constant made from its output's layout and global shape:
 *   - Reshape's target, ConstantOfShape's shape and Expand's shape: the
 *     output's local shape;
 *   - Tile's repeats: local output / local input, dim by dim;
 *   - Range's limit: start + delta * n, n its local length (n - 1/2 for
 *     a float range, so rounding cannot add an element), as nodes, since
 *     start and delta may be computed. Range has no sharding rule, so n
 *     is its global length. */
static int shaped_inputs(builder *b, size_t n, int *inputs) {
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  const ty_shard *s = b->s;
  int out = gn->outputs[0], slot = gn->op == TY_OP_CONSTANT_OF_SHAPE ? 0 : 1;
  if (out == TY_NO_VALUE || gn->n_inputs <= slot || inputs[slot] == TY_NO_VALUE) return 0;
  ty_shape lo = ty__shard_local_of(s, out, &s->lay[out]);
  switch (gn->op) {
  case TY_OP_RESHAPE:
  case TY_OP_CONSTANT_OF_SHAPE:
  case TY_OP_EXPAND:
    return ty__shard_add_ints(b, gn->name, "local_shape", lo.dims, lo.rank, &inputs[slot]);
  case TY_OP_TILE: {
    ty_shape li = ty__shard_local_of(s, gn->inputs[0], &s->plan->ops[n].inputs[0]);
    int64_t rep[TY_MAX_RANK];
    if (li.rank != lo.rank)
      return ty_errf(b->err, b->err_len, TY_EINVAL, "shard: node \"%s\" (Tile): rank %d to %d",
                     gn->name, li.rank, lo.rank);
    for (int d = 0; d < lo.rank; d++)
      rep[d] = li.dims[d] > 0 ? lo.dims[d] / li.dims[d] : 1;
    return ty__shard_add_ints(b, gn->name, "local_repeats", rep, lo.rank, &inputs[1]);
  }
  case TY_OP_RANGE: {
    if (gn->n_inputs < 3 || inputs[0] == TY_NO_VALUE || inputs[2] == TY_NO_VALUE) return 0;
    ty_dtype dt = ty_graph_value_at(b->src, gn->inputs[0])->dtype;
    double len = (double)(lo.rank == 1 ? lo.dims[0] : 0) - (ty_dtype_is_float(dt) ? 0.5 : 0);
    char name[300];
    int k, span, limit, idx;
    int rc = ty__shard_add_scalar(b, gn->name, "local_len", dt, len, &k);
    snprintf(name, sizeof name, "%s.local_span", gn->name);
    if (rc == 0) rc = ty_graph_add_value(b->g, name, dt, NULL, &span);
    if (rc == 0)
      rc = ty_graph_add_node(b->g, TY_OP_MUL, name, (int[]){inputs[2], k}, 2, &span, 1, &idx);
    snprintf(name, sizeof name, "%s.local_limit", gn->name);
    if (rc == 0) rc = ty_graph_add_value(b->g, name, dt, NULL, &limit);
    if (rc == 0)
      rc = ty_graph_add_node(b->g, TY_OP_ADD, name, (int[]){inputs[0], span}, 2, &limit, 1, &idx);
    if (rc == 0) inputs[1] = limit;
    return rc;
  }
  default:
    return 0;
  }
}

/* A random op's or a Dropout's slice of its global output
 * (ops/kernels/random.c), so the rank draws its own part of the
 * one-process tensor or mask. */
static int random_slice(builder *b, int idx, int v) {
  const ty_shard *s = b->s;
  const ty_shape *full = &s->full[v];
  if (full->rank < 0) return 0;
  int64_t start[TY_MAX_RANK] = {0}, len[TY_MAX_RANK];
  ty_plan_slice(s->plan, &s->lay[v], full, s->rank, start, len);
  int rc =
      ty_graph_node_set_ints(b->g, (size_t)idx, TY_RANDOM_FULL, full->dims, (size_t)full->rank);
  if (rc == 0)
    rc = ty_graph_node_set_ints(b->g, (size_t)idx, TY_RANDOM_START, start, (size_t)full->rank);
  return rc;
}

/* Shape: the rank's input may be a block of the value, so the node gives
 * the global shape at the plan's batch (what one process computes), as a
 * constant, with ONNX's start and end (Shape-15). */
static int shape_node(builder *b, size_t n) {
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  const ty_shape *full = &b->s->full[gn->inputs[0]];
  int64_t r = full->rank, lo = ty_graph_node_attr_int(gn, "start", 0),
          hi = ty_graph_node_attr_int(gn, "end", r);
  lo = lo < 0 ? lo + r : lo, hi = hi < 0 ? hi + r : hi;
  lo = lo < 0 ? 0 : lo > r ? r : lo, hi = hi < lo ? lo : hi > r ? r : hi;
  int c, idx,
      rc = ty__shard_add_ints(b, gn->name, "global_shape", full->dims + lo, (int)(hi - lo), &c);
  return rc ? rc : ty_graph_add_node(b->g, TY_OP_IDENTITY, gn->name, &c, 1, gn->outputs, 1, &idx);
}

/* Reader (n, i) of v: an earlier reader's result when it read v the same
 * way (same layout and gradient layout, a backward route when this one
 * needs one) and the plan lists no collectives of its own for it (a plan
 * made with separate_reads lists them: they run), else its own
 * (reader_input), remembered for later readers. */
static int shared_input(builder *b, size_t n, int i, int v, int *out) {
  const ty_shard *s = b->s;
  const ty_plan_layout *want = &s->plan->ops[n].inputs[i];
  const ty_graph_value *gv = ty_graph_value_at(b->src, v);
  if (gv->producer < 0 || s->is_param[v] || gv->init) return reader_input(b, n, i, v, out);
  bool bwd = b->grad[v] && ty_autodiff_input_differentiable(ty_graph_node_at(b->src, n)->op, i);
  ty__step st[TY__ROUTE_MAX];
  bool listed = listed_steps(s->plan, (int)n, i, false, st) > 0 ||
                listed_steps(s->plan, (int)n, i, true, st) > 0;
  for (size_t k = 0; !listed && k < b->n_shared; k++) {
    const ty__shared_read *r = &b->shared[k];
    if (r->value == v && same_layout(&r->lay, want) && r->lay.grad_partial == want->grad_partial &&
        (r->backward || !bwd)) {
      *out = r->out;
      return 0;
    }
  }
  int rc = reader_input(b, n, i, v, out);
  if (rc != 0 || *out == v) return rc;
  if (b->n_shared == b->cap_shared) {
    size_t nc = b->cap_shared ? 2 * b->cap_shared : 16;
    ty__shared_read *nr = realloc(b->shared, nc * sizeof *nr);
    if (!nr) return TY_ENOMEM;
    b->shared = nr;
    b->cap_shared = nc;
  }
  b->shared[b->n_shared++] = (ty__shared_read){v, *want, bwd, *out};
  return 0;
}

static int add_node(builder *b, size_t n) {
  ty_shard *s = b->s;
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  if (gn->op == TY_OP_SHAPE && gn->n_outputs == 1 && gn->inputs[0] != TY_NO_VALUE)
    return shape_node(b, n);
  int in[64], out[16], idx, rc = 0;
  if (gn->n_inputs > 64 || gn->n_outputs > 16)
    return ty_errf(b->err, b->err_len, TY_EUNSUPPORTED,
                   "shard: node \"%s\": too many inputs or outputs", gn->name);
  for (int i = 0; rc == 0 && i < gn->n_inputs; i++)
    rc = gn->inputs[i] == TY_NO_VALUE ? (in[i] = TY_NO_VALUE, 0)
                                      : shared_input(b, n, i, gn->inputs[i], &in[i]);
  if (rc == 0) rc = shaped_inputs(b, n, in);
  if (rc == 0) rc = ty__shard_unscaled_inputs(b, n, in);
  if (rc == 0 && ty__shard_weighted_here(b, n)) return ty__shard_weighted_mean(b, n, in);
  /* inference normalises with the running statistics: no batch sums */
  unsigned bn_axes = gn->op == TY_OP_BATCH_NORM && !s->inference ? ty__shard_batch_axes(s, n) : 0;
  if (rc == 0 && bn_axes) return ty__shard_bn(b, n, in, bn_axes);
  memcpy(out, gn->outputs, (size_t)gn->n_outputs * sizeof *out);
  double scale = 1.0;
  if (rc == 0) rc = ty__shard_mean_scale(b, n, &scale);
  char name[300];
  snprintf(name, sizeof name, "%s.local_mean", gn->name);
  if (rc == 0 && scale != 1.0) rc = ty_graph_add_value(b->g, name, TY_DTYPE_F32, NULL, &out[0]);
  ty_graph_set_opset(b->g, gn->opset); /* the node keeps its own semantics */
  if (rc == 0)
    rc = ty_graph_add_node(b->g, gn->op, gn->name, in, gn->n_inputs, out, gn->n_outputs, &idx);
  for (int k = 0; rc == 0 && k < gn->n_attrs; k++)
    rc = ty__graph_copy_attr(b->g, (size_t)idx, &gn->attrs[k]);
  if (rc == 0 && gn->op == TY_OP_GEMM && gn->n_inputs > 2 && in[2] != TY_NO_VALUE) {
    uint8_t partial = s->lay[gn->outputs[0]].partial;
    bool bias_here = true;
    for (int a = 0; a < TY_PLAN_AXES; a++)
      if ((partial >> a & 1u) && s->coords[a] != 0) bias_here = false;
    if (!bias_here) rc = ty_graph_node_set_float(b->g, (size_t)idx, "beta", 0.0f);
  }
  if (rc == 0 && (ty_op_is_random(gn->op) || gn->op == TY_OP_DROPOUT) &&
      gn->outputs[0] != TY_NO_VALUE)
    rc = random_slice(b, idx, gn->outputs[0]);
  if (rc == 0 && scale != 1.0) rc = ty__shard_add_scale(b, gn->name, out[0], scale, gn->outputs[0]);
  return rc;
}

/* Every value of the source graph has the local shape its layout says. */
static int check_shapes(const builder *b) {
  const ty_shard *s = b->s;
  int rc = 0;
  for (size_t v = 0; rc == 0 && v < s->n_values; v++) {
    const ty_graph_value *lv = ty_graph_value_at(b->g, (int)v);
    ty_shape want = ty__shard_local_of(s, (int)v, &s->lay[v]);
    if (lv->shape.rank < 0 && lv->producer < 0)
      continue; /* unread, or an unread output the shard leaves out (ty__shard_bn) */
    if (!ty_shape_equal(&lv->shape, &want)) {
      char got[96], exp[96];
      ty_shape_format(&lv->shape, got, sizeof got);
      ty_shape_format(&want, exp, sizeof exp);
      rc = ty_errf(b->err, b->err_len, TY_EINVAL,
                   "shard: value \"%s\" comes out %s on rank %d, its layout says %s (the plan "
                   "does not fit this graph)",
                   lv->name, got, s->rank, exp);
    }
  }
  return rc;
}

int ty__shard_build(ty_shard *s, const ty_graph *src, char *err, size_t err_len) {
  builder b = {.s = s, .src = src, .err = err, .err_len = err_len};
  int rc = global_shapes(&b);
  if (rc == 0) rc = value_layouts(&b);
  if (rc == 0) rc = mark_grads(&b);
  if (rc == 0) decide_params(&b);
  if (rc == 0) rc = ty_graph_create(&b.g);
  if (rc == 0) ty_graph_set_opset(b.g, ty_graph_opset(src));
  s->g = b.g;
  if (rc == 0) rc = add_values(&b);
  for (size_t n = 0; rc == 0 && n < ty_graph_n_nodes(src); n++)
    rc = add_node(&b, n);
  if (rc == 0) rc = mark_outputs(&b);
  /* The local graph is for one batch, so its shape arithmetic is constant:
   * folded, every shape is concrete (as autodiff and the memory planner
   * want them). */
  if (rc == 0 && (rc = ty__graph_fold_shapes(b.g, err, err_len)) != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err ? err : "");
    rc = ty_errf(err, err_len, rc, "shard: the local graph of rank %d: %s", s->rank, inner);
  }
  if (rc == 0) rc = check_shapes(&b);
  free(b.grad);
  free(b.shared);
  return rc;
}
