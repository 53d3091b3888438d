/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BatchNormalization over a split batch. In training the kernel
 * normalises with the statistics of the batch it sees, which on a rank of
 * a plan that splits the batch is a slice of it. So the node becomes the
 * same computation from sums the ranks add up (the plan's
 * "<node>:batch_stats" all-reduce):
 *
 *   s   = [sum x, sum x^2] over every dim but the channels   [2, C, 1...]
 *   S   = TyExtern(s): all-reduced over the batch's axes, forward; its
 *         gradient all-reduced over them too (each rank's share of d/dS)
 *   mean = S[0] / n, var = S[1] / n - mean^2   (n: the global count)
 *   y   = (x - mean) / sqrt(var + eps) * scale + bias
 *
 * with ordinary ops, so autodiff differentiates it like any other graph.
 * The running statistics come from mean and var (ty_shard_bn_info), so they
 * follow the global batch too. The variance as E[x^2] - mean^2 in float
 * differs from the kernel's two-pass double in the last bits: float
 * tolerance, not bit equality, with a single process.
 */
#include "ops/shard/shard_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds op(in) -> a new float value, named "<bn>.<what>"; its id. */
static int node(builder *b, const char *bn, const char *what, ty_op op, const int *in, int n_in,
                int *out) {
  char name[300];
  snprintf(name, sizeof name, "%s.%s", bn, what);
  int idx, rc = ty_graph_add_value(b->g, name, TY_DTYPE_INVALID, NULL, out);
  return rc ? rc : ty_graph_add_node(b->g, op, name, in, n_in, out, 1, &idx);
}

/* The TyExtern all-reducing the stacked sums over `axes`, both ways. */
static int sum_over(builder *b, const char *bn, int st, const ty_shape *ls, unsigned axes,
                    int *out) {
  ty__point *pt;
  int rc = ty__shard_add_point(b, &pt);
  if (rc != 0) return rc;
  snprintf(pt->what, sizeof pt->what, "%s:batch_stats", bn);
  pt->full = *ls; /* nothing split: the local block is the whole */
  ty__route r = {.start = {.rank = ls->rank, .partial = (uint8_t)axes}};
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (axes >> a & 1u) r.s[r.n++] = (ty__step){TY_PLAN_ALL_REDUCE, (uint8_t)a, -1, -1};
  pt->fwd = pt->bwd = r;
  char name[300];
  snprintf(name, sizeof name, "%s.batch_stats.sum", bn);
  return ty__shard_add_extern(b, st, ls, name, (int64_t)(b->s->n_points - 1), out);
}

/* mean and var [1, C, 1...] from x: records them for the running stats. */
static int moments(builder *b, size_t n, int x, unsigned axes, int *out_mean, int *out_var) {
  ty_shard *s = b->s;
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  const char *bn = gn->name;
  ty_shape lx = ty__shard_local_of(s, gn->inputs[0], &s->plan->ops[n].inputs[0]);
  int64_t red[TY_MAX_RANK], nr = 0;
  for (int d = 0; d < lx.rank; d++)
    if (d != 1) red[nr++] = d;
  ty_shape st = lx;
  for (int d = 0; d < st.rank; d++)
    st.dims[d] = d == 1 ? lx.dims[1] : 1;
  st.dims[0] = 2;
  double count =
      (double)ty_shape_numel(&s->full[gn->inputs[0]]) / (double)s->full[gn->inputs[0]].dims[1];
  int ax, sq, s1, s2, cat, sum, i0, i1, g0, g1, inv, m2, ex2, rc;
  if ((rc = ty__shard_add_ints(b, bn, "reduced_axes", red, (int)nr, &ax)) != 0 ||
      (rc = node(b, bn, "sum", TY_OP_REDUCE_SUM, (int[]){x, ax}, 2, &s1)) != 0 ||
      (rc = node(b, bn, "square", TY_OP_MUL, (int[]){x, x}, 2, &sq)) != 0 ||
      (rc = node(b, bn, "sum_squares", TY_OP_REDUCE_SUM, (int[]){sq, ax}, 2, &s2)) != 0 ||
      (rc = node(b, bn, "sums", TY_OP_CONCAT, (int[]){s1, s2}, 2, &cat)) != 0)
    return rc;
  int idx = (int)ty_graph_n_nodes(b->g) - 1;
  if ((rc = ty_graph_node_set_int(b->g, (size_t)idx, "axis", 0)) != 0 ||
      (rc = sum_over(b, bn, cat, &st, axes, &sum)) != 0 ||
      (rc = ty__shard_add_ints(b, bn, "first", (int64_t[]){0}, 1, &i0)) != 0 ||
      (rc = ty__shard_add_ints(b, bn, "second", (int64_t[]){1}, 1, &i1)) != 0 ||
      (rc = node(b, bn, "total", TY_OP_GATHER, (int[]){sum, i0}, 2, &g0)) != 0 ||
      (rc = node(b, bn, "total_squares", TY_OP_GATHER, (int[]){sum, i1}, 2, &g1)) != 0 ||
      (rc = ty__shard_add_scalar(b, bn, "inverse_count", TY_DTYPE_F32, (float)(1.0 / count),
                                 &inv)) != 0 ||
      (rc = node(b, bn, "mean", TY_OP_MUL, (int[]){g0, inv}, 2, out_mean)) != 0 ||
      (rc = node(b, bn, "mean_square", TY_OP_MUL, (int[]){g1, inv}, 2, &ex2)) != 0 ||
      (rc = node(b, bn, "mean_squared", TY_OP_MUL, (int[]){*out_mean, *out_mean}, 2, &m2)) != 0 ||
      (rc = node(b, bn, "var", TY_OP_SUB, (int[]){ex2, m2}, 2, out_var)) != 0)
    return rc;
  ty_shard_bn_info *grow = realloc(s->bns, (s->n_bns + 1) * sizeof *grow);
  if (!grow) return TY_ENOMEM;
  s->bns = grow;
  s->bns[s->n_bns++] =
      (ty_shard_bn_info){.name = gn->name,
                         .running_mean = ty_graph_node_input(gn, 3),
                         .running_var = ty_graph_node_input(gn, 4),
                         .momentum = ty_graph_node_attr_float(gn, "momentum", 0.9f),
                         .mean = *out_mean,
                         .var = *out_var,
                         .count = count};
  return 0;
}

/* Whether value id is a graph output or an input of some node of g. */
static bool is_read(const ty_graph *g, int id) {
  if (ty_graph_value_at(g, id)->is_output) return true;
  for (size_t k = 0; k < ty_graph_n_nodes(g); k++) {
    const ty_graph_node *n = ty_graph_node_at(g, k);
    for (int i = 0; i < n->n_inputs; i++)
      if (n->inputs[i] == id) return true;
  }
  return false;
}

int ty__shard_bn(builder *b, size_t n, const int *in, unsigned axes) {
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  const char *bn = gn->name;
  /* PyTorch's training-mode export names the updated running statistics
   * as outputs 1 and 2 and reads them nowhere; the trainer updates them
   * from mean and var (ty_shard_bn_info), so only a reader is refused. */
  for (int o = 1; o < gn->n_outputs; o++)
    if (gn->outputs[o] != TY_NO_VALUE && is_read(b->src, gn->outputs[o]))
      return ty_errf(
          b->err, b->err_len, TY_EUNSUPPORTED,
          "shard: node \"%s\" (BatchNormalization): its output %d (\"%s\") is read, and over a "
          "split batch it is not computed; export the model without reading it",
          bn, o, ty_graph_value_at(b->src, gn->outputs[o])->name);
  ty_graph_set_opset(b->g, 13); /* ReduceSum with its axes as an input */
  ty_shape lx = ty__shard_local_of(b->s, gn->inputs[0], &b->s->plan->ops[n].inputs[0]);
  int64_t cshape[TY_MAX_RANK];
  for (int d = 0; d < lx.rank; d++)
    cshape[d] = d == 1 ? lx.dims[1] : 1;
  int mean, var, eps, ve, den, xc, xh, shp, sc, bi, ys, rc;
  float epsilon = ty_graph_node_attr_float(gn, "epsilon", 1e-5f);
  if ((rc = moments(b, n, in[0], axes, &mean, &var)) != 0 ||
      (rc = ty__shard_add_scalar(b, bn, "epsilon", TY_DTYPE_F32, epsilon, &eps)) != 0 ||
      (rc = node(b, bn, "var_eps", TY_OP_ADD, (int[]){var, eps}, 2, &ve)) != 0 ||
      (rc = node(b, bn, "std", TY_OP_SQRT, &ve, 1, &den)) != 0 ||
      (rc = node(b, bn, "centred", TY_OP_SUB, (int[]){in[0], mean}, 2, &xc)) != 0 ||
      (rc = node(b, bn, "normalised", TY_OP_DIV, (int[]){xc, den}, 2, &xh)) != 0 ||
      (rc = ty__shard_add_ints(b, bn, "channel_shape", cshape, lx.rank, &shp)) != 0 ||
      (rc = node(b, bn, "scale", TY_OP_RESHAPE, (int[]){in[1], shp}, 2, &sc)) != 0 ||
      (rc = node(b, bn, "bias", TY_OP_RESHAPE, (int[]){in[2], shp}, 2, &bi)) != 0 ||
      (rc = node(b, bn, "scaled", TY_OP_MUL, (int[]){xh, sc}, 2, &ys)) != 0)
    return rc;
  int idx;
  return ty_graph_add_node(b->g, TY_OP_ADD, bn, (int[]){ys, bi}, 2, &gn->outputs[0], 1, &idx);
}
