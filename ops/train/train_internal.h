/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of ops/train shared by train.c (the loop), loss.c (the
 * training graph's loss), feed.c (data to model inputs), params.c (which
 * initializers train), eval.c, bnstats.c and checkpoint.c.
 */
#ifndef TY_OPS_TRAIN_TRAIN_INTERNAL_H
#define TY_OPS_TRAIN_TRAIN_INTERNAL_H

#include "ops/data/data.h"
#include "ops/exec.h"
#include "ops/fusion/fusion.h"
#include "ops/train/train.h"

#include <stdio.h>

typedef struct ty_cuda_exec ty_cuda_exec;       /* ops/cuda/exec.h (device.c) */
typedef struct ty_cuda_optim ty_cuda_optim;     /* ops/cuda/cuda.h (device.c) */
typedef struct ty_cuda_buckets ty_cuda_buckets; /* ops/cuda/cuda.h (device.c) */

typedef struct ty__bucket {
  size_t *params; /* parameter indices in packing order (backward order); owned */
  size_t n_params;
  size_t floats;
  size_t offset;  /* of its first float in bucket_buf */
  size_t pending; /* parameters not packed yet in this step */
  unsigned axes;  /* a plan's rank: the mesh axes it is summed over (0: data parallel, the world) */
  char *what;     /* a plan's rank: its tensors, for the collective's checks; owned */
} ty__bucket;

/* A BatchNormalization node's running statistics (bnstats.c). */
typedef struct ty__bn {
  int x_id; /* its data input in g; TY_NO_VALUE for one a plan computes from summed statistics */
  int mean_id, var_id; /* ... then its batch mean and population variance in g (ops/shard) */
  double count;        /* ... and how many values they average */
  int ids[2];          /* running_mean, running_var initializers in g */
  ty_tensor *stat[2];  /* owned current values */
  float momentum;      /* ONNX meaning: running = momentum * running + (1 - momentum) * batch */
  const char *node;    /* with x_id: the node's name in g (borrowed) */
} ty__bn;

/* One dataset column bound to a value of g: feed k is column k of both
 * train_ds and test_ds (feed.c). */
typedef struct ty__feed {
  int id;          /* the value of g it feeds */
  char where[160]; /* its config source for messages: "config.dataset.train[0] (x.npy)" */
  ty_dtype dtype;
  ty_shape shape;             /* dim 0 TY_DIM_BATCH, every other dim concrete */
  bool model_input;           /* false for the builtin loss's labels */
  ty_tensor *t;               /* the training batch, bound to the executor */
  int64_t start[TY_MAX_RANK]; /* a plan's rank: where its slice starts in the global batch */
} ty__feed;

typedef struct ty__pipe ty__pipe;           /* pipe.c: a pipeline stage's rank */
typedef struct ty__pipe_eval ty__pipe_eval; /* pipe_eval.c: the stages' evaluation */

