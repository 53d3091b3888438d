/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fusion pass: walks the nodes in topological order and grows regions
 * of float32 elementwise nodes that share one symbolic output shape (the
 * loop shape). A node joins (and may merge) the regions of its producers
 * when that keeps the schedule topological: every reader outside the
 * merged region of a member's output must come after the node, because the
 * region runs at the position of its last member. Regions of one node stay
 * plain steps (the library kernel is as good). Backward (TyGrad) nodes of
 * elementwise ops join like forward ones when their gradient has dY's
 * shape (ty__fnode_decode). Graphs are small (hundreds
 * of nodes), so the quadratic checks cost nothing next to one training step.
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/ops_internal.h"

#include <stdlib.h>
#include <string.h>

bool ty__fuse_op_ok(ty_op op) {
  switch (op) {
  case TY_OP_ADD:
  case TY_OP_SUB:
  case TY_OP_MUL:
  case TY_OP_DIV:
  case TY_OP_POW:
  case TY_OP_NEG:
  case TY_OP_RELU:
  case TY_OP_LEAKY_RELU:
  case TY_OP_SIGMOID:
  case TY_OP_TANH:
  case TY_OP_EXP:
  case TY_OP_LOG:
  case TY_OP_SQRT:
  case TY_OP_ERF:
  case TY_OP_IDENTITY:
    return true;
  default:
    return false;
  }
}

/* Ops whose library kernel may write its output over a same-sized input
 * (Identity is a memcpy, which must not overlap). */
static bool inplace_op(ty_op op) {
  return ty__fuse_op_ok(op) && op != TY_OP_IDENTITY;
}

static bool shape_static(const ty_shape *s) {
  if (s->rank < 0) return false;
  for (int d = 0; d < s->rank; d++)
    if (s->dims[d] < 0 && s->dims[d] != TY_DIM_BATCH) return false;
  return true;
}

static bool value_f32(const ty_graph *g, int id) {
  const ty_graph_value *v = ty_graph_value_at(g, id);
  return v && v->dtype == TY_DTYPE_F32 && shape_static(&v->shape);
}

/* Elementwise forward nodes and TyGrad nodes of elementwise ops whose
 * gradient needs no reduction; f gets the operands the formula reads. */
static bool node_fusible(const ty_graph *g, const ty_graph_node *n, ty__fnode *f) {
  if (n->n_outputs != 1 || n->outputs[0] == TY_NO_VALUE || !ty__fnode_decode(g, n, f)) return false;
  for (int i = 0; i < f->n_in; i++)
    if (!value_f32(g, f->in[i])) return false;
  return value_f32(g, n->outputs[0]);
}

/* Working state of the pass. */
typedef struct pass {
  const ty_graph *g;
  const size_t *order;
  size_t nn;
  size_t *pos; /* node -> schedule position */
  int *gid;    /* node -> region, -1 */
  int *root;   /* region -> representative region (union by relabel) */
  size_t n_regions;
  bool *keep;
  int min_region; /* members a region needs to become a kernel */
  bool *grouped;  /* region -> becomes one kernel even with every raw read counted */
} pass;

static int find(const pass *p, int r) {
  while (p->root[r] != r)
    r = p->root[r];
  return r;
}

static int region_of(const pass *p, size_t node) {
  return p->gid[node] < 0 ? -1 : find(p, p->gid[node]);
}

static bool in_set(const int *set, int n, int r) {
  for (int i = 0; i < n; i++)
    if (set[i] == r) return true;
  return false;
}

/* True when every reader outside cand[] of every member of cand[] comes
 * after position k (the joining node itself excepted). */
static bool merge_legal(const pass *p, const int *cand, int nc, size_t node, size_t k) {
  for (size_t q = 0; q < k; q++) {
    size_t m = p->order[q];
    int r = region_of(p, m);
    if (r < 0 || !in_set(cand, nc, r)) continue;
    int out = ty_graph_node_at(p->g, m)->outputs[0];
    for (size_t c = 0; c < p->nn; c++) {
      if (c == node) continue;
      const ty_graph_node *cn = ty_graph_node_at(p->g, c);
      bool reads = false;
      for (int i = 0; i < cn->n_inputs && !reads; i++)
        reads = cn->inputs[i] == out;
      if (!reads) continue;
      int rc = region_of(p, c);
      if (rc >= 0 && in_set(cand, nc, rc)) continue;
      if (p->pos[c] < k) return false;
    }
  }
  return true;
}

static int join(pass *p, size_t node, int r) {
  p->gid[node] = r;
  return r;
}

/* Puts the node at position k into a producer's region (merging two when
 * legal) or into a new region of its own. */
