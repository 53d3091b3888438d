/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pipeline stage run with its intra-stage plan (pipe.c; docs/training.md,
 * "Pipeline stages"): the plan's per-op layouts are for one stage's mesh, so
 * the stage's ranks run their shard of the stage graph tensor (or data, or
 * hybrid) parallel through ops/shard instead of each taking rows of the
 * micro-batch. What this file owns:
 *
 *   - the shard: ops/shard's local graph of the whole forward + loss graph
 *     for this rank's mesh coordinates (pipe.c cuts the stage out of it by
 *     ty__pipe_node_stages);
 *   - the stage's communicator: the shard's mesh axes are the stage's mesh;
 *     the job's transport has two axes, pipeline stages x a stage's ranks,
 *     so a stage mesh with one axis of more than one device maps onto the
 *     transport's axis 1, and a stage mesh with both axes split (data x
 *     tensor inside the stage) onto the transport's inner axes 2 and 3,
 *     axis 1 split as the stage mesh (ty_train_parallel: trainrun forms
 *     them with ty_coll_set_mesh_inner);
 *   - the blocks: a rank holds its block of each parameter of its stage
 *     (pipe.c makes them from the full tensors and gathers them back for
 *     checkpoints); the gradient of a block is summed over the stage axes
 *     it is partial on (ty_shard_grad_axes: the data axes, and the axes of
 *     a split reduction), as a flat plan's rank sums it;
 *   - BatchNormalization: the shard computes a node whose batch it splits
 *     from statistics summed over the batch's axes; ty__pipe_tp_bn finds
 *     them for pipe.c's running statistics. A node whose channels the plan
 *     splits normalises this rank's channels, and the rank keeps its block
 *     of the running statistics (pipe_state.c), folded from them.
 *
 * A value crossing stages travels shard to shard: the plan keeps every
 * stage on the same mesh shape, so the rank at the same coordinates of the
 * next stage receives the block in its producer's layout, and the
 * consumer's TyExtern reshards it as the plan's collectives say (its
 * gradient comes back in the producer's layout the same way).
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

struct ty__pipe_tp {
  ty_shard *shard;
  int rank, mesh[TY_PLAN_AXES], coords[TY_PLAN_AXES];
  ty_shard_comm world; /* the job's transport: axis 0 the stages, axis 1 a stage's ranks */
  ty_shard_comm stage; /* the shard's: over this stage's mesh */
};

/* ---- the stage's communicator ------------------------------------------------------ */

/* Whether the stage mesh splits both axes: its axes are the transport's
 * inner axes 2 and 3, else its one split axis is the transport's axis 1. */
static bool grid(const ty__pipe_tp *tp) {
  return tp->mesh[0] > 1 && tp->mesh[1] > 1;
}

static unsigned stage_axes(const ty__pipe_tp *tp, unsigned axes) {
  unsigned m = 0;
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if ((axes >> a & 1u) && tp->mesh[a] > 1) m |= grid(tp) ? 4u << a : 2u;
  return m == 12u ? 2u : m;
}

static int world_axis(const ty__pipe_tp *tp, int axis) {
  return grid(tp) ? 2 + axis : 1;
}

static int tp_all_reduce(unsigned axes, float *buf, size_t n, const char *what, void *user) {
  ty__pipe_tp *tp = user;
  unsigned m = stage_axes(tp, axes);
  return m ? tp->world.all_reduce(m, buf, n, what, tp->world.user) : 0;
}

static int tp_all_gather(int axis, const float *in, size_t n, float *out, const char *what,
                         void *user) {
  ty__pipe_tp *tp = user;
  if (tp->mesh[axis] <= 1) {
    memmove(out, in, n * sizeof *out);
    return 0;
  }
  return tp->world.all_gather(world_axis(tp, axis), in, n, out, what, tp->world.user);
}

static int tp_reduce_scatter(int axis, const float *in, size_t n_out, float *out, const char *what,
                             void *user) {
  ty__pipe_tp *tp = user;
  if (tp->mesh[axis] <= 1) {
    memmove(out, in, n_out * sizeof *out);
    return 0;
  }
  return tp->world.reduce_scatter(world_axis(tp, axis), in, n_out, out, what, tp->world.user);
}

static int tp_all_to_all(int axis, const float *in, size_t chunk, float *out, const char *what,
                         void *user) {
  ty__pipe_tp *tp = user;
  if (tp->mesh[axis] <= 1) {
    memmove(out, in, chunk * sizeof *out);
    return 0;
  }
  return tp->world.all_to_all(world_axis(tp, axis), in, chunk, out, what, tp->world.user);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int ty__pipe_tp_open(const ty_graph *g, int loss, const ty_plan *p, int rank,
                     const ty_shard_comm *world, ty__pipe_tp **out, char *err, size_t err_len) {
  *out = NULL;
  if (!world->all_reduce || !world->all_gather || !world->reduce_scatter || !world->all_to_all)
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: the stage's intra-stage plan needs all-reduce, all-gather, "
                   "reduce-scatter and all-to-all, which this transport does not all offer");
  ty__pipe_tp *tp = calloc(1, sizeof *tp);
  if (!tp) return TY_ENOMEM;
  int rc = ty_shard_create(g, loss, p, rank, err, err_len, &tp->shard);
  if (rc != 0) {
    free(tp);
    return rc;
  }
  tp->rank = rank;
  tp->mesh[0] = p->mesh[0];
  tp->mesh[1] = p->mesh[1];
  ty_plan_coords(p, rank, tp->coords);
  tp->world = *world;
  tp->stage = (ty_shard_comm){.all_reduce = tp_all_reduce,
                              .all_gather = tp_all_gather,
                              .reduce_scatter = tp_reduce_scatter,
                              .all_to_all = tp_all_to_all,
                              .user = tp};
  ty_shard_set_comm(tp->shard, &tp->stage);
  *out = tp;
  return 0;
}

void ty__pipe_tp_close(ty__pipe_tp *tp) {
  if (!tp) return;
  ty_shard_destroy(tp->shard);
  free(tp);
}

ty_shard *ty__pipe_tp_shard(ty__pipe_tp *tp) {
  return tp->shard;
}

/* ---- stages of the local graph's nodes ------------------------------------------- */

/* A node writing a value of src takes its writer's stage; a node the shard
 * added (a TyExtern, a scale, a BatchNormalization's parts) takes the stage
 * of its first reader, so a reshard runs on the stage that reads it and
 * only producer-layout blocks cross stages. */
int ty__pipe_node_stages(const ty_graph *src, const ty_plan *p, const ty_graph *local, int **out) {
  size_t nn = ty_graph_n_nodes(local), nv = ty_graph_n_values(local), ns = ty_graph_n_values(src);
  int *stage = malloc((nn + 1) * sizeof *stage), *reader = malloc((nv + 1) * sizeof *reader);
  if (!stage || !reader) {
    free(stage);
    free(reader);
    return TY_ENOMEM;
  }
  for (size_t v = 0; v < nv; v++)
    reader[v] = -1;
  for (size_t i = nn; i-- > 0;) {
    const ty_graph_node *n = ty_graph_node_at(local, i);
    stage[i] = -1;
    for (int k = 0; k < n->n_outputs; k++) {
      int o = n->outputs[k];
      if (o == TY_NO_VALUE) continue;
      int w = (size_t)o < ns ? ty_graph_value_at(src, o)->producer : -1;
      int s = w >= 0 && (size_t)w < p->n_ops ? p->ops[w].stage : reader[o];
      if (s >= 0 && (stage[i] < 0 || s < stage[i])) stage[i] = s;
    }
    if (stage[i] < 0) stage[i] = 0; /* read by nothing */
    for (int k = 0; k < n->n_inputs; k++) {
      int v = n->inputs[k];
      if (v != TY_NO_VALUE && (reader[v] < 0 || stage[i] < reader[v])) reader[v] = stage[i];
    }
  }
  free(reader);
  *out = stage;
  return 0;
}

/* ---- blocks ---------------------------------------------------------------------- */

/* Whether this rank's copy of v counts once in a sum over the stage: no
 * rank before it on an axis that neither splits v nor holds partial sums
 * of it (axes `partial`) holds the same block. */
bool ty__pipe_tp_counts(const ty__pipe_tp *tp, int v, unsigned partial) {
  ty_shape full;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK], s0[TY_MAX_RANK], l0[TY_MAX_RANK];
  if (ty_shard_slice_of(tp->shard, v, tp->rank, &full, start, len) != 0) return false;
  int stride[TY_PLAN_AXES] = {tp->mesh[1], 1};
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    if (tp->mesh[a] <= 1 || (partial >> a & 1u) || tp->coords[a] == 0) continue;
    int first = tp->rank - tp->coords[a] * stride[a];
    if (ty_shard_slice_of(tp->shard, v, first, &full, s0, l0) != 0) return false;
    if (memcmp(s0, start, (size_t)full.rank * sizeof *start) == 0) return false;
  }
  return true;
}

