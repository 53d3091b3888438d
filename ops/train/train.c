/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The training loop (see train.h). Setup builds the training graph from a
 * copy of the model with the loss appended (loss.c) and its backward pass
 * (params.c), and keeps the trainable weights as tensors bound to the executor;
 * the optimizer updates them in place between runs (grads.c: the gradients'
 * buckets, their all-reduce and the updates). Here: setup, a step, the
 * epochs, evaluation's schedule and the run.
 *
 * Workload: Fashion-MNIST MLPs and small CNNs at batch 32..256 on a few
 * cores, where GEMM/conv dominate; per-step overhead here is a few
 * allocations and one pass over the gradients.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

FILE *ty__train_log(const ty_train *t) {
  return t->opts.log ? t->opts.log : stdout;
}
static FILE *log_stream(const ty_train *t) {
  return ty__train_log(t);
}

static int build_optim(ty_train *t, char *err, size_t err_len) {
  size_t *numels = calloc(t->np + 1, sizeof *numels);
  if (!numels) return TY_ENOMEM;
  for (size_t i = 0; i < t->np; i++)
    numels[i] = (size_t)ty_tensor_numel(t->params[i]);
  int rc = ty_optim_create(&t->cfg->optim, t->np, numels, &t->optim, err, err_len);
  free(numels);
  return rc;
}

/* The steps config.epochs ends at, counted from where the run starts: a
 * resumed run finishes the checkpoint's epoch and trains the epochs left,
 * each of this run's length (bpe), so a checkpoint of another drop_last
 * ends at an epoch's end. A checkpoint past the epochs ends at once: at
 * the epochs' last step where its steps were this run's batches (a
 * --steps run past them), else at its own step (another drop_last's
 * batches, of which the epochs times this run's says nothing). */
static uint64_t epochs_end(const ty_train *t) {
  uint64_t e = t->cfg->epochs;
  if (!e) return UINT64_MAX;
  if (t->epoch < e) return t->step + (e - t->epoch) * t->bpe - t->batch;
  bool same_batches = t->step == t->epoch * t->bpe + t->batch;
  return same_batches && e * t->bpe < t->step ? e * t->bpe : t->step;
}

/* The run's length, and the schedule's: opts.max_steps (trainrun
 * --steps) is a step budget that replaces the config's epochs / max_steps,
 * shorter or longer; the cosine length follows the config's only, so a
 * run cut short trains with the learning rates of the full run.
 * t->length_from names the limit that ends the run. Resolved at setup
 * and again after a resume, from the checkpoint's step, epoch and batch. */
static void resolve_steps(ty_train *t) {
  const ty_train_config *c = t->cfg;
  uint64_t by_epochs = epochs_end(t);
  uint64_t planned = c->max_steps && c->max_steps < by_epochs ? c->max_steps : by_epochs;
  t->total_steps = t->opts.max_steps ? t->opts.max_steps : planned;
  t->length_from = t->opts.max_steps                          ? "--steps"
                   : c->max_steps && c->max_steps < by_epochs ? "config.max_steps"
                                                              : "config.epochs";
  if (planned == UINT64_MAX) planned = t->total_steps;
  t->sched = c->schedule;
  if (t->sched.kind == TY_LR_COSINE && t->sched.total_steps == 0) {
    uint64_t w = t->sched.warmup_steps;
    t->sched.total_steps = planned > w ? planned - w : 1;
  }
}

/* A graph that draws random numbers reseeds its executor per step. */
static void note_random_ops(ty_train *t) {
  for (size_t i = 0; i < ty_graph_n_nodes(t->g); i++)
    if (ty_graph_node_at(t->g, i)->op == TY_OP_DROPOUT ||
        ty_op_is_random(ty_graph_node_at(t->g, i)->op))
      t->reseed_per_step = true;
}

/* Everything up to the optimizer: data, graph, parameters, buckets. The
 * cheap refusals come first (a checkpoint path that cannot be written),
 * and nothing trains before every check has passed. */
