/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A rank of a parallel plan (train.h, ty_train_parallel): the plan is
 * found (given, or searched with the caller's cluster and the config's
 * batch, loss and optimizer: every rank searches the same graph with the
 * same request, so every rank gets the same plan), ops/shard turns the
 * forward + loss graph into this rank's local graph, and the rest of the
 * trainer runs that graph like a single process's, with three
 * differences kept here:
 *
 *   - data: every rank assembles the global batch in single-process order
 *     and keeps its slice of each input (the batch rows and, for a split
 *     feature dim, its columns), so the data order does not depend on the
 *     plan and a checkpoint resumes under any other plan;
 *   - gradients: each parameter's gradient is summed over the mesh axes
 *     on which it is partial (bucketed, during backward) and never
 *     averaged: the loss is already the global mean (ops/shard);
 *   - checkpoints and evaluation: rank 0 gathers the full tensors
 *     (parameters, BatchNormalization statistics, optimizer buffers) from
 *     every rank's slice, so the checkpoint is the single-process one.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ty__train_planned(const ty_train *t) {
  return t->shard != NULL;
}

bool ty__train_sharded(const ty_train *t) {
  return t->shard != NULL || (t->pipe && ty__train_pipe_sharded(t));
}

static ty_plan_optimizer plan_optimizer(const ty_optim_opts *o) {
  if (o->kind != TY_OPTIM_SGD) return TY_PLAN_OPT_ADAM;
  return o->momentum > 0 ? TY_PLAN_OPT_MOMENTUM : TY_PLAN_OPT_SGD;
}

int ty_train_plan_request(const ty_graph *g, const ty_train_config *c, ty_plan_request *req) {
  const char **trained = NULL;
  size_t n_trained = 0;
  int rc = ty_train_candidate_names(g, c, &trained, &n_trained);
  if (rc != 0) return rc;
  req->trained = trained;
  req->n_trained = n_trained;
  req->batch = c->batch_size;
  req->loss = c->loss_output ? c->loss_output : "trainyard.loss";
  req->optimizer = plan_optimizer(&c->optim);
  req->pipeline_stages = c->pipeline_stages == TY_TRAIN_AUTO ? 0
                         : c->pipeline_stages > 0            ? c->pipeline_stages
                                                             : 1;
  req->micro_batches = c->micro_batches;
  req->pipeline_if_needed = c->pipeline_stages == 0;
  return 0;
}

void ty_train_plan_request_close(ty_plan_request *req) {
  free((void *)req->trained);
  req->trained = NULL;
  req->n_trained = 0;
}

/* Plans g (the forward + loss graph of config) with req, the config giving
 * batch, loss and optimizer. */
static int search(const ty_graph *g, const ty_train_config *c, const ty_plan_request *req,
                  ty_plan **out, char *err, size_t err_len) {
  ty_plan_request r = *req;
  int rc = ty_train_plan_request(g, c, &r);
  if (rc != 0) return ty_errf(err, err_len, rc, "plan: %s", ty_strerror(rc));
  rc = ty_plan_search(g, &r, err, err_len, out);
  ty_train_plan_request_close(&r);
  if (rc != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err ? err : "");
    rc = ty_errf(err, err_len, rc, "plan: %s", inner);
  }
  return rc;
}

/* The plan: the caller's (checked against this graph), or searched. */
static int get_plan(ty_train *t, ty_plan **out, char *err, size_t err_len) {
  const ty_train_parallel *par = t->opts.parallel;
  if (par->plan) {
    ty_buf b;
    ty_buf_init(&b);
    int rc = ty_plan_encode(par->plan, &b);
    if (rc == 0) rc = ty_plan_decode(b.data, b.len, out, err, err_len);
    ty_buf_close(&b);
    return rc;
  }
  if (!par->request)
    return ty_errf(err, err_len, TY_EINVAL, "parallel: neither a plan nor a plan request");
  return search(t->g, t->cfg, par->request, out, err, err_len);
}

int ty_train_make_plan(const ty_graph *model, const ty_train_config *config, bool with_data,
                       const ty_plan_request *req, ty_plan **out_plan, char *err, size_t err_len) {
  ty_graph *g = NULL;
  int rc = ty__train_planned_graph(model, config, with_data, &g, err, err_len);
  if (rc == 0) rc = search(g, config, req, out_plan, err, err_len);
  ty_graph_destroy(g);
  return rc;
}

