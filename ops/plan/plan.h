/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/plan: the auto-parallel planner. Given a training graph (forward +
 * loss, shapes inferred), the global batch and a cluster of identical
 * devices, it picks for every op how its tensors are split over a 2-D device
 * mesh (data, tensor or hybrid parallelism), which collectives the ranks
 * must run, and predicts the step time and the memory per device. It also
 * reports the alternatives it compared (pure data parallel, pure tensor
 * parallel, the best data x tensor grid) so a user can see why.
 *
 * The library is pure: plain structs in, a plain struct out; no sockets,
 * files (except the CPU benchmark cache, on request), threads or protobuf.
 * docs/planner.md describes the data model and the cost model in full.
 *
 * The mesh. Ranks are numbered node-major (rank = node * devices_per_node +
 * local index), as workers number them. The plan chooses a logical mesh
 * mesh[0] x mesh[1] over those ranks, row-major: rank r has coordinates
 * (r / mesh[1], r % mesh[1]). Mesh axis 1 groups consecutive ranks (inside
 * a node when mesh[1] divides devices_per_node), axis 0 strides across them.
 *
 * Layouts. A tensor's layout says, per dimension, which mesh axes split it
 * (none: replicated along every axis not named anywhere), and over which
 * axes the local buffers are partial sums of the true value. A dimension
 * split by both axes is cut into mesh[0] * mesh[1] chunks, axis 0 major.
 * Blocks need not be equal: a loop whose dims all have its size splits
 * unevenly (ceil / floor, ty_plan_block; the first blocks one longer, so
 * coordinate 0 holds the largest). ty_plan_slice turns a layout into the
 * index range one rank holds.
 *
 * Ownership: ty_plan_search returns a plan the caller frees with
 * ty_plan_destroy; every pointer inside it is owned by the plan. The graph
 * is only read during the call.
 */
#ifndef TY_OPS_PLAN_PLAN_H
#define TY_OPS_PLAN_PLAN_H

#include "lib/base/base.h"
#include "ops/graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TY_PLAN_AXES 2

/* ---- input ---------------------------------------------------------------- */

/* Optimizer state kept per parameter element, in parameter-sized copies. */
typedef enum {
  TY_PLAN_OPT_SGD = 0,      /* plain SGD: no state */
  TY_PLAN_OPT_MOMENTUM = 1, /* SGD with momentum: one buffer */
  TY_PLAN_OPT_ADAM = 2,     /* Adam / AdamW: two moments */
} ty_plan_optimizer;

typedef enum {
  TY_PLAN_MODE_AUTO = 0,   /* search every strategy; the default */
  TY_PLAN_MODE_DATA = 1,   /* force pure data parallelism on the physical mesh */
  TY_PLAN_MODE_TENSOR = 2, /* force the "tensor parallel" alternative: no batch dim split */
  TY_PLAN_MODE_GRID = 3,   /* force the best "data x tensor" grid (a 2-D mesh, one axis each) */
} ty_plan_mode;

typedef enum {
  /* Exact elimination (chains, series-parallel parts) and an ILP for what
   * remains; memory budgets through a Lagrangian search. */
  TY_PLAN_SOLVER_AUTO = 0,
  TY_PLAN_SOLVER_ILP = 1,   /* one ILP over the whole graph (GLPK), hard memory budget */
  TY_PLAN_SOLVER_BRUTE = 2, /* exhaustive branch and bound; small graphs only (tests) */
} ty_plan_solver;

/* The physical cluster: nodes x devices_per_node identical devices. */
typedef struct ty_plan_cluster {
  int nodes;
  int devices_per_node;
  double device_flops;       /* sustained FLOP/s of one device */
  uint64_t device_mem_bytes; /* memory one device may use for the job */
  double intra_bw;           /* bytes/s between devices of one node */
  double inter_bw;           /* bytes/s between nodes (per device) */
  double intra_latency_s;    /* per ring step inside a node */
  double inter_latency_s;    /* per ring step across nodes */
  double launch_s;           /* fixed cost of starting one collective */
} ty_plan_cluster;