static void place_node(pass *p, size_t k, const ty__fnode *f) {
  size_t node = p->order[k];
  const ty_graph_node *n = ty_graph_node_at(p->g, node);
  const ty_shape *shape = &ty_graph_value_at(p->g, n->outputs[0])->shape;
  int cand[3], nc = 0;
  for (int i = 0; i < f->n_in; i++) {
    const ty_graph_value *pv = ty_graph_value_at(p->g, f->in[i]);
    int r = pv->producer < 0 ? -1 : region_of(p, (size_t)pv->producer);
    if (r < 0 || in_set(cand, nc, r) || !ty_shape_equal(&pv->shape, shape)) continue;
    cand[nc++] = r;
  }
  if (nc >= 2 && merge_legal(p, cand, nc, node, k)) {
    for (int c = 1; c < nc; c++)
      p->root[cand[c]] = cand[0];
    join(p, node, cand[0]);
    return;
  }
  for (int c = 0; c < nc; c++)
    if (merge_legal(p, &cand[c], 1, node, k)) {
      join(p, node, cand[c]);
      return;
    }
  p->root[p->n_regions] = (int)p->n_regions;
  join(p, node, (int)p->n_regions++);
}

/* ---- schedule construction ------------------------------------------ */

static int add_unique(int *arr, int *n, int max, int id) {
  for (int i = 0; i < *n; i++)
    if (arr[i] == id) return 0;
  if (*n >= max) return TY_EUNSUPPORTED;
  arr[(*n)++] = id;
  return 0;
}

/* Whether node c reads value id. A member of a region that becomes one
 * kernel (p->grouped) reads only the operands its formula does: a TyGrad
 * node lists every forward input and output, but the gradient of x * 0.5
 * reads neither x nor the product, and a region that wrote every such
 * intermediate (GELU's six) would spend its time on stores nobody loads. */
static bool node_reads(const pass *p, size_t c, int id) {
  const ty_graph_node *cn = ty_graph_node_at(p->g, c);
  int rc = region_of(p, c);
  ty__fnode f;
  if (p->grouped && rc >= 0 && p->grouped[rc] && ty__fnode_decode(p->g, cn, &f)) {
    for (int i = 0; i < f.n_in; i++)
      if (f.in[i] == id) return true;
    return false;
  }
  for (int i = 0; i < cn->n_inputs; i++)
    if (cn->inputs[i] == id) return true;
  return false;
}

static bool read_outside(const pass *p, int id, int r) {
  for (size_t c = 0; c < p->nn; c++)
    if (region_of(p, c) != r && node_reads(p, c, id)) return true;
  return false;
}

/* Collects the members of region r (in schedule order) and its I/O. */
static int group_build(const pass *p, int r, ty__fgroup **out_grp) {
  ty__fgroup *grp = calloc(1, sizeof *grp);
  if (!grp) return TY_ENOMEM;
  int rc = TY_ENOMEM, n_in = 0, n_out = 0;
  grp->nodes = calloc(p->nn, sizeof *grp->nodes);
  if (!grp->nodes) goto fail;
  for (size_t k = 0; k < p->nn; k++)
    if (region_of(p, p->order[k]) == r) grp->nodes[grp->n_nodes++] = p->order[k];
  for (size_t m = 0; m < grp->n_nodes; m++) {
    const ty_graph_node *n = ty_graph_node_at(p->g, grp->nodes[m]);
    ty__fnode f;
    if (!ty__fnode_decode(p->g, n, &f)) {
      rc = TY_EINTERNAL;
      goto fail;
    }
    for (int i = 0; i < f.n_in; i++) {
      int prod = ty_graph_value_at(p->g, f.in[i])->producer;
      if (prod >= 0 && region_of(p, (size_t)prod) == r) continue;
      if ((rc = add_unique(grp->in_ids, &n_in, TY__FUSE_MAX_IO, f.in[i])) != 0) goto fail;
    }
    int o = n->outputs[0];
    if (p->keep[o] || read_outside(p, o, r))
      if ((rc = add_unique(grp->out_ids, &n_out, TY__FUSE_MAX_IO, o)) != 0) goto fail;
  }
  if ((rc = ty__fprog_build(p->g, grp, n_in, n_out)) != 0) goto fail;
  *out_grp = grp;
  return 0;
fail:
  free(grp->nodes);
  free(grp);
  return rc;
}

static void group_free(ty__fgroup *grp) {
  if (!grp) return;
  ty__fprog_free(&grp->prog);
  free(grp->nodes);
  free(grp);
}