int ty_train_job_load(const char *model_path, const uint8_t *model_bytes, size_t model_len,
                      const uint8_t *config, size_t config_len, ty_train_job *out,
                      const char **out_what, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  bool by_path = model_path && model_path[0];
  *out_what = by_path ? "model_path" : "model_bytes";
  int rc = by_path ? ty_graph_load_file(model_path, err, err_len, &out->model)
                   : ty_graph_load_bytes(model_bytes, model_len, err, err_len, &out->model);
  if (rc == 0) {
    *out_what = "train_config";
    rc = ty_train_config_decode(config, config_len, &out->config, err, err_len);
  }
  if (rc == 0)
    rc = ty__train_planned_graph(out->model, &out->config, false, &out->graph, err, err_len);
  if (rc != 0) ty_train_job_close(out);
  return rc;
}

void ty_train_job_close(ty_train_job *j) {
  if (!j) return;
  ty_graph_destroy(j->graph);
  ty_graph_destroy(j->model);
  ty_train_config_close(&j->config);
  memset(j, 0, sizeof *j);
}

void ty_train_plan_refusal(const ty_plan_request *req, int rc, const char *err, char *out,
                           size_t len) {
  snprintf(out, len, "cannot plan it for %d node%s x %d devices: %s%s", req->cluster.nodes,
           req->cluster.nodes == 1 ? "" : "s", req->cluster.devices_per_node,
           err && err[0] ? err : ty_strerror(rc),
           req->mode == TY_PLAN_MODE_AUTO && rc == TY_EUNSUPPORTED
               ? " (parallelism data trains it without a plan)"
               : "");
}

/* The plan fits this job: its world and its global batch (a pipelined
 * plan's checks are pipe.c's). */
static int check_fit(const ty_train *t, const ty_plan *p, char *err, size_t err_len) {
  if ((uint32_t)p->devices != t->opts.world_size)
    return ty_errf(
        err, err_len, TY_EINVAL,
        "plan: made for %d devices (mesh %dx%d on %d x %d), but this job has WORLD_SIZE=%u ranks",
        p->devices, p->mesh[0], p->mesh[1], p->nodes, p->devices_per_node, t->opts.world_size);
  if (p->batch != (int64_t)t->cfg->batch_size)
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: made for global batch %lld, config.batch_size is %u", (long long)p->batch,
                   t->cfg->batch_size);
  return 0;
}

/* Feed k's tensor becomes this rank's slice of the global batch input. */
static int local_feed(ty_train *t, size_t k, char *err, size_t err_len) {
  ty__feed *f = &t->feeds[k];
  ty_shape full, want = ty__train_feed_shape(t, k, t->cfg->batch_size);
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  int rc = ty_shard_slice_of(t->shard, f->id, (int)t->opts.rank, &full, start, len);
  if (rc == 0 && !ty_shape_equal(&full, &want)) {
    char a[96], b[96];
    ty_shape_format(&full, a, sizeof a);
    ty_shape_format(&want, b, sizeof b);
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: input \"%s\" is %s in the plan, the data gives %s", t->names[k], a, b);
  }
  ty_shape ls = ty_shape_make(full.rank, len);
  ty_tensor_destroy(f->t);
  f->t = NULL;
  memcpy(f->start, start, sizeof f->start);
  return rc ? rc : ty_tensor_create(f->dtype, &ls, &f->t);
}

