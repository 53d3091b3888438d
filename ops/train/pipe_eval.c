/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evaluation by a pipeline's stages together (eval.c evaluates the whole
 * weights on rank 0, which the ranks gather there first: a model planned
 * in stages because it fits no device cannot be, and skips it). Each rank
 * runs the nodes of its stage's forward graph that the prediction needs
 * (the logits, and the activations later stages read: the loss and
 * whatever only it reads are left out), in inference mode (inference.c),
 * with the weights and running statistics it trains. The test split goes
 * through in batches, each batch one message per crossing from stage to
 * stage (a message kind of their own, checked on receipt), so the stages
 * work on consecutive batches at once; the last stage adds up accuracy
 * and loss from each batch's logits as eval.c does, then sends the sums
 * to rank 0, which reports them. No rank holds another stage's weights,
 * and the scores are one process's for the same weights.
 *
 * A stage's graphs take any batch rows (one device, no split to match),
 * so the batches are as large as eval.c's rule lets every stage take them
 * (its activations within a training micro-batch's, or 64 MiB; at most
 * 1000 rows): each stage works its rows out at the first evaluation and
 * the stages take the least (an all-gather over the stages). The last
 * batch is as short as the data.
 *
 * Where it does not apply, every rank decides alike and rank 0 says why:
 * a stage mesh of more than one device (its intra-stage plan shards the
 * prediction), a model's own weighted mean loss (the stages compute it as
 * each micro-batch's share of the global batch's), a random op other than
 * Dropout (one process draws it over the whole batch). Rank 0 then gathers the
 * whole weights, where they fit, as before.
 */
#include "ops/train/pipe_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ty__pipe_eval {
  ty_graph *g;     /* the stage's prediction nodes, inference mode (owned) */
  int out;         /* last stage: the prediction in g (the logits, or the model's own loss),
                      or TY_NO_VALUE (received, not computed) */
  bool reads_data; /* g reads a feed, or the stage tallies: it loads the test batches */
  uint32_t rows, last_rows; /* rows of a test batch, every stage's (0: not agreed yet), and of
                               the last one when shorter (else 0) */
  crossing *links, *last;   /* the plan's crossings at those rows (names borrowed); a
                               fixed batch dim's shorter one crosses padded, at `rows` */
};

void ty__train_pipe_eval_destroy(ty__pipe_eval *e) {
  if (!e) return;
  ty_graph_destroy(e->g);
  free(e->links);
  free(e->last);
  free(e);
}

bool ty__train_pipe_evaluates(const ty_train *t) {
  return t->pipe && t->pipe->eval;
}

/* ---- setup ------------------------------------------------------------------------ */

/* Why the stages cannot evaluate together (NULL: they can), decided alike
 * on every rank. */
static const char *unsupported(const ty_train *t) {
  if (t->pipe->tp) return "a stage of several devices shards its prediction";
  if (t->cfg->loss_output && t->pipe->own_src)
    return "the stages compute the model's weighted mean loss as each micro-batch's share of "
           "the global batch's, not over a test batch";
  for (size_t i = 0; i < ty_graph_n_nodes(t->g); i++)
    if (ty_op_is_random(ty_graph_node_at(t->g, i)->op))
      return "a random op draws over the whole batch in one process";
  return NULL;
}

/* The values of the stage's forward graph the evaluation computes: every
 * activation it sends, and on the last stage the prediction (when its
 * nodes compute it). */
static int wanted(const ty__pipe *pp, const ty_train *t, int *out, size_t *n) {
  *n = 0;
  for (size_t k = 0; k < pp->n_links; k++) {
    if (pp->links[k].from != pp->stage) continue;
    int v = ty_graph_find_value(pp->fwd, pp->links[k].name);
    if (v == TY_NO_VALUE) return TY_EINTERNAL;
    out[(*n)++] = v;
  }
  if (!pp->last) return 0;
  int v = ty_graph_find_value(pp->fwd, ty__train_prediction(t));
  if (v == TY_NO_VALUE) return TY_EINTERNAL;
  if (ty_graph_value_at(pp->fwd, v)->producer >= 0) out[(*n)++] = v;
  return 0;
}

