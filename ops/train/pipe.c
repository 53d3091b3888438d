/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A rank of a pipelined plan (train_internal.h; docs/training.md,
 * "Pipeline stages"), once pipe_setup.c has opened it: this file runs its
 * steps. The plan's ranks are stage-major: rank = stage x R +
 * replica, R = the stage's mesh size. Each rank runs its stage's graphs
 * (pipe_graph.c) over the M micro-batches of every global batch in the
 * 1F1B order: min(S - 1 - stage, M) forwards first, then one forward and
 * one backward in turn, then the remaining backwards. On a stage mesh of
 * more than one device the stage runs its intra-stage plan (pipe_shard.c):
 * the graphs are cut from this rank's ops/shard local graph, each rank
 * holds the blocks of each micro-batch its layouts say (data, tensor or
 * both), and exchanges messages only with the rank at the same mesh
 * coordinates of the other stages (replica = the index in the stage).
 *
 * Messages: an activation a later stage reads goes to it at the forward
 * slot; its gradient comes back at the backward slot (summed over the
 * stages that read it). Each carries (step, sender's stage, micro-batch,
 * hash of name, kind and shape) and is checked on receipt: a mismatch
 * fails the step naming this rank, its stage and the micro-batch. A dead
 * peer ends the wait at the transport's deadline (ops/collective), so no
 * rank hangs.
 *
 * Gradients of the stage's parameters accumulate over the micro-batches;
 * on a stage mesh each block's sum is all-reduced over the stage axes it
 * is partial on (every rank of the stage issues the same collectives);
 * all are scaled by 1 / M (a shard's loss is the micro-batch's mean
 * already; a single rank's stage too): the single-process gradient of the
 * global batch's mean loss. A weighted or ignore_index mean loss is the
 * exception that pipe_wmean.c makes exact: its micro-batch's sum times M
 * over the global batch's total weight, fed before the first micro-batch.
 * With config.max_grad_norm those final sums are scaled by
 * clip_grad_norm_'s factor of the whole model's norm (after the last
 * micro-batch: every stage's blocks, summed over the world by clip.c, the
 * same factor on every rank). The optimizer then steps the stage's
 * parameters once.
 *
 * Memory and checkpoints. A rank holds its stage's parameters and their
 * optimizer state, on a stage mesh only its blocks of them, and an empty
 * tensor for each other stage's: what the planner counts per device. A
 * checkpoint gathers them onto rank 0 a tensor at a time, which writes
 * each as it arrives (checkpoint.c, the streamed save; pipe_state.c), and
 * resuming slices each rank's blocks out of the mapped files (resume.c),
 * so the checkpoint is the single-process one and resumes under any stage
 * count, and no rank holds the whole model for either.
 *
 * Recomputation (the plan's stage.recompute): the forward slot runs the
 * forward graph and keeps only the micro-batch's inputs; the backward slot
 * runs forward and backward again. Without it, the forward slot keeps what
 * backward reads. Dropout masks and random ops draw micro-batch i's block
 * of one process's tensors (pipe_random.c), the same in both forwards.
 */
#include "ops/train/pipe_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ty__train_piped(const ty_train *t) {
  return t->pipe != NULL;
}

bool ty__train_pipe_sharded(const ty_train *t) {
  return t->pipe != NULL && !t->pipe->accum;
}

ty_graph *ty__train_pipe_own_src(const ty_train *t) {
  return t->pipe ? t->pipe->own_src : NULL;
}

bool ty__train_accum(const ty_train *t) {
  return t->pipe != NULL && t->pipe->accum;
}

uint64_t ty_train_pipeline_peak_bytes(const ty_train *t) {
  return t->pipe ? t->pipe->peak : 0;
}

const ty_plan *ty__train_pipe_plan(const ty_train *t) {
  return t->pipe ? t->pipe->plan : NULL;
}

uint64_t ty__pipe_fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* ---- micro-batch state ---------------------------------------------------------- */

static ty_tensor *mb_get(const mb_state *m, const char *name) {
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->v[i].name, name) == 0) return m->v[i].t;
  return NULL;
}

