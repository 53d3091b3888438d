/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The equivalence harness of ops/shard's tests (equiv.h): every rank of a
 * plan runs its local graph forward and backward in a thread of this
 * process, over mesh_threads' in-process transport, and the loss and the
 * gradients, put together from each rank's slice, must equal one process
 * on the global batch. Kept apart from the tests (test_shard.c) so each
 * file reads as one subject.
 */
#include "tests/unit/ops/shard/equiv.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/autodiff/autodiff.h"
#include "ops/exec.h"
#include "tests/unit/ops/shard/mesh_threads.h"

/* Random weights (the test models are built with zeros). */
void eq_randomize(ty_graph *g, uint64_t seed) {
  ty_rng r = ty_rng_make(seed);
  for (size_t i = 0; i < ty_graph_n_initializers(g); i++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_initializer(g, i));
    if (v->dtype != TY_DTYPE_F32 || v->init->shape.rank == 0) continue;
    float *d = ty_tensor_f32(v->init);
    for (int64_t k = 0; k < ty_tensor_numel(v->init); k++)
      d[k] = (ty_rng_uniform(&r) - 0.5f) * 0.5f;
  }
}

/* Global inputs of batch `batch` for every graph input. */
typedef struct inputs {
  int n, ids[4];
  ty_tensor *t[4];
} inputs;

static void make_inputs(const ty_graph *g, int64_t batch, inputs *in) {
  ty_rng r = ty_rng_make(7);
  in->n = (int)ty_graph_n_inputs(g);
  cr_assert_leq(in->n, 4);
  for (int i = 0; i < in->n; i++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_input(g, i));
    ty_shape s = v->shape;
    for (int d = 0; d < s.rank; d++)
      if (s.dims[d] == TY_DIM_BATCH) s.dims[d] = batch;
    cr_assert_eq(ty_tensor_create(v->dtype, &s, &in->t[i]), 0);
    in->ids[i] = ty_graph_input(g, i);
    for (int64_t k = 0; k < ty_tensor_numel(in->t[i]); k++)
      if (v->dtype == TY_DTYPE_I64) /* token ids 0..4, 0 the padding */
        ((int64_t *)in->t[i]->data)[k] = (int64_t)(ty_rng_uniform(&r) * 5) % 5;
      else
        ty_tensor_f32(in->t[i])[k] = ty_rng_uniform(&r) - 0.5f;
  }
}

static void free_inputs(inputs *in) {
  for (int i = 0; i < in->n; i++)
    ty_tensor_destroy(in->t[i]);
}

static int loss_of(const ty_graph *g) {
  return ty_graph_output(g, 0);
}

/* Single process: the loss and the gradient of every planned parameter. */
static float reference(const ty_graph *g0, const ty_plan *p, const inputs *in, ty_tensor **grads) {
  char err[TY_ERR_LEN] = "";
  uint8_t *bytes;
  size_t len;
  ty_graph *g;
  cr_assert_eq(ty_graph_to_onnx(g0, NULL, 0, err, sizeof err, &bytes, &len), 0, "%s", err);
  cr_assert_eq(ty_graph_load_bytes(bytes, len, err, sizeof err, &g), 0, "%s", err);
  free(bytes);
  int ids[64], gids[64];
  for (size_t i = 0; i < p->n_params; i++)
    ids[i] = ty_graph_find_value(g, p->params[i].name); /* ids of the copy */
  int loss_id = ty_graph_find_value(g, ty_graph_value_at(g0, loss_of(g0))->name);
  cr_assert_eq(ty_autodiff(g, loss_id, ids, p->n_params, gids, err, sizeof err), 0, "%s", err);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(g, &(ty_exec_opts){.training = true, .no_fusion = true}, &e), 0);
  for (int i = 0; i < in->n; i++)
    cr_assert_eq(
        ty_exec_bind(e, ty_graph_value_at(g0, in->ids[i])->name, in->t[i], err, sizeof err), 0,
        "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  for (size_t i = 0; i < p->n_params; i++)
    cr_assert_eq(ty_tensor_clone(ty_exec_value(e, gids[i]), &grads[i]), 0);
  float loss = ty_tensor_f32(ty_exec_value(e, loss_id))[0];
  ty_exec_destroy(e);
  ty_graph_destroy(g);
  return loss;
}

