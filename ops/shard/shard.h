/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/shard: one rank's part of a parallel plan (ops/plan). From the
 * forward + loss graph a plan was made for, the plan and a rank, it builds
 * the rank's local graph and runs the plan's collectives inside it:
 *
 *   - every value has its local shape (ty_plan_slice of its layout on the
 *     global shape); trainable parameters and constants hold their slices
 *     of the full initializers; a Reshape's target is its local output
 *     shape;
 *   - where a node reads a value in another layout than the one it was
 *     written in (or stored in), a TyExtern node (ops/exec.h) converts it:
 *     forward, the free local slices then the plan's forward collectives
 *     for that input in list order; backward (ops/autodiff differentiates
 *     it into a second TyExtern), the plan's backward or grad-sync
 *     collectives, then the slices the producer's layout needs. A route the
 *     plan lists but that cannot run on this rank's blocks as listed (the
 *     rare reorder of a dim cut by both axes) is replaced by the always
 *     valid one: all-reduce the partial axes, all-gather every split axis,
 *     slice; a listed route that ends in another layout than the reader's
 *     is refused as an inconsistent plan;
 *   - a Shape gives the global shape at the plan's batch, a constant,
 *     whatever block of its input the rank holds (the plan moves nothing
 *     for it);
 *   - a Gemm whose output is partial (its k split) adds its bias only on
 *     the ranks at coordinate 0 of the partial axes (beta = 0 elsewhere,
 *     so the bias still gets a zero gradient to sum);
 *   - a mean over a split dim (ReduceMean; SoftmaxCrossEntropyLoss with
 *     reduction mean) is multiplied by local / global count, so the partial
 *     results sum to the global mean and gradients are sums: summing a
 *     gradient over the axes it is partial on gives exactly the gradient of
 *     single-process training on the global batch;
 *   - a weighted or ignore_index mean loss (ty_shard_weighted_mean) over a
 *     split batch becomes sum_local(w l) / sum_global(w): the loss with
 *     reduction sum over the total weight of the batch's labels, which a
 *     TyExtern all-reduces over the loss's partial axes, forward only
 *     (wmean.c). In a pipelined plan every such loss is rewritten (split
 *     batch or not), its total weight the value "<node>.weight_sum",
 *     which the pipeline replaces by the global batch's
 *     (ops/train/pipe_wmean.c), and the loss is multiplied by the
 *     micro-batch count to undo the pipeline's 1 / M.
 * Value ids of the given graph stay valid in the local graph (new values
 * are appended), so a caller keeps its own ids (inputs, loss, parameters).
 *
 * The collectives themselves go through ty_shard_comm, which the caller
 * fills (trainrun: ops/collective over Open MPI or NCCL); this module never
 * touches a network. Pure otherwise: graph and plan in, graph out.
 *
 *   - a BatchNormalization whose batch is split is computed from batch
 *     sums all-reduced over the batch's axes (the plan's
 *     "<node>:batch_stats"), forward and backward, so it normalises with
 *     the global batch's statistics (ty_shard_bn_at).
 *
 * Not supported, refused by ty_shard_create naming the node or value:
 * non-float data inputs that different readers read in different
 * layouts, dims a layout splits into more parts than they have elements,
 * BatchNormalization outputs other than Y over a split batch. A dim that
 * does not divide evenly splits ceil / floor (ty_plan_block); a mean's
 * scale, BatchNormalization's counts and a random op's offsets come from
 * each rank's real block.
 */
#ifndef TY_OPS_SHARD_SHARD_H
#define TY_OPS_SHARD_SHARD_H

#include "ops/graph.h"
#include "ops/plan/plan.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The collectives of a rank on the plan's mesh. A set of axes (bit a =
 * mesh axis a) selects the ranks sharing this rank's coordinates on the
 * other axes (both bits: every rank); one axis selects
 * ty_plan_axis_group's ranks, in coordinate order. Every call is made in
 * the same order by every rank of its group; `what` names the tensor, so a
 * transport that checks agreement (ops/collective does) can say which one
 * differs. Each returns 0 or a TY_E* code. */
typedef struct ty_shard_comm {
  /* Sum buf[0..n) in place over the group of axes. */
  int (*all_reduce)(unsigned axes, float *buf, size_t n, const char *what, void *user);
  /* out = the n floats of every rank of the axis group, in coordinate order. */
  int (*all_gather)(int axis, const float *in, size_t n, float *out, const char *what, void *user);
  /* in holds group-size chunks of n_out floats; out = the sum over the
   * group of the chunk at this rank's coordinate. */
  int (*reduce_scatter)(int axis, const float *in, size_t n_out, float *out, const char *what,
                        void *user);
  /* in holds group-size chunks of `chunk` floats, chunk j for coordinate j;
   * out[j] = what coordinate j sent to this rank. */
  int (*all_to_all)(int axis, const float *in, size_t chunk, float *out, const char *what,
                    void *user);
  void *user;
} ty_shard_comm;

typedef struct ty_shard ty_shard;

/* Builds rank's part of plan p for g, the graph p was made for (checked
 * with ty_plan_check): forward and loss, shapes inferred, TY_DIM_BATCH on
 * the batch dims of its inputs. loss is the value the trainer
 * differentiates (TY_NO_VALUE: every output counts as one): in a pipeline
 * only sums it reads are scaled by the micro-batch count
 * (ty_plan_summed_loss). Errors (TY_EINVAL, TY_EUNSUPPORTED) name
 * the node or value, or the loss when it is not one of g's values. g and p are read during the call
 * only; the shard keeps what it needs. */