/* Keeps t (owned from now on) under name. */
static int mb_put(ty__pipe *pp, mb_state *m, const char *name, ty_tensor *t) {
  named *v = realloc(m->v, (m->n + 1) * sizeof *v);
  char *copy = ty_strdup(name);
  if (!v || !copy) {
    if (v) m->v = v;
    free(copy);
    ty_tensor_destroy(t);
    return TY_ENOMEM;
  }
  m->v = v;
  m->v[m->n++] = (named){copy, t};
  pp->kept += t->nbytes;
  if (pp->kept > pp->peak) pp->peak = pp->kept;
  return 0;
}

static void mb_clear(ty__pipe *pp, mb_state *m) {
  for (size_t i = 0; i < m->n; i++) {
    pp->kept -= m->v[i].t->nbytes;
    free(m->v[i].name);
    ty_tensor_destroy(m->v[i].t);
  }
  free(m->v);
  *m = (mb_state){0};
}

/* This replica's rows of micro-batch i of every feed (only: of those g
 * reads, when not NULL). */
static int load_feeds(ty_train *t, ty__pipe *pp, int i, const ty_graph *only, mb_state *m) {
  int64_t first = (int64_t)i * pp->rows;
  for (size_t k = 0; k < t->n_feeds; k++) {
    const ty_tensor *full = t->feeds[k].t;
    const char *name = ty_graph_value_at(t->g, t->feeds[k].id)->name;
    if (only && ty_graph_find_value(only, name) == TY_NO_VALUE) continue;
    if (pp->tp) {
      ty_tensor *part;
      int rc = ty__pipe_tp_feed(pp->tp, t->feeds[k].id, full, first, &part);
      if (rc == 0) rc = mb_put(pp, m, name, part);
      if (rc != 0) return rc;
      continue;
    }
    size_t row = full->nbytes / (size_t)full->shape.dims[0];
    ty_shape s = full->shape;
    s.dims[0] = pp->rows;
    ty_tensor *part;
    int rc = ty_tensor_create_from(full->dtype, &s, (const uint8_t *)full->data + first * row,
                                   row * (size_t)pp->rows, &part);
    if (rc == 0) rc = mb_put(pp, m, name, part);
    if (rc != 0) return rc;
  }
  return 0;
}

/* ---- messages ------------------------------------------------------------------- */

static const char *const msg_tag[] = {"act", "grad", "eval"};
static const char *const msg_what[] = {"activation", "gradient", "evaluation's activation"};
static const char *const msg_unit[] = {"micro-batch", "micro-batch", "test batch"};

static uint64_t msg_hash(const crossing *l, ty__pipe_msg kind) {
  uint64_t h = ty__pipe_fnv(0xcbf29ce484222325ull, l->name, strlen(l->name));
  h = ty__pipe_fnv(h, msg_tag[kind], strlen(msg_tag[kind]));
  return ty__pipe_fnv(h, l->shape.dims, (size_t)l->shape.rank * sizeof l->shape.dims[0]);
}

uint32_t ty__pipe_rank_of(const ty__pipe *pp, int stage) {
  return (uint32_t)(stage * pp->R + pp->replica);
}

int ty__pipe_send(ty_train *t, const crossing *l, ty__pipe_msg kind, int peer_stage, int i,
                  const float *buf, size_t n, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  const ty_train_parallel *par = t->opts.parallel;
  uint64_t hdr[4] = {t->step, (uint64_t)pp->stage, (uint64_t)i, msg_hash(l, kind)};
  int rc = par->send(ty__pipe_rank_of(pp, peer_stage), hdr, buf, n, par->comm.user);
  return rc ? ty_errf(err, err_len, rc,
                      "pipeline: rank %u (stage %d) could not send the %s of \"%s\" for %s %d "
                      "to rank %u: %s",
                      t->opts.rank, pp->stage, msg_what[kind], l->name, msg_unit[kind], i,
                      ty__pipe_rank_of(pp, peer_stage), ty_strerror(rc))
            : 0;
}

