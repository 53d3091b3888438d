/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening a rank of a pipelined plan or of gradient accumulation (pipe.c
 * runs it): the plan's fit to the world, the refusal of micro-batches for
 * a model relating the batch's samples to each other, this rank's stage
 * and source graph (ops/shard's local graph on a stage mesh, a copy with
 * the weighted-mean denominators fed otherwise), the values that cross
 * between stages, the stage's graphs cut and differentiated, and which
 * parameters each stage holds.
 */
#include "ops/train/pipe_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int stage_of_node(const ty__pipe *pp, int node) {
  return node >= 0 && (size_t)node < ty_graph_n_nodes(pp->src) ? pp->node_stage[node] : -1;
}

static int add_link(ty__pipe *pp, const ty_graph_value *v, const ty_shape *shape, int from,
                    int to) {
  for (size_t i = 0; i < pp->n_links; i++)
    if (pp->links[i].to == to && strcmp(pp->links[i].name, v->name) == 0) return 0;
  crossing *l = realloc(pp->links, (pp->n_links + 1) * sizeof *l);
  if (!l) return TY_ENOMEM;
  pp->links = l;
  l[pp->n_links] = (crossing){ty_strdup(v->name), from, to, *shape};
  if (l[pp->n_links].shape.dims[0] < 0) l[pp->n_links].shape.dims[0] = pp->rows;
  return l[pp->n_links++].name ? 0 : TY_ENOMEM;
}

/* Without a stage mesh, the weighted mean losses of t->g as sums over
 * a denominator the step feeds (pipe_wmean.c), and its losses summed over
 * the batch, times the number of shares the step averages (M, and with
 * gradient accumulation times the data-parallel ranks, whose gradients
 * pipe.c averages too) to undo that average: src becomes that copy
 * (value ids kept). */
static int own_src(ty_train *t, ty__pipe *pp, char *err, size_t err_len) {
  bool any = false;
  int rc = 0, shares = pp->M * (pp->accum ? (int)ty__train_data_world(t) : 1);
  for (size_t i = 0; rc == 0 && !any && i < ty_graph_n_nodes(t->g); i++) {
    const ty_graph_node *n = ty_graph_node_at(t->g, i);
    any = ty_shard_weighted_mean(n);
    if (!any && shares > 1) rc = ty_plan_summed_loss(t->g, t->loss_id, n, &any);
  }
  if (rc != 0 || !any) return rc;
  rc = ty_shard_split_weighted_means(t->g, t->loss_id, (double)shares, &pp->own_src, err, err_len);
  if (rc == 0) pp->src = pp->own_src;
  return rc;
}

/* Every value one stage computes and another reads, with its shape at
 * the micro-batch (dims import left unknown, such as a transformer
 * block's output Reshape'd from Shape arithmetic, are known there). */
static int find_links(ty__pipe *pp, char *err, size_t err_len) {
  ty_shape *at = malloc((ty_graph_n_values(pp->src) + 1) * sizeof *at);
  if (!at) return TY_ENOMEM;
  int rc = ty__graph_shapes_at(pp->src, pp->rows, at, err, err_len);
  for (size_t i = 0; rc == 0 && i < ty_graph_n_nodes(pp->src); i++) {
    const ty_graph_node *n = ty_graph_node_at(pp->src, i);
    int to = stage_of_node(pp, (int)i);
    for (int k = 0; to >= 0 && k < n->n_inputs; k++) {
      if (n->inputs[k] == TY_NO_VALUE) continue;
      const ty_graph_value *v = ty_graph_value_at(pp->src, n->inputs[k]);
      int from = stage_of_node(pp, v->producer);
      if (v->producer < 0 || from == to || from < 0) continue; /* from < 0: a denominator */
      if (pp->stat[n->inputs[k]]) continue; /* the reader computes its own (cut_stage) */
      if (from > to) {
        rc = ty_errf(err, err_len, TY_EINVAL, "plan: stage %d reads \"%s\" from the later stage %d",
                     to, v->name, from);
        break;
      }
      const ty_shape *s = &at[n->inputs[k]];
      bool known = s->rank >= 1;
      for (int d = 1; d < s->rank; d++)
        known = known && s->dims[d] >= 0;
      if (!known || v->dtype != TY_DTYPE_F32) {
        rc = ty_errf(err, err_len, TY_EUNSUPPORTED,
                     "plan: \"%s\" crosses from stage %d to %d but is not a float tensor "
                     "[batch, known dims...]",
                     v->name, from, to);
        break;
      }
      if ((rc = add_link(pp, v, s, from, to)) != 0) break;
    }
  }
  free(at);
  return rc;
}