typedef struct ty_plan_request {
  int64_t batch; /* the global batch: the value of every TY_DIM_BATCH dim */
  ty_plan_cluster cluster;
  ty_plan_optimizer optimizer;
  ty_plan_mode mode;
  ty_plan_solver solver;
  int time_limit_ms; /* the ILP's limit; 0: 10,000. The best plan found so far is kept. */
  /* Plan on the physical mesh nodes x devices_per_node only, as Alpa's
   * tests do, instead of also trying its other factorisations. */
  bool fixed_mesh;
  /* The loss: the name of a one-element float value; NULL: the graph's
   * only one-element float output. Decides which values carry gradients.
   * Borrowed during the call. */
  const char *loss;
  /* The float initializers that train: the trainer's choice (ops/train's
   * ty_train_plan_request gives its rule's names, config.trainable and
   * config.frozen included), n_trained names borrowed during the call.
   * Every other initializer is a constant: no gradient, no grad-sync, no
   * optimizer state, no weight-gradient FLOPs, whatever reads it. NULL:
   * every float initializer the loss depends on trains. */
  const char *const *trained;
  size_t n_trained;
  /* Pipeline stages (docs/planner.md, "Pipeline stages"): 1 (the default)
   * plans no pipeline; 0 lets the planner choose (1 included); n > 1 asks
   * for exactly n stages, which must divide the devices and be at most the
   * graph's layers. Searched in every mode: AUTO; TENSOR with stages that
   * split no batch loop (their meshes run them tensor parallel); GRID on
   * stage meshes with both axes split, axis 0 data and axis 1 tensor
   * parallel; DATA on each stage's physical mesh, data parallel. */
  int pipeline_stages;
  /* Micro-batches per global batch of a pipelined plan: 0 chooses among the
   * divisors of batch; n must divide batch. */
  int micro_batches;
  /* pipeline_stages 1 was not asked for (a training config that left
   * pipeline_stages empty): in AUTO mode, with micro_batches 0 or 1, a
   * request no flat plan fits in memory gets the plan its refusal would
   * name instead (docs/planner.md, "Pipeline stages"): the pipeline that
   * fits, else the fewest micro-batches of gradient accumulation that fit.
   * Only one micro-batch where more would change what is trained (a loss
   * micro-batches cannot add up, a BatchNormalization, micro_batches 1);
   * the refusal says why when that leaves nothing that fits. */
  bool pipeline_if_needed;
  /* Every read of a value reshards on its own, as the search scores plans,
   * instead of readers that want one layout sharing one reshard
   * (docs/planner.md, "Shared reads"). For comparing the solvers on the
   * objective they minimise; plans are cheaper without it. */
  bool separate_reads;
} ty_plan_request;

/* X(key, index): the cost model's command-line options, in one order for
 * every binary that offers them (trainctl plan's --KEY, traind's
 * --plan-KEY; ty_plan_cluster_set parses each). */
#define TY_PLAN_CLUSTER_OPTIONS(X)                                                                 \
  X("device-flops", 0)                                                                             \
  X("device-mem", 1)                                                                               \
  X("intra-gbps", 2)                                                                               \
  X("inter-gbps", 3)                                                                               \
  X("latency-us", 4)                                                                               \
  X("inter-latency-us", 5)                                                                         \
  X("launch-us", 6)
#define TY_PLAN_N_CLUSTER_OPTIONS 7

/* The cost model's options as typed on a command line (trainrun, trainctl
 * plan, traind --plan-*), one parser for all: key is "device-flops" (a
 * FLOP/s rate, or "cpu": device_flops = 0, measure this CPU),
 * "device-mem" (bytes with an optional K, M, G or T), "intra-gbps" and
 * "inter-gbps" (GB/s), "latency-us", "inter-latency-us" and "launch-us"
 * (microseconds). `what` names the option in errors: TY_EINVAL with
 * "WHAT: expected a non-negative number, got \"x\"". */
int ty_plan_cluster_set(ty_plan_cluster *c, const char *key, const char *what, const char *value,
                        char *err, size_t err_len);
/* "NODESxDEVICES" (2x4): both at least 1 ("WHAT: 0x4 is a mesh of 0
 * devices ..." otherwise), at most 2^20 devices in all. */
int ty_plan_parse_mesh(const char *what, const char *value, int *out_nodes, int *out_per, char *err,
                       size_t err_len);

/* Fills *req with the documented defaults (start every request here) (docs/planner.md): one node
 * with one device of 100 GFLOP/s and 16 GiB, 10 GB/s and 2 us inside a node, 1.25 GB/s and 20 us
 * across nodes, 5 us per collective, Adam, auto. */
