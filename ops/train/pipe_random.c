/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a pipeline stage's random draws fall in the one-process tensors
 * (pipe.c runs the stage; ops/kernels/random.c draws). Dropout's masks
 * and the random ops' outputs are drawn by position: element i of a
 * node's output is a function of the run's key (the seed, the step and
 * the data-parallel rank: ty__train_noise_seed) and the node's name,
 * and of i's position in the node's global output, which the node's
 * TY_RANDOM_FULL / TY_RANDOM_START attributes give (the global shape and
 * the first index of the block the node computes).
 *
 * A micro-batch is a block of rows of the global batch, so each random
 * node of a stage computes a block of the node's one-process output: at
 * the micro-batch's rows (pipe.c's rows) its output has m[d] entries
 * along one dim d where one process, at the global batch (rows x M), has
 * M x m[d]; micro-batch i's block starts at i x m[d] there. This file
 * finds d per node (the one dim whose size grows with the batch), and
 * before each run of a stage graph for micro-batch i writes the node's
 * global shape and the block's start: on a stage mesh the node's
 * intra-stage slice (ops/shard's attributes, which place this rank's
 * block in the micro-batch) shifted by i x m[d]. A node whose output does
 * not depend on the batch draws the one tensor one process draws in
 * every micro-batch. So every micro-batch draws its rows of the mask one
 * process draws for the global batch, in its first forward and again in
 * a recomputed one (the draw depends on position and key only, and the
 * executors are reseeded to the key before each run: pipe.c).
 *
 * A node whose output at the global batch is not its micro-batch output
 * grown along one dim by M (it cannot be placed) is refused at setup,
 * naming it. (An output with two dims that grow with the batch, [N, N],
 * never gets here: pipe.c refuses any such value first, since it relates
 * the batch's samples to each other.) Undetected: a value whose batch rows are interleaved with
 * another dim (a [T, B, D] tensor reshaped to [T x B, D]) grows along one
 * dim by M but its micro-batch is not a block there; it draws valid masks
 * that are not one process's.
 */
#include "ops/train/pipe_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One random node of the stage, keyed by its first output's name (value
 * names are unique and every graph of the stage keeps them). */
struct ty__pipe_draw {
  char *value;
  int rank;
  int dim;                    /* the batch's dim, or -1: the output does not depend on it */
  int64_t step;               /* m[dim]: the rows of dim one micro-batch covers */
  int64_t full[TY_MAX_RANK];  /* the one-process shape (at the global batch) */
  int64_t start[TY_MAX_RANK]; /* micro-batch 0's block, this rank's part of it */
};

static bool draws(const ty_graph_node *n) {
  return (n->op == TY_OP_DROPOUT || ty_op_is_random(n->op)) && n->n_outputs > 0 &&
         n->outputs[0] != TY_NO_VALUE;
}

/* The dim along which `global` is `mb` grown M-fold, -1 when they are
 * equal, -2 when neither. */
static int batch_dim(const ty_shape *mb, const ty_shape *global, int M) {
  if (mb->rank < 0 || mb->rank != global->rank) return -2;
  int d = -1;
  for (int k = 0; k < mb->rank; k++) {
    if (mb->dims[k] < 0 || global->dims[k] < 0) return -2;
    if (mb->dims[k] == global->dims[k]) continue;
    if (d >= 0 || global->dims[k] != mb->dims[k] * M) return -2;
    d = k;
  }
  return d;
}

/* Node n of the stage (its output v of t->g): its place, from the shapes
 * at the micro-batch and the global batch, and the intra-stage slice
 * ops/shard gave it (none: the micro-batch's whole output). */