/* The plan fits this job: its world, its global batch. A stage's mesh
 * splits what its layouts say (ops/shard checks they divide). */
static int check_fit(const ty_train *t, const ty_plan *p, char *err, size_t err_len) {
  int64_t global = (int64_t)t->cfg->batch_size, R = p->devices / p->n_stages;
  if ((uint32_t)p->devices != t->opts.world_size)
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: made for %d devices (%d stages x %d), but this job has WORLD_SIZE=%u "
                   "ranks",
                   p->devices, p->n_stages, (int)R, t->opts.world_size);
  if (p->micro_batches < 1 || p->batch * p->micro_batches != global)
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: %d micro-batches of %lld do not make config.batch_size %lld",
                   p->micro_batches, (long long)p->batch, (long long)global);
  const ty_train_parallel *par = t->opts.parallel;
  if (p->n_stages > 1 && (!par->send || !par->recv || !par->flush))
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: %d pipeline stages need point-to-point messages, which this "
                   "transport does not offer",
                   p->n_stages);
  return 0;
}

/* in[i]: node i of src runs on this stage: the plan puts it there and it
 * computes more than recomputable values, or (the plan's stage or not) it
 * computes recomputable values a node of the stage reads (pp->stat), such
 * as the Constant starts and ends of an exported LSTM's weight Slices or
 * a padding mask x == 0 of the data feeds (every stage loads them). */
static int stage_nodes(const ty__pipe *pp, bool *in) {
  size_t nn = ty_graph_n_nodes(pp->src);
  size_t *order = malloc((nn + 1) * sizeof *order);
  if (!order) return TY_ENOMEM;
  int rc = ty_graph_topo_order(pp->src, order);
  for (size_t i = 0; i < nn; i++) {
    const ty_graph_node *n = ty_graph_node_at(pp->src, i);
    bool constant = n->n_outputs > 0;
    for (int k = 0; k < n->n_outputs; k++)
      constant = constant && (n->outputs[k] == TY_NO_VALUE || pp->stat[n->outputs[k]]);
    in[i] = !constant && stage_of_node(pp, (int)i) == pp->stage;
  }
  for (size_t k = nn; rc == 0 && k-- > 0;) { /* readers before the producers of what they read */
    const ty_graph_node *n = ty_graph_node_at(pp->src, order[k]);
    for (int j = 0; in[order[k]] && j < n->n_inputs; j++) {
      int v = n->inputs[j];
      if (v != TY_NO_VALUE && pp->stat[v] && ty_graph_value_at(pp->src, v)->producer >= 0)
        in[ty_graph_value_at(pp->src, v)->producer] = true;
    }
  }
  free(order);
  return rc;
}

/* This rank's stage forward graph, cut from the forward + loss graph. */
static int cut_stage(ty_train *t, ty__pipe *pp, char *err, size_t err_len) {
  size_t nn = ty_graph_n_nodes(pp->src);
  bool *in = calloc(nn + 1, sizeof *in);
  if (!in) return TY_ENOMEM;
  int rc = stage_nodes(pp, in);
  if (rc == 0) rc = ty__pipe_extract(pp->src, in, NULL, 0, &pp->fwd, err, err_len);
  free(in);
  if (rc != 0) return rc;
  const ty_graph_value *loss = ty_graph_value_at(pp->src, t->loss_id);
  int ls = stage_of_node(pp, loss->producer);
  if (ls != pp->S - 1)
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: the loss \"%s\" is computed by stage %d, not the last (%d)", loss->name,
                   ls, pp->S - 1);
  pp->last = pp->stage == pp->S - 1;
  pp->loss_name = loss->name;
  return 0;
}