typedef struct rank_run {
  mt_rank r;
  const ty_graph *g;
  const ty_plan *p;
  const inputs *in;
  bool fusion;
  float loss;
  ty_tensor *grads[64];
  ty_shard *sh;
  int rc;
  char err[TY_ERR_LEN];
} rank_run;

static int rank_inputs(rank_run *rr, ty_exec *e, ty_tensor **local) {
  int rc = 0;
  for (int i = 0; rc == 0 && i < rr->in->n; i++) {
    ty_shape full;
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    rc = ty_shard_slice_of(rr->sh, rr->in->ids[i], rr->r.rank, &full, start, len);
    ty_shape ls = ty_shape_make(full.rank, len);
    ty_dtype dt = rr->in->t[i]->dtype;
    if (rc == 0) rc = ty_tensor_create(dt, &ls, &local[i]);
    if (rc == 0)
      ty_shard_copy_block(rr->in->t[i]->data, &full, local[i]->data, start, len, ty_dtype_size(dt),
                          true);
    if (rc == 0) rc = ty_exec_bind_id(e, rr->in->ids[i], local[i], rr->err, sizeof rr->err);
  }
  return rc;
}

static void *rank_main(void *arg) {
  rank_run *rr = arg;
  ty_graph *g = ty_shard_graph(rr->sh);
  ty_shard_comm comm = mt_comm(&rr->r);
  ty_shard_set_comm(rr->sh, &comm);
  int ids[64], gids[64];
  for (size_t i = 0; i < rr->p->n_params; i++)
    ids[i] = rr->p->params[i].value;
  ty_exec *e = NULL;
  ty_tensor *local[4] = {0};
  int rc = ty_autodiff(g, loss_of(rr->g), ids, rr->p->n_params, gids, rr->err, sizeof rr->err);
  ty_exec_opts o = {.training = true,
                    .no_fusion = !rr->fusion,
                    .extern_op = ty_shard_extern,
                    .extern_user = rr->sh};
  if (rc == 0) rc = ty_exec_create(g, &o, &e);
  if (rc == 0) rc = rank_inputs(rr, e, local);
  if (rc == 0 && (rc = ty_exec_run(e, rr->err, sizeof rr->err)) != 0)
    snprintf(rr->err + strlen(rr->err), sizeof rr->err - strlen(rr->err), " [%s]",
             ty_shard_error(rr->sh));
  if (rc == 0) {
    rr->loss = ty_tensor_f32(ty_exec_value(e, loss_of(rr->g)))[0];
    unsigned axes = ty_shard_partial_axes(rr->sh, loss_of(rr->g));
    if (axes) comm.all_reduce(axes, &rr->loss, 1, "loss", comm.user);
  }
  for (size_t i = 0; rc == 0 && i < rr->p->n_params; i++) {
    unsigned axes;
    rc = ty_tensor_clone(ty_exec_value(e, gids[i]), &rr->grads[i]);
    if (rc == 0) rc = ty_shard_grad_axes(rr->sh, ids[i], &axes);
    if (rc == 0 && axes)
      comm.all_reduce(axes, ty_tensor_f32(rr->grads[i]), (size_t)ty_tensor_numel(rr->grads[i]),
                      "grad", comm.user);
  }
  rr->rc = rc;
  ty_exec_destroy(e);
  for (int i = 0; i < 4; i++)
    ty_tensor_destroy(local[i]);
  return NULL;
}

static double rel_diff(const ty_tensor *a, const float *b) {
  double worst = 0, scale = 1e-3;
  for (int64_t k = 0; k < ty_tensor_numel(a); k++)
    scale = fmax(scale, fabs(ty_tensor_f32(a)[k]));
  for (int64_t k = 0; k < ty_tensor_numel(a); k++)
    worst = fmax(worst, fabs(ty_tensor_f32(a)[k] - b[k]) / scale);
  return worst;
}

