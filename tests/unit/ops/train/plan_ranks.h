/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the ops/train tests of plans whose ranks are threads of one
 * process (test_parallel.c, test_pipeline.c; tests/unit/ops/shard's
 * in-process mesh): the suites' setup, the single-process reference, the
 * comparison of two checkpoints, the trainer's hooks on the mesh and the
 * rank threads. Linked with synth.c and mesh_threads.c.
 */
#ifndef TY_TESTS_OPS_TRAIN_PLAN_RANKS_H
#define TY_TESTS_OPS_TRAIN_PLAN_RANKS_H

#include "ops/graph.h"
#include "ops/train/train.h"
#include "tests/unit/ops/shard/mesh_threads.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Suite init: OpenBLAS on one thread, the blob arrays in synth_path("");
 * fini removes that directory. */
void pr_setup(void);
void pr_cleanup(void);
/* One process, no plan: trains g `steps` steps on synth_config (resuming
 * from ckpt when asked) and checkpoints to ckpt. */
void pr_run_single(const ty_graph *g, uint64_t steps, const char *ckpt, bool resume);
/* pr_run_single from scratch on synth_config changed by tweak. */
void pr_run_single_with(const ty_graph *g, uint64_t steps, const char *ckpt,
                        void (*tweak)(ty_train_config *));
/* Gradient clipping's tests: at most this many steps of norms. */
#define PR_MAX_STEPS 8
/* pr_run_single from scratch with config.max_grad_norm set: norms[s] is
 * step s's gradient norm before clipping. */
void pr_run_single_clipped(const ty_graph *g, uint64_t steps, const char *ckpt, float max_grad_norm,
                           double *norms);
/* Runs t `steps` steps one at a time, norms[s] = step s's
 * ty_train_grad_norm. */
int pr_steps_norms(ty_train *t, uint64_t steps, double *norms, char *err, size_t err_len);
/* Largest difference between the float initializers of two checkpoints. */
double pr_diff(const char *a, const char *b);
/* Removes the checkpoint at path (its state file and its step files): a
 * run resumes from one that exists. */
void pr_remove_checkpoint(const char *path);
/* Copies a checkpoint and its state file. */
void pr_copy_checkpoint(const char *from, const char *to);
/* Every hook of ty_train_parallel through rank r's mesh (collectives,
 * gather, stop agreement, pipeline messages); the caller sets request or
 * plan. */
ty_train_parallel pr_parallel(mt_rank *r);
/* Rank r's trainer options on its mesh: its rank and the mesh's world,
 * par's hooks, its log, and r->stop as the stop flag (may be NULL). */
ty_train_opts pr_opts(const mt_rank *r, const ty_train_parallel *par, bool resume, FILE *log);
/* Runs fn on world threads, thread k given (char *)args + k * size, and
 * joins them all. */
void pr_threads(int world, void *(*fn)(void *), void *args, size_t size);

#endif