/* Dims of v that grow with the batch (its shape at the micro-batch, mb,
 * against at the global batch), 0 when a dim is unknown at either. */
static int grown_dims(const ty_shape *mb, const ty_shape *global) {
  int n = 0;
  for (int k = 0; mb->rank >= 0 && mb->rank == global->rank && k < mb->rank; k++) {
    if (mb->dims[k] < 0 || global->dims[k] < 0) return 0;
    n += mb->dims[k] != global->dims[k];
  }
  return n;
}

/* A value with two dims that grow with the batch ([N, N]: CLIP's logits,
 * a batch's pairwise distances for mining negatives) relates the batch's
 * samples to each other; each micro-batch would only relate its own, and
 * train another model, so several micro-batches are refused, naming the
 * node. (BatchNormalization's batch statistics are the documented
 * exception: per micro-batch, as GPipe.) */
int ty__pipe_batch_shapes(const ty_train *t, ty__pipe *pp, char *err, size_t err_len) {
  if (pp->at_mb) return 0;
  size_t nv = ty_graph_n_values(t->g);
  if (!(pp->at_mb = malloc(2 * (nv + 1) * sizeof *pp->at_mb))) return TY_ENOMEM;
  pp->at_global = pp->at_mb + nv + 1;
  int rc = ty__graph_shapes_at(t->g, pp->rows, pp->at_mb, err, err_len);
  return rc == 0 ? ty__graph_shapes_at(t->g, pp->rows * pp->M, pp->at_global, err, err_len) : rc;
}

static int refuse_batch_coupling(const ty_train *t, ty__pipe *pp, char *err, size_t err_len) {
  if (pp->M <= 1) return 0;
  int rc = ty__pipe_batch_shapes(t, pp, err, err_len);
  const ty_shape *mb = pp->at_mb, *global = pp->at_global;
  for (size_t v = 0; rc == 0 && v < ty_graph_n_values(t->g); v++) {
    const ty_graph_value *gv = ty_graph_value_at(t->g, (int)v);
    if (gv->producer < 0 || grown_dims(&mb[v], &global[v]) < 2) continue;
    const ty_graph_node *n = ty_graph_node_at(t->g, (size_t)gv->producer);
    char a[96], b[96];
    ty_shape_format(&mb[v], a, sizeof a);
    ty_shape_format(&global[v], b, sizeof b);
    rc = ty_errf(err, err_len, TY_EUNSUPPORTED,
                 "plan: node \"%s\" (%s) computes %s at a micro-batch of %lld rows and %s at the "
                 "global batch: it relates the batch's samples to each other (a similarity "
                 "matrix, in-batch negatives), which each of %d micro-batches would do within "
                 "itself only, training another model; use micro_batches: \"1\"",
                 n->name, ty_op_name(n->op), a, (long long)pp->rows, b, pp->M);
  }
  return rc;
}

/* A plan's stage, or (accum) gradient accumulation's one stage of this
 * rank alone (accum.c): its plan is checked there, not against the world. */