int ty__train_plan_setup(ty_train *t, char *err, size_t err_len) {
  ty_plan *p = NULL;
  int rc = get_plan(t, &p, err, err_len);
  /* An explicit count the plan does not run (a plan file made for another
   * config) is refused, as the flat case below is: "1" keeps a
   * BatchNormalization's whole batch, another count trains another model. */
  bool staged = rc == 0 && p->n_stages > 0;
  if (staged && t->cfg->micro_batches > 0 && t->cfg->micro_batches != p->micro_batches)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "config.micro_batches: %d, but the plan runs %d micro-batches (a plan made for "
                 "another config: plan again with this one, or set micro_batches to %d)",
                 t->cfg->micro_batches, p->micro_batches, p->micro_batches);
  else if (staged)
    return ty__train_pipe_setup(t, p, err, err_len);
  else if (rc == 0 && t->cfg->micro_batches > 1)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "config.micro_batches: %d micro-batches under a plan without pipeline stages "
                 "(a plan made for another config: plan again with this one, which makes the "
                 "micro-batches one pipeline stage on the whole mesh, or set micro_batches to 1)",
                 t->cfg->micro_batches);
  if (rc != 0) {
    ty_plan_destroy(p);
    return rc;
  }
  if (rc == 0) rc = check_fit(t, p, err, err_len);
  if (rc == 0)
    rc = ty_shard_create(t->g, t->loss_id, p, (int)t->opts.rank, err, err_len, &t->shard);
  if (rc == 0 && t->test_ds) ty__train_eval_shard_create(t, t->g, p); /* drops t->g's weights */
  ty_plan_destroy(p);
  if (rc != 0) return rc;
  ty_shard_set_comm(t->shard, &t->opts.parallel->comm);
  ty_graph_destroy(t->g);
  t->g = ty_shard_take_graph(t->shard);
  for (size_t k = 0; rc == 0 && k < t->n_feeds; k++)
    rc = local_feed(t, k, err, err_len);
  return rc;
}

int ty__train_plan_load_batch(ty_train *t, const ty_batch *b, char *err, size_t err_len) {
  for (size_t k = 0; k < t->n_feeds; k++) {
    ty__feed *f = &t->feeds[k];
    ty_shape full = ty__train_feed_shape(t, k, b->n);
    if (b->n != t->cfg->batch_size) return ty_errf(err, err_len, TY_EINTERNAL, "short batch");
    ty_shard_copy_block((void *)b->cols[k], &full, f->t->data, f->start, f->t->shape.dims,
                        ty_dtype_size(f->dtype), true);
  }
  return 0;
}

/* Per parameter: the axes its gradient is summed over after backward. */
int ty__train_plan_params(ty_train *t, char *err, size_t err_len) {
  if (!t->shard) return 0;
  t->param_axes = calloc(t->np + 1, sizeof *t->param_axes);
  if (!t->param_axes) return TY_ENOMEM;
  for (size_t i = 0; i < t->np; i++)
    if (ty_shard_grad_axes(t->shard, t->param_ids[i], &t->param_axes[i]) != 0)
      return ty_errf(
          err, err_len, TY_EINVAL,
          "plan: parameter \"%s\" is trained but the plan has no layout for it (plan again with "
          "this config's trainable parameters)",
          ty_graph_value_at(t->g, t->param_ids[i])->name);
  return 0;
}

/* ---- gathering and slicing full tensors -------------------------------------------- */

/* Whether rank r's slice of value v (n elements on every rank) is
 * elements [r n, (r + 1) n) of the full tensor for every r: split on its
 * first axis alone, as an embedding's rows are. The all-gather then
 * writes the full tensor itself, with no scratch of world x n. */
static bool gathers_whole(const ty_train *t, const ty_shard *s, int v, size_t n) {
  for (uint32_t r = 0; r < t->opts.world_size; r++) {
    ty_shape fs;
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    if (ty_shard_slice_of(s, v, (int)r, &fs, start, len) != 0 || fs.rank < 1 ||
        (size_t)ty_shape_numel(&fs) != n * t->opts.world_size)
      return false;
    size_t row = (size_t)ty_shape_span(&fs, 1, fs.rank);
    for (int d = 1; d < fs.rank; d++)
      if (start[d] != 0 || len[d] != fs.dims[d]) return false;
    if ((size_t)start[0] * row != (size_t)r * n || (size_t)len[0] * row != n) return false;
  }
  return true;
}

/* The elements of rank 0's slice of v: the largest (ty_plan_block gives
 * coordinate 0 the longer blocks of a dim split unevenly), so every rank
 * sends that many, padded, and the transport moves equal counts. */
static size_t most_of(const ty_shard *s, int v, size_t n) {
  ty_shape fs;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  if (ty_shard_slice_of(s, v, 0, &fs, start, len) != 0) return n;
  size_t most = 1;
  for (int d = 0; d < fs.rank; d++)
    most *= (size_t)len[d];
  return most > n ? most : n;
}

/* Rank 0: full (value v's global tensor) from every rank's local slice
 * in shard s's layout. Every rank calls it; scratch (world x rank 0's n
 * floats) is used only where the slices are not consecutive blocks of
 * the full tensor. */