struct ty_train {
  const ty_graph *model; /* borrowed: eval and export */
  const ty_train_config *cfg;
  ty_train_opts opts;
  ty_graph *g; /* owned: model + loss + backward */
  int label_id, loss_id;
  int logits_id;   /* builtin loss: the model's logits in g, else TY_NO_VALUE */
  bool class_last; /* builtin loss: classes on the logits' last axis (token streams) */
  bool ignores;    /* builtin loss: it skips labels equal to ignore (loss.c) */
  bool planned;    /* the graph is planned (a plan's rank, or planning for one: loss.c) */
  int64_t ignore;  /* builtin loss: the ignore_index (-100 unless the config gives one) */
  size_t np;
  float *clip_buf;   /* config.max_grad_norm: one parameter's scaled gradient (owned), else NULL */
  bool *clip_counts; /* with clip_buf, per parameter: this rank's gradient of it counts in the
                      * norm (clip.c; owned) */
  double grad_norm;  /* with clip_buf: the last step's global gradient norm, before clipping */
  int *param_ids, *grad_ids; /* in g */
  ty_tensor **params;        /* owned current weights */
  uint64_t n_param_values;
  int *frozen_ids; /* float initializers not trained, BatchNormalization statistics aside */
  size_t n_frozen;
  ty_optim *optim;
  ty__bn *bn; /* per BatchNormalization node with initializer stats */
  size_t n_bn;
  ty_lr_schedule sched;
  ty_dataset *train_ds, *test_ds;   /* test_ds NULL: no evaluation */
  char *names[TY_DATA_MAX_COLUMNS]; /* feed k's value name (owned) */
  ty__feed feeds[TY_DATA_MAX_COLUMNS];
  size_t n_feeds;
  int label_feed;       /* the feed of label_input, or -1 */
  uint32_t fixed_batch; /* a model input's fixed dim 0 (evaluation uses it too), or 0 */
  uint32_t eval_rows;   /* rows per evaluation batch (eval.c, eval_shard.c) */
  ty_loader *loader;
  ty_graph *eval_g;     /* owned: the model in inference mode (eval.c), or a flat plan's
                         * local graph of it (eval_shard.c) */
  ty_shard *eval_shard; /* a flat plan's evaluation (eval_shard.c), NULL otherwise */
  int eval_pad_feed;    /* eval_shard.c: the feed whose padding rows hold eval_pad_label (the
                         * model's own loss leaves them out), or -1: zeros */
  int64_t eval_pad_label;
  int eval_loss_kind; /* eval_loss.c: TY__EVAL_LOSS_*, how a model's own loss adds up */
  const ty_graph_node *eval_loss_node; /* eval_loss.c: the one node in model making that kind
                                        * (a weighted mean or a sum), or NULL */
  ty_graph *eval_den_g; /* eval_loss.c: a weighted mean's denominator graph (owned), or NULL */
  ty_exec *eval_den_e;  /* its executor (owned), or NULL */
  int eval_den_v;       /* the denominator in eval_den_g */
  ty_exec *exec;
  ty_cuda_exec *gpu;            /* device.c: the GPU executor of a DEVICE_GPU job, or NULL */
  ty_cuda_optim *gpu_optim;     /* device.c: the optimizer on the device, or NULL */
  ty_cuda_buckets *gpu_buckets; /* device.c: gradient buckets on the device (NCCL), or NULL */
  int gpu_state;                /* device.c: 0 not decided, 1 the GPU executor, -1 the CPU's */
  ty_jit *jit;                  /* shared by every executor; NULL with no_fusion */
  bool reseed_per_step;         /* the graph draws random numbers: its executor reseeded per step */
  uint64_t step, epoch, batch, total_steps, bpe;
  uint64_t start_step;     /* the step this run began at (a checkpoint's when it resumed) */
  const char *length_from; /* what sets total_steps: "--steps", "config.epochs", ... */
  /* Several ranks of a plan (train.c): the step of their next agreement
   * whether to stop, and the time and step of the last (or of the start). */
  uint64_t stop_next, stop_mark_step;
  double stop_mark_s;
  bool epoch_open;
  bool eval_skip_said;   /* evaluation skipped for memory (eval_fits): said once */
  bool eval_pad_said;    /* a padded last batch left out (eval_pad.c): said once */
  int ckpt_lock;         /* rank 0: checkpoint_path's locked lock file, or -1 */
  uint64_t eval_counted; /* samples (or tokens) the last evaluation tallied on this rank */
  uint64_t eval_seen;    /* test rows it ran (0: every batch left out, said at setup) */
  bool eval_weightless;  /* a model's own weighted mean loss whose weights there added up to 0 */
  ty__bucket *buckets;
  size_t n_buckets;
  float *bucket_buf;          /* every bucket, back to back; NULL: single process */
  size_t *param_off;          /* per parameter: its offset in bucket_buf */
  size_t *param_bucket;       /* per parameter: its bucket */
  bool *packed;               /* per parameter: copied into bucket_buf this step */
  int *param_of_grad;         /* per value of g: the parameter it is the gradient of, or -1 */
  bool overlap;               /* opts.async set: reduce during backward */
  size_t n_started, n_waited; /* buckets started / completed this step */
  uint64_t seq;
  /* a plan's rank (parallel.c); shard NULL otherwise */
  ty_train_parallel par;
  ty_shard *shard;
  ty__pipe *pipe;                        /* a pipelined plan's rank (pipe.c); NULL otherwise */
  unsigned *param_axes;                  /* per parameter: axes its gradient is summed over */
  ty_tensor **full_params, **full_stats; /* rank 0 of a sharded run while evaluating: the
                                            full tensors, else NULL */
  double loss_sum;
  uint64_t loss_n;
  double log_t0;
  uint64_t log_step0;
  char resumed_from[4096];  /* the checkpoint it resumed from, "" when none */
  size_t ckpt_skipped;      /* damaged step checkpoints the load moved aside */
  uint32_t resumed_world;   /* the data-parallel world size that checkpoint was written by */
  size_t resume_full_bytes; /* ty_train_full_bytes as the resume ended, before its release */
  uint32_t model_fp;        /* fingerprint.c: the model as submitted, which checkpoints keep */
};

/* feed.c: opens the configured data (before the graph is built, which
 * needs the labels' shape) and then binds it to g. */
int ty__train_data_open(ty_train *t, char *err, size_t err_len);
/* The same checks of the config's feeds against the model without opening
 * any data (planning elsewhere: the controller has no data). */
int ty__train_feeds_check(ty_train *t, char *err, size_t err_len);
int ty__train_data_bind(ty_train *t, char *err, size_t err_len);
/* Copies batch b into the feed tensors. */
int ty__train_data_load(ty_train *t, const ty_batch *b, char *err, size_t err_len);
void ty__train_data_close(ty_train *t);
/* The batch tensor shape of feed k for n samples. */
ty_shape ty__train_feed_shape(const ty_train *t, size_t k, int64_t n);