static int open_pipe(ty_train *t, ty_plan *p, bool accum, char *err, size_t err_len) {
  int rc = accum ? 0 : check_fit(t, p, err, err_len);
  ty__pipe *pp = rc == 0 ? calloc(1, sizeof *pp) : NULL;
  if (rc == 0 && !pp) rc = TY_ENOMEM;
  if (rc != 0) {
    ty_plan_destroy(p);
    return rc;
  }
  t->pipe = pp;
  pp->plan = p;
  pp->S = p->n_stages;
  pp->M = p->micro_batches;
  pp->R = p->devices / p->n_stages;
  pp->accum = accum;
  pp->stage = accum ? 0 : (int)t->opts.rank / pp->R;
  pp->replica = accum ? 0 : (int)t->opts.rank % pp->R;
  pp->rows = p->batch; /* on a stage mesh of more than one device, its layouts' blocks */
  pp->recompute = p->stages[pp->stage].recompute;
  pp->src = t->g;
  rc = refuse_batch_coupling(t, pp, err, err_len);
  char why[TY_ERR_LEN];
  if (rc == 0 && pp->M > 1 &&
      (rc = ty_plan_check_summed_losses(t->g, t->loss_id, why, sizeof why)) != 0)
    ty_errf(err, err_len, rc, "plan: %s; use micro_batches: \"1\"", why);
  if (rc == 0 && pp->R > 1)
    rc = ty__pipe_tp_open(t->g, t->loss_id, p, (int)t->opts.rank, &t->opts.parallel->comm, &pp->tp,
                          err, err_len);
  if (rc == 0 && pp->tp) pp->src = ty_shard_graph(ty__pipe_tp_shard(pp->tp));
  if (rc == 0 && !pp->tp) rc = own_src(t, pp, err, err_len);
  if (rc == 0) rc = ty__pipe_node_stages(t->g, p, pp->src, &pp->node_stage);
  if (rc == 0 && !(pp->stat = malloc((ty_graph_n_values(pp->src) + 1) * sizeof *pp->stat)))
    rc = TY_ENOMEM;
  if (rc == 0) rc = ty_graph_recomputable_values(pp->src, pp->stat);
  if (rc == 0) rc = ty__pipe_denominators(pp, err, err_len);
  if (rc != 0 || (rc = find_links(pp, err, err_len)) != 0 ||
      (rc = cut_stage(t, pp, err, err_len)) != 0)
    return rc;
  rc = ty__pipe_draws_setup(t, err, err_len);
  free(pp->at_mb); /* at_global lies in the same block */
  pp->at_mb = pp->at_global = NULL;
  if (rc != 0) return rc;
  if (accum && pp->M == 1)
    fprintf(ty__train_log(t),
            "data parallelism: each of the %u ranks trains its %lld rows' share of the global "
            "batch's weighted or ignore_index mean or summed loss\n",
            ty__train_data_world(t), (long long)p->batch);
  else if (accum)
    fprintf(ty__train_log(t),
            "gradient accumulation: %d micro-batches of %lld rows per optimizer step\n", pp->M,
            (long long)p->batch);
  if (accum) return 0;
  char where[96];
  if (pp->tp)
    snprintf(where, sizeof where,
             "rank %d of its %dx%d mesh, its intra-stage plan through ops/shard", pp->replica,
             p->mesh[0], p->mesh[1]);
  else
    snprintf(where, sizeof where, "replica 0 of 1");
  fprintf(ty__train_log(t),
          "pipeline: rank %u runs stage %d of %d (%s), %d micro-batches of %lld rows%s\n",
          t->opts.rank, pp->stage, pp->S, where, pp->M, (long long)p->batch,
          pp->recompute ? ", activations recomputed in backward" : "");
  return 0;
}

int ty__train_pipe_setup(ty_train *t, ty_plan *p, char *err, size_t err_len) {
  return open_pipe(t, p, false, err, err_len);
}

int ty__train_accum_open(ty_train *t, ty_plan *p, char *err, size_t err_len) {
  return open_pipe(t, p, true, err, err_len);
}

/* Per parameter of t: the stages whose nodes read it (holders), the first
 * of them (param_stage), and this stage's (mine). */