static int gather_one(ty_train *t, const ty_shard *s, int v, const float *local, size_t n,
                      float *full, float *scratch) {
  const ty_train_parallel *par = t->opts.parallel;
  bool root = t->opts.rank == 0;
  if (gathers_whole(t, s, v, n)) return par->gather(local, n, root ? full : NULL, par->comm.user);
  size_t most = most_of(s, v, n);
  float *padded = most > n ? calloc(most, sizeof *padded) : NULL;
  if (most > n && !padded) return TY_ENOMEM;
  if (padded) memcpy(padded, local, n * sizeof *padded);
  int rc = par->gather(padded ? padded : local, most, root ? scratch : NULL, par->comm.user);
  free(padded);
  for (uint32_t r = 0; rc == 0 && root && r < t->opts.world_size; r++) {
    ty_shape fs;
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    rc = ty_shard_slice_of(s, v, (int)r, &fs, start, len);
    if (rc == 0)
      ty_shard_copy_block(full, &fs, scratch + (size_t)r * most, start, len, sizeof(float), false);
  }
  return rc;
}

/* A full-size tensor of value v (rank 0's gathered copy): a pipeline's
 * graph is the full one. */
static int full_tensor(const ty_train *t, int v, ty_tensor **out) {
  ty_shape fs;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  if (*out) return 0;
  const ty_graph_value *gv = ty_graph_value_at(t->g, v);
  if (!t->shard && gv->init) return ty_tensor_create(TY_DTYPE_F32, &gv->shape, out);
  int rc = t->shard ? ty_shard_slice_of(t->shard, v, 0, &fs, start, len) : TY_EINTERNAL;
  return rc ? rc : ty_tensor_create(TY_DTYPE_F32, &fs, out);
}

int ty__train_plan_full(ty_train *t) {
  size_t nf = 2 * t->n_bn;
  if (!t->full_params && !(t->full_params = calloc(t->np + 1, sizeof *t->full_params)))
    return TY_ENOMEM;
  if (!t->full_stats && !(t->full_stats = calloc(nf + 1, sizeof *t->full_stats))) return TY_ENOMEM;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < t->np; i++)
    rc = full_tensor(t, t->param_ids[i], &t->full_params[i]);
  for (size_t i = 0; rc == 0 && i < nf; i++)
    rc = full_tensor(t, t->bn[i / 2].ids[i % 2], &t->full_stats[i]);
  return rc;
}

uint64_t ty__train_noise_seed(const ty_train *t) {
  uint32_t rank = ty__train_data_world(t) > 1 ? t->opts.rank : 0;
  return ty_mix2(ty_mix2(t->cfg->seed, t->step), 0x6e6f697365000000ull | rank) | 1u;
}

uint32_t ty__train_data_world(const ty_train *t) {
  return ty__train_sharded(t) ? 1 : t->opts.world_size;
}

/* The scratch rank 0's gathers need: world x the largest tensor whose
 * slices are not consecutive blocks of it (1 when there is none). */
static size_t scratch_numel(ty_train *t) {
  size_t most = 1;
  for (size_t i = 0; i < t->np; i++) {
    size_t n = (size_t)ty_tensor_numel(t->params[i]);
    if (n > most && !gathers_whole(t, t->shard, t->param_ids[i], n)) most = n;
  }
  for (size_t i = 0; i < 2 * t->n_bn; i++) {
    size_t n = (size_t)ty_tensor_numel(t->bn[i / 2].stat[i % 2]);
    if (n > most && !gathers_whole(t, t->shard, t->bn[i / 2].ids[i % 2], n)) most = n;
  }
  return most * t->opts.world_size;
}

int ty__train_plan_gather(ty_train *t, char *err, size_t err_len) {
  bool root = t->opts.rank == 0; /* the only rank that holds full tensors */
  size_t nf = 2 * t->n_bn;
  int rc = root ? ty__train_plan_full(t) : 0;
  float *scratch = NULL;
  if (rc == 0 && root && !(scratch = malloc(scratch_numel(t) * sizeof *scratch))) rc = TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < t->np; i++) {
    rc = gather_one(t, t->shard, t->param_ids[i], t->params[i]->data,
                    (size_t)ty_tensor_numel(t->params[i]), root ? t->full_params[i]->data : NULL,
                    scratch);
  }
  for (size_t i = 0; rc == 0 && i < nf; i++) {
    const ty_tensor *s = t->bn[i / 2].stat[i % 2];
    rc = gather_one(t, t->shard, t->bn[i / 2].ids[i % 2], s->data, (size_t)ty_tensor_numel(s),
                    root ? t->full_stats[i]->data : NULL, scratch);
  }
  free(scratch);
  return rc ? ty_errf(err, err_len, rc,
                      "evaluation: gathering the full tensors on rank 0 failed: %s",
                      ty_strerror(rc))
            : 0;
}