bool ty__pipe_tp_whole(const ty__pipe_tp *tp, int v) {
  ty_shape fs;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  if (ty_shard_slice_of(tp->shard, v, tp->rank, &fs, start, len) != 0) return false;
  for (int d = 0; d < fs.rank; d++)
    if (len[d] != fs.dims[d]) return false;
  return true;
}

int ty__pipe_tp_block(const ty__pipe_tp *tp, int v, ty_shape *full, int64_t *start, int64_t *len) {
  return ty_shard_slice_of(tp->shard, v, tp->rank, full, start, len);
}

int ty__pipe_tp_slice(const ty__pipe_tp *tp, int v, const ty_tensor *full, ty_tensor **io) {
  ty_shape fs;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  int rc = ty_shard_slice_of(tp->shard, v, tp->rank, &fs, start, len);
  if (rc != 0 || !ty_shape_equal(&fs, &full->shape)) return rc ? rc : TY_EINVAL;
  if (!*io) {
    ty_shape ls = ty_shape_make(fs.rank, len);
    if ((rc = ty_tensor_create(full->dtype, &ls, io)) != 0) return rc;
  }
  ty_shard_copy_block(full->data, &fs, (*io)->data, start, len, ty_dtype_size(full->dtype), true);
  return 0;
}

int ty__pipe_tp_feed(const ty__pipe_tp *tp, int v, const ty_tensor *all, int64_t first_row,
                     ty_tensor **out) {
  ty_shape fs;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  int rc = ty_shard_slice_of(tp->shard, v, tp->rank, &fs, start, len);
  if (rc != 0) return rc;
  size_t row = all->nbytes / (size_t)all->shape.dims[0];
  ty_tensor view = *all;
  view.shape.dims[0] = fs.dims[0];
  if (!ty_shape_equal(&fs, &view.shape) || first_row + fs.dims[0] > all->shape.dims[0])
    return TY_EINVAL;
  ty_shape ls = ty_shape_make(fs.rank, len);
  if ((rc = ty_tensor_create(all->dtype, &ls, out)) != 0) return rc;
  ty_shard_copy_block((uint8_t *)all->data + (size_t)first_row * row, &fs, (*out)->data, start, len,
                      ty_dtype_size(all->dtype), true);
  return 0;
}

int ty__pipe_tp_sum_grad(ty__pipe_tp *tp, int v, float *buf, size_t n, const char *what) {
  unsigned axes = 0;
  int rc = ty_shard_grad_axes(tp->shard, v, &axes);
  return rc ? rc : tp_all_reduce(axes, buf, n, what, tp);
}

const ty_shard_bn_info *ty__pipe_tp_bn(const ty__pipe_tp *tp, const char *running_mean) {
  const ty_graph *local = ty_shard_graph(tp->shard);
  for (size_t i = 0; i < ty_shard_n_bn(tp->shard); i++) {
    const ty_shard_bn_info *b = ty_shard_bn_at(tp->shard, i);
    if (b->running_mean != TY_NO_VALUE &&
        strcmp(ty_graph_value_at(local, b->running_mean)->name, running_mean) == 0)
      return b;
  }
  return NULL;
}