static int build(ty_train *t, char *err, size_t err_len) {
  int rc;
  if ((rc = ty__train_probe_checkpoint(t, err, err_len)) != 0 ||
      (rc = ty__train_data_open(t, err, err_len)) != 0 ||
      (rc = ty__train_build_loss(t, err, err_len)) != 0 ||
      (rc = ty__train_data_bind(t, err, err_len)) != 0)
    return rc;
  if (t->opts.parallel && (rc = ty__train_plan_setup(t, err, err_len)) != 0) return rc;
  if ((rc = ty__train_accum_setup(t, err, err_len)) != 0) return rc;
  ty__train_warn_softmax(t);
  if ((rc = ty__train_params(t, err, err_len)) != 0 ||
      (rc = ty__train_pipe_build(t, err, err_len)) != 0 ||
      (rc = ty__train_plan_params(t, err, err_len)) != 0 ||
      (rc = ty__train_build_buckets(t)) != 0 || (rc = build_optim(t, err, err_len)) != 0 ||
      (rc = ty__train_bn_setup(t)) != 0 || (rc = ty__pipe_bn_blocks(t)) != 0 ||
      (rc = ty__train_eval_setup(t, err, err_len)) != 0 ||
      (rc = ty__train_clip_setup(t, err, err_len)) != 0)
    return rc;
  if (t->cfg->eval_interval && !t->test_ds)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.eval_interval: %llu, but the config names no test data to evaluate "
                   "(add config.dataset.test arrays or tokens.test_path, or set it to 0)",
                   (unsigned long long)t->cfg->eval_interval);
  if (t->cfg->eval_each_epoch && !t->test_ds)
    fprintf(log_stream(t), "evaluation: the config names no test data; none after each epoch\n");
  if (!t->cfg->checkpoint_path && t->opts.rank == 0)
    fprintf(log_stream(t),
            "checkpoints: none (no checkpoint_path): the trained weights are not saved, not "
            "even at the end (set config.checkpoint_path or trainrun --checkpoint "
            "PATH)\n");
  return 0;
}

int ty_train_create(const ty_graph *model, const ty_train_config *config, const ty_train_opts *opts,
                    ty_train **out_train, char *err, size_t err_len) {
  ty_train *t = calloc(1, sizeof *t);
  if (!t) return TY_ENOMEM;
  t->model = model;
  t->cfg = config;
  t->ckpt_lock = -1;
  if (opts) t->opts = *opts;
  if (t->opts.parallel) { /* copied: the caller's may go */
    t->par = *t->opts.parallel;
    t->opts.parallel = &t->par;
  }
  if (t->opts.world_size == 0) t->opts.world_size = 1;
  int rc = TY_EINVAL;
  if (t->opts.rank >= t->opts.world_size) {
    rc = ty_errf(err, err_len, TY_EINVAL, "rank %u: not below the world size %u", t->opts.rank,
                 t->opts.world_size);
    goto fail;
  }
  if ((rc = build(t, err, err_len)) != 0) goto fail;
  resolve_steps(t);
  note_random_ops(t);
  if (!t->opts.no_fusion && (rc = ty_jit_create(&(ty_jit_opts){0}, &t->jit)) != 0) {
    rc =
        ty_errf(err, err_len, rc, "fusion: cannot create the kernel compiler: %s", ty_strerror(rc));
    goto fail;
  }
  if ((rc = ty_lr_check(&t->sched, err, err_len)) != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err ? err : "");
    rc = ty_errf(err, err_len, rc, "config.%s", inner);
    goto fail;
  }
  if ((rc = ty__train_fingerprint(t)) != 0) {
    rc = ty_errf(err, err_len, rc, "checkpoint: out of memory fingerprinting the model");
    goto fail;
  }
  if ((rc = ty__train_load(t, err, err_len)) < 0) goto fail;
  if (rc == 1) resolve_steps(t);
  /* Said, so that a resubmitted job (a relative checkpoint_path is under
   * its new id) does not look as if it resumed. */
  if (rc == 0 && t->cfg->checkpoint_path && t->opts.rank == 0 && t->ckpt_skipped > 0)
    fprintf(log_stream(t),
            "no usable checkpoint at %s: all %zu were damaged (moved aside): training from "
            "step 0\n",
            t->cfg->checkpoint_path, t->ckpt_skipped);
  else if (rc == 0 && t->cfg->checkpoint_path && t->opts.rank == 0)
    fprintf(log_stream(t), "no checkpoint at %s yet: training from step 0\n",
            t->cfg->checkpoint_path);
  if (rc == 1)
    fprintf(log_stream(t), "resumed from %s at step %llu (epoch %llu, batch %llu)\n",
            t->resumed_from, (unsigned long long)t->step, (unsigned long long)t->epoch + 1,
            (unsigned long long)t->batch);
  if (rc == 1 && t->resumed_world != ty__train_data_world(t))
    fprintf(log_stream(t),
            "resumed on %u data-parallel rank%s a checkpoint of %u: every step's global batch "
            "holds the same samples (its sums round differently)%s\n",
            ty__train_data_world(t), ty__train_data_world(t) == 1 ? "" : "s", t->resumed_world,
            /* The masks' key holds the data-parallel rank (docs/operators.md). */
            t->reseed_per_step ? "; Dropout and the random ops draw their masks and noise per "
                                 "data-parallel rank, so from here they draw other ones than a "
                                 "run on the checkpoint's rank count and train to other weights"
                               : "");
  t->log_t0 = ty_mono_s();
  t->start_step = t->step;
  t->log_step0 = t->step;
  *out_train = t;
  return 0;
