/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Weighted and ignore_index mean losses in a pipeline (pipe.c; ops/shard
 * wmean.c). Such a loss is sum(w l) / sum(w) over the global batch: the
 * mean of M micro-batches' means is another loss. In the graph stages are
 * cut from (ops/shard's local graph, or ty_shard_split_weighted_means'
 * copy of the job's) each one is its sum times M over the value
 * "<node>.weight_sum", which ops/shard computes from the micro-batch's
 * labels and the weight tensor (all-reduced over a stage mesh's batch
 * axes). This file owns that value here:
 *
 *   - the nodes that only compute it leave every stage graph, so the
 *     stage that reads it takes it as an input;
 *   - that stage builds them as a graph of their own (with the label path
 *     they need), which pipe.c runs once per micro-batch before the
 *     step's first one and sums: the global batch's denominator (it
 *     depends on the labels and the weight tensor only, which every rank
 *     holds for the whole global batch), fed to every micro-batch;
 *   - weights computed from initializers alone (mark_static) may run on
 *     another stage: that graph recomputes them; labels or weights from
 *     another stage's activations are refused, naming the node.
 *
 * With pipe.c's 1 / M, each micro-batch's loss is sum_micro(w l) /
 * sum_global(w), and the step's gradient the one-process one.
 */
#include "ops/train/pipe_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

static bool is_denominator(const ty_graph_value *v) {
  size_t n = strlen(v->name), k = strlen(TY_SHARD_WEIGHT_SUM);
  return v->producer >= 0 && n > k && strcmp(v->name + n - k, TY_SHARD_WEIGHT_SUM) == 0;
}

/* Per node, in reverse topological order: mine[i] when node i computes a
 * denominator or only feeds nodes marked (and no output); anc[i] when a
 * denominator depends on it. */
static void mark(const ty_graph *g, const size_t *order, const bool *den, bool *mine, bool *anc) {
  size_t nn = ty_graph_n_nodes(g), nv = ty_graph_n_values(g);
  for (size_t k = nn; k-- > 0;) {
    size_t i = order[k];
    const ty_graph_node *n = ty_graph_node_at(g, i);
    bool read_mine = true, read_anc = false, any = false;
    for (int o = 0; o < n->n_outputs; o++) {
      int v = n->outputs[o];
      if (v == TY_NO_VALUE) continue;
      if (den[v]) read_anc = true;
      if (ty_graph_value_at(g, v)->is_output) read_mine = false;
      for (size_t j = 0; j < nn && (size_t)v < nv; j++) {
        const ty_graph_node *r = ty_graph_node_at(g, j);
        for (int q = 0; q < r->n_inputs; q++)
          if (r->inputs[q] == v) {
            any = true;
            read_mine = read_mine && mine[j];
            read_anc = read_anc || anc[j];
          }
      }
    }
    bool makes = false;
    for (int o = 0; o < n->n_outputs; o++)
      makes = makes || (n->outputs[o] != TY_NO_VALUE && den[n->outputs[o]]);
    mine[i] = makes || (any && read_mine);
    anc[i] = read_anc;
  }
}

/* Whether value v of g is read only by nodes in set, or (ok_weights) at
 * a loss's weight input. */
static bool read_only_by(const ty_graph *g, int v, const bool *set, bool ok_weights) {
  for (size_t j = 0; j < ty_graph_n_nodes(g); j++) {
    const ty_graph_node *r = ty_graph_node_at(g, j);
    bool loss = r->op == TY_OP_SOFTMAX_CE_LOSS || r->op == TY_OP_NLL_LOSS;
    for (int q = 0; q < r->n_inputs; q++)
      if (r->inputs[q] == v && !set[j] && !(ok_weights && loss && q == 2)) return false;
  }
  return !ty_graph_value_at(g, v)->is_output;
}

/* Per node, stat[i]: node i computes from initializers and constants
 * alone, its values reach only other such nodes, the denominators' own
 * (mine) and the losses' weight inputs, and each initializer it reads
 * has no other reader: class weights computed from buffers (w =
 * counts.sum() / counts). No gradient flows there (a loss's weight input
 * has none), so those initializers are trained by no one and every rank
 * holds them as the model does: the denominator graph recomputes them on
 * the loss's stage, whichever stage the plan runs them on. */
static void mark_static(const ty_graph *g, const size_t *order, const bool *mine, bool *stat) {
  size_t nn = ty_graph_n_nodes(g);
  for (size_t k = 0; k < nn; k++) {
    size_t i = order[k];
    const ty_graph_node *n = ty_graph_node_at(g, i);
    stat[i] = !mine[i] && !ty_op_is_random(n->op) && n->op != TY_OP_DROPOUT;
    for (int q = 0; stat[i] && q < n->n_inputs; q++) {
      const ty_graph_value *v =
          n->inputs[q] == TY_NO_VALUE ? NULL : ty_graph_value_at(g, n->inputs[q]);
      stat[i] = !v || (v->producer < 0 ? v->init != NULL : stat[v->producer]);
    }
  }
  bool *keep = calloc(nn + 1, sizeof *keep), changed = true;
  for (size_t i = 0; keep && i < nn; i++)
    keep[i] = stat[i] || mine[i];
  while (keep && changed) { /* drop those read elsewhere, and what they read */
    changed = false;
    for (size_t i = 0; i < nn; i++) {
      const ty_graph_node *n = ty_graph_node_at(g, i);
      bool ok = stat[i];
      for (int o = 0; ok && o < n->n_outputs; o++)
        ok = n->outputs[o] == TY_NO_VALUE || read_only_by(g, n->outputs[o], keep, true);
      for (int q = 0; ok && q < n->n_inputs; q++) {
        const ty_graph_value *v =
            n->inputs[q] == TY_NO_VALUE ? NULL : ty_graph_value_at(g, n->inputs[q]);
        ok = !v || v->producer >= 0 || read_only_by(g, n->inputs[q], keep, false);
      }
      if (stat[i] && !ok) stat[i] = keep[i] = false, changed = true;
    }
  }
  if (!keep) memset(stat, 0, nn * sizeof *stat);
  free(keep);
}

/* The stage that reads the denominators (the loss's); the other
 * ancestors must run there too (or be static: mark_static), else refused
 * naming the value. */
static int den_stage(const ty__pipe *pp, const bool *den, const bool *mine, const bool *anc,
                     const bool *stat, int *out, char *err, size_t err_len) {
  const ty_graph *g = pp->src;
  *out = -1;
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    for (int q = 0; !mine[i] && q < n->n_inputs; q++)
      if (n->inputs[q] != TY_NO_VALUE && den[n->inputs[q]] &&
          (*out < 0 || pp->node_stage[i] < *out))
        *out = pp->node_stage[i];
  }
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++)
    if (anc[i] && !mine[i] && !stat[i] && pp->node_stage[i] != *out)
      return ty_errf(err, err_len, TY_EUNSUPPORTED,
                     "plan: the labels or weights of a weighted mean loss are computed by node "
                     "\"%s\" on stage %d, not on the loss's stage %d; a pipeline computes the "
                     "global batch's denominator from the data before the step (labels from the "
                     "inputs, weights from the inputs or initializers alone)",
                     ty_graph_node_at(g, i)->name, pp->node_stage[i], *out);
  return 0;
}