void ty_plan_request_init(ty_plan_request *req);

/* ---- the plan ------------------------------------------------------------- */

typedef struct ty_plan_layout {
  int rank;                      /* -1: an optional input or output the node does not have */
  uint8_t dim_axes[TY_MAX_RANK]; /* bit a: mesh axis a splits this dim */
  uint8_t partial;               /* bit a: local buffers are partial sums over axis a */
  /* An op's input only: bit a: the gradient the op's backward gives this
   * input is a partial sum over axis a (the op splits a loop along a that
   * the input lacks), before the backward or grad-sync collectives. */
  uint8_t grad_partial;
} ty_plan_layout;

typedef enum {
  TY_PLAN_ALL_REDUCE = 0,
  TY_PLAN_ALL_GATHER = 1,
  TY_PLAN_REDUCE_SCATTER = 2,
  TY_PLAN_ALL_TO_ALL = 3,
} ty_plan_coll_kind;

typedef enum {
  TY_PLAN_FORWARD = 0,   /* on a value, before its consumer reads it */
  TY_PLAN_BACKWARD = 1,  /* on an activation's gradient, after the consumer's backward */
  TY_PLAN_GRAD_SYNC = 2, /* on a parameter's gradient, before the optimizer step */
} ty_plan_phase;

/* One collective over one mesh axis: every rank runs it with the ranks that
 * share its coordinate on the other axis (ty_plan_axis_group). Collectives of
 * one (node, input, phase) are listed in the order they must run. */
typedef struct ty_plan_collective {
  ty_plan_coll_kind kind;
  ty_plan_phase phase;
  int mesh_axis;
  int value;      /* graph value moved (forward) or whose gradient is moved; -1: see tensor */
  char *tensor;   /* the value's name, or "<node>:batch_stats" for a BatchNormalization's
                   * mean and variance */
  int node;       /* the consuming node; -1 for a graph output (the loss, summed for logging) */
  int input;      /* the node's input slot; -1 for batch statistics and graph outputs */
  int dim;        /* all-gather: dim gathered; reduce-scatter: dim scattered; all-to-all:
                   * dim split after; -1 for all-reduce */
  int src_dim;    /* all-to-all: dim split before; -1 otherwise */
  uint64_t bytes; /* per device: all-reduce and all-to-all the local buffer, all-gather its
                   * result, reduce-scatter its input */
  double seconds; /* predicted time */
} ty_plan_collective;

typedef struct ty_plan_op {
  int node; /* index in the graph */
  char *name;
  ty_op op;
  char *strategy; /* "column split (axis 1)", "batch split (axes 0,1)", "replicated" */
  bool fallback;  /* the planner has no sharding rule for this op: it runs replicated */
  char *note;     /* why it fell back; NULL otherwise */
  int n_inputs;
  ty_plan_layout *inputs; /* the layout each input is read in (after forward collectives) */
  int n_outputs;
  ty_plan_layout *outputs; /* the layout each output is written in (partial sums marked) */
  double compute_s;        /* forward + backward, on one device */
  double comm_s;           /* collectives charged to this op (its inputs and parameters) */
  uint64_t memory_bytes;   /* outputs kept for backward, inputs fed, parameters with state */
  int stage;               /* the pipeline stage that runs it; 0 without stages */
} ty_plan_op;

/* How a trainable parameter (a float initializer with a gradient) is stored:
 * each rank keeps ty_plan_slice(layout) of it, with its gradient and
 * optimizer state. */
typedef struct ty_plan_param {
  int value;
  char *name;
  ty_plan_layout layout;
} ty_plan_param;

typedef struct ty_plan_alternative {
  char name[48]; /* "data parallel", "tensor parallel", "data x tensor 2x2", "chosen" */
  int mesh[TY_PLAN_AXES];
  bool applicable; /* false: no such plan exists (why says so) */
  double step_s;
  uint64_t memory_bytes;
  bool fits;
  char why[160];
} ty_plan_alternative;

/* One pipeline stage: a contiguous run of the graph's layers (topological
 * order) on its own ranks, first_rank .. first_rank + mesh[0] * mesh[1] - 1,
 * with the plan's mesh shape. Stage k of S runs 1F1B: it keeps the
 * activations of in_flight = min(S - k, M) micro-batches at once. */