static int cut(ty_train *t, ty__pipe_eval *ev, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  int *outs = malloc((pp->n_links + 2) * sizeof *outs);
  bool *need = NULL;
  size_t n = 0;
  int rc = outs ? wanted(pp, t, outs, &n) : TY_ENOMEM;
  if (rc == TY_EINTERNAL)
    ty_errf(err, err_len, rc, "evaluation: stage %d's graph lacks a value it sends or \"%s\"",
            pp->stage, ty__train_prediction(t));
  /* The stage's weights have no data in pp->fwd (pipe_setup.c): the cut
   * takes them as inputs, bound to the trained tensors. */
  if (rc == 0) rc = ty__train_needed_nodes(pp->fwd, outs, n, &need);
  if (rc == 0) rc = ty__pipe_extract(pp->fwd, need, outs, n, &ev->g, err, err_len);
  if (rc == 0) rc = ty__train_inference_mode(ev->g);
  int v = rc == 0 && pp->last ? ty_graph_find_value(ev->g, ty__train_prediction(t)) : TY_NO_VALUE;
  ev->out = v != TY_NO_VALUE && ty_graph_value_at(ev->g, v)->producer >= 0 ? v : TY_NO_VALUE;
  free(outs);
  free(need);
  return rc;
}

int ty__train_pipe_eval_setup(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  if (!t->test_ds || !ty__train_pipe_sharded(t)) return 0;
  const char *why = unsupported(t);
  if (why) {
    if (t->opts.rank == 0)
      fprintf(ty__train_log(t),
              "evaluation: rank 0 gathers the whole weights to evaluate, where they fit; the "
              "pipeline's stages cannot evaluate together: %s\n",
              why);
    return 0;
  }
  ty__pipe_eval *ev = calloc(1, sizeof *ev);
  if (!ev) return TY_ENOMEM;
  int rc = cut(t, ev, err, err_len);
  for (size_t k = 0; rc == 0 && k < t->n_feeds && !ev->reads_data; k++)
    ev->reads_data = ty_graph_find_value(ev->g, t->names[k]) != TY_NO_VALUE;
  ev->reads_data = ev->reads_data || pp->last;
  if (rc != 0) {
    ty__train_pipe_eval_destroy(ev);
    return rc;
  }
  pp->eval = ev;
  return 0;
}

/* ---- the batch rows, agreed ------------------------------------------------------------ */

/* The most rows this stage evaluates at once: a fixed batch dim, or
 * config.eval_batch_size, or as many, up to TY__EVAL_ROWS_MAX, as keep its
 * activations within what one of its training micro-batches' take, or
 * within the floor (eval.c's rule); a training micro-batch's where the
 * sizes are not known before it runs. */
static uint32_t stage_rows(const ty_train *t) {
  const ty__pipe *pp = t->pipe;
  if (t->fixed_batch) return t->fixed_batch;
  if (t->cfg->eval_batch_size) return t->cfg->eval_batch_size;
  if (ty_graph_n_nodes(pp->eval->g) == 0) return TY__EVAL_ROWS_MAX;
  uint64_t train = ty__train_activation_bytes(t, pp->train.g, pp->rows), bytes;
  uint64_t budget = train > TY__EVAL_FLOOR_BYTES ? train : TY__EVAL_FLOOR_BYTES;
  return ty__train_rows_within(t, pp->eval->g, budget, (uint32_t)pp->rows, &bytes);
}

/* The plan's crossings with their shapes at `rows` (*out owned). */
static int links_at(const ty__pipe *pp, uint32_t rows, crossing **out, char *err, size_t err_len) {
  ty_shape *at = malloc((ty_graph_n_values(pp->src) + 1) * sizeof *at);
  *out = malloc((pp->n_links + 1) * sizeof **out);
  int rc = at && *out ? ty__graph_shapes_at(pp->src, rows, at, err, err_len) : TY_ENOMEM;
  for (size_t k = 0; rc == 0 && k < pp->n_links; k++) {
    (*out)[k] = pp->links[k];
    (*out)[k].shape = at[ty_graph_find_value(pp->src, pp->links[k].name)];
  }
  free(at);
  return rc;
}