/* Runs plan p on every rank and compares with the single process. */
void eq_expect_equivalent(const ty_graph *g, const ty_plan *p, bool fusion) {
  inputs in;
  make_inputs(g, p->batch, &in);
  ty_tensor *ref[64] = {0};
  cr_assert_leq(p->n_params, 64);
  float want = reference(g, p, &in, ref);
  mt_mesh m;
  mt_mesh_init(&m, p->mesh[0], p->mesh[1]);
  rank_run rr[MT_MAX_RANKS];
  pthread_t th[MT_MAX_RANKS];
  memset(rr, 0, sizeof rr);
  for (int r = 0; r < p->devices; r++) {
    rr[r] = (rank_run){.r = {&m, r}, .g = g, .p = p, .in = &in, .fusion = fusion};
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(ty_shard_create(g, TY_NO_VALUE, p, r, err, sizeof err, &rr[r].sh), 0,
                 "rank %d: %s", r, err);
  }
  for (int r = 0; r < p->devices; r++)
    pthread_create(&th[r], NULL, rank_main, &rr[r]);
  for (int r = 0; r < p->devices; r++)
    pthread_join(th[r], NULL);
  for (int r = 0; r < p->devices; r++) {
    cr_assert_eq(rr[r].rc, 0, "rank %d: %s: %s", r, ty_strerror(rr[r].rc), rr[r].err);
    cr_assert(fabs(rr[r].loss - want) <= 1e-4 * fmax(1, fabs(want)),
              "rank %d loss %g, single process %g", r, rr[r].loss, want);
  }
  for (size_t i = 0; i < p->n_params; i++) {
    float *full = calloc((size_t)ty_tensor_numel(ref[i]), sizeof *full);
    for (int r = 0; r < p->devices; r++) {
      ty_shape fs;
      int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
      cr_assert_eq(ty_shard_slice_of(rr[r].sh, p->params[i].value, r, &fs, start, len), 0);
      ty_shard_copy_block(full, &fs, rr[r].grads[i]->data, start, len, sizeof(float), false);
    }
    double d = rel_diff(ref[i], full);
    cr_assert(d < 1e-4, "gradient of %s differs by %g (relative) on mesh %dx%d", p->params[i].name,
              d, p->mesh[0], p->mesh[1]);
    free(full);
    ty_tensor_destroy(ref[i]);
    for (int r = 0; r < p->devices; r++)
      ty_tensor_destroy(rr[r].grads[i]);
  }
  for (int r = 0; r < p->devices; r++)
    ty_shard_destroy(rr[r].sh);
  mt_mesh_close(&m);
  free_inputs(&in);
}

/* slow: devices so slow next to their links that every op splits, which
 * is what exercises the routes (the default rates keep a tiny model
 * mostly replicated). */
ty_plan *eq_plan(const ty_graph *g, int nodes, int per_node, int64_t batch, ty_plan_mode mode,
                 bool slow) {
  ty_plan_request r;
  ty_plan_request_init(&r);
  if (slow) {
    r.cluster.device_flops = 1e6;
    r.cluster.intra_latency_s = r.cluster.inter_latency_s = r.cluster.launch_s = 1e-9;
  }
  r.batch = batch;
  r.cluster.nodes = nodes;
  r.cluster.devices_per_node = per_node;
  r.mode = mode;
  char err[TY_ERR_LEN] = "";
  ty_plan *p = NULL;
  cr_assert_eq(ty_plan_search(g, &r, err, sizeof err, &p), 0, "%s", err);
  return p;
}

void eq_each_mode(ty_graph *g, int nodes, int per_node, int64_t batch) {
  static const ty_plan_mode modes[] = {TY_PLAN_MODE_AUTO, TY_PLAN_MODE_DATA, TY_PLAN_MODE_TENSOR,
                                       TY_PLAN_MODE_GRID};
  for (size_t i = 0; i < TY_ARRAY_LEN(modes); i++) {
    if (modes[i] == TY_PLAN_MODE_GRID && nodes * per_node < 4) continue;
    for (int slow = 0; slow < 2; slow++) {
      ty_plan *p = eq_plan(g, nodes, per_node, batch, modes[i], slow);
      eq_expect_equivalent(g, p, false);
      ty_plan_destroy(p);
    }
  }
}