typedef struct ty_plan_stage {
  int first_rank;
  int first_layer, n_layers; /* layers: see ty_plan.n_layers */
  int in_flight;
  /* forward + backward of one micro-batch, with its sends and 1 / M of
   * the stage mesh's gradient all-reduce (it runs once per step) */
  double step_s;
  double send_s;         /* of which point-to-point: activations in, their gradients out */
  uint64_t memory_bytes; /* per device: parameters with state, in_flight activations */
  /* Activation recomputation: the stage keeps only each in-flight
   * micro-batch's inputs and recomputes its activations in backward (one
   * more forward in step_s); chosen only when it would not fit otherwise.
   * memory_no_recompute_bytes: the same assignment without it. */
  bool recompute;
  uint64_t memory_no_recompute_bytes;
} ty_plan_stage;

typedef struct ty_plan {
  uint64_t graph_fingerprint;  /* ty_plan_fingerprint of the graph planned */
  int nodes, devices_per_node; /* the physical cluster it was made for */
  int devices;
  int mesh[TY_PLAN_AXES];       /* the logical mesh */
  double axis_bw[TY_PLAN_AXES]; /* bytes/s on each axis */
  double axis_latency_s[TY_PLAN_AXES];
  int64_t batch;
  size_t n_ops; /* one per graph node, in node order */
  ty_plan_op *ops;
  size_t n_collectives;
  ty_plan_collective *collectives; /* forward in node order, then backward and
                                    * gradient sync in reverse node order */
  size_t n_params;
  ty_plan_param *params;
  double step_s; /* predicted: compute + communication */
  double compute_s;
  double comm_s;
  uint64_t memory_bytes; /* predicted per device */
  uint64_t budget_bytes; /* the device memory it had to fit */
  size_t n_alternatives;
  ty_plan_alternative *alternatives; /* the last one is "chosen" */
  double search_ms;
  bool exact;        /* the search proved this plan optimal for the cost model */
  size_t n_fallback; /* ops without a sharding rule (replicated) */
  /* Pipelining. n_stages = 0: none (mesh holds every device, batch is the
   * global batch, micro_batches 1). Otherwise devices = n_stages x mesh, the
   * ops' layouts are for one stage's mesh and one micro-batch (batch is the
   * micro-batch: the global batch is batch x micro_batches), op.stage says
   * where each op runs, step_s is the 1F1B schedule's sum of the stages +
   * (micro_batches - 1) x the slowest, compute_s and comm_s add one
   * micro-batch over every stage, and memory_bytes is the largest stage's. */
  int n_stages;
  ty_plan_stage *stages;
  int micro_batches;
  int n_layers;  /* the layers the stages were cut from */
  double bubble; /* idle share of the devices' time in a step: 1 - M sum(stage) / (S step) */
  /* Why the search tried one micro-batch only (a loss micro-batches
   * cannot add up: ty_plan_check_summed_losses), "" when it did not or
   * tried no more; for the plan's text and JSON (format version 3). */
  char one_micro_why[TY_ERR_LEN];
} ty_plan;

/* Plans g for req. Errors (TY_EINVAL unless said otherwise), each naming the
 * cause in err: a bad request field ("cluster: 0 devices (0 nodes x 4 per
 * node)"), a batch that data-parallel mode cannot divide, shapes the planner
 * cannot make concrete (TY_EUNSUPPORTED), and a memory budget no plan fits,
 * with the least memory any plan would need. */
int ty_plan_search(const ty_graph *g, const ty_plan_request *req, char *err, size_t err_len,
                   ty_plan **out_plan);
void ty_plan_destroy(ty_plan *p);

/* ---- losses under micro-batches ------------------------------------------ */

/* *out: whether node n of g is a sum over the batch that reaches the loss
 * through linear ops only (ops/plan/micro_loss.c): SoftmaxCrossEntropyLoss
 * or NegativeLogLikelihoodLoss with reduction sum, ReduceSum,
 * ReduceSumSquare or ReduceL1 over the batch dim (x.sum(), ((p - y) **
 * 2).sum(), mse_loss(reduction="sum")), not divided on its way by a count
 * computed from a Shape or Size (sum / y.numel() is a micro-batch's mean).
 * A pipeline averages its micro-batches' losses, so such a node is
 * multiplied by their count in the graph stages are cut from (the local
 * graph, or ty_shard_split_weighted_means'). loss is the value the
 * trainer differentiates, as ty_plan_check_summed_losses takes it: a sum
 * only other outputs (metrics) read is not scaled. One the loss reads
 * and a metric too is scaled, the metric reading it unscaled
 * (ty_plan_reads_unscaled), unless a metric reads through a nonlinear op
 * what a node feeding the loss computed from it (sqrt(0.05 s) beside the
 * loss 0.05 s + ...): that is not scaled and the check refuses several
 * micro-batches for it (both decide by one function). TY_NO_VALUE takes
 * every output for a loss. TY_EINVAL for a loss not in g, TY_ENOMEM;
 * *out false then. */