/* loss.c: copies the model into g and appends the builtin loss, or finds
 * config.loss_output (sets logits_id, label_id, loss_id, class_last). */
int ty__train_build_loss(ty_train *t, char *err, size_t err_len);
/* ty_train_plan_graph as a plan's ranks build it (the builtin loss's
 * ignore_index always set: loss.c), for ty_train_make_plan and
 * ty_train_job_load, so the plan's fingerprint is the ranks'. */
int ty__train_planned_graph(const ty_graph *model, const ty_train_config *config, bool with_data,
                            ty_graph **out, char *err, size_t err_len);

/* params.c: chooses the trained parameters and differentiates the loss
 * with respect to them (fills np, param_ids, grad_ids, params, frozen). */
int ty__train_params(ty_train *t, char *err, size_t err_len);
/* Warns (once, on the log) when a loss consumes a Softmax output. */
void ty__train_warn_softmax(const ty_train *t);

/* feed.c: the model's inputs (or outputs), comma-separated, into buf (cut
 * at len), for errors that name what the model has. */
void ty__train_name_list(const ty_graph *m, bool outputs, char *buf, size_t len);
/* eval.c: rank 0's inference-mode copy of the model and the rows of its
 * batches (a flat plan's ranks: eval_shard.c's). */
int ty__train_eval_setup(ty_train *t, char *err, size_t err_len);
/* Evaluation batches: at most TY__EVAL_ROWS_MAX rows; what one's
 * activations may always take, within the memory a job's rank keeps
 * beside its plan (docs/planner.md, the rank reserve). */
#define TY__EVAL_ROWS_MAX 1000u
#define TY__EVAL_FLOOR_BYTES (64ull << 20)
/* Planned activation bytes of graph g at `rows`, or 0 when its shapes are
 * not known statically. */
uint64_t ty__train_activation_bytes(const ty_train *t, const ty_graph *g, int64_t rows);
/* The most rows, up to TY__EVAL_ROWS_MAX, whose planned activations of g
 * fit the budget (at least 1), their bytes in *out_bytes; fallback (bytes
 * 0) when g's shapes are not known statically. */
uint32_t ty__train_rows_within(const ty_train *t, const ty_graph *g, uint64_t budget,
                               uint32_t fallback, uint64_t *out_bytes);
/* What an evaluation adds up over its batches. */
typedef struct ty__eval_tally {
  uint64_t correct, count; /* predictions: samples, or tokens */
  uint64_t rows;           /* test rows evaluated */
  double loss;             /* summed over count (a weighted mean loss: over weight) */
  double weight;           /* a weighted mean loss: its denominators' sum (eval_loss.c) */
} ty__eval_tally;
/* eval_loss.c: how a model's own loss adds up over the test batches: a
 * plain mean, a weighted or ignore_index mean, a sum over the batch. */
enum { TY__EVAL_LOSS_MEAN, TY__EVAL_LOSS_WEIGHTED, TY__EVAL_LOSS_SUM };
/* Decides t->eval_loss_kind and builds a weighted mean's denominator
 * graph (where that reads more than the test batches' inputs and
 * untrained initializers, a plain mean's, and rank 0 says why). */
int ty__train_eval_loss_setup(ty_train *t, char *err, size_t err_len);
void ty__train_eval_loss_destroy(ty_train *t);
/* "a mean", "a sum" or "a weighted mean": the model's own loss's kind. */
const char *ty__train_eval_loss_name(const ty_train *t);
/* Whether a test batch padded with rows whose label feed holds the loss
 * node's ignore_index gives the loss of its own rows (a weighted,
 * ignore_index or summed loss whose one node has an ignore_index and
 * reads the labels from a test array): NULL, the feed in *out_feed and
 * the label in *out_label; else why not. */
const char *ty__train_eval_loss_pad(const ty_train *t, size_t *out_feed, int64_t *out_label);
/* Batch b's share of a model's own loss, its value on b `loss`. */
int ty__train_tally_loss(const ty_train *t, double loss, const ty_batch *b, ty__eval_tally *a,
                         char *err, size_t err_len);
/* The test loss a tally adds up to (NaN when nothing was counted). */
double ty__train_eval_loss(const ty_train *t, const ty__eval_tally *a);
/* The builtin loss's share of batch b: logits x of shape s (dim 0 b->n)
 * against the label feed. TY_EINVAL when they do not match. */
int ty__train_tally_logits(const ty_train *t, const float *x, const ty_shape *s, const ty_batch *b,
                           ty__eval_tally *a);
/* Binds to e (an executor of g) this rank's trained tensors g reads: its
 * parameters (or blocks of them) and running statistics, by name. */
