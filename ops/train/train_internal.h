/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of ops/train shared by train.c (the loop) and checkpoint.c.
 */
#ifndef TY_OPS_TRAIN_TRAIN_INTERNAL_H
#define TY_OPS_TRAIN_TRAIN_INTERNAL_H

#include "ops/data/data.h"
#include "ops/exec.h"
#include "ops/fusion/fusion.h"
#include "ops/train/train.h"

typedef struct ty__bucket {
  size_t first, last; /* parameter indices, first >= last (backward order) */
  size_t floats;
  size_t offset;  /* of its first float in bucket_buf */
  size_t pending; /* parameters not packed yet in this step */
} ty__bucket;

/* A BatchNormalization node's running statistics (bnstats.c). */
typedef struct ty__bn {
  int x_id;          /* its data input in g */
  int ids[2];        /* running_mean, running_var initializers in g */
  ty_tensor *stat[2]; /* owned current values */
  float momentum;    /* ONNX meaning: running = momentum * running + (1 - momentum) * batch */
} ty__bn;

struct ty_train {
  const ty_graph *model; /* borrowed: eval and export */
  const ty_train_config *cfg;
  ty_train_opts opts;
  ty_graph *g; /* owned: model + loss + backward */
  int data_id, label_id, loss_id;
  size_t np;
  int *param_ids, *grad_ids; /* in g */
  ty_tensor **params;        /* owned current weights */
  ty_optim *optim;
  ty__bn *bn; /* per BatchNormalization node with initializer stats */
  size_t n_bn;
  ty_lr_schedule sched;
  ty_dataset *train_ds, *test_ds;
  ty_loader *loader;
  ty_shape sample_shape; /* the data input's shape, batch dim symbolic */
  ty_tensor *x, *y;      /* the batch, bound to the executor */
  ty_exec *exec;
  ty_jit *jit; /* shared by every executor; NULL with no_fusion */
  bool exec_per_step; /* the graph draws random numbers: reseed per step */
  uint64_t step, epoch, batch, total_steps, bpe;
  bool epoch_open;
  ty__bucket *buckets;
  size_t n_buckets;
  float *bucket_buf;     /* every bucket, back to back; NULL: single process */
  size_t *param_off;     /* per parameter: its offset in bucket_buf */
  size_t *param_bucket;  /* per parameter: its bucket */
  bool *packed;          /* per parameter: copied into bucket_buf this step */
  int *param_of_grad;    /* per value of g: the parameter it is the gradient of, or -1 */
  bool overlap;          /* opts.async set: reduce during backward */
  size_t n_started, n_waited; /* buckets started / completed this step */
  uint64_t seq;
  double loss_sum;
  uint64_t loss_n;
  int64_t log_t0;
  uint64_t log_step0;
};

/* checkpoint.c */
int ty__train_save(ty_train *t, char *err, size_t err_len);
/* Returns 1 when resumed, 0 when there was nothing to resume. */
int ty__train_load(ty_train *t, char *err, size_t err_len);

/* bnstats.c */
int ty__train_bn_setup(ty_train *t);
void ty__train_bn_destroy(ty_train *t);
/* After a training run: folds the batch statistics into the running ones. */
int ty__train_bn_update(ty_train *t, char *err, size_t err_len);
/* The BatchNormalization data inputs the executor must keep (*out owned). */
int ty__train_bn_keep(const ty_train *t, int **out_ids);

#endif