/* Every stage evaluates batches of the least of their rows (all-gathered
 * over the stages: the first evaluation's collective); rank 0 says how
 * many where that is fewer than TY__EVAL_ROWS_MAX. */
static int agree_rows(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  ty__pipe_eval *ev = pp->eval;
  if (ev->rows) return 0;
  float mine = (float)stage_rows(t), *all = malloc((size_t)pp->S * sizeof *all);
  const ty_shard_comm *c = &t->par.comm;
  int rc =
      all ? c->all_gather(0, &mine, 1, all, "the evaluation's batch rows", c->user) : TY_ENOMEM;
  uint32_t rows = UINT32_MAX;
  for (int s = 0; rc == 0 && s < pp->S; s++)
    if ((uint32_t)all[s] < rows) rows = (uint32_t)all[s];
  free(all);
  if (rc != 0)
    return ty_errf(err, err_len, rc, "evaluation: agreeing on the batch rows failed: %s",
                   ty_strerror(rc));
  uint64_t count = ty_dataset_count(t->test_ds);
  uint32_t last = ty__train_eval_drops_last(t) ? 0 : (uint32_t)(count % rows);
  if ((rc = links_at(pp, rows, &ev->links, err, err_len)) != 0 ||
      (last && !t->fixed_batch && (rc = links_at(pp, last, &ev->last, err, err_len)) != 0)) {
    free(ev->links), free(ev->last); /* the next evaluation tries again */
    ev->links = ev->last = NULL;
    return rc;
  }
  ev->rows = rows, ev->last_rows = last;
  if (t->opts.rank == 0 && rows < TY__EVAL_ROWS_MAX)
    fprintf(ty__train_log(t), "evaluation: the stages evaluate batches of %u rows (%s)\n", rows,
            t->cfg->eval_batch_size ? "config.eval_batch_size"
                                    : "each stage's activations within a training "
                                      "micro-batch's, or 64 MiB; config.eval_batch_size sets it");
  return 0;
}

/* ---- one evaluation ------------------------------------------------------------------ */

/* One evaluation's state on a rank: the executor (none where the stage
 * only receives what it reports), the test batches (where the stage reads
 * them), a batch's feeds and received activations. Made per evaluation,
 * so that training keeps none of its memory. */
typedef struct stage_eval {
  ty_exec *e;
  ty_loader *l;
  ty_tensor *feed[TY_DATA_MAX_COLUMNS]; /* feed k's batch, where g reads it */
  uint32_t feed_rows;                   /* the feeds' rows */
  ty_tensor **recv;                     /* the batch's received activations, by link */
} stage_eval;

static void drop_received(const ty__pipe *pp, stage_eval *s) {
  for (size_t k = 0; s->recv && k < pp->n_links; k++) {
    ty_tensor_destroy(s->recv[k]);
    s->recv[k] = NULL;
  }
}

static void close_stage(const ty__pipe *pp, stage_eval *s) {
  ty_exec_destroy(s->e);
  ty_loader_destroy(s->l);
  for (size_t k = 0; k < TY_DATA_MAX_COLUMNS; k++)
    ty_tensor_destroy(s->feed[k]);
  drop_received(pp, s);
  free(s->recv);
}

/* The executor, with the trained tensors this stage holds bound. */
static int open_exec(ty_train *t, stage_eval *s, char *err, size_t err_len) {
  const ty__pipe_eval *ev = t->pipe->eval;
  if (ty_graph_n_nodes(ev->g) == 0) return 0; /* nothing to run: it only receives */
  ty_exec_opts eo = {.no_fusion = t->opts.no_fusion, .jit = t->jit, .workers = t->opts.workers};
  if (ev->out != TY_NO_VALUE) eo.keep_values = &ev->out, eo.n_keep_values = 1;
  int rc = ty_exec_create(ev->g, &eo, &s->e);
  return rc ? rc : ty__train_bind_trained(t, s->e, ev->g, err, err_len);
}

