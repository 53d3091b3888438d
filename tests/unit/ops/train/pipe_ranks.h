/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the pipelined-plan tests (test_pipeline.c, test_pipeline_bn.c):
 * a job's shape (nodes, stages, micro-batches, what goes wrong on purpose),
 * its config and plan request as the controller would make them, and its
 * ranks run as threads of this process over tests/unit/ops/shard's
 * in-process mesh. Every rank is a pipe_rank the caller owns (an array of
 * world entries); a rank's log is heap text the caller frees, unless
 * pipe_run took it. Built on plan_ranks.c, synth.c and mesh_threads.c.
 */
#ifndef TY_TESTS_OPS_TRAIN_PIPE_RANKS_H
#define TY_TESTS_OPS_TRAIN_PIPE_RANKS_H

#include "lib/base/base.h"
#include "ops/graph.h"
#include "ops/plan/plan.h"
#include "ops/train/train.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/shard/mesh_threads.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* What one pipelined run looks like. pipe_job_make fills the shape and
 * leaves every extra off; tests set the extras they need. */
typedef struct pipe_job {
  int nodes, per_node, stages, micro;
  uint64_t steps;     /* total steps to reach */
  const char *ckpt;   /* where the run checkpoints at the end (NULL: it does not) */
  bool resume;        /* from ckpt */
  uint64_t mem;       /* device memory budget; 0: plenty */
  ty_plan_mode mode;  /* the planner's mode (AUTO: 0) */
  int bad_rank;       /* this rank sends one wrong message (-1: none) */
  int stop_rank;      /* this rank's stop flag is set before the first step (-1: none) */
  bool all_recompute; /* run the plan with every stage's recompute set */
  int grid[2];        /* the stage mesh with both axes split, as the transport's inner axes */
  bool plain_sgd;     /* data in file order and plain SGD (the BatchNormalization reference) */
  int count_micro;    /* > 0: each rank counts the messages it sends for this micro-batch */
  float clip;         /* config.max_grad_norm (0: none); each rank then keeps its norms */
  bool weighted;      /* synth_weighted_config: a weighted_loss model's labels and loss */
  bool evaluate;      /* every rank calls ty_train_evaluate after its steps */
  /* bench/plan/zoo_sweep.py's rates (slow devices, free links): the plan
   * splits every op a rule lets it split, as the zoo's plans do. */
  bool split_all;
  void (*tweak)(ty_train_config *c); /* changes the config last (NULL: nothing) */
} pipe_job;
pipe_job pipe_job_make(int nodes, int per_node, int stages, int micro, uint64_t steps,
                       const char *ckpt);

/* One rank of a run: its thread's input and what it leaves behind. */
typedef struct pipe_rank {
  mt_rank r; /* first: the mesh's hooks get &r and pipe_rank's hooks recover the rank */
  const pipe_job *j;
  const ty_graph *g;
  volatile sig_atomic_t stop;
  bool recompute;             /* the plan recomputes some stage */
  char *log;                  /* the trainer's log (owned) */
  uint64_t step;              /* where it stopped */
  uint64_t state;             /* ty_train_pipeline_state_bytes after training */
  size_t dropped;             /* ty_train_drop_model_data's bytes freed */
  int counted;                /* messages it sent for micro-batch j->count_micro */
  double norms[PR_MAX_STEPS]; /* with j->clip: each step's gradient norm */
  double acc, loss;           /* with j->evaluate: what the evaluation gave (rank 0's count) */
  size_t full_after_eval;     /* with j->evaluate: ty_train_full_bytes after it */
  int rc;
  char err[TY_ERR_LEN];
} pipe_rank;

/* A path in the suite's directory, copied (synth_path's are reused). */
#define PIPE_PATH 300
void pipe_path(char out[PIPE_PATH], const char *name);

/* j's training config (close it with ty_train_config_close) and plan
 * request. */
void pipe_config(ty_train_config *c, const pipe_job *j);
ty_plan_request pipe_request(const pipe_job *j);
/* j's plan for g under config c, as the controller would make it (the
 * test fails when there is none). The caller destroys it. */
ty_plan *pipe_plan_for(const ty_graph *g, const ty_train_config *c, const pipe_job *j);

/* The least memory per device a plan of j's stages has without
 * recomputing (its largest stage's; the test fails when a stage
 * recomputes with plenty of memory). */
uint64_t pipe_plain_memory(const ty_graph *g, const pipe_job *j);

/* The one-process run of `steps` steps that a test compares with, saved
 * in ref_NAME.onnx, and the path pipe_NAME.onnx for the run compared. */
void pipe_reference(const ty_graph *g, const char *name, int steps, char ref[PIPE_PATH],
                    char out[PIPE_PATH]);

/* Runs job j on nodes x per_node threads (mesh: stages x replicas); rr has
 * a slot per rank, each rank's outcome left there. */
void pipe_run_ranks(const ty_graph *g, const pipe_job *j, pipe_rank *rr);
/* Runs j, which must succeed on every rank. out_ranks (NULL, or a slot
 * per rank) gets each rank's outcome, its log taken into *out_logs (may
 * be NULL): every rank's log, concatenated (owned). */
void pipe_run(const ty_graph *g, const pipe_job *j, pipe_rank *out_ranks, char **out_logs);
/* Runs j (pipe_run) and asserts that its checkpoint, j->ckpt, is within
 * 1e-5 of ref (a one-process run's); `what` names the run in the failure. */
void pipe_expect_like(const ty_graph *g, const pipe_job *j, const char *ref, const char *what,
                      char **out_logs);

#endif
