/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pipelined plan's rank, shared by pipe.c (setup, the 1F1B step, the
 * messages) and pipe_state.c (the parameters it holds, their gathering
 * for checkpoints and slicing on resume). Private to ops/train.
 */
#ifndef TY_OPS_TRAIN_PIPE_INTERNAL_H
#define TY_OPS_TRAIN_PIPE_INTERNAL_H

#include "ops/train/train_internal.h"

/* A tensor a micro-batch keeps between its slots, by value name. */
typedef struct named {
  char *name;
  ty_tensor *t;
} named;

typedef struct mb_state {
  named *v;
  size_t n;
} mb_state;

/* An activation crossing stages. */
typedef struct crossing {
  char *name;
  int from, to;
  ty_shape shape; /* as sent: one micro-batch's block on this rank */
} crossing;

typedef struct ty__pipe_draw ty__pipe_draw; /* pipe_random.c */

struct ty__pipe {
  ty_plan *plan;
  int S, M, R, stage, replica;
  int64_t rows; /* per micro-batch */
  /* t->g's value shapes at a micro-batch's rows and at the global batch
   * (ty__pipe_batch_shapes; one block, during setup only). */
  ty_shape *at_mb, *at_global;
  ty__pipe_tp *tp; /* a stage mesh of more than one device: its intra-stage plan (pipe_shard.c) */
  const ty_graph *src; /* the graph stages are cut from: t->g, own_src, or tp's local graph */
  ty_graph *own_src;   /* without tp, t->g with its weighted mean losses as sums (owned), or
                          NULL when it has none */
  int *node_stage;     /* per node of src */
  bool *stat;          /* per value of src: computed from constants or from the data feeds by
                          cheap ops (ty_graph_recomputable_values: a padding mask); every stage
                          that reads one computes it, none sends it */
  int *bn_stage;       /* per BatchNormalization of t (t->bn): the stage that runs it */
  bool recompute, last;
  bool accum;  /* gradient accumulation without a plan (accum.c): one stage, this rank's batch */
  bool random; /* the stage draws Dropout masks or random ops (pipe_random.c) */
  ty__pipe_draw *draws; /* where each of its random nodes draws in the one-process tensor */
  size_t n_draws;
  const char *loss_name; /* the last stage's */
  ty_graph *fwd, *f, *b;
  ty__pipe_grads train;
  ty_exec *ex_fwd, *ex_train, *ex_f, *ex_b;
  crossing *links; /* every crossing of the plan */
  size_t n_links;
  int *param_stage;  /* per parameter of t: the first stage that reads it */
  uint64_t *holders; /* per parameter: bit s when stage s reads it; several bits: a tied
                        parameter, held by each of those stages in its one layout */
  size_t *mine;      /* t's parameters this stage trains */
  size_t n_mine;
  float *acc;
  size_t *acc_off, acc_n;
  mb_state *mbs;
  /* Weighted mean losses (pipe_wmean.c): the values "<node>.weight_sum"
   * the stage graphs read as inputs; on the stage that reads them, the
   * graph computing them from one micro-batch's feeds, and their sums over
   * the global batch, fed to every micro-batch of the step. */
  const char **den_names; /* borrowed from src */
  size_t n_den;
  ty_graph *den;
  ty_exec *ex_den;
  float *den_sum;
  uint64_t kept, peak;
  double loss;
  ty__pipe_eval *eval; /* the stages' evaluation (pipe_eval.c), or NULL */
};

/* Whether stage s holds parameter p. */
static inline bool ty__pipe_holds(const ty__pipe *pp, size_t p, int s) {
  return (pp->holders[p] >> s) & 1u;
}

/* pipe_state.c: after the stage's parameters are known (param_stage,
 * holders, mine), keeps only this rank's part of them in t->params; then
 * the gradient sums of those parts (acc, acc_off, acc_n). */
int ty__pipe_shard_params(ty_train *t);
int ty__pipe_grad_sums(ty_train *t);

/* pipe.c: FNV-1a over n bytes from h; the world rank of this rank's
 * replica in stage `stage`. */
uint64_t ty__pipe_fnv(uint64_t h, const void *p, size_t n);
uint32_t ty__pipe_rank_of(const ty__pipe *pp, int stage);

/* pipe.c: a crossing's message between stages, of micro-batch i (an
 * evaluation's: of test batch i): its
 * header (step, sender's stage, i, a hash of the name, kind and shape) is
 * checked on receipt, and an error names both ranks and what was
 * expected. recv makes *out (l's shape). */
typedef enum { TY__PIPE_ACT, TY__PIPE_GRAD, TY__PIPE_EVAL } ty__pipe_msg;
int ty__pipe_send(ty_train *t, const crossing *l, ty__pipe_msg kind, int peer_stage, int i,
                  const float *buf, size_t n, char *err, size_t err_len);
int ty__pipe_recv(ty_train *t, const crossing *l, ty__pipe_msg kind, int peer_stage, int i,
                  ty_tensor **out, char *err, size_t err_len);

/* pipe_setup.c: pp->at_mb and pp->at_global, inferred on first use. */
int ty__pipe_batch_shapes(const ty_train *t, ty__pipe *pp, char *err, size_t err_len);

/* pipe_random.c: after cut_stage, whether the stage draws (random) and
 * where each random node's micro-batch block lies in its one-process
 * output (draws); err names a node that cannot be placed. Then, before a
 * run of g (a graph of the stage) for micro-batch i, those nodes of g get
 * the global shape and the block's start (TY_RANDOM_FULL / START). */
int ty__pipe_draws_setup(ty_train *t, char *err, size_t err_len);
int ty__pipe_draws_place(const ty__pipe *pp, ty_graph *g, int i);
void ty__pipe_draws_free(ty__pipe *pp);
/* pipe_wmean.c: after node_stage, takes the nodes that only compute the
 * denominators of weighted mean losses out of every stage (node_stage
 * -1, so the stage graphs read the denominators as inputs) and, on the
 * stage that reads them, builds the graph computing them (pp->den);
 * refused, naming the value, when its labels come from another stage. */
int ty__pipe_denominators(ty__pipe *pp, char *err, size_t err_len);

/* pipe_tied.c: every tied parameter's gradient sum (acc; on a stage mesh
 * this rank's block of it) becomes the sum of its holders', the same bits
 * on each; err names the failed exchange. */
int ty__pipe_sum_tied(ty_train *t, char *err, size_t err_len);

#endif