/* The executor and the loader. */
static int open_stage(ty_train *t, stage_eval *s, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  ty__pipe_eval *ev = pp->eval;
  int rc = open_exec(t, s, err, err_len);
  if (rc == 0 && !(s->recv = calloc(pp->n_links + 1, sizeof *s->recv))) rc = TY_ENOMEM;
  ty_loader_opts lo = {
      .batch_size = ev->rows, .world_size = 1, .drop_last = ty__train_eval_drops_last(t)};
  if (rc == 0 && ev->reads_data) rc = ty_loader_create(t->test_ds, &lo, &s->l, err, err_len);
  if (rc == 0 && s->l) rc = ty_loader_start_epoch(s->l, 0, 0);
  return rc;
}

/* Batch b into the feeds g reads, made (and bound) at `rows`: b->n, or a
 * fixed batch's, zero rows after b's. */
static int load_batch(const ty_train *t, stage_eval *s, const ty_batch *b, uint32_t rows, char *err,
                      size_t err_len) {
  for (size_t k = 0; k < t->n_feeds; k++) {
    if (!s->e || ty_graph_find_value(t->pipe->eval->g, t->names[k]) == TY_NO_VALUE) continue;
    if (s->feed_rows != rows) {
      ty_tensor_destroy(s->feed[k]);
      s->feed[k] = NULL;
      ty_shape batch = ty__train_feed_shape(t, k, rows);
      int rc = ty_tensor_create(t->feeds[k].dtype, &batch, &s->feed[k]);
      if (rc == 0) rc = ty_exec_bind(s->e, t->names[k], s->feed[k], err, err_len);
      if (rc != 0) return rc;
    }
    ty__train_eval_fill(t, k, b, s->feed[k]);
  }
  s->feed_rows = rows;
  return 0;
}

/* The crossings of a batch of n rows. */
static const crossing *links_of(const ty__pipe_eval *ev, uint32_t n) {
  return n == ev->rows ? ev->links : ev->last;
}

/* Receives every activation sent to this stage for batch i (n rows) and
 * binds those g reads. */
static int receive(ty_train *t, stage_eval *s, int i, uint32_t n, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < pp->n_links; k++) {
    const crossing *l = &links_of(pp->eval, n)[k];
    if (l->to != pp->stage) continue;
    rc = ty__pipe_recv(t, l, TY__PIPE_EVAL, l->from, i, &s->recv[k], err, err_len);
    if (rc == 0 && s->e && ty_graph_find_value(pp->eval->g, l->name) != TY_NO_VALUE)
      rc = ty_exec_bind(s->e, l->name, s->recv[k], err, err_len);
  }
  return rc;
}

static int send_on(ty_train *t, const stage_eval *s, int i, uint32_t n, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < pp->n_links; k++) {
    const crossing *l = &links_of(pp->eval, n)[k];
    if (l->from != pp->stage) continue;
    const ty_tensor *x = s->e ? ty_exec_output(s->e, l->name) : NULL;
    rc = x ? ty__pipe_send(t, l, TY__PIPE_EVAL, l->to, i, x->data, (size_t)ty_tensor_numel(x), err,
                           err_len)
           : ty_errf(err, err_len, TY_EINTERNAL, "evaluation: stage %d did not compute \"%s\"",
                     pp->stage, l->name);
  }
  return rc;
}

/* The last stage's share of batch b: its prediction (computed, or
 * received). */
static int tally(ty_train *t, const stage_eval *s, const ty_batch *b, ty__eval_tally *a, char *err,
                 size_t err_len) {
  ty__pipe *pp = t->pipe;
  const ty_tensor *x = NULL;
  if (pp->eval->out != TY_NO_VALUE) x = ty_exec_value(s->e, pp->eval->out);
  for (size_t k = 0; !x && k < pp->n_links; k++)
    if (s->recv[k] && strcmp(pp->links[k].name, ty__train_prediction(t)) == 0) x = s->recv[k];
  return ty__train_tally(t, x, b, a, err, err_len);
}

