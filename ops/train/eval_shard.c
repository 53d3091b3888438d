/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evaluation by a flat plan's ranks together (eval.c evaluates the whole
 * weights on one rank): the model's forward + loss graph is sharded with
 * the plan it trains with (ty_shard_create_inference), so each rank
 * evaluates with the blocks of the weights it trains and holds nothing
 * more; gathering the whole weights on rank 0 would need what the plan
 * found no device to hold. That local graph runs in inference mode
 * (inference.c) on the test split in batches of the plan's global batch,
 * which its shapes are for: every rank assembles each batch and keeps its
 * block of every feed, as in training; the last, shorter batch is padded
 * with zero rows that nothing counts. The prediction (the logits, or the
 * model's own loss) is summed over the axes it is partial on, and the
 * logits are gathered on rank 0, which adds up accuracy and loss as
 * eval.c does (a model's own loss by its kind, eval_loss.c). A model's
 * own loss runs over the whole batch, padding included: a weighted,
 * ignore_index or summed loss whose node has an ignore_index gets padding
 * rows labelled with it, which it leaves out, so the last batch counts
 * exactly its own rows; with any other (a plain mean over every row, or
 * such a node beside a plain mean term, which the padding would change:
 * eval_loss.c) the last, shorter batch is not evaluated, and rank 0 says
 * so at setup.
 *
 * Where the graph cannot be sharded for evaluation (ops/shard refuses a
 * trained weight read in another layout than it is held in), rank 0 says
 * why and the run evaluates as before: rank 0 gathers the weights, where
 * they fit (eval.c).
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

/* Drops the data of g's trained weights and the running statistics the
 * trainer keeps (the ones the evaluation binds, bnstats.c's rule): the
 * evaluation binds the ranks' blocks of them, and a copy made from the
 * data (a constant read in another layout) would not follow training. */
static int drop_trained(ty_graph *g, const ty_plan *p) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < p->n_params; i++)
    rc = ty_graph_drop_init_data(g, p->params[i].value);
  for (size_t i = 0; rc == 0 && i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    for (int k = 3; rc == 0 && k < 5 && ty__train_bn_keeps_stats(g, n); k++)
      rc = ty_graph_drop_init_data(g, n->inputs[k]);
  }
  return rc;
}

void ty__train_eval_shard_create(ty_train *t, ty_graph *src, const ty_plan *p) {
  char e[TY_ERR_LEN] = "";
  ty_shard *s = NULL;
  int rc = drop_trained(src, p);
  if (rc == 0)
    rc = ty_shard_create_inference(src, t->loss_id, p, (int)t->opts.rank, e, sizeof e, &s);
  if (rc == 0) {
    ty_shard_set_comm(s, &t->opts.parallel->comm);
    t->eval_g = ty_shard_take_graph(s);
    rc = ty__train_inference_mode(t->eval_g);
  }
  if (rc == 0) {
    t->eval_shard = s;
    return;
  }
  ty_shard_destroy(s);
  ty_graph_destroy(t->eval_g);
  t->eval_g = NULL;
  if (t->opts.rank == 0)
    fprintf(ty__train_log(t),
            "evaluation: rank 0 gathers the whole weights to evaluate, where they fit; the "
            "plan's ranks cannot evaluate their blocks together: %s\n",
            e[0] ? e : ty_strerror(rc));
}

/* Rank 0 says what the last, shorter test batch leaves out: with a
 * model's own loss it cannot pad (why_not), that batch. */
static void say_dropped(ty_train *t, const char *why_not) {
  size_t left = ty_dataset_count(t->test_ds) % t->eval_rows;
  if (!left) return;
  fprintf(ty__train_log(t),
          "evaluation: the last %zu of the test split's %zu rows are not evaluated: the plan's "
          "ranks evaluate whole batches of %u rows, and the model's loss \"%s\" is %s over its "
          "batch that padding rows would change (%s)\n",
          left, ty_dataset_count(t->test_ds), t->eval_rows, t->cfg->loss_output,
          ty__train_eval_loss_name(t), why_not);
}

void ty__train_eval_shard_setup(ty_train *t) {
  t->eval_rows = t->cfg->batch_size;
  t->eval_pad_feed = -1;
  size_t feed = 0;
  const char *why_not = NULL;
  if (t->cfg->loss_output && !(why_not = ty__train_eval_loss_pad(t, &feed, &t->eval_pad_label)))
    t->eval_pad_feed = (int)feed;
  if (t->opts.rank != 0) return;
  uint32_t asked = t->cfg->eval_batch_size;
  if (asked && asked != t->eval_rows)
    fprintf(ty__train_log(t),
            "evaluation: batches of %u rows, the plan's global batch: its ranks evaluate "
            "together, each its block (config.eval_batch_size %u sets one process's batches)\n",
            t->eval_rows, asked);
  if (why_not) say_dropped(t, why_not);
}

