/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train: the training loop trainrun runs for one rank of a job.
 *
 * Per step: the next batch of this rank's shard -> one executor run of the
 * model graph extended with the loss and its backward pass (ops/autodiff)
 * -> the gradients, bucketed, through an optional all-reduce hook (started
 * during backward with the asynchronous hook) -> the optimizer (ops/optim) at the scheduled
 * learning rate. Progress lines go to the log stream at the log interval, test accuracy after each
 * epoch: step 100/14055 loss 0.5123 lr 0.05 samples/s 12345 epoch 1 test_accuracy 0.8512 test_loss
 * 0.4120
 *
 * Determinism: a step's result depends only on the weights, the optimizer
 * state, the step number and the batch, and the batch order is a function
 * of (seed, epoch) (ops/data). Dropout's masks and the random ops
 * (RandomNormalLike, ...) draw each element from its position and a key of
 * (seed, step, data-parallel rank, node) (ops/kernels/random.c); the
 * executor is built once and reseeded per step. A run resumed from a
 * checkpoint therefore continues bit-identically to an uninterrupted one
 * (same thread count, same binary).
 *
 * Checkpoints (at the interval, or at the end of each epoch without one; at
 * the end of the run; on stop requests), rank 0 only: the model as ONNX with the trained
 * initializers (and the BatchNormalization running statistics) and the
 * training state, named by step for the checkpoint path PATH (lib/wire's
 * ty_ckpt_step_path: "mlp.step-000120.onnx" and "mlp.step-000120.onnx.state"
 * for "mlp.onnx"), each written to a temporary name, fsync'ed and renamed;
 * then PATH and PATH.state are pointed at them (hard links, renamed into
 * place) and all but the newest config->keep_checkpoints pairs are removed,
 * each state before its model. Resuming takes the newest pair that is
 * complete and intact and says which one it skipped and why. The state file:
 *
 *   offset size  field (little-endian)
 *   0      4     magic "TYTS"
 *   4      4     u32 format version (3; 2 lacks the fields at 68 and 72, 1
 *                  the sample count too: such a state resumes unchecked)
 *   8      8     u64 step: optimizer steps taken
 *   16     8     u64 epoch: the epoch the next batch comes from
 *   24     8     u64 batch: index of the next batch within that epoch
 *   32     8     u64 seed of the run (must match on resume)
 *   40     4     u32 data-parallel world size: WORLD_SIZE of data-parallel
 *                  ranks, 1 for one process and for the ranks of a plan
 *                  (informative: every rank count reads the same global
 *                  batches, so a run resumes on any; the log says so)
 *   44     4     u32 global batch size (must match)
 *   48     4     u32 CRC-32 of the ONNX file's bytes (pairs the two files)
 *   52     8     u64 length L of the optimizer state
 *   60     8     u64 training samples in the data set (must match: the
 *                  epoch's order and length follow it)
 *   68     4     u32 fingerprint of the model the run started from
 *                  (fingerprint.c: the graph and the initializers the
 *                  checkpoint does not hold; must match)
 *   72     4     u32 config.dataset.shuffle, 1 on (must match)
 *   76     L     the optimizer state (ops/optim's format)
 *   76+L   4     u32 CRC-32 of every byte before it
 *
 * The RNG position is the step (Dropout's and the random ops' seeds are
 * derived from it), so no
 * generator state needs saving. The ONNX file is written first, then the
 * state; a crash in between leaves a state whose CRC of the model does not
 * match, which resume reports instead of mixing two checkpoints.
 *
 * Threads: one training thread; ops/data may prefetch on another.
 */
#ifndef TY_OPS_TRAIN_TRAIN_H
#define TY_OPS_TRAIN_TRAIN_H

#include "ops/data/data.h"
#include "ops/exec.h"
#include "ops/graph.h"
#include "ops/optim/optim.h"
#include "ops/plan/plan.h"
#include "ops/shard/shard.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- config ---------------------------------------------------------------
 * The decoded, validated and defaulted trainyard.TrainConfig
 * (proto/train_config.proto). Strings are owned by the struct; a zeroed
 * struct plus the loss and optimizer fields is a valid Fashion-MNIST
 * config. */
typedef enum ty_train_data_kind {
  TY_TRAIN_DATA_FASHION_MNIST = 0, /* data_dir, mean, std */
  TY_TRAIN_DATA_ARRAYS,            /* train_arrays, test_arrays */
  TY_TRAIN_DATA_TOKENS,            /* tokens */
} ty_train_data_kind;

/* A DataArray's CsvColumns: which columns of a CSV file feed the input. */
typedef struct ty_train_csv {
  bool set; /* the file is a CSV file */
  bool header, categories;
  char delimiter; /* ',' unless configured */
  char **columns; /* as configured; none: every column */
  size_t n_columns;
} ty_train_csv;

/* A DataArray's image_folder: its images feed input, and the config adds
 * a second array (same path, input = image_folder.labels) for the ids. */
typedef enum ty_train_image {
  TY_TRAIN_IMAGE_NONE = 0,
  TY_TRAIN_IMAGE_PIXELS, /* the DataArray itself */
  TY_TRAIN_IMAGE_LABELS, /* added after the configured arrays */
} ty_train_image;

/* A DataArray: a file feeding one model input (or the labels). */
typedef struct ty_train_array {
  char *path; /* as configured; relative paths are taken from data_dir */
  char *input;
  char *key; /* the array of an .npz archive; NULL for other files */
  ty_train_csv csv;
  ty_train_image image;
  uint32_t resize;          /* PIXELS: image_folder.resize, 0 when unset */
  bool center_crop;         /* PIXELS: image_folder.center_crop */
  size_t at;                /* LABELS: the index of its image folder's DataArray, for messages */
  float divisor, mean, std; /* test arrays: 0 already replaced by the train array's */
  /* Per-channel statistics (DataArray.channel_mean / channel_std), both
   * n_channels long, owned; NULL and 0 when unset (test arrays: the train
   * array's copied when they set neither these nor mean and std). */
  float *channel_mean, *channel_std;
  size_t n_channels;
  ty_data_augment augment; /* train arrays only */
} ty_train_array;

/* The index of arrs[i]'s DataArray in its config list: its own, or for an
 * image folder's labels that of the folder's DataArray. */
static inline size_t ty_train_array_at(const ty_train_array *arrs, size_t i) {
  return arrs[i].image == TY_TRAIN_IMAGE_LABELS ? arrs[i].at : i;
}

/* TokenStream.labels: where the model shifts the window. */
typedef enum ty_train_token_labels {
  TY_TRAIN_TOKENS_NEXT = 0, /* inputs window[:-1], labels window[1:] */
  TY_TRAIN_TOKENS_SAME,     /* inputs and labels the same window */
  TY_TRAIN_TOKENS_NONE,     /* inputs only: the model's loss reads them */
} ty_train_token_labels;

typedef struct ty_train_tokens {
  char *train_path, *test_path; /* test_path NULL: no evaluation */
  ty_data_type type;            /* TY_DATA_U16, TY_DATA_I32, or INVALID (.npy only) */
  uint32_t context, stride, vocab_size;
  ty_train_token_labels labels;
} ty_train_tokens;

typedef struct ty_train_config {
  char *loss_output;     /* a graph output holding the loss, or NULL */
  char *logits_output;   /* builtin softmax cross-entropy over it, or NULL */
  bool class_last;       /* its classes on the last axis (else axis 1) */
  float label_smoothing; /* of the builtin loss, in [0, 1) */
  bool ignore_index_set; /* builtin loss: ignore_index given; else torch's -100 */
  int64_t ignore_index;  /* with ignore_index_set: labels equal to it are left out */
  char *label_input;     /* default "labels" */
  char *data_input;      /* NULL: the graph's only input */
  ty_optim_opts optim;
  ty_lr_schedule schedule; /* base_lr set; COSINE total_steps 0 = whole run */
  uint32_t batch_size;     /* global, default 64 */
  uint32_t epochs;
  uint64_t max_steps;
  ty_train_data_kind data_kind;
  char *data_dir;  /* fashion-mnist: NULL is TY_DATA_FASHION_MNIST_DIR; else the base of relative
                      paths */
  float mean, std; /* fashion-mnist only */
  ty_train_array *train_arrays, *test_arrays;
  size_t n_train_arrays, n_test_arrays;
  ty_train_tokens tokens;
  bool shuffle;
  bool drop_last; /* config.drop_last ON: skip the epoch's last partial batch (else pad it) */
  uint64_t seed;
  char *checkpoint_path; /* NULL: no checkpoints */
  uint64_t checkpoint_interval;
  uint32_t keep_checkpoints; /* newest checkpoints kept; default TY_CKPT_KEEP_DEFAULT */
  uint64_t log_interval;     /* default 100 */
  bool fusion;
  bool eval_each_epoch;
  uint64_t eval_interval;   /* steps between evaluations besides epoch ends; 0: none */
  uint32_t eval_batch_size; /* rows per evaluation batch; 0: chosen by memory (eval.c) */
  bool gpu; /* config.device == DEVICE_GPU: NCCL collectives (see train_config.proto) */
  char **trainable, **frozen; /* fnmatch patterns; none: the default rule */
  size_t n_trainable, n_frozen;
  /* The planner's pipeline knobs: stages 0 (left empty, the default: no
   * pipeline unless no flat plan fits, ty_plan_request.pipeline_if_needed)
   * or 1 (asked for: none), TY_TRAIN_AUTO: the planner's choice, n: n
   * stages; micro-batches 0: the planner's choice, n: n. */
  int pipeline_stages;
  int micro_batches;
  /* Clip the gradients' global L2 norm to this before each update
   * (torch.nn.utils.clip_grad_norm_); 0: no clipping. */
  float max_grad_norm;
} ty_train_config;

#define TY_TRAIN_AUTO (-1) /* pipeline_stages "auto" */

/* Decodes a serialised TrainConfig and validates it. Errors are
 * TY_EPROTO (not a TrainConfig) or TY_EINVAL with the field in err, e.g.
 * "config.sgd.lr: must be finite and > 0 (got 0)". *out is zeroed first; close it. */
int ty_train_config_decode(const uint8_t *data, size_t len, ty_train_config *out, char *err,
                           size_t err_len);
/* The same from a file, which must be a regular one (a FIFO is refused,
 * not waited on): TY_ENOTFOUND / TY_EIO, or TY_EINVAL "PATH: is a
 * directory (...)" / "PATH: not a regular file (...)", name the path. */
int ty_train_config_load(const char *path, ty_train_config *out, char *err, size_t err_len);
void ty_train_config_close(ty_train_config *c);

/* ---- the loop ------------------------------------------------------------- */
/* Sums buf[0..n) element-wise across all ranks, in place (an all-reduce
 * with SUM); the trainer then divides by the world size. Called once per
 * gradient bucket per step, buckets in the order backward produces them
 * (last layer first); seq numbers the calls 0, 1, 2, ... over the run and
 * is equal on every rank for the same bucket. Returns 0 or a TY_E* code,
 * which aborts the step. */
typedef int (*ty_train_allreduce_fn)(float *buf, size_t n, uint64_t seq, void *user);

/* The asynchronous form, which overlaps the all-reduce with backward: the
 * trainer packs each gradient into its bucket as soon as the executor has
 * computed it and, once a bucket is complete, calls start on it (buckets
 * in the same order and with the same seq numbering as the synchronous
 * hook; buf stays untouched until its wait). wait completes the oldest
 * started bucket; the trainer waits for all of them only before the
 * optimizer step. progress (may be NULL) is called while backward runs so
 * the transport can move outstanding reductions on. All get
 * allreduce_user; each returns 0 or a TY_E* code, which aborts the step. */
typedef struct ty_train_async_allreduce {
  int (*start)(float *buf, size_t n, uint64_t seq, void *user);
  int (*wait)(void *user);
  int (*progress)(void *user);
  /* The GPU executor's buckets (optional, both or neither): buf is device
   * memory, ready an event (cudaEvent_t) on the compute stream the
   * reduction must wait for; completed in start order by wait_device. */
  int (*start_device)(float *buf, size_t n, uint64_t seq, void *ready, void *user);
  int (*wait_device)(void *user);
} ty_train_async_allreduce;

/* A rank of a parallel plan (ops/plan; docs/planner.md, "Executing a
 * plan"). The trainer builds its local graph with ops/shard, feeds it this
 * rank's slice of each global batch (every rank assembles the global batch
 * in single-process order), sums each gradient over the mesh axes the plan
 * says it is partial on (never averaging: the loss is the global mean) and
 * updates only its slices. Checkpoints are gathered on rank 0 into the
 * single-process format, so a job resumes on any device count, with or
 * without a plan. Every hook gets comm.user. */
typedef struct ty_train_parallel {
  const ty_plan *plan;            /* run this plan (copied); or NULL and: */
  const ty_plan_request *request; /* plan with this cluster, mode and solver; the config gives
                                   * the batch, the loss and the optimizer */
  ty_shard_comm comm;             /* the forward and backward collectives */
  /* Gradient buckets: one all-reduce over the axis set, started during
   * backward as the bucket fills (what names its tensors); wait completes
   * the oldest started; progress (may be NULL) moves them on. */
  int (*start)(unsigned axes, float *buf, size_t n, const char *what, void *user);
  int (*wait)(void *user);
  int (*progress)(void *user);
  /* Checkpoints and evaluation: rank 0 receives every rank's n floats in
   * rank order (out: world_size * n floats on rank 0, NULL elsewhere). */
  int (*gather)(const float *in, size_t n, float *out, void *user);
  /* Every few steps (as many as take about a quarter of a second, at most
   * 8; ty_train_steps): sets every rank's stop flag when one rank's is
   * set, and *step_s (this rank's seconds per step since the last call) to
   * the largest over the ranks, from which every rank computes the same
   * next call's step. May be NULL for a world of one. */
  int (*agree_stop)(double *step_s, void *user);
  /* A pipelined plan's stage messages, point to point (activations
   * forward, their gradients back). hdr is (sequence: the step, the
   * sender's stage, the micro-batch, a hash of the tensor's name, kind and
   * shape). send queues buf[0..n) to rank peer and returns (the transport
   * copies it); recv waits, within the transport's deadline, for the next
   * message from peer and fills out_hdr, *out_n (the floats sent) and, when
   * *out_n == n, buf: the trainer checks the header and names the rank,
   * stage and micro-batch of a mismatch; flush completes every queued
   * send (end of step). The comm's all_reduce over axis 1 (axes 2) sums
   * over a stage's ranks, over both (3) the world: the mesh of a
   * pipelined plan is stages x a stage's ranks; a stage's intra-stage
   * plan runs its collectives on axis 1 too (all four of comm's), and, on
   * a stage mesh m0 x m1 with both axes split, on the inner axes 2 and 3
   * (axis sets 4 and 8): axis 1 split as the stage mesh, rank = stage x
   * m0 m1 + c0 m1 + c1 (ops/collective's ty_coll_set_mesh_inner). */
  int (*send)(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n, void *user);
  int (*recv)(uint32_t peer, uint64_t out_hdr[4], float *buf, size_t n, size_t *out_n, void *user);
  int (*flush)(void *user);
} ty_train_parallel;

typedef struct ty_train_opts {
  uint32_t rank, world_size;       /* world_size 0 is read as 1 */
  ty_train_allreduce_fn allreduce; /* NULL: single process (unless async is set) */
  ty_train_async_allreduce async;  /* start and wait set: used instead of allreduce */
  void *allreduce_user;
  /* Sums n floats over the ranks, every rank calling it at the same step,
   * outside the buckets' numbering (the logged loss: each rank's is its
   * shard's); what names the sum. NULL: each rank logs its own loss. */
  int (*sum)(float *buf, size_t n, const char *what, void *user);
  size_t bucket_bytes; /* gradient bucket size; 0: 4 MiB */
  bool resume;         /* require a checkpoint to resume from */
  /* Stop after this many optimizer steps in total (trainrun --steps),
   * instead of the config's epochs / max_steps. The learning-rate schedule
   * keeps the config's length. 0: the config decides. */
  uint64_t max_steps;
  bool no_fusion;      /* run one kernel per node (overrides config) */
  ty_workers *workers; /* threads for every executor (borrowed, ops/exec.h); NULL: one */
  bool prefetch;       /* assemble batches on a background thread */
  /* Nonzero: finish the step, checkpoint, return; read with atomic loads
   * (another thread may set it: trainrun's signal thread). */
  const volatile sig_atomic_t *stop;
  /* Set to 1 (an atomic store) once this run's first step has completed:
   * before it a stopped run has nothing new to save (a fresh run trained
   * nothing, a resumed one's checkpoint is on disk). NULL: not set. */
  volatile sig_atomic_t *trained;
  /* Sleep this long after every step. Lets tests and demos act on a running
   * job (kill a rank after a checkpoint) however fast training is; the
   * arithmetic is unchanged. 0 (the default) never sleeps. */
  uint32_t step_delay_ms;
  /* Rank 0 locks checkpoint_path (ty_ckpt_lock_path: "m.lock" for
   * "m.onnx") for the run, so that two runs never write one checkpoint
   * (each would resume from the other's state): a lock another run holds is waited for this long (a
   * cancelled run's last save), then refused. 0: refused at once. */
  uint32_t checkpoint_lock_wait_s;
  FILE *log; /* progress lines; NULL: stdout */
  /* The file the model was loaded from (trainrun --model): a
   * checkpoint_path naming that very file (the same device and inode) is
   * refused, since a save would replace it. NULL: not checked. */
  const char *model_path;
  /* Run a parallel plan over the world_size ranks instead of data
   * parallelism (copied; see above). */
  const ty_train_parallel *parallel;
} ty_train_opts;

typedef struct ty_train ty_train;

/* Builds the training graph (a copy of model plus loss and backward), the
 * optimizer and the data loaders, and resumes from config->checkpoint_path
 * when its state file exists (or fails if opts->resume and it does not).
 * Everything that can be checked is checked here, before any step: the
 * checkpoint path can be written (rank 0), every model input is fed, and
 * every data file's sample shape and type fit the input it feeds (errors
 * name both, e.g. "config.dataset.train[0] (x.npy): samples are float64
 * (3, 32, 32) (3072 values) but model input "x" takes float32 [N, 784]"),
 * labels lie below the class count. Logs (to opts->log) how many
 * parameters are trained and which float initializers are frozen, and
 * warns once when the loss is applied to a Softmax output.
 * model and config are borrowed and must outlive the trainer. */
int ty_train_create(const ty_graph *model, const ty_train_config *config, const ty_train_opts *opts,
                    ty_train **out_train, char *err, size_t err_len);
void ty_train_destroy(ty_train *t);

/* Trains until the configured end or a stop request; checkpoints as
 * described above. Sets *out_stopped when a stop request ended it. */
int ty_train_run(ty_train *t, bool *out_stopped, char *err, size_t err_len);
/* Runs up to n more steps (for tests and benchmarks), no epoch-end work
 * beyond what those steps reach. */
int ty_train_steps(ty_train *t, uint64_t n, char *err, size_t err_len);
/* Test-split accuracy (builtin loss only; else -1) and mean loss (NaN
 * where no batch was evaluated: a model's own loss evaluates whole batches
 * only, docs/training.md, "Evaluation"), with the
 * model in inference mode (Dropout off, BatchNormalization on its running
 * statistics, whatever mode the model was exported in). A flat plan's
 * ranks evaluate together: every rank calls it at once, and rank 0 gets
 * the accuracy (the others -1 and, with the builtin loss, 0). Otherwise
 * rank 0 alone evaluates (a pipeline's ranks gather the whole weights
 * there first, train.c). TY_ESTATE when the config has no test split, or
 * on a rank that does not evaluate. */
int ty_train_evaluate(ty_train *t, double *out_accuracy, double *out_loss, char *err,
                      size_t err_len);
/* Writes the inference form of the ONNX model at model_path (a checkpoint,
 * or any model this runtime imports) to out_path, atomically: Dropout and
 * BatchNormalization switched to inference (BatchNormalization on its
 * running statistics, one output each), and only the nodes the outputs
 * need, so a loss and the labels it reads are gone. outputs names the
 * values to output (n_outputs 0: the model's outputs but loss_output, which
 * may be NULL). Errors name the output at fault. */
int ty_train_export_inference(const char *model_path, const char *const *outputs, size_t n_outputs,
                              const char *loss_output, const char *out_path, char *err,
                              size_t err_len);
/* Writes the checkpoint now (TY_ESTATE without a checkpoint path). */
int ty_train_checkpoint(ty_train *t, char *err, size_t err_len);

uint64_t ty_train_step(const ty_train *t);
uint64_t ty_train_total_steps(const ty_train *t);
/* With config.max_grad_norm: the last step's gradient L2 norm before
 * clipping, the whole model's (the same bits on every rank of a plan);
 * NaN without clipping or before the first step's. */
double ty_train_grad_norm(const ty_train *t);
/* Trained parameters (the float initializers config.trainable / frozen
 * select, by default those the loss depends on, less scalars). */
size_t ty_train_n_params(const ty_train *t);
/* Values in all trained parameters. */
uint64_t ty_train_n_param_values(const ty_train *t);
/* Float initializers left untrained, BatchNormalization statistics aside. */
size_t ty_train_n_frozen(const ty_train *t);
const char *ty_train_frozen_name(const ty_train *t, size_t i);
const char *ty_train_param_name(const ty_train *t, size_t i);
/* The current weights of parameter i (borrowed). */
const ty_tensor *ty_train_param(const ty_train *t, size_t i);
/* BatchNormalization running statistics (running_mean and running_var of
 * every BatchNormalization node whose statistics are initializers, in node
 * order, mean before var). Not trainable: no gradient, no optimizer; each
 * training step updates them PyTorch style, running = momentum * running +
 * (1 - momentum) * batch with the node's ONNX momentum (default 0.9), the
 * variance UNBIASED (sum of squares / (count - 1)). They are saved in and
 * resumed from the checkpoint's ONNX initializers, and evaluation uses
 * them (inference mode). The tensor is borrowed. */
size_t ty_train_n_stats(const ty_train *t);
const char *ty_train_stat_name(const ty_train *t, size_t i);
const ty_tensor *ty_train_stat(const ty_train *t, size_t i);
/* A pipelined plan's rank: the bytes of micro-batch tensors it held at
 * once (feeds, received activations and gradients, activations kept for
 * backward), peak over the run so far; 0 without stages. What activation
 * recomputation saves shows here. */
uint64_t ty_train_pipeline_peak_bytes(const ty_train *t);
/* A pipelined plan's rank: the bytes of the parameters it holds (its
 * stage's; on a stage of several devices its blocks of them), their
 * gradient sums and optimizer state: what the planner counts per device,
 * a parameter's local bytes x (2 + the optimizer's copies); 0 without
 * stages. */
uint64_t ty_train_pipeline_state_bytes(const ty_train *t);
/* The differentiated training graph (borrowed), e.g. for memory reports;
 * a plan's rank's local graph. */
const ty_graph *ty_train_graph(const ty_train *t);
/* The plan this rank runs (borrowed; NULL without opts.parallel) and its
 * shard (TyExtern counts, slices). */
const ty_plan *ty_train_plan(const ty_train *t);
const ty_shard *ty_train_shard(const ty_train *t);
/* Bytes of whole-model copies t holds beside its own parameters and
 * optimizer: a sharded rank 0 gathers the full parameters and running
 * statistics to evaluate and frees them after (a save gathers one tensor
 * at a time), and its inference-mode copy of the model holds none of
 * them, so this is 0 between steps on every rank (the memory the plan
 * was made for). */
size_t ty_train_full_bytes(const ty_train *t);
/* Bytes of whole-model copies t held as its resume ended: 0 on a plan's
 * rank and a pipeline stage's, which slice each tensor straight out of
 * the mapped checkpoint, and on any unplanned run. */
size_t ty_train_resume_full_bytes(const ty_train *t);
/* Frees the data of the initializers that t trains or keeps running
 * statistics of, in model (the graph t was created from, which the caller
 * owns and must not share with another trainer) and in t's training graph
 * (the whole weights; a plan's local slices; a pipeline's copies), keeping
 * their names and shapes (ty_graph_drop_init_data). After create nothing
 * reads them: the rank trains t's parameters, a checkpoint is written from
 * them (a sharded rank's gathered) and a resume copies into them. So a
 * rank holds no copy of the weights between steps but the ones it trains.
 * *out_bytes (may be NULL): the bytes freed. TY_EINVAL when model is not
 * the graph t was created from. */
int ty_train_drop_model_data(ty_train *t, ty_graph *model, size_t *out_bytes);
/* The forward + loss graph a plan for this model and config is made for
 * (the graph ty_train_create plans when opts.parallel has a request), for
 * planning elsewhere (trainrun --write-plan, the controller, trainctl
 * plan): the model with the loss added, shapes inferred, batch dims
 * symbolic. The config's feeds are checked against the model's inputs
 * either way. with_data opens the config's data and takes the labels'
 * shape from it (the builtin loss, when the model has no labels input);
 * without it (the controller has no data) the labels' shape is the one
 * SoftmaxCrossEntropyLoss needs for the logits: their dims without the
 * class axis (axis 1; the last for a token stream), so [N, C] logits take
 * [N] labels and [N, T, V] take [N, T]. Data that fits the model has that
 * shape, so both give the same graph and the same plan. The builtin
 * loss's ignore_index is set on its node where the label data holds it
 * (a run without a plan; a plan's ranks and ty_train_make_plan always set
 * it). The caller destroys *out. */
int ty_train_plan_graph(const ty_graph *model, const ty_train_config *config, bool with_data,
                        ty_graph **out, char *err, size_t err_len);
/* A job's model and config as a planner away from its ranks (the
 * controller's model check, trainctl plan) needs them: the model imported
 * from a path or bytes, the config decoded, and the forward + loss graph
 * (ty_train_plan_graph without the data). */
typedef struct ty_train_job {
  ty_graph *model, *graph;
  ty_train_config config;
} ty_train_job;
/* Loads path (when not NULL or empty) or bytes, and the encoded config.
 * On error *out_what names the input at fault ("model_path", "model_bytes"
 * or "train_config") and err says why; nothing to close then. */
int ty_train_job_load(const char *model_path, const uint8_t *model_bytes, size_t model_len,
                      const uint8_t *config, size_t config_len, ty_train_job *out,
                      const char **out_what, char *err, size_t err_len);
void ty_train_job_close(ty_train_job *j); /* accepts a zeroed struct */
/* Data parallelism without a plan gives every one of `world` ranks an
 * equal share of each batch: TY_EINVAL when they do not divide batch,
 * with "64 is not divisible by the 3 ranks ..." (the caller names the
 * batch_size field) and what works instead (a plan, parallelism auto,
 * splits a batch unevenly). */
int ty_train_check_data_split(uint32_t batch, uint32_t world, char *err, size_t err_len);
/* Whether a graph job of parallelism data runs a plan: with pipeline
 * stages (pipeline_stages more than 1, or "auto") it does, the planner's
 * TY_PLAN_MODE_DATA plan with stages (pipeline x data, every stage's ops
 * splitting the batch), as trainrun --parallelism data plans it; without,
 * it runs none (each rank an equal share of every batch). */
bool ty_train_data_job_planned(const ty_train_config *c);
/* A graph job of parallelism data on `world` ranks: without a plan (see
 * above), the batch split above. TY_EINVAL with *what the config field
 * ("batch_size") and err why. */
int ty_train_check_data_job(const ty_train_config *c, uint32_t world, const char **what, char *err,
                            size_t err_len);
/* A refused search (ty_plan_search's rc and err for req) in a job's
 * words: "cannot plan it for 2 nodes x 4 devices: <err>", and a hint
 * towards data parallelism when auto met a graph the planner cannot
 * shape (TY_EUNSUPPORTED). */
void ty_train_plan_refusal(const ty_plan_request *req, int rc, const char *err, char *out,
                           size_t len);
/* The names of g's float initializers that config lets train (the
 * trainer's rule: config.trainable, else every one but rank-0 scalars,
 * less config.frozen and BatchNormalization statistics), in initializer
 * order; those the loss reaches train. *out is an array the caller frees,
 * of names borrowed from g. TY_ENOMEM. */
int ty_train_candidate_names(const ty_graph *g, const ty_train_config *config, const char ***out,
                             size_t *n_out);
/* What a job's config decides of a plan request for g (the graph
 * ty_train_plan_graph builds): the global batch, the loss (loss_output,
 * else the builtin loss "trainyard.loss"), the parameters that train
 * (req->trained: ty_train_candidate_names, allocated until
 * ty_train_plan_request_close), the optimizer's state and the pipeline
 * knobs (pipeline_stages left empty: pipeline_if_needed). TY_ENOMEM. */
int ty_train_plan_request(const ty_graph *g, const ty_train_config *config, ty_plan_request *req);
/* Frees what ty_train_plan_request allocated in req (req->trained). */
void ty_train_plan_request_close(ty_plan_request *req);
/* Plans this model and config with req (batch, loss and optimizer taken
 * from the config) as every rank of such a job would. */
int ty_train_make_plan(const ty_graph *model, const ty_train_config *config, bool with_data,
                       const ty_plan_request *req, ty_plan **out_plan, char *err, size_t err_len);

#endif