int ty__pipe_recv(ty_train *t, const crossing *l, ty__pipe_msg kind, int peer_stage, int i,
                  ty_tensor **out, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  const ty_train_parallel *par = t->opts.parallel;
  int rc = ty_tensor_create(TY_DTYPE_F32, &l->shape, out);
  if (rc != 0) return rc;
  size_t n = (size_t)ty_tensor_numel(*out), got = 0;
  uint64_t hdr[4] = {0}, want[4] = {t->step, (uint64_t)peer_stage, (uint64_t)i, msg_hash(l, kind)};
  uint32_t peer = ty__pipe_rank_of(pp, peer_stage);
  rc = par->recv(peer, hdr, (*out)->data, n, &got, par->comm.user);
  const char *what = msg_what[kind];
  if (rc != 0)
    rc = ty_errf(err, err_len, rc,
                 "pipeline: rank %u (stage %d), %s %d of step %llu: waiting for the %s "
                 "of \"%s\" from rank %u (stage %d) failed: %s",
                 t->opts.rank, pp->stage, msg_unit[kind], i, (unsigned long long)t->step, what,
                 l->name, peer, peer_stage, ty_strerror(rc));
  else if (memcmp(hdr, want, sizeof hdr) != 0 || got != n)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "pipeline: rank %u (stage %d), %s %d of step %llu: expected the %s of "
                 "\"%s\" (%zu floats, hash %016llx) from rank %u (stage %d), but received a "
                 "message of stage %llu, %s %llu, step %llu (%zu floats, hash %016llx)",
                 t->opts.rank, pp->stage, msg_unit[kind], i, (unsigned long long)t->step, what,
                 l->name, n, (unsigned long long)want[3], peer, peer_stage,
                 (unsigned long long)hdr[1], msg_unit[kind], (unsigned long long)hdr[2],
                 (unsigned long long)hdr[0], got, (unsigned long long)hdr[3]);
  if (rc != 0) {
    ty_tensor_destroy(*out);
    *out = NULL;
  }
  return rc;
}

/* ---- running the graphs ----------------------------------------------------------- */

/* Where g holds BatchNormalization b of t's batch statistics, when g runs
 * it: its data input x, or, on a stage mesh whose shard computes it from
 * statistics summed over the stage's batch axes, their mean and population
 * variance over count elements (x TY_NO_VALUE). False when g does not run
 * it. */
typedef struct bn_vals {
  int x, mean, var;
  double count;
} bn_vals;

/* The data input of g's BatchNormalization reading the running mean rm:
 * on a stage mesh, the block that node reads (a TyExtern may have
 * resharded it: a channel split of a batch-split input), which the
 * model's value of the same name is not. */
static int bn_input(const ty_graph *g, const char *rm) {
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    if (n->op == TY_OP_BATCH_NORM && n->n_inputs > 3 && n->inputs[3] != TY_NO_VALUE &&
        strcmp(ty_graph_value_at(g, n->inputs[3])->name, rm) == 0)
      return n->inputs[0];
  }
  return TY_NO_VALUE;
}

static bool bn_values(const ty_train *t, const ty_graph *g, size_t b, bn_vals *out) {
  const char *rm = ty_graph_value_at(t->g, t->bn[b].ids[0])->name;
  *out = (bn_vals){TY_NO_VALUE, TY_NO_VALUE, TY_NO_VALUE, 0};
  if (t->bn[b].x_id == TY_NO_VALUE) return false;
  const ty_shard_bn_info *s = t->pipe->tp ? ty__pipe_tp_bn(t->pipe->tp, rm) : NULL;
  if (!s) { /* the node itself, which reads the running statistics */
    if (ty_graph_find_value(g, rm) == TY_NO_VALUE) return false;
    out->x = bn_input(g, rm);
    if (out->x == TY_NO_VALUE)
      out->x = ty_graph_find_value(g, ty_graph_value_at(t->g, t->bn[b].x_id)->name);
    return true;
  }
  const ty_graph *local = t->pipe->src; /* the shard's parts: g computes the statistics */
  out->mean = ty_graph_find_value(g, ty_graph_value_at(local, s->mean)->name);
  out->var = ty_graph_find_value(g, ty_graph_value_at(local, s->var)->name);
  out->count = s->count;
  return out->mean != TY_NO_VALUE && out->var != TY_NO_VALUE &&
         ty_graph_value_at(g, out->mean)->producer >= 0;
}

/* Micro-batch i's first forward through g has run: the statistics of its
 * BatchNormalizations fold into the running ones, micro-batch by
 * micro-batch in order (GPipe's statistics per micro-batch; on a stage
 * mesh those of the whole micro-batch, summed over the stage's ranks). */