static int step_io(ty__step *st, const int *reads, int nr, const int *writes, int nw) {
  st->reads = calloc((size_t)nr + 1, sizeof *st->reads);
  st->writes = calloc((size_t)nw + 1, sizeof *st->writes);
  if (!st->reads || !st->writes) return TY_ENOMEM;
  for (int i = 0; i < nr; i++)
    if (reads[i] != TY_NO_VALUE) add_unique(st->reads, &st->n_reads, nr, reads[i]);
  for (int i = 0; i < nw; i++)
    if (writes[i] != TY_NO_VALUE) add_unique(st->writes, &st->n_writes, nw, writes[i]);
  return 0;
}

static bool view_op(ty_op op) {
  return op == TY_OP_RESHAPE || op == TY_OP_FLATTEN || op == TY_OP_SQUEEZE || op == TY_OP_UNSQUEEZE;
}

/* Whether node n's output 0 repeats its input 0's bytes, so memory
 * planning may let it share that buffer: the Reshape-like ops, and their
 * gradients (dX is dY reshaped: ty__g_reshape copies nothing then). Cast's
 * gradient is dY too, but only float to float reaches it and the pool
 * checks dtype and size, so it may view dY as well. */
static bool view_node(const ty_graph_node *n) {
  if (n->n_inputs < 1 || n->n_outputs != 1) return false;
  if (view_op(n->op)) return true;
  int fwd = ty_autodiff_grad_forward_op(n);
  return fwd >= 0 && (view_op((ty_op)fwd) || fwd == TY_OP_CAST || fwd == TY_OP_CAST_LIKE);
}

static int node_step(const pass *p, size_t node, ty__step *st) {
  const ty_graph_node *n = ty_graph_node_at(p->g, node);
  st->node = node;
  st->elementwise = inplace_op(n->op);
  st->overwrites = ty__fuse_op_ok(n->op) || ty__kernel_overwrites(n);
  st->view_of = view_node(n) ? n->inputs[0] : TY_NO_VALUE;
  return step_io(st, n->inputs, n->n_inputs, n->outputs, n->n_outputs);
}

static int region_size(const pass *p, int r) {
  int cnt = 0;
  for (size_t i = 0; i < p->nn; i++)
    cnt += region_of(p, i) == r;
  return cnt;
}

static bool last_member(const pass *p, size_t k, int r) {
  for (size_t q = k + 1; q < p->nn; q++)
    if (region_of(p, p->order[q]) == r) return false;
  return true;
}

/* Emits region r's members as plain steps (a region over the I/O limit). */
static int emit_members(pass *p, ty__sched *s, int r) {
  for (size_t q = 0; q < p->nn; q++) {
    size_t m = p->order[q];
    if (region_of(p, m) != r) continue;
    int rc = node_step(p, m, &s->steps[s->n_steps++]);
    if (rc != 0) return rc;
  }
  return 0;
}

static int emit_group(pass *p, ty__sched *s, size_t node, int r) {
  ty__fgroup *grp = NULL;
  int rc = group_build(p, r, &grp);
  if (rc == TY_EUNSUPPORTED) return emit_members(p, s, r);
  if (rc != 0) return rc;
  ty__step *st = &s->steps[s->n_steps++];
  st->node = node;
  st->group = grp;
  st->elementwise = st->overwrites = true;
  st->view_of = TY_NO_VALUE;
  s->n_groups++;
  s->n_fused_nodes += grp->n_nodes;
  return step_io(st, grp->in_ids, grp->prog.n_in, grp->out_ids, grp->prog.n_out);
}

/* p->grouped: the regions that become one kernel with every raw read of
 * their outputs counted (group_build within the I/O limits). Counting only
 * the formulas' reads afterwards removes outputs and adds none, so these
 * stay kernels; a region that is not one runs its members' library kernels,
 * which read every input they list, and its readers are counted raw. */
static int mark_grouped(pass *p) {
  p->grouped = calloc(p->n_regions + 1, sizeof *p->grouped);
  if (!p->grouped) return TY_ENOMEM;
  bool *found = calloc(p->n_regions + 1, sizeof *found);
  if (!found) return TY_ENOMEM;
  bool *counted = p->grouped;
  p->grouped = NULL; /* read_outside counts raw reads while deciding */
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < p->nn; k++) {
    int r = region_of(p, p->order[k]);
    if (r < 0 || found[r] || region_size(p, r) < p->min_region) continue;
    found[r] = true;
    ty__fgroup *grp = NULL;
    rc = group_build(p, r, &grp);
    counted[r] = rc == 0;
    if (rc == TY_EUNSUPPORTED) rc = 0;
    group_free(grp);
  }
  free(found);
  p->grouped = counted;
  return rc;
}