int ty__train_bind_trained(const ty_train *t, ty_exec *e, const ty_graph *g, char *err,
                           size_t err_len);
/* The value an evaluation reads: config.loss_output, else the logits. */
const char *ty__train_prediction(const ty_train *t);
/* Batch b's share of that prediction o (the batch's: a scalar mean loss,
 * or logits against the labels, of which a batch padded to a fixed batch
 * dim has more rows than b: its first b->n count); NULL or a mismatch is
 * refused naming it. */
int ty__train_tally(const ty_train *t, const ty_tensor *o, const ty_batch *b, ty__eval_tally *a,
                    char *err, size_t err_len);
/* A model whose batch dim is fixed evaluates the test split's last,
 * shorter batch padded with zero rows that nothing counts (unless they
 * change the real rows' predictions: eval_pad.c), but a model's
 * own loss is a mean over every row of the batch, padding included: with
 * one, that batch is left out (rank 0 says so at setup, eval.c). */
bool ty__train_eval_pads(const ty_train *t);
bool ty__train_eval_drops_last(const ty_train *t);
/* eval_pad.c: whether the zero rows padding b, a shorter batch just run
 * by e with the model inputs in (NULL: not one), change its rows'
 * predictions: *out_mixes set (and rank 0 says once that the batch is not
 * evaluated) when a second run, padded with copies of its first row,
 * predicts them otherwise. Leaves e's output the second run's. */
int ty__train_eval_pad_mixes(ty_train *t, ty_exec *e, const ty_batch *b, ty_tensor *const *in,
                             bool *out_mixes, char *err, size_t err_len);
/* Batch b's feed k into x, a tensor of b->n rows or more: zeros after. */
void ty__train_eval_fill(const ty_train *t, size_t k, const ty_batch *b, ty_tensor *x);
/* eval_shard.c: a flat plan's ranks evaluate together, each its block of
 * the model (train.c's evaluation schedule calls every rank). Made in
 * plan setup from the forward + loss graph src the plan was made for,
 * whose trained weights' data it drops (src is about to go); where it
 * cannot be sharded, rank 0 says why and evaluation gathers the weights
 * on rank 0 as for a pipeline. */
void ty__train_eval_shard_create(ty_train *t, ty_graph *src, const ty_plan *p);
void ty__train_eval_shard_setup(ty_train *t);
int ty__train_eval_sharded(ty_train *t, ty__eval_tally *a, char *err, size_t err_len);
/* pipe_eval.c: a pipeline's stages evaluate together, each running the
 * forward nodes of its stage that the prediction needs (train.c's
 * evaluation schedule calls every rank; the last stage adds up, rank 0
 * reports). Made in eval setup, after the stages' graphs and the
 * BatchNormalization statistics; where it does not apply, rank 0 says why
 * and evaluation gathers the whole weights on rank 0 as before. */
int ty__train_pipe_eval_setup(ty_train *t, char *err, size_t err_len);
bool ty__train_pipe_evaluates(const ty_train *t);
int ty__train_pipe_evaluate(ty_train *t, ty__eval_tally *a, char *err, size_t err_len);
void ty__train_pipe_eval_destroy(ty__pipe_eval *e);
/* Whether every rank takes part in an evaluation with its own blocks
 * (eval_shard.c, pipe_eval.c): none gathers the whole weights. */
bool ty__train_ranks_evaluate(const ty_train *t);
/* Whether rank 0 of a sharded run can hold the whole weights an
 * evaluation gathers beside what its plan holds there (every rank decides
 * alike; rank 0 logs the first skip). True for every other run, and for
 * ranks evaluating together (eval_shard.c, pipe_eval.c). */
bool ty__train_eval_fits(ty_train *t);
/* inference.c: turns g's training-mode switches off in place
 * (BatchNormalization's training_mode, Dropout's training_mode input). */
int ty__train_inference_mode(ty_graph *g);
/* *out (owned, one entry per node of g): the node computes something the
 * outputs outs need. */
int ty__train_needed_nodes(const ty_graph *g, const int *outs, size_t n_outs, bool **out);

/* ckpt_dir.c */
/* Refuses a checkpoint path rank 0 could not write, before any step,
 * locks it for the run (t->ckpt_lock: another run's lock is waited for
 * opts.checkpoint_lock_wait_s, then refused), and removes what interrupted
 * saves of it left. */
int ty__train_probe_checkpoint(ty_train *t, char *err, size_t err_len);

/* checkpoint.c */
int ty__train_save(ty_train *t, char *err, size_t err_len);
/* A plan's save (t->shard): gathered and written one tensor at a time. */
int ty__train_save_streamed(ty_train *t, char *err, size_t err_len);
/* Returns 1 when resumed, 0 when there was nothing to resume. */
int ty__train_load(ty_train *t, char *err, size_t err_len);