static int fold_bn(ty_train *t, const ty_graph *g, const ty_exec *ex, int i, char *err,
                   size_t err_len) {
  for (size_t b = 0; b < t->n_bn; b++) {
    bn_vals v;
    if (!bn_values(t, g, b, &v)) continue;
    int rc = TY_EINTERNAL;
    const ty_tensor *x = v.x != TY_NO_VALUE ? ty_exec_value(ex, v.x) : NULL;
    if (x && (rc = ty__train_bn_check_batch(t, b, x, err, err_len)) != 0) return rc;
    if (x)
      rc = ty__train_bn_fold(&t->bn[b], x);
    else if (v.mean != TY_NO_VALUE && v.var != TY_NO_VALUE)
      rc = ty__train_bn_fold_stats(&t->bn[b], ty_exec_value(ex, v.mean), ty_exec_value(ex, v.var),
                                   v.count);
    if (rc != 0)
      return ty_errf(err, err_len, rc,
                     "pipeline: stage %d, micro-batch %d: BatchNormalization running stats "
                     "\"%s\": input \"%s\" (or its batch statistics) missing or not [N, C, ...]",
                     t->pipe->stage, i, ty_graph_value_at(t->g, t->bn[b].ids[0])->name,
                     ty_graph_value_at(t->g, t->bn[b].x_id)->name);
  }
  return 0;
}

/* The executor of g, created on first use. A stage that draws Dropout
 * masks or random ops draws as one process's first run of the step does
 * (its seed and noise_seed, run 0: ty_exec_reseed before every run), each
 * node at micro-batch i's block of its one-process output
 * (pipe_random.c): a recomputed forward draws the first forward's masks. */
static int make_exec(ty_train *t, ty_graph *g, ty_exec **out, int i, char *err, size_t err_len) {
  uint64_t seed = ty_mix2(t->cfg->seed, t->step), noise = ty__train_noise_seed(t);
  int rc = t->pipe->random ? ty__pipe_draws_place(t->pipe, g, i) : 0;
  if (rc != 0 || *out) {
    if (rc == 0 && t->pipe->random) ty_exec_reseed(*out, seed, noise);
    return rc;
  }
  ty_exec_opts o = {.training = true,
                    .seed = seed,
                    .noise_seed = noise,
                    .no_fusion = t->opts.no_fusion,
                    .jit = t->jit,
                    .workers = t->opts.workers};
  if (t->pipe->tp) {
    o.extern_op = ty_shard_extern;
    o.extern_user = ty__pipe_tp_shard(t->pipe->tp);
    o.extern_error = ty_shard_extern_error;
  }
  int keep[2 * t->n_bn + 1];
  for (size_t b = 0; b < t->n_bn; b++) {
    bn_vals v;
    if (!bn_values(t, g, b, &v)) continue;
    int ids[3] = {v.x, v.mean, v.var};
    for (int k = 0; k < 3; k++)
      if (ids[k] != TY_NO_VALUE) keep[o.n_keep_values++] = ids[k];
  }
  o.keep_values = keep;
  rc = ty_exec_create(g, &o, out);
  for (size_t p = 0; rc == 0 && p < t->np; p++) {
    int v = ty_graph_find_value(g, ty_graph_value_at(t->g, t->param_ids[p])->name);
    const ty_tensor *x = t->params[p];
    if (v == TY_NO_VALUE || !ty_graph_value_at(g, v)->init) continue;
    rc = x ? ty_exec_bind_id(*out, v, x, err, err_len)
           : ty_errf(err, err_len, TY_EINTERNAL,
                     "pipeline: stage %d reads parameter \"%s\" of another stage", t->pipe->stage,
                     ty_graph_value_at(g, v)->name);
    /* The executor reads t->params from now on: the graph's copy of the
     * weights (cut from src, one per stage graph) goes. */
    if (rc == 0) rc = ty_graph_drop_init_data(g, v);
  }
  return rc;
}