static int emit_steps(pass *p, ty__sched *s) {
  for (size_t k = 0; k < p->nn; k++) {
    size_t node = p->order[k];
    int r = region_of(p, node);
    if (r >= 0 && region_size(p, r) < p->min_region) r = -1;
    int rc = 0;
    if (r < 0)
      rc = node_step(p, node, &s->steps[s->n_steps++]);
    else if (last_member(p, k, r))
      rc = emit_group(p, s, node, r);
    if (rc != 0) return rc;
  }
  return 0;
}

/* One element whatever the batch size (a loss, a metric). */
static bool scalar_value(const ty_graph_value *v) {
  if (v->shape.rank < 0) return false;
  for (int d = 0; d < v->shape.rank; d++)
    if (v->shape.dims[d] != 1) return false;
  return true;
}

/* Values read after a run: graph outputs, the caller's, values no node
 * reads (a gradient is computed only to be read) and one-element values
 * (a loss that callers read without marking it an output; they cost
 * nothing to keep). */
static int mark_keep(const ty_graph *g, const int *keep, size_t n_keep, bool *out) {
  size_t nv = ty_graph_n_values(g), nn = ty_graph_n_nodes(g);
  bool *read = calloc(nv + 1, sizeof *read);
  if (!read) return TY_ENOMEM;
  for (size_t i = 0; i < nn; i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    for (int j = 0; j < n->n_inputs; j++)
      if (n->inputs[j] != TY_NO_VALUE) read[n->inputs[j]] = true;
  }
  for (size_t v = 0; v < nv; v++) {
    const ty_graph_value *val = ty_graph_value_at(g, (int)v);
    out[v] = val->is_output || (val->producer >= 0 && (!read[v] || scalar_value(val)));
  }
  for (size_t i = 0; i < n_keep; i++)
    if (keep[i] >= 0 && (size_t)keep[i] < nv) out[keep[i]] = true;
  free(read);
  return 0;
}

static void pass_free(pass *p) {
  free(p->grouped);
  free(p->pos);
  free(p->gid);
  free(p->root);
}

static int pass_run(pass *p, bool fuse) {
  size_t nn = p->nn, nv = ty_graph_n_values(p->g);
  p->pos = calloc(nn + 1, sizeof *p->pos);
  p->gid = calloc(nn + 1, sizeof *p->gid);
  p->root = calloc(nn + 1, sizeof *p->root);
  if (!p->pos || !p->gid || !p->root) return TY_ENOMEM;
  (void)nv;
  for (size_t k = 0; k < nn; k++) {
    p->pos[p->order[k]] = k;
    p->gid[p->order[k]] = -1;
  }
  for (size_t k = 0; fuse && k < nn; k++) {
    ty__fnode f;
    if (node_fusible(p->g, ty_graph_node_at(p->g, p->order[k]), &f)) place_node(p, k, &f);
  }
  return 0;
}

static int sched_build(const ty_graph *g, const size_t *order, bool fuse, int min_region,
                       const int *keep, size_t n_keep, ty__sched **out_sched) {
  ty__sched *s = calloc(1, sizeof *s);
  if (!s) return TY_ENOMEM;
  pass p = {.g = g, .order = order, .nn = ty_graph_n_nodes(g), .min_region = min_region};
  int rc = TY_ENOMEM;
  s->n_values = ty_graph_n_values(g);
  s->keep = calloc(s->n_values + 1, sizeof *s->keep);
  s->steps = calloc(p.nn + 1, sizeof *s->steps);
  if (!s->keep || !s->steps) goto fail;
  p.keep = s->keep;
  if ((rc = mark_keep(g, keep, n_keep, s->keep)) != 0) goto fail;
  if ((rc = pass_run(&p, fuse)) != 0) goto fail;
  if ((rc = mark_grouped(&p)) != 0) goto fail;
  if ((rc = emit_steps(&p, s)) != 0) goto fail;
  pass_free(&p);
  *out_sched = s;
  return 0;
fail:
  pass_free(&p);
  ty__sched_destroy(s);
  return rc;
}

/* On the CPU a lone elementwise node gains nothing from a generated loop
 * (the library kernel is as fast), so regions start at two members. */
int ty__sched_create(const ty_graph *g, const size_t *order, bool fuse, const int *keep,
                     size_t n_keep, ty__sched **out_sched) {
  return sched_build(g, order, fuse, 2, keep, n_keep, out_sched);
}

int ty__sched_create_gpu(const ty_graph *g, const size_t *order, const int *keep, size_t n_keep,
                         ty__sched **out_sched) {
  return sched_build(g, order, true, 1, keep, n_keep, out_sched);
}

void ty__sched_destroy(ty__sched *s) {
  if (!s) return;
  for (size_t k = 0; s->steps && k < s->n_steps; k++) {
    group_free(s->steps[k].group);
    free(s->steps[k].reads);
    free(s->steps[k].writes);
  }
  free(s->steps);
  free(s->keep);
  free(s);
}