int ty__pipe_denominators(ty__pipe *pp, char *err, size_t err_len) {
  const ty_graph *g = pp->src;
  size_t nn = ty_graph_n_nodes(g), nv = ty_graph_n_values(g);
  bool *den = calloc(nv + 1, sizeof *den), *mine = calloc(nn + 1, sizeof *mine),
       *anc = calloc(nn + 1, sizeof *anc), *stat = calloc(nn + 1, sizeof *stat);
  size_t *order = malloc((nn + 1) * sizeof *order);
  int *ids = malloc((nv + 1) * sizeof *ids), stage = -1;
  pp->den_names = calloc(nv + 1, sizeof *pp->den_names);
  int rc = den && mine && anc && stat && order && ids && pp->den_names ? 0 : TY_ENOMEM;
  for (size_t v = 0; rc == 0 && v < nv; v++)
    if ((den[v] = is_denominator(ty_graph_value_at(g, (int)v)))) {
      ids[pp->n_den] = (int)v;
      pp->den_names[pp->n_den++] = ty_graph_value_at(g, (int)v)->name;
    }
  if (rc == 0 && pp->n_den > 0) rc = ty_graph_topo_order(g, order);
  if (rc == 0 && pp->n_den > 0) {
    mark(g, order, den, mine, anc);
    mark_static(g, order, mine, stat);
    rc = den_stage(pp, den, mine, anc, stat, &stage, err, err_len);
  }
  for (size_t i = 0; rc == 0 && pp->n_den > 0 && i < nn; i++)
    if (mine[i]) pp->node_stage[i] = -1;
  if (rc == 0 && pp->n_den > 0 && stage == pp->stage) {
    rc = ty__pipe_extract(g, anc, ids, pp->n_den, &pp->den, err, err_len);
    if (rc == 0 && !(pp->den_sum = calloc(pp->n_den, sizeof *pp->den_sum))) rc = TY_ENOMEM;
  }
  free(den);
  free(mine);
  free(anc);
  free(stat);
  free(order);
  free(ids);
  return rc;
}