int ty_plan_summed_loss(const ty_graph *g, int loss, const ty_graph_node *n, bool *out);
/* *out: whether node c of g reads its input k, a sum ty_plan_summed_loss
 * scales, divided by the micro-batch count again: c computes nothing the
 * loss depends on (a metric, sqrt(s) beside the loss s), so it gets the
 * micro-batch's own sum, as without micro-batches. Never with loss
 * TY_NO_VALUE (every output adds the sum up). Errors as
 * ty_plan_summed_loss's. */
int ty_plan_reads_unscaled(const ty_graph *g, int loss, const ty_graph_node *c, int k, bool *out);
/* *out: whether node n of g is a mean over the batch that reaches the loss
 * without a nonlinear op on the way: a ReduceMean over the batch dim, a
 * SoftmaxCrossEntropyLoss or NegativeLogLikelihoodLoss with reduction mean
 * (weighted or not: ty_shard_weighted_mean tells those apart), or a sum
 * divided on its way by a count computed from a Shape or Size (sum /
 * y.numel()). The evaluation tells a loss that adds such a mean to a sum
 * (ty_plan_summed_loss) from a sum alone, and a weighted mean beside a plain
 * mean term (which counts every row of its batch, padding rows too) from
 * a weighted mean alone. loss and errors as ty_plan_summed_loss's. */
int ty_plan_mean_loss(const ty_graph *g, int loss, const ty_graph_node *n, bool *out);
/* TY_EUNSUPPORTED, with why in err (the node and how it reaches the loss;
 * the caller says what to do), for a graph whose loss reduces the batch in
 * a way that micro-batches cannot add up: a sum over it that reaches the
 * loss through a nonlinear op (or, linearly, the loss and through one
 * another output), a mean that reaches it through one without meeting the
 * batch dim again, or a ReduceMax, ReduceL2 and the like over it that
 * reaches it linearly. loss is the value the trainer differentiates (the
 * config's loss_output, else "trainyard.loss"; the planner's
 * request.loss): the other outputs are metrics, computed per micro-batch,
 * and not checked. TY_NO_VALUE checks every output as a loss; TY_EINVAL
 * for a value not in g. The search then plans one micro-batch
 * (ty_plan_search), trainrun refuses more. */
int ty_plan_check_summed_losses(const ty_graph *g, int loss, char *err, size_t err_len);

/* The stage DP (Alpa's inter-operator pass): cuts n_layers layers into
 * `stages` contiguous non-empty stages minimising sum(stage) +
 * (micro_batches - 1) x max(stage). cost[(k * (n_layers + 1) + i) *
 * (n_layers + 1) + j] is the time of layers i .. j-1 as stage k (INFINITY
 * where they do not fit there). out_bounds gets stages + 1 layer indices
 * (0 first, n_layers last). TY_ENOTFOUND when no cut fits, TY_EINVAL for
 * stages outside 1 .. n_layers, TY_ENOMEM. */
int ty_plan_pipeline_dp(const double *cost, int n_layers, int stages, int micro_batches,
                        int *out_bounds, double *out_step_s);

/* ---- executing a plan ----------------------------------------------------- */

/* Mesh coordinates of a rank (0 <= rank < p->devices) within its stage's
 * mesh (a pipelined plan's ranks are stage-major: stage = rank / mesh size). */
void ty_plan_coords(const ty_plan *p, int rank, int out_coords[TY_PLAN_AXES]);
/* The ranks of rank's group along axis, in coordinate order (p->mesh[axis]
 * entries), all in rank's stage: the communicator of a collective on that
 * axis. */
void ty_plan_axis_group(const ty_plan *p, int rank, int axis, int *out_ranks);
/* Block `index` of n elements cut into `parts` blocks: the first
 * n % parts blocks hold one more (64 in 3: 22, 21, 21), so any n splits,
 * and n divisible by parts gives equal blocks. Every block of a split dim
 * in the plan's executor comes from here. */