fail:
  ty_train_destroy(t);
  return rc;
}

void ty_train_destroy(ty_train *t) {
  if (!t) return;
  if (t->ckpt_lock >= 0) close(t->ckpt_lock); /* the lock goes with it */
  ty_exec_destroy(t->exec);
  ty__train_gpu_destroy(t);
  ty_jit_destroy(t->jit);
  ty__train_data_close(t);
  ty_graph_destroy(t->eval_g);
  ty__train_eval_loss_destroy(t);
  ty_optim_destroy(t->optim);
  ty__train_bn_destroy(t);
  for (size_t i = 0; t->params && i < t->np; i++)
    ty_tensor_destroy(t->params[i]);
  free(t->params);
  free(t->param_ids);
  free(t->grad_ids);
  free(t->frozen_ids);
  for (size_t k = 0; t->buckets && k < t->n_buckets; k++) {
    free(t->buckets[k].params);
    free(t->buckets[k].what);
  }
  free(t->buckets);
  free(t->bucket_buf);
  ty__train_plan_destroy(t);
  ty__train_pipe_destroy(t);
  free(t->param_off);
  free(t->param_bucket);
  free(t->packed);
  free(t->param_of_grad);
  free(t->clip_buf);
  free(t->clip_counts);
  ty_graph_destroy(t->g);
  free(t);
}

/* ---- one step ------------------------------------------------------------- */
static int make_exec(ty_train *t, char *err, size_t err_len) {
  ty_exec_destroy(t->exec);
  t->exec = NULL;
  ty_exec_opts o = {.training = true,
                    .seed = ty_mix2(t->cfg->seed, t->step),
                    .noise_seed = ty__train_noise_seed(t),
                    .no_fusion = t->opts.no_fusion,
                    .jit = t->jit,
                    .workers = t->opts.workers};
  int *keep = NULL;
  size_t n_keep = 0;
  int rc = ty__train_bn_keep(t, &keep, &n_keep);
  if (rc != 0) return rc;
  o.keep_values = keep;
  o.n_keep_values = n_keep;
  if (t->shard) {
    o.extern_op = ty_shard_extern;
    o.extern_user = t->shard;
    o.extern_error = ty_shard_extern_error;
  }
  if (t->overlap && t->bucket_buf) {
    o.on_value_ready = ty__train_grad_ready;
    o.on_value_ready_user = t;
    o.watch_values = t->grad_ids;
    o.n_watch_values = t->np;
  }
  rc = ty_exec_create(t->g, &o, &t->exec);
  free(keep);
  for (size_t i = 0; rc == 0 && i < t->np; i++)
    rc = ty_exec_bind_id(t->exec, t->param_ids[i], t->params[i], err, err_len);
  for (size_t i = 0; rc == 0 && i < t->n_bn; i++)
    for (int k = 0; rc == 0 && k < 2; k++)
      rc = ty_exec_bind_id(t->exec, t->bn[i].ids[k], t->bn[i].stat[k], err, err_len);
  for (size_t k = 0; rc == 0 && k < t->n_feeds; k++)
    rc = ty_exec_bind_id(t->exec, t->feeds[k].id, t->feeds[k].t, err, err_len);
  return rc;
}