/* fingerprint.c: sets t->model_fp from t->model as submitted (before any
 * weight is dropped), the same on every rank of any plan: 0 or TY_ENOMEM. */
int ty__train_fingerprint(ty_train *t);

/* bnstats.c */
/* Whether node n of g is a BatchNormalization whose running statistics
 * (inputs 3 and 4, float initializers) the trainer keeps in t->bn. */
bool ty__train_bn_keeps_stats(const ty_graph *g, const ty_graph_node *n);
int ty__train_bn_setup(ty_train *t);
void ty__train_bn_destroy(ty_train *t);
/* After a training run: folds the batch statistics into the running ones. */
int ty__train_bn_update(ty_train *t, char *err, size_t err_len);
/* Folds one node's batch statistics (x, its data input, [N, C, ...]) into
 * b's running ones; TY_EINVAL for an x of another shape. */
int ty__train_bn_fold(ty__bn *b, const ty_tensor *x);
/* Refuses x, the data input of t->bn[b] (one with x_id), when it holds one
 * value per channel (batch x spatial == 1): its batch statistics are that
 * value, the output is the bias and nothing below it trains. PyTorch
 * refuses it too. The message names the node, the shape and the batch. */
int ty__train_bn_check_batch(const ty_train *t, size_t b, const ty_tensor *x, char *err,
                             size_t err_len);
/* Folds a batch's statistics given as its mean and population variance
 * (C each) over count elements per channel (a plan's summed statistics). */
int ty__train_bn_fold_stats(ty__bn *b, const ty_tensor *mean, const ty_tensor *var, double count);
/* The BatchNormalization data inputs the executor must keep (*out owned). */
int ty__train_bn_keep(const ty_train *t, int **out_ids, size_t *out_n);

/* parallel.c: a plan's rank */
bool ty__train_planned(const ty_train *t);
/* After the loss and the data are bound: the plan, the shard, the local
 * graph in place of g, and each feed's tensor its local slice. */
int ty__train_plan_setup(ty_train *t, char *err, size_t err_len);
/* Copies this rank's slice of a global batch into the feeds. */
int ty__train_plan_load_batch(ty_train *t, const ty_batch *b, char *err, size_t err_len);
/* After the parameters are chosen: param_axes. */
int ty__train_plan_params(ty_train *t, char *err, size_t err_len);
/* Whether this rank holds parts of the parameters (a flat plan's rank, or
 * a pipeline stage's rank): evaluation then goes through rank 0's
 * full_params and full_stats, a checkpoint is gathered onto
 * rank 0 a tensor at a time, and resuming slices each tensor out of the
 * mapped checkpoint (resume.c). */
bool ty__train_sharded(const ty_train *t);
/* Allocates full_params and full_stats. */
int ty__train_plan_full(ty_train *t);
/* Every rank: rank 0's full parameters and running statistics from every
 * slice, for an evaluation (the other ranks hold none). */
int ty__train_plan_gather(ty_train *t, char *err, size_t err_len);
/* A sharded rank's save streamed through rank 0 (checkpoint.c), one
 * tensor at a time. Item k is parameter k, or for k >= np running
 * statistic k - np. Every rank calls these in the same order: first the
 * optimizer's heads, per parameter p its steps and saved buffer count
 * (rank 0's are the file's) and how many buffers every rank gathers
 * (ngather[p]); then item k's full tensor onto rank 0 (*out malloc'd
 * there, NULL elsewhere) and buffer b of parameter p's optimizer state into
 * full (rank 0's full numel floats, NULL elsewhere).
 * ty__train_plan_full_numel: value v's element count whole. */
/* Save item k of t (a checkpoint's, an evaluation's, a resume's):
 * parameter k, or for k >= np running statistic k - np of the
 * BatchNormalization nodes, k < np + 2 n_bn. Its value id in t->g; its
 * tensor in *out_local when that is not NULL. */
int ty__train_save_item(const ty_train *t, size_t k, ty_tensor **out_local);
int ty__train_plan_save_heads(ty_train *t, uint64_t *steps, uint32_t *nbuf, uint32_t *ngather);
int ty__train_plan_gather_item(ty_train *t, size_t k, float **out);
int ty__train_plan_gather_buf(ty_train *t, size_t p, int b, float *full);
size_t ty__train_plan_full_numel(const ty_train *t, int v);
/* Rank 0: value v's global tensor into full (NULL on the other ranks)
 * from every rank's n floats at local, v laid out as shard s holds it.
 * Every rank calls it. */
int ty__train_shard_gather(ty_train *t, const ty_shard *s, int v, const float *local, size_t n,
                           float *full);
/* Frees the full tensors: rank 0 after each evaluation that gathered them
 * (the next gather allocates them again). */
void ty__train_plan_release(ty_train *t);
/* A rank's part of value v (held at local): v's full shape and the
 * rank's block of it (start, len), all of it on a rank that is not
 * sharded; *held false where it holds nothing of v (another pipeline
 * stage's parameter). TY_EINTERNAL when the block is not local's size. */