void ty_plan_block(int64_t n, int64_t parts, int64_t index, int64_t *out_start, int64_t *out_len);
/* The part of a tensor of full shape `full` that rank holds under l:
 * out_start[d], out_len[d] for every dim. Partial sums do not change it.
 * A dim split by both axes is cut by axis 0 (ty_plan_block), then that
 * block by axis 1: the blocks a gather along axis 1 joins are axis 0's. */
void ty_plan_slice(const ty_plan *p, const ty_plan_layout *l, const ty_shape *full, int rank,
                   int64_t *out_start, int64_t *out_len);

/* ---- the plan file ---------------------------------------------------------
 * A plan as bytes, for a file (trainrun --plan) or a message (LaunchTask):
 * everything ty_plan holds, so a decoded plan executes and prints exactly
 * as the original. Little-endian; f64 are IEEE-754 bit patterns; str is a
 * u32 byte length then the bytes (no NUL; 0xFFFFFFFF for an absent
 * optional string); layout is an i8 rank (-1: absent slot), rank u8 masks
 * of the axes splitting each dim, a u8 mask of the partial axes, then a u8
 * mask of the grad_partial axes.
 *
 *   4   magic "TYPL"
 *   4   u32 format version (TY_PLAN_FORMAT_VERSION)
 *   8   u64 graph_fingerprint
 *   4x5 u32 nodes, devices_per_node, devices, mesh[0], mesh[1]
 *   8   i64 batch
 *   8x4 f64 axis_bw[0..1], axis_latency_s[0..1]
 *   8x3 f64 step_s, compute_s, comm_s
 *   8x2 u64 memory_bytes, budget_bytes
 *   8   f64 search_ms
 *   1   u8 exact
 *   4   u32 n_ops, then per op: i32 node (= its index), str name, u32 op
 *       (ty_op), str strategy, u8 fallback, str note (optional), u32
 *       n_inputs, that many layouts, u32 n_outputs, that many layouts, f64
 *       compute_s, f64 comm_s, u64 memory_bytes
 *   4   u32 n_params, then per param: i32 value, str name, layout
 *   4   u32 n_collectives, then per collective: u8 kind, u8 phase, u8
 *       mesh_axis, i32 value, str tensor, i32 node, i32 input, i32 dim, i32
 *       src_dim, u64 bytes, f64 seconds
 *   4   u32 n_alternatives, then per alternative: str name, u32 mesh[0],
 *       u32 mesh[1], u8 applicable, f64 step_s, u64 memory_bytes, u8 fits,
 *       str why
 *   (version 2) the pipeline: u32 micro_batches, u32 n_layers, f64 bubble,
 *       u32 n_stages, then per stage: u32 first_rank, u32 first_layer, u32
 *       n_layers, u32 in_flight, f64 step_s, f64 send_s, u64 memory_bytes,
 *       u8 recompute, u64 memory_no_recompute_bytes;
 *       then, when n_stages > 0, one u32 stage per op
 *   (version 3) str one_micro_why: why the search kept one micro-batch
 *       (1 .. 511 bytes, no control characters; micro_batches must be 1)
 *   4   u32 CRC-32 (zlib's) of every byte before it
 *
 * n_fallback is recounted from the ops. Writers write version 3 for a plan
 * with a one_micro_why and version 2 for any other (which builds that
 * read version 2 still read); readers read versions 1 (no pipeline
 * section: no stages, one micro-batch), 2 and 3 and refuse any other, so
 * plans stored before stages existed still run. */
#define TY_PLAN_FORMAT_VERSION 3u

/* Appends p's encoding to out (owned by the caller). */
int ty_plan_encode(const ty_plan *p, ty_buf *out);
/* Decodes and validates a plan file. Errors, each naming the field:
 * TY_EPROTO (not a plan, truncated, CRC mismatch, counts larger than the
 * bytes, trailing bytes), TY_EVERSION (another format version), TY_EINVAL
 * (a value out of range: a mesh that does not hold the devices, a layout
 * naming an axis twice, a collective on axis 2, an index past its list).
 * The caller frees *out_plan with ty_plan_destroy. */
