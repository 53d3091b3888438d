/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What tests/unit/ops/train/test_parallel.c and test_parallel_ckpt.c share
 * (parallel_jobs.c): the models, a job of plan ranks as threads of this
 * process, the knobs applied to every rank, and runs compared with one
 * process. Linked with plan_ranks.c, synth.c and mesh_threads.c.
 */
#ifndef TY_TESTS_OPS_TRAIN_PARALLEL_JOBS_H
#define TY_TESTS_OPS_TRAIN_PARALLEL_JOBS_H

#include "ops/train/train.h"
#include "tests/unit/ops/shard/mesh_threads.h"
#include "tests/unit/ops/train/plan_ranks.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pj_job {
  int nodes, per_node;
  ty_plan_mode mode;
  uint64_t steps; /* total steps to reach (from the checkpoint when resuming) */
  const char *ckpt;
  bool resume;
} pj_job;

typedef struct pj_rank {
  mt_rank r;
  const pj_job *j;
  const ty_graph *g;
  volatile sig_atomic_t stop;
  uint64_t hash;              /* of the plan the rank made */
  uint64_t step;              /* the step it trained to */
  size_t full_bytes;          /* whole-model copies it held after its checkpoint */
  size_t resume_full_bytes;   /* whole-model copies it held as its resume ended */
  size_t dropped, left;       /* pj_drop_weights: the bytes freed, the model's float bytes left */
  size_t train_left;          /* pj_drop_weights: the training graph's float bytes left */
  int wrong_model_rc;         /* pj_drop_weights: dropping another graph's weights */
  double norms[PR_MAX_STEPS]; /* with pj_clip_norm: each step's gradient norm */
  int rc;
  char err[TY_ERR_LEN];
} pj_rank;

/* The synth MLP (8-64-4), with a BatchNormalization when bn. */
ty_graph *pj_model_with(bool bn);
/* The MLP with a BatchNormalization as PyTorch's training-mode export
 * writes it: its updated running statistics as outputs nothing reads. */
ty_graph *pj_model_bn_train_mode(void);
ty_graph *pj_model(void);

/* config.max_grad_norm of every rank's config (and the reference's) in
 * this test process; 0: no clipping. */
extern float pj_clip_norm;
/* The training inputs of every rank's config in place of x.npy, or NULL. */
extern const char *pj_x_path;
/* Each rank trains its own copy of the model and frees its weights after
 * create, as trainrun does (ty_train_drop_model_data). */
extern bool pj_drop_weights;
/* pj_run_ranks leaves the ranks' results to its caller. */
extern bool pj_unchecked;
/* Applied to every rank's config (and the planning one), or NULL. */
extern void (*pj_tweak)(ty_train_config *);
/* Every rank writes its checkpoint without a step: the gather alone. */
extern bool pj_no_steps;
/* Every rank's stop flag is set before its first step (as SIGTERM would). */
extern bool pj_stop_first;

/* The bytes of g's float initializers that hold data. */
size_t pj_float_init_bytes(const ty_graph *g);
/* j's plan request: slow devices, so that every layer splits. */
ty_plan_request pj_request(const pj_job *j);
/* Runs job j on nodes x per_node threads; every rank plans for itself
 * and must find the plan this thread finds. With refusal set, every rank
 * must instead fail with an error holding it. rr: MT_MAX_RANKS entries. */
void pj_run_ranks(const ty_graph *g, const pj_job *j, const char *refusal, pj_rank *rr);
void pj_run_expect(const ty_graph *g, const pj_job *j, const char *refusal);
void pj_run(const ty_graph *g, const pj_job *j);
/* Runs j (pj_run) and asserts that its checkpoint is within tol of ref,
 * a one-process run's. */
void pj_expect_like(const ty_graph *g, const pj_job *j, const char *ref, double tol);

#endif