int ty_shard_create(const ty_graph *g, int loss, const ty_plan *p, int rank, char *err,
                    size_t err_len, ty_shard **out_shard);
/* As ty_shard_create, for evaluating g rather than training it (the same
 * plan, so its ranks evaluate the blocks they train): a
 * BatchNormalization over a split batch stays one node, which the caller
 * runs in inference mode on its running statistics (no batch sums). In
 * both, an initializer whose data g dropped (ty_graph_drop_init_data)
 * stays dropped at its local shape, for the caller to bind its block;
 * one a node reads in another layout than it is held in is refused. */
int ty_shard_create_inference(const ty_graph *g, int loss, const ty_plan *p, int rank, char *err,
                              size_t err_len, ty_shard **out_shard);
void ty_shard_destroy(ty_shard *s);

/* The local graph (owned by the shard; the caller may append to it, as
 * autodiff does, but not change what is there). */
ty_graph *ty_shard_graph(ty_shard *s);
/* Hands the local graph to the caller (who destroys it); the shard keeps
 * running its TyExtern nodes, and ty_shard_graph returns NULL after. */
ty_graph *ty_shard_take_graph(ty_shard *s);
int ty_shard_rank(const ty_shard *s);
const ty_plan *ty_shard_plan(const ty_shard *s); /* the shard's copy */
/* TyExtern nodes in the local graph; *out_rerouted (may be NULL) of them
 * run the generic route instead of the plan's (see above). */
size_t ty_shard_n_points(const ty_shard *s, size_t *out_rerouted);

/* Where rank's part of value v (an input, an initializer, a node output)
 * lies in its global shape: out_full (the global shape, batch
 * substituted), out_start[d], out_len[d]. TY_ENOTFOUND for a value
 * the graph given to create does not have. */
int ty_shard_slice_of(const ty_shard *s, int v, int rank, ty_shape *out_full, int64_t *out_start,
                      int64_t *out_len);
/* The mesh axes over which the gradient of parameter v (a value id) is a
 * partial sum after backward, to be all-reduced before the optimizer step
 * (0: complete already, its reshard ran inside backward). TY_ENOTFOUND
 * when the plan has no layout for v. */
int ty_shard_grad_axes(const ty_shard *s, int v, unsigned *out_axes);
/* The axes over which graph value v (the loss) is partial. */
unsigned ty_shard_partial_axes(const ty_shard *s, int v);

/* A BatchNormalization whose batch the plan splits: the shard computes
 * it from statistics summed over the ranks (ops/shard/bn.c), and a
 * trainer updates the running statistics from those. */
typedef struct ty_shard_bn_info {
  const char *name;              /* the node's (borrowed from the local graph) */
  int running_mean, running_var; /* the node's inputs 3 and 4 (value ids), or TY_NO_VALUE */
  float momentum;                /* ONNX's: running = momentum * running + (1 - momentum) * batch */
  int mean, var; /* local values: batch mean and population variance, [1, C, 1...] */
  double count;  /* elements they average over, on all ranks together */
} ty_shard_bn_info;
size_t ty_shard_n_bn(const ty_shard *s);
const ty_shard_bn_info *ty_shard_bn_at(const ty_shard *s, size_t i);

/* The transport; must be set before the graph runs. Copied. */
void ty_shard_set_comm(ty_shard *s, const ty_shard_comm *comm);
/* The ty_exec_extern_fn of the local graph's TyExtern nodes; user is the
 * shard. On failure the reason is in ty_shard_error. */
int ty_shard_extern(int64_t id, bool backward, const ty_tensor *in, ty_tensor *out, void *user);
const char *ty_shard_error(const ty_shard *s);
/* ty_shard_error of the shard user, as ty_exec_opts.extern_error takes it. */
const char *ty_shard_extern_error(const void *user);

/* A weighted or ignore_index mean loss: SoftmaxCrossEntropyLoss or
 * NegativeLogLikelihoodLoss, reduction mean, with a weight input or an
 * ignore_index attribute. It is sum(w l) / sum(w) over the whole batch,
 * not a sum of partial means. */
bool ty_shard_weighted_mean(const ty_graph_node *n);
/* The suffix of the value "<node>.weight_sum" that holds such a loss's
 * denominator in a rewritten graph (the local graph of a pipelined plan,
 * or ty_shard_split_weighted_means'). */
#define TY_SHARD_WEIGHT_SUM ".weight_sum"
/* A copy of g (value ids kept, new values appended) in which every
 * weighted mean loss is its sum * k / "<node>.weight_sum", that sum
 * computed in the graph from the labels and weights (ops/shard/wmean.c),
 * and every sum over the batch that loss (the value the trainer
 * differentiates; TY_NO_VALUE: every output) reads linearly
 * (ty_plan_summed_loss) its sum * k; the caller may feed another
 * denominator in its place. TY_EINVAL naming the loss when it is not one
 * of g's values. */
int ty_shard_split_weighted_means(const ty_graph *g, int loss, double k, ty_graph **out, char *err,
                                  size_t err_len);

/* Copies between a tensor of shape `full` and its block at start[],
 * len[] (row-major, elem bytes per element): to_block true copies the
 * block out of full into block, false writes block into full. */
void ty_shard_copy_block(void *full, const ty_shape *full_shape, void *block, const int64_t *start,
                         const int64_t *len, size_t elem, bool to_block);

#endif