/* One evaluation's state on a rank: the executor of the local graph, the
 * loader of the test split and this rank's blocks of each feed. */
typedef struct shard_eval {
  ty_exec *e;
  ty_loader *l;
  ty_tensor *in[TY_DATA_MAX_COLUMNS]; /* this rank's block of feed k */
  int64_t start[TY_DATA_MAX_COLUMNS][TY_MAX_RANK];
  void *pad[TY_DATA_MAX_COLUMNS]; /* feed k's whole batch, for a shorter one */
  int out;                        /* the prediction's value */
  const char *out_name;           /* its name (the eval graph's) */
  ty_shape out_full;              /* its global shape, at the plan's batch */
  float *local, *full;            /* its block here; rank 0: all of it */
  size_t n_local;
} shard_eval;

static void close_eval(shard_eval *v) {
  ty_exec_destroy(v->e);
  ty_loader_destroy(v->l);
  for (size_t k = 0; k < TY_DATA_MAX_COLUMNS; k++) {
    ty_tensor_destroy(v->in[k]);
    free(v->pad[k]);
  }
  free(v->local);
  free(v->full);
}

/* Feed k's block on this rank, bound to the executor. */
static int open_feed(ty_train *t, shard_eval *v, size_t k, char *err, size_t err_len) {
  const ty__feed *f = &t->feeds[k];
  ty_shape full, want = ty__train_feed_shape(t, k, t->eval_rows);
  int64_t len[TY_MAX_RANK];
  int rc = ty_shard_slice_of(t->eval_shard, f->id, (int)t->opts.rank, &full, v->start[k], len);
  if (rc == 0 && !ty_shape_equal(&full, &want))
    return ty_errf(err, err_len, TY_EINTERNAL, "input \"%s\" does not match the plan", t->names[k]);
  ty_shape ls = ty_shape_make(full.rank, len);
  size_t whole = (size_t)ty_shape_numel(&want) * ty_dtype_size(f->dtype);
  if (rc == 0) rc = ty_tensor_create(f->dtype, &ls, &v->in[k]);
  if (rc == 0 && !(v->pad[k] = calloc(1, whole + 1))) rc = TY_ENOMEM;
  return rc ? rc : ty_exec_bind(v->e, t->names[k], v->in[k], err, err_len);
}

/* The prediction's value and its buffers. */
static int open_output(ty_train *t, shard_eval *v, char *err, size_t err_len) {
  const char *name = t->cfg->loss_output ? t->cfg->loss_output : t->cfg->logits_output;
  v->out = ty_graph_find_value(t->eval_g, name);
  v->out_name = name;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  if (v->out == TY_NO_VALUE ||
      ty_shard_slice_of(t->eval_shard, v->out, (int)t->opts.rank, &v->out_full, start, len) != 0)
    return ty_errf(err, err_len, TY_EINTERNAL, "the plan has no output \"%s\"", name);
  v->n_local = 1;
  for (int d = 0; d < v->out_full.rank; d++)
    v->n_local *= (size_t)len[d];
  v->local = malloc(v->n_local * sizeof *v->local + 1);
  if (t->opts.rank == 0)
    v->full = malloc((size_t)ty_shape_numel(&v->out_full) * sizeof *v->full + 1);
  return v->local && (t->opts.rank != 0 || v->full) ? 0 : TY_ENOMEM;
}

static int open_eval(ty_train *t, shard_eval *v, char *err, size_t err_len) {
  ty_exec_opts eo = {.no_fusion = t->opts.no_fusion,
                     .jit = t->jit,
                     .workers = t->opts.workers,
                     .extern_op = ty_shard_extern,
                     .extern_user = t->eval_shard,
                     .extern_error = ty_shard_extern_error};
  int rc = ty_exec_create(t->eval_g, &eo, &v->e);
  if (rc == 0) rc = ty__train_bind_trained(t, v->e, t->eval_g, err, err_len);
  for (size_t k = 0; rc == 0 && k < t->n_feeds; k++)
    rc = open_feed(t, v, k, err, err_len);
  if (rc == 0) rc = open_output(t, v, err, err_len);
  ty_loader_opts lo = {.batch_size = t->eval_rows,
                       .world_size = 1,
                       .drop_last = t->cfg->loss_output && t->eval_pad_feed < 0};
  if (rc == 0) rc = ty_loader_create(t->test_ds, &lo, &v->l, err, err_len);
  if (rc == 0) rc = ty_loader_start_epoch(v->l, 0, 0);
  return rc;
}