int ty__train_save_item(const ty_train *t, size_t k, ty_tensor **out_local) {
  bool param = k < t->np;
  size_t j = param ? 0 : k - t->np;
  if (out_local) *out_local = param ? t->params[k] : t->bn[j / 2].stat[j % 2];
  return param ? t->param_ids[k] : t->bn[j / 2].ids[j % 2];
}

size_t ty__train_plan_full_numel(const ty_train *t, int v) {
  if (!t->shard) return ty__train_pipe_full_numel(t, v);
  ty_shape fs;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  return ty_shard_slice_of(t->shard, v, 0, &fs, start, len) == 0 ? (size_t)ty_shape_numel(&fs) : 0;
}

int ty__train_shard_gather(ty_train *t, const ty_shard *s, int v, const float *local, size_t n,
                           float *full) {
  bool root = t->opts.rank == 0;
  float *scratch = NULL;
  size_t most = most_of(s, v, n);
  if (root && !gathers_whole(t, s, v, n) &&
      !(scratch = malloc(most * t->opts.world_size * sizeof *scratch + 1)))
    return TY_ENOMEM;
  int rc = gather_one(t, s, v, local, n, full, scratch);
  free(scratch);
  return rc;
}

int ty__train_plan_gather_item(ty_train *t, size_t k, float **out) {
  if (!t->shard) return ty__train_pipe_gather_item(t, k, out);
  ty_tensor *local;
  int v = ty__train_save_item(t, k, &local);
  *out = NULL;
  size_t n = ty__train_plan_full_numel(t, v);
  if (n < (size_t)ty_tensor_numel(local)) return TY_EINTERNAL; /* the same on every rank */
  if (t->opts.rank == 0 && !(*out = malloc(n * sizeof **out + 1))) return TY_ENOMEM;
  int rc =
      ty__train_shard_gather(t, t->shard, v, local->data, (size_t)ty_tensor_numel(local), *out);
  if (rc != 0) free(*out), *out = NULL;
  return rc;
}

int ty__train_plan_gather_buf(ty_train *t, size_t p, int b, float *full) {
  if (!t->shard) return ty__train_pipe_gather_buf(t, p, b, full);
  const float *lb[2];
  uint64_t steps;
  int rc = ty_optim_param_peek(t->optim, p, lb, &steps);
  if (rc == 0 && (!lb[b] || ty__train_plan_full_numel(t, t->param_ids[p]) <
                                (size_t)ty_tensor_numel(t->params[p])))
    rc = TY_EINTERNAL; /* the same on every rank */
  return rc ? rc
            : ty__train_shard_gather(t, t->shard, t->param_ids[p], lb[b],
                                     (size_t)ty_tensor_numel(t->params[p]), full);
}

int ty__train_plan_save_heads(ty_train *t, uint64_t *steps, uint32_t *nbuf, uint32_t *ngather) {
  if (!t->shard) return ty__train_pipe_save_heads(t, steps, nbuf, ngather);
  for (size_t p = 0; p < t->np; p++) { /* every slice's are the same */
    const float *lb[2] = {NULL, NULL};
    int rc = ty_optim_param_peek(t->optim, p, lb, &steps[p]);
    if (rc != 0) return rc;
    nbuf[p] = ngather[p] = (uint32_t)(lb[0] != NULL) + (uint32_t)(lb[1] != NULL);
  }
  return 0;
}

void ty__train_plan_release(ty_train *t) {
  for (size_t i = 0; t->full_params && i < t->np; i++)
    ty_tensor_destroy(t->full_params[i]);
  for (size_t i = 0; t->full_stats && i < 2 * t->n_bn; i++)
    ty_tensor_destroy(t->full_stats[i]);
  free(t->full_params);
  free(t->full_stats);
  t->full_params = t->full_stats = NULL;
}