/* The mean loss since the last log line, the global batch's (every rank
 * logs at the same steps): a plan's ranks sum their partial losses, data
 * parallelism's average their shards' (equal shards, each loss a mean). */
static int logged_loss(ty_train *t, double *out) {
  unsigned axes = t->shard                    ? ty_shard_partial_axes(t->shard, t->loss_id)
                  : ty__train_pipe_sharded(t) ? 3u
                                              : 0;
  const char *what = "the loss (for the log)";
  float sum = (float)t->loss_sum;
  int rc = 0;
  if (axes) {
    rc = t->par.comm.all_reduce(axes, &sum, 1, what, t->par.comm.user);
    *out = (double)sum / (double)t->loss_n;
  } else if (!ty__train_sharded(t) && t->opts.world_size > 1 && t->opts.sum) {
    rc = t->opts.sum(&sum, 1, what, t->opts.allreduce_user);
    *out = (double)sum / t->opts.world_size / (double)t->loss_n;
  } else {
    *out = t->loss_sum / (double)t->loss_n;
  }
  return rc;
}

/* One run of the training graph and the update (not a pipeline's, nor
 * gradient accumulation's: accum.c). */
static int plain_step(ty_train *t, float lr, double *out_loss, char *err, size_t err_len) {
  ty__train_begin_buckets(t);
  int rc = 0;
  if (ty__train_on_gpu(t)) {
    rc = ty__train_gpu_run(t, err, err_len);
  } else {
    if (!t->exec) rc = make_exec(t, err, err_len);
    if (rc == 0 && t->reseed_per_step) /* this step's draws, as a new executor's */
      ty_exec_reseed(t->exec, ty_mix2(t->cfg->seed, t->step), ty__train_noise_seed(t));
    if (rc == 0) rc = ty_exec_run(t->exec, err, err_len);
  }
  if (rc == 0) rc = ty__train_bn_update(t, err, err_len);
  if (rc != 0) {
    ty__train_drain(t);
    return rc;
  }
  const ty_tensor *loss = ty__train_value(t, t->loss_id);
  *out_loss = loss ? ty_tensor_f32(loss)[0] : NAN;
  return ty__train_gpu_updates(t) ? ty__train_gpu_update(t, lr, err, err_len)
                                  : ty__train_apply_grads(t, lr, err, err_len);
}

static int train_step(ty_train *t, const ty_batch *b, char *err, size_t err_len) {
  int rc = ty__train_planned(t) ? ty__train_plan_load_batch(t, b, err, err_len)
                                : ty__train_data_load(t, b, err, err_len);
  if (rc != 0) return rc;
  double lv;
  float lr = (float)ty_lr_at(&t->sched, t->step);
  if (t->pipe) (void)ty__train_on_gpu(t); /* a DEVICE_GPU job's log says why not */
  rc = t->pipe ? ty__train_pipe_step(t, lr, &lv, err, err_len)
               : plain_step(t, lr, &lv, err, err_len);
  if (rc != 0) return rc;
  t->loss_sum += lv;
  t->loss_n++;
  t->step++;
  t->batch++;
  if (t->step % t->cfg->log_interval == 0 || t->step == t->total_steps) {
    double now = ty_mono_s(), secs = now - t->log_t0;
    double sps = secs > 0 ? (double)(t->step - t->log_step0) * t->cfg->batch_size / secs : 0, mean;
    if ((rc = logged_loss(t, &mean)) != 0)
      return ty_errf(err, err_len, rc, "summing the loss over the ranks failed");
    fprintf(log_stream(t), "step %llu/%llu loss %.4f lr %g samples/s %.0f",
            (unsigned long long)t->step, (unsigned long long)t->total_steps, mean, lr, sps);
    if (t->clip_buf) fprintf(log_stream(t), " grad_norm %.4g", t->grad_norm);
    fputc('\n', log_stream(t));
    fflush(log_stream(t));
    t->loss_sum = 0;
    t->loss_n = 0;
    t->log_t0 = now;
    t->log_step0 = t->step;
  }
  return 0;
}