int ty__train_plan_block(const ty_train *t, int v, const ty_tensor *local, ty_shape *full,
                         int64_t *start, int64_t *len, bool *held);
void ty__train_plan_destroy(ty_train *t);

/* resume.c: a rank resumes from mapped files (a sharded one, a plan's or
 * a pipeline stage's, its slices of them). */
typedef struct ty__mapped {
  const uint8_t *data; /* a read-only mapping of the file; NULL when it is empty */
  size_t len;
} ty__mapped;
/* Maps path: 0, TY_ENOTFOUND, TY_EINVAL (a directory, FIFO or other file
 * that is not a regular one: refused, never waited on), TY_EPERM (not
 * readable), TY_ENOMEM (no memory or descriptor to open or map it) or
 * TY_EIO, with err naming it. None of them means the file is damaged. */
int ty__train_map(const char *path, ty__mapped *out, char *err, size_t err_len);
void ty__train_unmap(ty__mapped *m);
/* The rank's slice (or all) of each parameter and running statistic from
 * the checkpoint model onnx (at path), walking its encoding: the model is
 * not imported, nothing whole is allocated. Refuses a tensor that is
 * missing or has another shape. */
int ty__train_resume_weights(ty_train *t, const ty__mapped *onnx, const char *path, char *err,
                             size_t err_len);
/* The rank's optimizer from the full optimizer state data (the state
 * file's part after its header), each buffer sliced like its parameter. */
int ty__train_resume_optim(ty_train *t, const uint8_t *data, size_t len, char *err, size_t err_len);
/* The world the data is sharded over: world_size, or 1 for a plan. */
uint32_t ty__train_data_world(const ty_train *t);
/* The random ops' noise_seed (ops/exec.h) of this step: from the run's
 * seed, the step and the data-parallel rank (not a plan's rank: a plan's
 * ranks draw their slices of one tensor, ops/kernels/random.c), so each
 * rank and step has its own noise and a resumed run draws it again. */
uint64_t ty__train_noise_seed(const ty_train *t);

/* device.c: the executor a training step runs on. DEVICE_GPU jobs use
 * ops/cuda's GPU executor where this build has it and a GPU is visible,
 * and say on the log (once) when they do not and why. */
bool ty__train_on_gpu(ty_train *t);
/* Runs the training graph on the GPU executor (created at the first step;
 * Dropout reseeded per step as a new CPU executor would be). */
int ty__train_gpu_run(ty_train *t, char *err, size_t err_len);
void ty__train_gpu_destroy(ty_train *t);
/* True when the device also runs the optimizer (the GPU executor in a
 * single process, or with a collective that reduces device buckets); the
 * weights then live on the device. */
bool ty__train_gpu_updates(const ty_train *t);
/* Completes the device buckets' reductions in flight (after a failure). */
void ty__train_gpu_drain(ty_train *t);
/* The optimizer step of every parameter on the device at rate lr. */
int ty__train_gpu_update(ty_train *t, float lr, char *err, size_t err_len);
/* Copies the device's weights and optimizer state back to the trainer's
 * host tensors and ops/optim (a no-op unless ty__train_gpu_updates). */
int ty__train_gpu_sync(ty_train *t, char *err, size_t err_len);
/* A value of the last step's run, from whichever executor ran it. */
const ty_tensor *ty__train_value(ty_train *t, int value_id);

/* pipe.c: a rank of a pipelined plan (docs/training.md, "Pipeline
 * stages"). Every rank holds every parameter and the whole optimizer (so
 * checkpoints and resume are the single-process ones); it trains only its
 * stage's. */
bool ty__train_piped(const ty_train *t);
/* A pipeline's rank holds its stage's parameters and their optimizer
 * state (on a stage of several devices its blocks), nothing of the
 * others': always, with stages. */
bool ty__train_pipe_sharded(const ty_train *t);
/* The copy of t->g a pipeline cuts its stages from where it rewrote the
 * weighted means (pipe_setup.c), NULL where it cuts t->g itself; owned
 * by the pipeline. */
ty_graph *ty__train_pipe_own_src(const ty_train *t);
/* parallel.c: frees the initializer data g holds for t's parameters and
 * BatchNormalization statistics (found by name; those g lacks are
 * skipped), for a copy whose executors bind t's tensors over them; adds
 * the bytes freed to *freed. */
int ty__train_drop_weights(const ty_train *t, ty_graph *g, size_t *freed);
/* From plan_setup, before the parameters are chosen: takes p (freed on
 * error too), checks it fits the job and cuts this rank's stage graph. */