/* Binds g's inputs from m's tensors (micro-batch i's) and runs it. */
static int run_on(ty_train *t, ty_graph *g, ty_exec **ex, int i, const mb_state *m, char *err,
                  size_t err_len) {
  int rc = make_exec(t, g, ex, i, err, err_len);
  for (size_t k = 0; rc == 0 && k < ty_graph_n_inputs(g); k++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_input(g, k));
    const ty_tensor *x = mb_get(m, v->name);
    rc = x ? ty_exec_bind_id(*ex, ty_graph_input(g, k), x, err, err_len)
           : ty_errf(err, err_len, TY_EINTERNAL, "pipeline: stage %d: no value for input \"%s\"",
                     t->pipe->stage, v->name);
  }
  return rc == 0 ? ty_exec_run(*ex, err, err_len) : rc;
}

static const ty_tensor *value(const ty_graph *g, const ty_exec *ex, const char *name);

static int run(ty_train *t, ty_graph *g, ty_exec **ex, int i, char *err, size_t err_len) {
  return run_on(t, g, ex, i, &t->pipe->mbs[i], err, err_len);
}

/* The global batch's denominators of the weighted mean losses: each
 * micro-batch's from its feeds (pp->den), summed, and with gradient
 * accumulation summed over the data-parallel ranks too (each holds its
 * shard of the global batch), before the step's first micro-batch
 * (pipe_wmean.c). */
static int denominators(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  double sum[pp->n_den + 1];
  memset(sum, 0, sizeof sum);
  int rc = 0;
  for (int i = 0; pp->den && rc == 0 && i < pp->M; i++) {
    mb_state m = {0};
    rc = load_feeds(t, pp, i, pp->den, &m);
    if (rc == 0) rc = run_on(t, pp->den, &pp->ex_den, i, &m, err, err_len);
    for (size_t k = 0; rc == 0 && k < pp->n_den; k++) {
      const ty_tensor *d = value(pp->den, pp->ex_den, pp->den_names[k]);
      if (d && ty_tensor_numel(d) == 1)
        sum[k] += (double)ty_tensor_f32(d)[0];
      else
        rc = ty_errf(err, err_len, TY_EINTERNAL, "pipeline: stage %d computed no \"%s\"", pp->stage,
                     pp->den_names[k]);
    }
    mb_clear(pp, &m);
  }
  for (size_t k = 0; rc == 0 && pp->den && k < pp->n_den; k++)
    pp->den_sum[k] = (float)sum[k];
  if (rc == 0 && pp->den && pp->accum)
    rc = ty__train_accum_sum(t, pp->den_sum, pp->n_den, "weighted mean losses' denominators", err,
                             err_len);
  return rc;
}

/* Micro-batch m reads the step's denominators as inputs. */
static int feed_denominators(ty__pipe *pp, mb_state *m) {
  int rc = 0;
  ty_shape scalar = ty_shape_make(0, NULL);
  for (size_t k = 0; rc == 0 && pp->den && k < pp->n_den; k++) {
    ty_tensor *d;
    if ((rc = ty_tensor_create(TY_DTYPE_F32, &scalar, &d)) != 0) break;
    ty_tensor_f32(d)[0] = pp->den_sum[k];
    rc = mb_put(pp, m, pp->den_names[k], d);
  }
  return rc;
}

/* A value computed by the last run of ex over g, by name. */
static const ty_tensor *value(const ty_graph *g, const ty_exec *ex, const char *name) {
  int v = ty_graph_find_value(g, name);
  return v == TY_NO_VALUE ? NULL : ty_exec_value(ex, v);
}