/* Whether this rank evaluates now: a flat plan's ranks evaluate their
 * blocks together (eval_shard.c), a pipeline's stages theirs
 * (pipe_eval.c); otherwise rank 0 evaluates the whole weights, which a
 * plan's ranks that cannot evaluate together gather there first, where
 * they fit. Rank 0 reports. */
static bool evaluating(ty_train *t, bool want, char *err, size_t err_len, int *rc) {
  *rc = 0;
  if (!want || !t->test_ds || !ty__train_eval_fits(t)) return false;
  if (ty__train_ranks_evaluate(t)) return true;
  if (ty__train_planned(t)) *rc = ty__train_plan_gather(t, err, err_len);
  if (ty__train_pipe_sharded(t)) *rc = ty__train_pipe_gather(t, err, err_len);
  return *rc == 0 && t->opts.rank == 0;
}

/* The test labels the last evaluation ran: every one ignored when it
 * counted none. */
static uint64_t ignored_labels(const ty_train *t) {
  const ty_data_column *lc = ty_dataset_column(t->test_ds, (size_t)t->label_feed);
  return t->eval_seen * (lc ? lc->elems : 1);
}

/* ty_train_evaluate after evaluating(), and rank 0's line "<head>
 * test_accuracy A test_loss L" (no accuracy for a model's own loss).
 * Rank 0 of a plan then frees the full copies it gathered, so that
 * between evaluations and saves it holds its shard alone, the memory its
 * plan was made for. */
static int evaluate_gathered(ty_train *t, const char *head, char *err, size_t err_len) {
  double acc, loss;
  int rc = ty_train_evaluate(t, &acc, &loss, err, err_len);
  if (ty__train_sharded(t)) ty__train_plan_release(t);
  if (rc != 0 || t->opts.rank != 0) return rc;
  if (t->eval_seen == 0) /* every batch left out: eval.c and eval_shard.c said why at setup */
    fprintf(log_stream(t), "%s: no test batch was evaluated\n", head);
  else if (t->eval_counted == 0) /* the builtin loss: labels out of range were refused */
    fprintf(log_stream(t), "%s test_loss nan: all %llu test labels equal ignore_index %lld\n", head,
            (unsigned long long)ignored_labels(t), (long long)t->ignore);
  else if (t->eval_weightless)
    fprintf(log_stream(t),
            "%s test_loss nan: the weights of the test labels the model's loss \"%s\" counts "
            "add up to 0 (every label equals its ignore_index, or its class weighs 0)\n",
            head, t->cfg->loss_output);
  else if (acc >= 0)
    fprintf(log_stream(t), "%s test_accuracy %.4f test_loss %.4f\n", head, acc, loss);
  else
    fprintf(log_stream(t), "%s test_loss %.4f\n", head, loss);
  fflush(log_stream(t));
  return 0;
}

/* config.eval_interval: every that many steps, unless the epoch that
 * just ended was evaluated or the run ends here (its final evaluation). */
static int interval_eval(ty_train *t, char *err, size_t err_len) {
  uint64_t every = t->cfg->eval_interval;
  int rc = 0;
  if (!every || t->step % every != 0 || t->step >= t->total_steps ||
      (t->batch == 0 && t->cfg->eval_each_epoch))
    return 0;
  if (evaluating(t, true, err, err_len, &rc)) {
    char head[64];
    snprintf(head, sizeof head, "eval at step %llu", (unsigned long long)t->step);
    rc = evaluate_gathered(t, head, err, err_len);
  }
  return rc;
}

/* End of an epoch: evaluate, move to the next, checkpoint (unless
 * checkpoints go by config.checkpoint_interval instead). */
static int end_epoch(ty_train *t, char *err, size_t err_len) {
  int rc = 0;
  if (evaluating(t, t->cfg->eval_each_epoch, err, err_len, &rc)) {
    char head[64];
    snprintf(head, sizeof head, "epoch %llu", (unsigned long long)t->epoch + 1);
    rc = evaluate_gathered(t, head, err, err_len);
  }
  if (rc != 0) return rc;
  t->epoch++;
  t->batch = 0;
  t->epoch_open = false;
  if (t->cfg->checkpoint_path && !t->cfg->checkpoint_interval) rc = ty__train_save(t, err, err_len);
  return rc;
}