static int param_stages(ty_train *t, ty__pipe *pp, char *err, size_t err_len) {
  pp->param_stage = malloc((t->np + 1) * sizeof *pp->param_stage);
  pp->holders = calloc(t->np + 1, sizeof *pp->holders);
  pp->mine = calloc(t->np + 1, sizeof *pp->mine);
  pp->acc_off = calloc(t->np + 1, sizeof *pp->acc_off);
  if (!pp->param_stage || !pp->holders || !pp->mine || !pp->acc_off) return TY_ENOMEM;
  if (pp->S > 64)
    return ty_errf(err, err_len, TY_EINVAL, "plan: %d pipeline stages (at most 64)", pp->S);
  for (size_t p = 0; p < t->np; p++) {
    for (size_t i = 0; i < pp->plan->n_ops && i < ty_graph_n_nodes(t->g); i++) {
      const ty_graph_node *n = ty_graph_node_at(t->g, i);
      for (int k = 0; k < n->n_inputs; k++)
        if (n->inputs[k] == t->param_ids[p]) pp->holders[p] |= 1ull << pp->plan->ops[i].stage;
    }
    if (!pp->holders[p])
      return ty_errf(err, err_len, TY_EINVAL, "plan: no stage reads parameter \"%s\"",
                     ty_graph_value_at(t->g, t->param_ids[p])->name);
    pp->param_stage[p] = __builtin_ctzll(pp->holders[p]);
    if (ty__pipe_holds(pp, p, pp->stage)) pp->mine[pp->n_mine++] = p;
  }
  return 0;
}

/* Frees g's data of t's trained parameters. */
static int drop_weights(const ty_train *t, ty_graph *g) {
  int rc = 0;
  for (size_t p = 0; rc == 0 && p < t->np; p++) {
    int v = ty_graph_find_value(g, ty_graph_value_at(t->g, t->param_ids[p])->name);
    if (v != TY_NO_VALUE && ty_graph_value_at(g, v)->init) rc = ty_graph_drop_init_data(g, v);
  }
  return rc;
}

/* Whether name is among the n names. */
static bool listed(const char *const *names, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return true;
  return false;
}

/* The stage's training graph, differentiated with respect to its
 * parameters and the activations it receives; a non-last stage's loss
 * seeds each value it sends ONCE, however many later stages read it
 * (a residual skip): pipe.c's recv_seeds already sums their gradients
 * into the one "<value>.seed", and a second seed term would count them
 * twice. */
int ty__train_pipe_build(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  if (!pp) return 0;
  int rc = param_stages(t, pp, err, err_len);
  if (rc == 0) rc = ty__pipe_shard_params(t);
  if (rc == 0) rc = ty__pipe_grad_sums(t);
  const char **names = calloc(t->np + 2 * pp->n_links + 1, sizeof *names);
  const char **sent = names + t->np, **received = sent + pp->n_links;
  size_t n_sent = 0, n_received = 0;
  if (rc == 0 && !names) rc = TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < pp->n_mine; i++)
    names[i] = ty_graph_value_at(t->g, t->param_ids[pp->mine[i]])->name;
  for (size_t i = 0; rc == 0 && i < pp->n_links; i++) {
    const crossing *l = &pp->links[i];
    if (l->from == pp->stage && !listed(sent, n_sent, l->name)) sent[n_sent++] = l->name;
    if (l->to == pp->stage) received[n_received++] = l->name;
  }
  if (rc == 0)
    rc = ty__pipe_differentiate(pp->fwd, pp->last ? pp->loss_name : NULL, sent, n_sent, received,
                                n_received, names, pp->n_mine, &pp->train, err, err_len);
  free(names);
  if (rc == 0 && !pp->last && !pp->recompute)
    rc = ty__pipe_split(pp->train.g, &pp->f, &pp->b, err, err_len);
  /* The stage's weights live in t->params, which pipe.c binds before it
   * runs a graph: the forward graph's copy (run only to recompute) goes. */
  if (rc == 0) rc = drop_weights(t, pp->fwd);
  if (rc == 0 && pp->mbs == NULL && !(pp->mbs = calloc((size_t)pp->M, sizeof *pp->mbs)))
    rc = TY_ENOMEM;
  return rc;
}
