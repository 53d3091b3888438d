/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inter-operator pass's pure parts: where a graph may be cut into
 * pipeline stages (its layers), and the stage DP that picks the cut.
 *
 * Layers. A cut between two positions of the topological order is allowed
 * when every value crossing it is a float tensor [batch, known dims...]
 * (what a stage message carries: ops/train/pipe.c; shape arithmetic, masks
 * and indices stay with their readers) or is computed from constants or
 * from the data feeds by cheap ops (a padding mask x == 0:
 * ty_graph_recomputable_values), which the reading stage recomputes
 * (ops/train/pipe_setup.c). A stage owns the parameters
 * its ops read, their gradients and optimizer state; a parameter read on both sides of a cut (a
 * tied embedding and output layer) is held by every stage that reads it, which sum its gradient
 * between them each step (pipeline.c counts its memory and that exchange on each). Activations may
 * cross a cut any number of times: they travel point to point. A layer starts at each op that reads
 * a weight (a parameter of rank 2 or more, trained or frozen) where the cut before it is
 * allowed, and holds everything up to the next one: a bias, a ReLU, a
 * LayerNormalization or the loss joins the layer of the weight before it.
 * An MLP of four MatMul + Add + Relu has four layers, a transformer built
 * with constant shapes one per projection (Q, K, V, out, FFN in, FFN out);
 * PyTorch's exported attention reads Shape values of the block's input
 * after its out-projection, so an nn.TransformerEncoderLayer has two (the
 * FFN's projections, the attention joining the layer before). Past TY__MAX_LAYERS,
 * neighbouring layers merge evenly so the pass stays small (Alpa clusters
 * ops into layers for the same reason): every range of layers is one
 * intra-operator search per stage mesh and micro-batch count.
 *
 * The DP (Alpa, "inter-operator pass"). With M micro-batches a 1F1B step
 * takes about sum(t_k) + (M - 1) max(t_k). For every candidate t_max (each
 * finite stage cost, ascending), a DP over (stage, last layer) minimises
 * sum(t_k) with every t_k <= t_max; the answer is the best sum + (M - 1)
 * t_max. The optimum is met at t_max = its own slowest stage, and every
 * candidate's value bounds a real cut from above, so the minimum is exact.
 * Candidates stop once (M - 1) t_max alone passes the best found.
 */
#include "ops/plan/plan_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- layers --------------------------------------------------------------------- */

/* What a stage message can carry: a float tensor whose dims past the
 * batch are known at the plan's batch (the model's concrete shapes: a
 * transformer block's output, Reshape'd from Shape arithmetic, has dims
 * import left unknown). */
static bool crossable(const ty__model *m, int v) {
  const ty_shape *s = &m->values[v].shape;
  bool known = ty_graph_value_at(m->g, v)->dtype == TY_DTYPE_F32 && s->rank >= 1;
  for (int d = 1; known && d < s->rank; d++)
    known = s->dims[d] >= 0;
  return known;
}

/* blocked[p] > 0: a value that cannot cross (crossable) is made before p
 * and read at or after it; a value computed from constants alone
 * (an exported Slice's Constant starts and ends) or from the data feeds
 * by cheap ops (a padding mask: ty_graph_recomputable_values) never blocks, as every stage that
 * reads it computes its own copy. reads_weight[p]: the op at p reads a weight (a parameter of rank
 * 2 or more: a matrix, a kernel, an embedding table), which starts a layer. */
static int cut_blocks(const ty__model *m, const size_t *pos, int *blocked, bool *reads_weight) {
  size_t n = m->n_nodes;
  int *lo = malloc((m->n_values + 1) * sizeof *lo), *hi = malloc((m->n_values + 1) * sizeof *hi);
  bool *stat = malloc((m->n_values + 1) * sizeof *stat);
  int rc = lo && hi && stat ? ty_graph_recomputable_values(m->g, stat) : TY_ENOMEM;
  if (rc != 0) {
    free(lo);
    free(hi);
    free(stat);
    return rc;
  }
  for (size_t v = 0; v < m->n_values; v++)
    lo[v] = -1, hi[v] = -1;
  for (size_t node = 0; node < n; node++) {
    const ty_graph_node *g = ty_graph_node_at(m->g, node);
    int p = (int)pos[node];
    for (int i = 0; i < g->n_inputs; i++) {
      int v = g->inputs[i];
      if (v == TY_NO_VALUE) continue;
      const ty__value *mv = &m->values[v];
      if ((mv->kind == TY__V_PARAM || mv->frozen) && mv->shape.rank >= 2)
        reads_weight[p] = true; /* not a bias; a frozen weight too */
      if (mv->kind == TY__V_PARAM || mv->producer < 0 || crossable(m, v) || stat[v]) continue;
      lo[v] = (int)pos[mv->producer];
      if (p > hi[v]) hi[v] = p;
    }
  }
  memset(blocked, 0, (n + 1) * sizeof *blocked);
  for (size_t v = 0; v < m->n_values; v++)
    if (lo[v] >= 0 && hi[v] > lo[v]) {
      blocked[lo[v] + 1]++;
      blocked[hi[v] + 1]--;
    }
  for (size_t p = 1; p <= n; p++)
    blocked[p] += blocked[p - 1];
  free(lo);
  free(hi);
  free(stat);
  return 0;
}

/* Keeps at most max of the n layers, merging neighbours evenly. */
static int merge_layers(int *start, int n, int max) {
  if (n <= max) return n;
  for (int q = 0; q <= max; q++)
    start[q] = start[(int)((int64_t)q * n / max)];
  return max;
}

int ty__layers_find(const ty__model *m, int **out_start, int *out_n) {
  size_t n = m->n_nodes;
  size_t *pos = malloc((n + 1) * sizeof *pos);
  int *blocked = malloc((n + 1) * sizeof *blocked), *start = malloc((n + 2) * sizeof *start);
  bool *reads = calloc(n + 1, sizeof *reads);
  int rc = pos && blocked && start && reads ? 0 : TY_ENOMEM;
  for (size_t k = 0; rc == 0 && k < n; k++)
    pos[m->order[k]] = k;
  if (rc == 0) rc = cut_blocks(m, pos, blocked, reads);
  int nl = 0;
  if (rc == 0) {
    bool seen = false;
    start[nl++] = 0;
    for (size_t p = 1; p < n; p++) {
      seen = seen || reads[p - 1];
      if (seen && reads[p] && blocked[p] == 0) start[nl++] = (int)p;
    }
    start[nl] = (int)n;
    nl = merge_layers(start, nl, TY__MAX_LAYERS);
  }
  free(pos);
  free(blocked);
  free(reads);
  if (rc != 0) {
    free(start);
    return rc;
  }
  *out_start = start;
  *out_n = n == 0 ? 0 : nl;
  return 0;
}

/* ---- the stage DP ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct dp {
  const double *cost;
  int L, S;
  size_t W;
  double *f; /* (S + 1) x W: least sum of k stages ending before layer j */
  int *arg;  /* where the last of those stages starts */
} dp;