int ty__train_pipe_setup(ty_train *t, ty_plan *p, char *err, size_t err_len);
/* accum.c: config.micro_batches > 1 without a plan (one process or
 * data-parallel ranks): the step runs as a pipeline of one stage over
 * this rank's batch (pipe.c: its micro-batches, random draws, weighted
 * means, BatchNormalization statistics and gradient sums), then sums the
 * gradients over the data-parallel ranks once; also with one
 * micro-batch on data-parallel ranks whose loss is not a plain mean
 * (a weighted or ignore_index mean, a sum). ty__train_accum: whether
 * t does; setup refuses a micro-batch count that does not divide the
 * rank's batch, naming config.micro_batches; sum all-reduces n floats of
 * buf over the ranks (summed, not averaged; a no-op on one). */
bool ty__train_accum(const ty_train *t);
int ty__train_accum_setup(ty_train *t, char *err, size_t err_len);
int ty__train_accum_open(ty_train *t, ty_plan *p, char *err, size_t err_len);
int ty__train_accum_sum(ty_train *t, float *buf, size_t n, const char *what, char *err,
                        size_t err_len);
/* After the parameters: the stage's parameters, its differentiated graphs. */
int ty__train_pipe_build(ty_train *t, char *err, size_t err_len);
/* One global batch (already in the feeds): the 1F1B schedule over the
 * micro-batches, the sum of the stage's gradients over its ranks, their
 * clipping (config.max_grad_norm: the whole model's norm), the update of
 * this stage's parameters. *out_loss: this rank's share of the step's
 * mean loss (the last stage's ranks; 0 elsewhere), summed over the world
 * for the log. */
int ty__train_pipe_step(ty_train *t, float lr, double *out_loss, char *err, size_t err_len);
/* Rank 0's full parameters and running statistics become every stage's
 * current ones (every rank calls it: evaluation). */
int ty__train_pipe_gather(ty_train *t, char *err, size_t err_len);
const ty_plan *ty__train_pipe_plan(const ty_train *t);
/* After ty__train_bn_setup: on a stage mesh that splits a
 * BatchNormalization's channels, its running statistics become this rank's
 * blocks of them (folded from its channels' batch statistics, gathered
 * for checkpoints as parameters are). */
int ty__pipe_bn_blocks(ty_train *t);
/* A sharded pipeline rank's part of value v of t->g (held at local): v's
 * full shape and the rank's block of it (start, len), which is all of it
 * unless its stage splits v; *held false for another stage's parameter
 * (local holds no element). */
int ty__train_pipe_block(const ty_train *t, int v, const ty_tensor *local, ty_shape *full,
                         int64_t *start, int64_t *len, bool *held);
/* A sharded pipeline's streamed save (ty__train_plan_save_heads, _gather_
 * item and _buf, which call these): each from the stage that trains the
 * parameter; the heads gather every buffer the optimizer keeps (made
 * where missing: another stage's parameters), rank 0 saves them where the
 * stage's steps are not 0. Collective, like those. */
int ty__train_pipe_save_heads(ty_train *t, uint64_t *steps, uint32_t *nbuf, uint32_t *ngather);
int ty__train_pipe_gather_item(ty_train *t, size_t k, float **out);
int ty__train_pipe_gather_buf(ty_train *t, size_t p, int b, float *full);
size_t ty__train_pipe_full_numel(const ty_train *t, int v);
/* Gradient clipping (clip.c): whether this rank's block of parameter p's
 * gradient counts once in a sum over the job's world (its stage trains p
 * and is p's first holder; on a stage mesh no rank before it holds the
 * same block); and that block's gradient for the update (the stage's
 * summed and averaged one), NULL for another stage's parameter. */
bool ty__train_pipe_counts(const ty_train *t, size_t p);
const float *ty__train_pipe_grad(ty_train *t, size_t p);
void ty__train_pipe_destroy(ty_train *t);

/* pipe_shard.c: a stage's intra-stage plan run through ops/shard (see
 * there). Open makes rank's shard of g (the forward + loss graph p was made
 * for) on a communicator over the stage's mesh, built on world (the job's:
 * stages x a stage's ranks, a stage mesh with both axes split on its inner
 * axes). */
typedef struct ty__pipe_tp ty__pipe_tp;
int ty__pipe_tp_open(const ty_graph *g, int loss, const ty_plan *p, int rank,
                     const ty_shard_comm *world, ty__pipe_tp **out, char *err, size_t err_len);
void ty__pipe_tp_close(ty__pipe_tp *tp);
ty_shard *ty__pipe_tp_shard(ty__pipe_tp *tp);
/* Per node of local (src itself, or a shard's local graph of src): the
 * stage that runs it; *out (malloc'd) has one entry per node. */
int ty__pipe_node_stages(const ty_graph *src, const ty_plan *p, const ty_graph *local, int **out);
/* Whether this rank's block of value v counts once in a sum over the stage
 * (its copy is partial over `partial` axes, or the first of its duplicates). */