int ty_plan_decode(const uint8_t *data, size_t len, ty_plan **out_plan, char *err, size_t err_len);
/* A 64-bit hash of the encoding with search_ms left out: equal on ranks
 * that planned the same thing (how trainrun checks they agree). */
uint64_t ty_plan_hash(const ty_plan *p);
/* Fingerprint of a graph as the planner sees it: values (names, dtypes,
 * shapes, roles), nodes (ops, names, wiring, attributes), not weights. */
uint64_t ty_plan_fingerprint(const ty_graph *g);
/* The cache key of a search: a hash of the graph's fingerprint and every
 * field of req (batch, cluster and rates, optimizer, mode, solver, loss,
 * the trained initializers' names in order, the pipeline knobs,
 * pipeline_if_needed included):
 * equal keys ask the same question, so a plan found for one answers the
 * other (a controller caches plans by it). The search is deterministic
 * unless the ILP runs into its time limit. */
uint64_t ty_plan_request_key(const ty_plan_request *req, uint64_t fingerprint);
/* Checks that p was made for g: fingerprint, one op per node with the same
 * op and slots, parameters by id and name. TY_EINVAL naming the first
 * difference. */
int ty_plan_check(const ty_plan *p, const ty_graph *g, char *err, size_t err_len);

/* ---- writing a plan ------------------------------------------------------- */

/* "[S0,R]" (dim 0 split on axis 0, dim 1 replicated), "[S01]" (both axes),
 * "[R,R]+P1" (partial sums over axis 1), "[]" for a scalar. */
void ty_plan_layout_format(const ty_plan_layout *l, char *buf, size_t len);
const char *ty_plan_coll_kind_name(ty_plan_coll_kind k); /* "all-reduce", ... */
const char *ty_plan_phase_name(ty_plan_phase ph);        /* "forward", "backward", "grad-sync" */
/* Why a plan of several devices splits nothing (every op replicated, no
 * stages: each rank computes every global batch whole, because the batch
 * cannot be split -- the data-parallel alternative's reason -- or the cost
 * model found splitting costs more than it saves), for the text forms,
 * written to buf; "" for any other plan. Returns buf. */
const char *ty_plan_replicated_note(const ty_plan *p, char *buf, size_t len);
/* Why a plan is pipelined (or accumulates gradients) though nobody asked:
 * no flat plan fit, and the request left the choice to the planner
 * (pipeline_if_needed). "no flat plan fits in 40.0 MiB per device;
 * pipelined: 3 stages of mesh 1x1, 8 micro-batches, bubble 20%" (the
 * chosen alternative's why, which the plan file carries), or NULL. */
const char *ty_plan_memory_fallback(const ty_plan *p);

/* Appends the plan as one JSON document (the format of `trainctl plan
 * --json`, docs/planner.md). */
int ty_plan_to_json(const ty_plan *p, ty_buf *out);
/* Appends the plan for people: alternatives, per-op strategies,
 * collectives, step time and memory. */
int ty_plan_to_text(const ty_plan *p, ty_buf *out);

/* ---- device rates ----------------------------------------------------------- */

/* Known GPUs by CUDA device name (a substring match: "NVIDIA H100 80GB
 * HBM3" finds "H100"): FP32 FLOP/s and memory. TY_ENOTFOUND if unknown;
 * callers then take the user's --device-flops. */
int ty_plan_gpu_lookup(const char *device_name, double *out_flops, uint64_t *out_mem_bytes);
/* The FLOP/s of this CPU running the runtime's own GEMM with `threads`
 * OpenBLAS threads (0: OpenBLAS' default; it sets OpenBLAS' thread count,
 * which is process-wide). Measured once (about a quarter second) and cached
 * in cache_path, keyed by CPU model and threads; a cache that does not
 * parse or match is measured again and rewritten. cache_path may be NULL
 * (always measure). */
int ty_plan_cpu_flops(const char *cache_path, int threads, char *err, size_t err_len,
                      double *out_flops);
/* The cache alone: the rate cache_path holds for this CPU and `threads`
 * (TY_ENOTFOUND: no file; TY_EINVAL: it does not parse or match), and
 * writing one (atomically: a temporary renamed over it; failures ignored,
 * the rate is measured again next time). */
int ty_plan_cpu_flops_load(const char *cache_path, int threads, double *out_flops);
void ty_plan_cpu_flops_store(const char *cache_path, int threads, double flops);

#endif