static double cost_at(const dp *d, int k, int i, int j) {
  return d->cost[((size_t)k * d->W + (size_t)i) * d->W + (size_t)j];
}

/* Least sum of stage costs with every stage <= tmax; INFINITY if none. */
static double dp_run(dp *d, double tmax) {
  size_t W = d->W;
  for (size_t j = 0; j < W; j++)
    d->f[j] = j == 0 ? 0 : INFINITY;
  for (int k = 1; k <= d->S; k++)
    for (int j = 0; j <= d->L; j++) {
      double best = INFINITY;
      int at = -1;
      for (int i = k - 1; i < j; i++) {
        double prev = d->f[(size_t)(k - 1) * W + (size_t)i], c = cost_at(d, k - 1, i, j);
        if (c <= tmax && prev + c < best) best = prev + c, at = i;
      }
      d->f[(size_t)k * W + (size_t)j] = best;
      d->arg[(size_t)k * W + (size_t)j] = at;
    }
  return d->f[(size_t)d->S * W + (size_t)d->L];
}

/* Every finite stage cost, sorted and unique, as the candidate t_max. */
static size_t candidates(const dp *d, double *out) {
  size_t n = 0;
  for (int k = 0; k < d->S; k++)
    for (int i = 0; i < d->L; i++)
      for (int j = i + 1; j <= d->L; j++)
        if (isfinite(cost_at(d, k, i, j))) out[n++] = cost_at(d, k, i, j);
  qsort(out, n, sizeof *out, cmp_double);
  size_t u = 0;
  for (size_t i = 0; i < n; i++)
    if (u == 0 || out[i] != out[u - 1]) out[u++] = out[i];
  return u;
}

int ty_plan_pipeline_dp(const double *cost, int n_layers, int stages, int micro_batches,
                        int *out_bounds, double *out_step_s) {
  if (!cost || stages < 1 || stages > n_layers || micro_batches < 1 || !out_bounds)
    return TY_EINVAL;
  dp d = {.cost = cost, .L = n_layers, .S = stages, .W = (size_t)n_layers + 1};
  size_t table = (d.W) * (size_t)(stages + 1), nc = (size_t)stages * d.W * d.W;
  d.f = malloc(table * sizeof *d.f);
  d.arg = malloc(table * sizeof *d.arg);
  double *cand = malloc(nc * sizeof *cand), best = INFINITY;
  int rc = d.f && d.arg && cand ? 0 : TY_ENOMEM;
  size_t n = rc == 0 ? candidates(&d, cand) : 0;
  for (size_t c = 0; rc == 0 && c < n; c++) {
    double tmax = cand[c], extra = (double)(micro_batches - 1) * tmax;
    if (extra >= best) break;
    double sum = dp_run(&d, tmax);
    if (!(sum + extra < best)) continue;
    best = sum + extra;
    out_bounds[stages] = n_layers;
    for (int k = stages, j = n_layers; k > 0; k--)
      out_bounds[k - 1] = j = d.arg[(size_t)k * d.W + (size_t)j];
  }
  free(d.f);
  free(d.arg);
  free(cand);
  if (rc == 0 && !isfinite(best)) rc = TY_ENOTFOUND;
  if (rc == 0 && out_step_s) *out_step_s = best;
  return rc;
}