bool ty__pipe_tp_counts(const ty__pipe_tp *tp, int v, unsigned partial);
/* Whether this rank's block of value v is all of it. */
bool ty__pipe_tp_whole(const ty__pipe_tp *tp, int v);
/* Value v's full shape and this rank's block of it (start and len per dim). */
int ty__pipe_tp_block(const ty__pipe_tp *tp, int v, ty_shape *full, int64_t *start, int64_t *len);
/* *io (created on first use) = this rank's block of parameter v's full tensor. */
int ty__pipe_tp_slice(const ty__pipe_tp *tp, int v, const ty_tensor *full, ty_tensor **io);
/* *out (new) = this rank's block of data input v for the micro-batch whose
 * rows start at first_row of all (the global batch). */
int ty__pipe_tp_feed(const ty__pipe_tp *tp, int v, const ty_tensor *all, int64_t first_row,
                     ty_tensor **out);
/* Sums this rank's block of parameter v's gradient (n floats) over the
 * stage axes it is partial on (ops/shard's ty_shard_grad_axes). */
int ty__pipe_tp_sum_grad(ty__pipe_tp *tp, int v, float *buf, size_t n, const char *what);
/* The shard's BatchNormalization computed from summed statistics whose
 * running mean is the value named running_mean; NULL when the shard left
 * the node whole (its batch is not split). */
const ty_shard_bn_info *ty__pipe_tp_bn(const ty__pipe_tp *tp, const char *running_mean);

/* pipe_graph.c: the graphs a stage runs (see there). */
typedef struct ty__pipe_grads {
  ty_graph *g;      /* the differentiated stage graph (owned) */
  int *wrt, *grads; /* n value ids in g: what was differentiated, its gradient (or
                     * TY_NO_VALUE); owned */
  size_t n;
} ty__pipe_grads;
/* The nodes of src with in_set[node] as a graph of their own (value names
 * kept): what they read and none computes is an input (initializers keep
 * their data); the outputs are the n_outputs value ids listed, or with
 * outputs NULL what they compute and another node reads (or src outputs). */
int ty__pipe_extract(const ty_graph *src, const bool *in_set, const int *outputs, size_t n_outputs,
                     ty_graph **out, char *err, size_t err_len);
/* fwd differentiated with respect to the activations it receives (float
 * inputs named in `received`) and the named parameters: of loss_name, or
 * (NULL) of sum_k ReduceSum(sent_k * "<sent_k>.seed"). */
int ty__pipe_differentiate(const ty_graph *fwd, const char *loss_name, const char *const *sent,
                           size_t n_sent, const char *const *received, size_t n_received,
                           const char *const *params, size_t n_params, ty__pipe_grads *out,
                           char *err, size_t err_len);
/* The differentiated graph cut where the seeds enter: *out_f (no seed
 * read) and *out_b (the rest), both owned by the caller. */
int ty__pipe_split(const ty_graph *train, ty_graph **out_f, ty_graph **out_b, char *err,
                   size_t err_len);

/* grads.c: the gradient buckets (setup); a step's start (every bucket
 * pending); the executor's ready hook (user: the ty_train); the updates
 * after a run (summing the buckets across ranks, clipping); completing
 * what a failed step started; parameter p's optimizer update from
 * gradient g. */
int ty__train_build_buckets(ty_train *t);
void ty__train_begin_buckets(ty_train *t);
int ty__train_grad_ready(int value_id, const ty_tensor *g, void *user);
int ty__train_apply_grads(ty_train *t, float lr, char *err, size_t err_len);
void ty__train_drain(ty_train *t);
int ty__train_update_param(ty_train *t, size_t p, float lr, const float *g);
/* The scalars of one fused optimizer update (the CPU's and the device's),
 * `steps` updates of the parameter done before it. */
ty_fused_sgd ty__train_sgd_scalars(const ty_optim_opts *o, float lr, uint64_t steps);
ty_fused_adam ty__train_adam_scalars(const ty_optim_opts *o, float lr, uint64_t steps);

/* The trainer's log stream. */
FILE *ty__train_log(const ty_train *t);
/* Parameter p's gradient as the update reads it: its bucket's (summed and
 * averaged) or the executor's; NULL when it was not computed (grads.c). */
const float *ty__train_final_grad(ty_train *t, size_t p);
/* clip.c: config.max_grad_norm's refusals, t->clip_buf and t->clip_counts
 * (nothing when it is 0; after the parameters, a plan's shard or a
 * pipeline's stages are set up); the factor this step's gradients are
 * scaled by into *out, and t->grad_norm: the whole model's norm, the same
 * on every rank (a plan's ranks all call it at the same point of a step:
 * it sums over the world). */
int ty__train_clip_setup(ty_train *t, char *err, size_t err_len);
int ty__train_clip_scale(ty_train *t, float *out, char *err, size_t err_len);

#endif