static void step_delay(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Where a plan's ranks agree whether to stop. Each agreement is an
 * all-reduce over the whole world (on a busy host as costly as a layer's
 * collective), so they agree every few steps: as many as the slowest rank
 * runs in STOP_WITHIN_S, at most STOP_EVERY, so that a stop comes within a
 * fraction of a second however slow the steps (the kill grace is a few
 * seconds). The cadence comes from the agreed (largest) step time, so
 * every rank computes the same next agreement and they stop at the same
 * step. A world of one has nobody to agree with: it reads its flag after
 * every step. */
#define STOP_EVERY 8
#define STOP_WITHIN_S 0.25

static uint64_t stop_cadence(double step_s) {
  if (!(step_s > 0)) return STOP_EVERY;
  double every = floor(STOP_WITHIN_S / step_s);
  return every < 1 ? 1 : every > STOP_EVERY ? STOP_EVERY : (uint64_t)every;
}

static bool stop_together(const ty_train *t) {
  return ty__train_sharded(t) && t->opts.world_size > 1;
}

static bool stop_point(const ty_train *t) {
  return t->step >= t->stop_next || t->step >= t->total_steps;
}

/* Agrees on the stop flag and on the seconds per step since the last
 * agreement, and sets the next agreement's step from them. */
static int agree_stop(ty_train *t, char *err, size_t err_len) {
  double now = ty_mono_s();
  uint64_t steps = t->step - t->stop_mark_step;
  double step_s = steps ? (now - t->stop_mark_s) / (double)steps : 0;
  int rc = t->par.agree_stop ? t->par.agree_stop(&step_s, t->par.comm.user) : 0;
  if (rc != 0)
    return ty_errf(err, err_len, rc, "agreeing on a stop with the other ranks failed: %s",
                   ty_strerror(rc));
  t->stop_next = t->step + stop_cadence(step_s);
  t->stop_mark_s = now;
  t->stop_mark_step = t->step;
  return 0;
}

int ty_train_steps(ty_train *t, uint64_t n, char *err, size_t err_len) {
  if (t->stop_mark_s == 0) {
    t->stop_mark_s = ty_mono_s();
    t->stop_mark_step = t->step;
  }
  for (uint64_t k = 0; k < n && t->step < t->total_steps; k++) {
    int rc;
    if (!t->epoch_open) {
      if ((rc = ty_loader_start_epoch(t->loader, t->epoch, t->batch)) != 0)
        return ty_errf(err, err_len, rc, "data: cannot start epoch %llu at batch %llu",
                       (unsigned long long)t->epoch, (unsigned long long)t->batch);
      t->epoch_open = true;
    }
    ty_batch b;
    if ((rc = ty_loader_next(t->loader, &b)) < 0)
      return ty_errf(err, err_len, rc, "data: %s", ty_strerror(rc));
    if (rc == 0 || (rc = train_step(t, &b, err, err_len)) != 0)
      return rc ? rc : ty_errf(err, err_len, TY_EINTERNAL, "data: epoch ended early");
    if (t->opts.trained) __atomic_store_n(t->opts.trained, 1, __ATOMIC_RELAXED);
    if (t->batch == t->bpe && (rc = end_epoch(t, err, err_len)) != 0) return rc;
    if ((rc = interval_eval(t, err, err_len)) != 0) return rc;
    if (t->cfg->checkpoint_path && t->cfg->checkpoint_interval &&
        t->step % t->cfg->checkpoint_interval == 0 && (rc = ty__train_save(t, err, err_len)) != 0)
      return rc;
    if (t->opts.step_delay_ms) step_delay(t->opts.step_delay_ms);
    bool together = stop_together(t); /* a plan's ranks stop together, at agreed steps */
    if (together && !stop_point(t)) continue;
    if (together && (rc = agree_stop(t, err, err_len)) != 0) return rc;
    if (t->opts.stop && __atomic_load_n(t->opts.stop, __ATOMIC_RELAXED)) break;
  }
  return ty__train_gpu_sync(t, err, err_len); /* callers read the weights next */
}

/* A run resumed at or past its end trains nothing: say so, rather than
 * exit 0 as if it had trained (a rerun with the same checkpoint_path, a
 * --steps below the checkpoint's step). */
static void say_if_done(ty_train *t) {
  if (t->step < t->total_steps) return;
  fprintf(log_stream(t),
          "nothing to train: the checkpoint is at step %llu and this run ends at step %llu (%s); "
          "to train further raise it, to train again from the model choose another "
          "checkpoint_path or remove %s and its step checkpoints\n",
          (unsigned long long)t->step, (unsigned long long)t->total_steps, t->length_from,
          t->cfg->checkpoint_path ? t->cfg->checkpoint_path : "the checkpoint");
}

/* The line of a run stopped before its end: where its checkpoint is. */
static void say_stopped(const ty_train *t) {
  const char *path = t->cfg->checkpoint_path;
  bool none = !path || (t->step == t->start_step && !t->resumed_from[0]);
  fprintf(log_stream(t), "stopped at step %llu of %llu; checkpoint %s\n",
          (unsigned long long)t->step, (unsigned long long)t->total_steps,
          !path  ? "none: no checkpoint_path, the weights are lost"
          : none ? "none: stopped before the first step, nothing was trained"
                 : path);
}

int ty_train_run(ty_train *t, bool *out_stopped, char *err, size_t err_len) {
  *out_stopped = false;
  say_if_done(t);
  int rc = ty_train_steps(t, UINT64_MAX, err, err_len);
  if (rc != 0) return rc;
  *out_stopped =
      t->opts.stop && __atomic_load_n(t->opts.stop, __ATOMIC_RELAXED) && t->step < t->total_steps;
  /* The final evaluation, unless the epoch that just ended had one in
   * this run (a run resumed at an epoch's end evaluates: that epoch's
   * evaluation, if any, was the saving run's). */
  bool evaluated = t->batch == 0 && t->cfg->eval_each_epoch && t->step > t->start_step;
  if (evaluating(t, !*out_stopped && !evaluated, err, err_len, &rc))
    rc = evaluate_gathered(t, "final", err, err_len);
  if (rc != 0) return rc;
  /* A run that trained nothing leaves the checkpoint it resumed from as it is. */
  if (t->cfg->checkpoint_path && t->step > t->start_step &&
      (rc = ty__train_save(t, err, err_len)) != 0)
    return rc;
  if (*out_stopped) say_stopped(t);
  fflush(log_stream(t));
  return 0;
}

int ty_train_checkpoint(ty_train *t, char *err, size_t err_len) {
  return ty__train_save(t, err, err_len);
}

static int plan_graph(const ty_graph *model, const ty_train_config *config, bool with_data,
                      bool planned, ty_graph **out, char *err, size_t err_len) {
  ty_train *t = calloc(1, sizeof *t);
  if (!t) return TY_ENOMEM;
  t->model = model;
  t->cfg = config;
  t->ckpt_lock = -1;
  t->opts.world_size = 1;
  t->planned = planned;
  int rc =
      with_data ? ty__train_data_open(t, err, err_len) : ty__train_feeds_check(t, err, err_len);
  if (rc == 0) rc = ty__train_build_loss(t, err, err_len);
  if (rc == 0) {
    *out = t->g;
    t->g = NULL;
  }
  ty_train_destroy(t);
  return rc;
}

int ty_train_plan_graph(const ty_graph *model, const ty_train_config *config, bool with_data,
                        ty_graph **out, char *err, size_t err_len) {
  return plan_graph(model, config, with_data, false, out, err, err_len);
}

int ty__train_planned_graph(const ty_graph *model, const ty_train_config *config, bool with_data,
                            ty_graph **out, char *err, size_t err_len) {
  return plan_graph(model, config, with_data, true, out, err, err_len);
}

uint64_t ty_train_step(const ty_train *t) {
  return t->step;
}
uint64_t ty_train_total_steps(const ty_train *t) {
  return t->total_steps;
}
size_t ty_train_n_params(const ty_train *t) {
  return t->np;
}
const char *ty_train_param_name(const ty_train *t, size_t i) {
  return i < t->np ? ty_graph_value_at(t->g, t->param_ids[i])->name : NULL;
}
const ty_tensor *ty_train_param(const ty_train *t, size_t i) {
  return i < t->np ? t->params[i] : NULL;
}
const ty_graph *ty_train_graph(const ty_train *t) {
  return t->g;
}