/* Sends every activation this stage computes for micro-batch i. */
static int send_acts(ty_train *t, const ty_graph *g, const ty_exec *ex, int i, char *err,
                     size_t err_len) {
  ty__pipe *pp = t->pipe;
  for (size_t k = 0; k < pp->n_links; k++) {
    const crossing *l = &pp->links[k];
    if (l->from != pp->stage) continue;
    const ty_tensor *x = value(g, ex, l->name);
    if (!x)
      return ty_errf(err, err_len, TY_EINTERNAL, "pipeline: stage %d did not compute \"%s\"",
                     pp->stage, l->name);
    int rc = ty__pipe_send(t, l, TY__PIPE_ACT, l->to, i, x->data, (size_t)ty_tensor_numel(x), err,
                           err_len);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Forward slot of micro-batch i: its feeds and received activations, then
 * (not on the last stage) the forward run and the sends. */
static int forward(ty_train *t, int i, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  mb_state *m = &pp->mbs[i];
  int rc = load_feeds(t, pp, i, NULL, m);
  if (rc == 0) rc = feed_denominators(pp, m);
  for (size_t k = 0; rc == 0 && k < pp->n_links; k++) {
    const crossing *l = &pp->links[k];
    ty_tensor *x = NULL;
    if (l->to != pp->stage || mb_get(m, l->name)) continue;
    rc = ty__pipe_recv(t, l, TY__PIPE_ACT, l->from, i, &x, err, err_len);
    if (rc == 0) rc = mb_put(pp, m, l->name, x);
  }
  if (rc != 0 || pp->last) return rc;
  if (pp->recompute) {
    rc = run(t, pp->fwd, &pp->ex_fwd, i, err, err_len);
    if (rc == 0) rc = fold_bn(t, pp->fwd, pp->ex_fwd, i, err, err_len);
    return rc ? rc : send_acts(t, pp->fwd, pp->ex_fwd, i, err, err_len);
  }
  if ((rc = run(t, pp->f, &pp->ex_f, i, err, err_len)) != 0 ||
      (rc = fold_bn(t, pp->f, pp->ex_f, i, err, err_len)) != 0)
    return rc;
  for (size_t k = 0; rc == 0 && k < ty_graph_n_outputs(pp->f); k++) {
    const ty_graph_value *v = ty_graph_value_at(pp->f, ty_graph_output(pp->f, k));
    const ty_tensor *x = ty_exec_value(pp->ex_f, ty_graph_output(pp->f, k));
    ty_tensor *copy;
    if (!x || mb_get(m, v->name)) continue;
    if ((rc = ty_tensor_clone(x, &copy)) == 0) rc = mb_put(pp, m, v->name, copy);
  }
  return rc ? rc : send_acts(t, pp->f, pp->ex_f, i, err, err_len);
}

/* The seeds of micro-batch i: each sent activation's gradient, summed over
 * the stages that read it. */
static int recv_seeds(ty_train *t, int i, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  mb_state *m = &pp->mbs[i];
  for (size_t k = 0; k < pp->n_links; k++) {
    const crossing *l = &pp->links[k];
    if (l->from != pp->stage) continue;
    char name[300];
    snprintf(name, sizeof name, "%s.seed", l->name);
    ty_tensor *g = NULL, *sum = mb_get(m, name);
    int rc = ty__pipe_recv(t, l, TY__PIPE_GRAD, l->to, i, &g, err, err_len);
    if (rc != 0) return rc;
    if (!sum) {
      if ((rc = mb_put(pp, m, name, g)) != 0) return rc;
      continue;
    }
    float *dst = ty_tensor_f32(sum);
    const float *src = ty_tensor_f32(g);
    for (int64_t e = 0, n = ty_tensor_numel(g); e < n; e++)
      dst[e] += src[e];
    ty_tensor_destroy(g);
  }
  return 0;
}

/* The gradient autodiff gave value `name` (by name in g), or NULL. */
static const ty_tensor *grad_of(const ty__pipe *pp, const ty_graph *g, const ty_exec *ex,
                                const char *name) {
  for (size_t k = 0; k < pp->train.n; k++) {
    const ty_graph_value *w = ty_graph_value_at(pp->train.g, pp->train.wrt[k]);
    if (strcmp(w->name, name) != 0) continue;
    if (pp->train.grads[k] == TY_NO_VALUE) return NULL;
    return value(g, ex, ty_graph_value_at(pp->train.g, pp->train.grads[k])->name);
  }
  return NULL;
}

/* After a backward run: the parameters' gradients into the sums, the
 * received activations' gradients back to their stages. */
static int collect(ty_train *t, const ty_graph *g, const ty_exec *ex, int i, char *err,
                   size_t err_len) {
  ty__pipe *pp = t->pipe;
  for (size_t k = 0; k < pp->n_mine; k++) {
    const char *name = ty_graph_value_at(t->g, t->param_ids[pp->mine[k]])->name;
    const ty_tensor *gr = grad_of(pp, g, ex, name);
    if (!gr) continue;
    float *acc = pp->acc + pp->acc_off[k];
    const float *src = ty_tensor_f32(gr);
    for (int64_t e = 0, n = ty_tensor_numel(gr); e < n; e++)
      acc[e] += src[e];
  }
  for (size_t k = 0; k < pp->n_links; k++) {
    const crossing *l = &pp->links[k];
    if (l->to != pp->stage) continue;
    const ty_tensor *gr = grad_of(pp, g, ex, l->name), *x = mb_get(&pp->mbs[i], l->name);
    size_t n = (size_t)ty_tensor_numel(x);
    float *zeros = gr ? NULL : calloc(n + 1, sizeof *zeros);
    if (!gr && !zeros) return TY_ENOMEM;
    int rc = ty__pipe_send(t, l, TY__PIPE_GRAD, l->from, i, gr ? ty_tensor_f32(gr) : zeros, n, err,
                           err_len);
    free(zeros);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Whether this rank's loss counts in the sum over ranks: every replica's
 * mean does; on a stage mesh, one copy of each partial sum. */
static bool loss_counts(ty_train *t) {
  ty__pipe *pp = t->pipe;
  if (!pp->tp) return true;
  ty_shard *s = ty__pipe_tp_shard(pp->tp);
  return ty__pipe_tp_counts(pp->tp, t->loss_id, ty_shard_partial_axes(s, t->loss_id));
}

/* Backward slot of micro-batch i. */
static int backward(ty_train *t, int i, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  mb_state *m = &pp->mbs[i];
  int rc = pp->last ? 0 : recv_seeds(t, i, err, err_len);
  bool split = !pp->last && !pp->recompute;
  ty_graph *g = split ? pp->b : pp->train.g;
  ty_exec **ex = split ? &pp->ex_b : &pp->ex_train;
  if (rc == 0) rc = run(t, g, ex, i, err, err_len);
  if (rc == 0 && pp->last) rc = fold_bn(t, g, *ex, i, err, err_len); /* its only forward */
  if (rc == 0) rc = collect(t, g, *ex, i, err, err_len);
  if (rc == 0 && pp->last && loss_counts(t)) {
    const ty_tensor *l = value(g, *ex, pp->loss_name);
    pp->loss += l ? (double)ty_tensor_f32(l)[0] : NAN;
  }
  mb_clear(pp, m);
  return rc;
}

/* ---- the step ----------------------------------------------------------------------- */

/* ---- the schedule ------------------------------------------------------------------ */

/* The 1F1B order of this stage. */
static int schedule(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  int warm = pp->S - 1 - pp->stage < pp->M ? pp->S - 1 - pp->stage : pp->M, rc = 0;
  for (int i = 0; rc == 0 && i < warm; i++)
    rc = forward(t, i, err, err_len);
  for (int i = warm; rc == 0 && i < pp->M; i++) {
    rc = forward(t, i, err, err_len);
    if (rc == 0) rc = backward(t, i - warm, err, err_len);
  }
  for (int i = pp->M - warm; rc == 0 && i < pp->M; i++)
    rc = backward(t, i, err, err_len);
  return rc;
}

/* ---- gradient clipping ------------------------------------------------------------ */

bool ty__train_pipe_counts(const ty_train *t, size_t p) {
  const ty__pipe *pp = t->pipe;
  if (pp->param_stage[p] != pp->stage) return false; /* another's, or a tied one's copy */
  return !pp->tp || ty__pipe_tp_counts(pp->tp, t->param_ids[p], 0);
}

const float *ty__train_pipe_grad(ty_train *t, size_t p) {
  const ty__pipe *pp = t->pipe;
  for (size_t k = 0; k < pp->n_mine; k++)
    if (pp->mine[k] == p) return pp->acc + pp->acc_off[k];
  return NULL;
}

/* The stage's gradient sums (final: summed over the stage's ranks and the
 * tied holders, averaged) times clip_grad_norm_'s factor, which every rank
 * of every stage computes from the whole model's norm (clip.c). */
static int clip(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  float coef = 1.0f;
  int rc = ty__train_clip_scale(t, &coef, err, err_len);
  for (size_t e = 0; rc == 0 && coef != 1.0f && e < pp->acc_n; e++)
    pp->acc[e] *= coef;
  return rc;
}

int ty__train_pipe_step(ty_train *t, float lr, double *out_loss, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  const ty_train_parallel *par = t->opts.parallel;
  memset(pp->acc, 0, pp->acc_n * sizeof *pp->acc);
  pp->loss = 0;
  int rc = denominators(t, err, err_len);
  if (rc == 0) rc = schedule(t, err, err_len);
  for (int i = 0; i < pp->M; i++)
    mb_clear(pp, &pp->mbs[i]);
  if (rc == 0 && pp->S > 1 && (rc = par->flush(par->comm.user)) != 0)
    return ty_errf(err, err_len, rc, "pipeline: rank %u (stage %d): completing the sends: %s",
                   t->opts.rank, pp->stage, ty_strerror(rc));
  /* On a stage mesh each block's gradient is summed over the stage axes it
   * is partial on (the data axes, a split reduction): every rank of the
   * stage issues the same all-reduces, parameter by parameter. */
  for (size_t k = 0; pp->tp && rc == 0 && k < pp->n_mine; k++) {
    const ty_graph_value *v = ty_graph_value_at(t->g, t->param_ids[pp->mine[k]]);
    size_t n = (size_t)ty_tensor_numel(t->params[pp->mine[k]]);
    if ((rc = ty__pipe_tp_sum_grad(pp->tp, t->param_ids[pp->mine[k]], pp->acc + pp->acc_off[k], n,
                                   v->name)) != 0)
      return ty_errf(err, err_len, rc, "pipeline: summing stage %d's gradient of \"%s\" failed: %s",
                     pp->stage, v->name, ty_strerror(rc));
  }
  if (rc == 0) rc = ty__pipe_sum_tied(t, err, err_len);
  if (rc == 0 && pp->accum)
    rc = ty__train_accum_sum(t, pp->acc, pp->acc_n, "summed gradients", err, err_len);
  if (rc != 0) return rc;
  int ways = pp->tp ? pp->M : pp->M * pp->R; /* a shard's loss is the micro-batch's mean */
  /* data-parallel: the mean (own_src scaled the weighted means and sums by it) */
  if (pp->accum) ways = pp->M * (int)ty__train_data_world(t);
  float scale = 1.0f / (float)ways;
  for (size_t e = 0; e < pp->acc_n; e++)
    pp->acc[e] *= scale;
  if (t->clip_buf && (rc = clip(t, err, err_len)) != 0) return rc;
  for (size_t k = 0; rc == 0 && k < pp->n_mine; k++)
    if ((rc = ty__train_update_param(t, pp->mine[k], lr, pp->acc + pp->acc_off[k])) != 0)
      return ty_errf(err, err_len, rc, "optimizer step failed for parameter %zu", pp->mine[k]);
  *out_loss =
      !pp->last ? 0 : pp->loss / (double)(pp->accum ? pp->M : ways); /* accum: this rank's */
  return 0;
}

void ty__train_pipe_destroy(ty_train *t) {
  ty__pipe *pp = t->pipe;
  if (!pp) return;
  for (int i = 0; pp->mbs && i < pp->M; i++)
    mb_clear(pp, &pp->mbs[i]);
  free(pp->mbs);
  free(pp->at_mb); /* set only when setup failed before freeing it */
  ty_exec_destroy(pp->ex_fwd);
  ty_exec_destroy(pp->ex_train);
  ty_exec_destroy(pp->ex_f);
  ty_exec_destroy(pp->ex_b);
  ty_exec_destroy(pp->ex_den);
  ty__train_pipe_eval_destroy(pp->eval);
  ty_graph_destroy(pp->den);
  ty_graph_destroy(pp->own_src);
  free(pp->den_names);
  free(pp->den_sum);
  ty_graph_destroy(pp->fwd);
  ty_graph_destroy(pp->f);
  ty_graph_destroy(pp->b);
  ty_graph_destroy(pp->train.g);
  free(pp->train.wrt);
  free(pp->train.grads);
  for (size_t i = 0; i < pp->n_links; i++)
    free(pp->links[i].name);
  free(pp->links);
  free(pp->param_stage);
  free(pp->holders);
  free(pp->mine);
  free(pp->acc);
  free(pp->acc_off);
  free(pp->node_stage);
  free(pp->stat);
  free(pp->bn_stage);
  ty__pipe_draws_free(pp);
  ty__pipe_tp_close(pp->tp);
  ty_plan_destroy(pp->plan);
  free(pp);
  t->pipe = NULL;
}