/* The test batches' rows: `rows`, the last one shorter (or left out: a
 * fixed batch dim with the model's own loss, eval.c). */
static uint32_t batch_rows(const ty_train *t, uint64_t i, uint64_t *n_batches) {
  const ty__pipe_eval *ev = t->pipe->eval;
  uint64_t whole = ty_dataset_count(t->test_ds) / ev->rows;
  *n_batches = whole + (ev->last_rows != 0);
  return i < whole ? ev->rows : ev->last_rows;
}

/* Batch i (n rows) through this stage: loaded where it reads the data,
 * received, run, sent on, tallied on the last stage. A fixed batch dim's
 * shorter batch runs padded to it. */
static int run_batch(ty_train *t, stage_eval *s, uint64_t i, uint32_t n, ty__eval_tally *a,
                     char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  uint32_t rows = t->fixed_batch ? pp->eval->rows : n;
  ty_batch b = {.n = n};
  if (s->l) {
    int got = ty_loader_next(s->l, &b);
    if (got < 0) return got;
    if (got != 1 || b.n != n)
      return ty_errf(err, err_len, TY_EINTERNAL, "evaluation: test batch %llu: %u rows, not %u",
                     (unsigned long long)i, got == 1 ? b.n : 0u, n);
  }
  int rc = s->l ? load_batch(t, s, &b, rows, err, err_len) : 0;
  if (rc == 0) rc = receive(t, s, (int)i, rows, err, err_len);
  if (rc == 0 && s->e) rc = ty_exec_run(s->e, err, err_len);
  if (rc == 0) rc = send_on(t, s, (int)i, rows, err, err_len);
  if (rc == 0 && pp->last) rc = tally(t, s, &b, a, err, err_len);
  drop_received(pp, s);
  return rc;
}

/* The last stage's sums reach rank 0 (the world's first stage), which
 * reports: four 64-bit words as eight floats' bits, numbered after the
 * n_batches test batches. */
static int send_tally(ty_train *t, ty__eval_tally *a, int n_batches, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  crossing l = {.name = "evaluation tally", .from = pp->S - 1, .to = 0};
  l.shape = ty_shape_make(1, (int64_t[]){8});
  if (pp->last) {
    uint64_t w[4] = {a->correct, a->count, 0, a->rows};
    memcpy(&w[2], &a->loss, sizeof a->loss);
    float f[8];
    memcpy(f, w, sizeof f);
    return ty__pipe_send(t, &l, TY__PIPE_EVAL, 0, n_batches, f, 8, err, err_len);
  }
  if (pp->stage != 0) return 0;
  ty_tensor *x = NULL;
  int rc = ty__pipe_recv(t, &l, TY__PIPE_EVAL, pp->S - 1, n_batches, &x, err, err_len);
  if (rc != 0) return rc;
  uint64_t w[4];
  memcpy(w, x->data, sizeof w);
  ty_tensor_destroy(x);
  a->correct = w[0], a->count = w[1], a->rows = w[3];
  memcpy(&a->loss, &w[2], sizeof a->loss);
  return 0;
}

int ty__train_pipe_evaluate(ty_train *t, ty__eval_tally *a, char *err, size_t err_len) {
  stage_eval s = {0};
  int rc = agree_rows(t, err, err_len);
  if (rc == 0) rc = open_stage(t, &s, err, err_len);
  uint64_t n_batches = 1;
  for (uint64_t i = 0; rc == 0 && i < n_batches; i++) {
    uint32_t n = batch_rows(t, i, &n_batches);
    if (n) rc = run_batch(t, &s, i, n, a, err, err_len);
  }
  if (rc == 0) rc = send_tally(t, a, (int)n_batches, err, err_len);
  close_stage(t->pipe, &s);
  if (rc != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err ? err : "");
    ty_errf(err, err_len, rc, "evaluation on rank %u: %s", t->opts.rank,
            inner[0] ? inner : ty_strerror(rc));
  }
  return rc;
}