/* Feed k's whole batch in v->pad[k] from the n rows at src: the rest
 * zeros, or the label the model's own loss leaves out (eval_pad_feed). */
static void pad_batch(ty_train *t, shard_eval *v, size_t k, const void *src, uint32_t n) {
  ty_dtype dt = t->feeds[k].dtype;
  ty_shape part = ty__train_feed_shape(t, k, n), whole = ty__train_feed_shape(t, k, t->eval_rows);
  size_t have = (size_t)ty_shape_numel(&part), all = (size_t)ty_shape_numel(&whole);
  memcpy(v->pad[k], src, have * ty_dtype_size(dt));
  memset((char *)v->pad[k] + have * ty_dtype_size(dt), 0, (all - have) * ty_dtype_size(dt));
  for (size_t i = have; (int)k == t->eval_pad_feed && i < all; i++)
    if (dt == TY_DTYPE_I64)
      ((int64_t *)v->pad[k])[i] = t->eval_pad_label;
    else if (dt == TY_DTYPE_I32)
      ((int32_t *)v->pad[k])[i] = (int32_t)t->eval_pad_label;
}

/* Copies this rank's block of batch b into the feeds, a shorter batch
 * through its padded whole. */
static void load_batch(ty_train *t, shard_eval *v, const ty_batch *b) {
  for (size_t k = 0; k < t->n_feeds; k++) {
    ty_dtype dt = t->feeds[k].dtype;
    ty_shape whole = ty__train_feed_shape(t, k, t->eval_rows);
    const void *src = b->cols[k];
    if (b->n < t->eval_rows) {
      pad_batch(t, v, k, src, b->n);
      src = v->pad[k];
    }
    ty_shard_copy_block((void *)src, &whole, v->in[k]->data, v->start[k], v->in[k]->shape.dims,
                        ty_dtype_size(dt), true);
  }
}

/* One batch: every rank runs its block; rank 0 adds up the result. */
static int eval_batch(ty_train *t, shard_eval *v, const ty_batch *b, ty__eval_tally *a, char *err,
                      size_t err_len) {
  load_batch(t, v, b);
  int rc = ty_exec_run(v->e, err, err_len);
  if (rc != 0) return rc;
  const ty_tensor *o = ty_exec_output(v->e, v->out_name);
  if (!o || o->dtype != TY_DTYPE_F32 || (size_t)ty_tensor_numel(o) != v->n_local)
    return ty_errf(err, err_len, TY_EINTERNAL, "the local graph gave no float \"%s\" of %zu values",
                   v->out_name, v->n_local);
  memcpy(v->local, o->data, v->n_local * sizeof *v->local);
  const ty_train_parallel *par = t->opts.parallel;
  unsigned partial = ty_shard_partial_axes(t->eval_shard, v->out);
  if (partial)
    rc = par->comm.all_reduce(partial, v->local, v->n_local, "evaluation", par->comm.user);
  if (rc != 0)
    return ty_errf(err, err_len, rc, "summing the prediction over the ranks: %s", ty_strerror(rc));
  if (t->cfg->loss_output) return ty__train_tally_loss(t, v->local[0], b, a, err, err_len);
  rc = ty__train_shard_gather(t, t->eval_shard, v->out, v->local, v->n_local, v->full);
  if (rc != 0)
    return ty_errf(err, err_len, rc, "gathering the logits on rank 0: %s", ty_strerror(rc));
  if (t->opts.rank != 0) return 0;
  ty_shape s = v->out_full;
  s.dims[0] = b->n; /* the batch's rows, the padding's left out */
  if (ty__train_tally_logits(t, v->full, &s, b, a) != 0)
    return ty_errf(err, err_len, TY_EINVAL, "output \"%s\" is not float logits matching the labels",
                   v->out_name);
  return 0;
}

int ty__train_eval_sharded(ty_train *t, ty__eval_tally *a, char *err, size_t err_len) {
  shard_eval v = {0};
  int rc = open_eval(t, &v, err, err_len);
  ty_batch b;
  while (rc == 0 && (rc = ty_loader_next(v.l, &b)) == 1)
    rc = eval_batch(t, &v, &b, a, err, err_len);
  close_eval(&v);
  if (rc < 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err ? err : "");
    ty_errf(err, err_len, rc, "evaluation on rank %u: %s", t->opts.rank, inner);
  }
  return rc;
}