/* The value in g of save item k (by name), NULL when g has none. */
static const ty_graph_value *item_in(const ty_train *t, size_t k, const ty_graph *g, int *out_id) {
  int v = ty__train_save_item(t, k, NULL);
  *out_id = ty_graph_find_value(g, ty_graph_value_at(t->g, v)->name);
  return *out_id == TY_NO_VALUE ? NULL : ty_graph_value_at(g, *out_id);
}

/* The bytes of t's parameters and statistics g still holds. */
static size_t held_weights(const ty_train *t, const ty_graph *g) {
  size_t n = 0;
  int id;
  for (size_t k = 0; g && k < t->np + 2 * t->n_bn; k++) {
    const ty_graph_value *gv = item_in(t, k, g, &id);
    n += gv && gv->init ? gv->init->nbytes : 0;
  }
  return n;
}

size_t ty_train_full_bytes(const ty_train *t) {
  size_t n = held_weights(t, t->eval_g); /* rank 0's copy to evaluate: 0, eval.c binds over it */
  for (size_t i = 0; t->full_params && i < t->np; i++)
    n += t->full_params[i] ? t->full_params[i]->nbytes : 0;
  for (size_t i = 0; t->full_stats && i < 2 * t->n_bn; i++)
    n += t->full_stats[i] ? t->full_stats[i]->nbytes : 0;
  return n + (t->full_params != NULL) + (t->full_stats != NULL); /* even an empty array counts */
}

size_t ty_train_resume_full_bytes(const ty_train *t) {
  return t->resume_full_bytes;
}

int ty__train_plan_block(const ty_train *t, int v, const ty_tensor *local, ty_shape *full,
                         int64_t *start, int64_t *len, bool *held) {
  *held = true;
  if (!ty__train_sharded(t)) { /* the whole tensor */
    *full = local->shape;
    for (int d = 0; d < full->rank; d++)
      start[d] = 0, len[d] = full->dims[d];
    return 0;
  }
  int rc = t->shard ? ty_shard_slice_of(t->shard, v, (int)t->opts.rank, full, start, len)
                    : ty__train_pipe_block(t, v, local, full, start, len, held);
  int64_t n = 1;
  for (int d = 0; rc == 0 && *held && d < full->rank; d++)
    n *= len[d];
  return rc == 0 && *held && n != ty_tensor_numel(local) ? TY_EINTERNAL : rc;
}

int ty__train_drop_weights(const ty_train *t, ty_graph *g, size_t *freed) {
  int rc = 0, id;
  for (size_t k = 0; rc == 0 && k < t->np + 2 * t->n_bn; k++) {
    const ty_graph_value *gv = item_in(t, k, g, &id);
    if (!gv || !gv->init || gv->init_dropped) continue;
    size_t n = gv->init->nbytes;
    if ((rc = ty_graph_drop_init_data(g, id)) == 0) *freed += n;
  }
  return rc;
}

int ty_train_drop_model_data(ty_train *t, ty_graph *model, size_t *out_bytes) {
  size_t freed = 0;
  int rc = model == t->model ? 0 : TY_EINVAL;
  /* the model's, the training graph's copy (the whole weights; a plan's
   * local slices) and a pipeline's rewrite of it (whole weights again):
   * executors bind t->params over them, saves write t->params and resumes
   * copy into them */
  ty_graph *copies[] = {model, t->g, ty__train_pipe_own_src(t)};
  for (size_t k = 0; rc == 0 && k < TY_ARRAY_LEN(copies) && copies[k]; k++)
    rc = ty__train_drop_weights(t, copies[k], &freed);
  if (out_bytes) *out_bytes = freed;
  return rc;
}

void ty__train_plan_destroy(ty_train *t) {
  ty__train_plan_release(t);
  ty_shard_destroy(t->eval_shard);
  free(t->param_axes);
  ty_shard_destroy(t->shard);
}

const ty_plan *ty_train_plan(const ty_train *t) {
  if (t->pipe) return ty__train_accum(t) ? NULL : ty__train_pipe_plan(t); /* accum: no plan's */
  return t->shard ? ty_shard_plan(t->shard) : NULL;
}
const ty_shard *ty_train_shard(const ty_train *t) {
  return t->shard;
}