static int place(const ty__pipe *pp, const ty_graph_node *n, const ty_shape *mb,
                 const ty_shape *global, ty__pipe_draw *out, char *err, size_t err_len) {
  int d = batch_dim(mb, global, pp->M);
  char a[96], b[96];
  ty_shape_format(mb, a, sizeof a);
  ty_shape_format(global, b, sizeof b);
  if (d == -2)
    return ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "plan: node \"%s\" (%s) on stage %d draws a %s at a micro-batch of %lld rows "
                   "and a %s at the global batch: not a block of rows, so its micro-batches "
                   "cannot draw their part of the one-process %s; use micro_batches: \"1\"",
                   n->name, ty_op_name(n->op), pp->stage, a, (long long)pp->rows, b,
                   n->op == TY_OP_DROPOUT ? "mask" : "tensor");
  const ty_graph_attr *f = ty_graph_node_attr(n, TY_RANDOM_FULL);
  const ty_graph_attr *s = ty_graph_node_attr(n, TY_RANDOM_START);
  bool sliced = f && s && f->type == TY_ATTR_INTS && s->type == TY_ATTR_INTS &&
                f->n == (size_t)mb->rank && s->n == (size_t)mb->rank;
  out->rank = mb->rank;
  out->dim = d;
  out->step = d >= 0 ? mb->dims[d] : 0;
  for (int k = 0; k < mb->rank; k++) {
    if (sliced && f->ints[k] != mb->dims[k])
      return ty_errf(err, err_len, TY_EINTERNAL,
                     "plan: node \"%s\" (%s) on stage %d: its intra-stage slice is of a tensor "
                     "other than its micro-batch output %s",
                     n->name, ty_op_name(n->op), pp->stage, a);
    out->full[k] = global->dims[k];
    out->start[k] = sliced ? s->ints[k] : 0;
  }
  return 0;
}

int ty__pipe_draws_setup(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  size_t nn = ty_graph_n_nodes(pp->fwd);
  for (size_t i = 0; i < nn; i++)
    pp->random = pp->random || draws(ty_graph_node_at(pp->fwd, i));
  if (!pp->random) return 0;
  if (!(pp->draws = calloc(nn + 1, sizeof *pp->draws))) return TY_ENOMEM;
  int rc = ty__pipe_batch_shapes(t, pp, err, err_len);
  const ty_shape *mb = pp->at_mb, *global = pp->at_global;
  for (size_t i = 0; rc == 0 && i < nn; i++) {
    const ty_graph_node *n = ty_graph_node_at(pp->fwd, i);
    if (!draws(n)) continue;
    const char *name = ty_graph_value_at(pp->fwd, n->outputs[0])->name;
    int v = ty_graph_find_value(t->g, name);
    if (v == TY_NO_VALUE)
      rc = ty_errf(err, err_len, TY_EINTERNAL,
                   "plan: stage %d: node \"%s\"'s output \"%s\" is not the model's", pp->stage,
                   n->name, name);
    ty__pipe_draw *dr = &pp->draws[pp->n_draws];
    if (rc == 0) rc = place(pp, n, &mb[v], &global[v], dr, err, err_len);
    if (rc == 0 && !(dr->value = ty_strdup(name))) rc = TY_ENOMEM;
    if (rc == 0) pp->n_draws++;
  }
  return rc;
}

static const ty__pipe_draw *find_draw(const ty__pipe *pp, const char *value) {
  for (size_t k = 0; k < pp->n_draws; k++)
    if (strcmp(pp->draws[k].value, value) == 0) return &pp->draws[k];
  return NULL;
}

int ty__pipe_draws_place(const ty__pipe *pp, ty_graph *g, int i) {
  int rc = 0;
  for (size_t k = 0; rc == 0 && pp->n_draws && k < ty_graph_n_nodes(g); k++) {
    const ty_graph_node *n = ty_graph_node_at(g, k);
    const ty__pipe_draw *dr =
        draws(n) ? find_draw(pp, ty_graph_value_at(g, n->outputs[0])->name) : NULL;
    if (!dr) continue;
    int64_t start[TY_MAX_RANK];
    memcpy(start, dr->start, sizeof start);
    if (dr->dim >= 0) start[dr->dim] += (int64_t)i * dr->step;
    rc = ty_graph_node_set_ints(g, k, TY_RANDOM_FULL, dr->full, (size_t)dr->rank);
    if (rc == 0) rc = ty_graph_node_set_ints(g, k, TY_RANDOM_START, start, (size_t)dr->rank);
  }
  return rc;
}

void ty__pipe_draws_free(ty__pipe *pp) {
  for (size_t k = 0; pp->draws && k < pp->n_draws; k++)
    free(pp->draws[k].value);
  free(pp->draws);
  pp->draws = NULL;
  pp->n_draws = 0;
}
