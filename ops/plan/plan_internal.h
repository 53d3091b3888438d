/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/plan internals, shared by the planner's files:
 *   rules.c     every op as a loop nest: an iteration space of loops, each
 *               tensor dim mapped to one loop (or none);
 *   model.c     the graph: concrete shapes, batch-derived dims, which values
 *               carry gradients, the loss;
 *   strategy.c  per mesh: the strategies of each op (mesh axis -> loop),
 *               the layouts they imply, their compute, memory and internal
 *               communication, and the cost graph;
 *   reshard.c   the collectives that turn one layout into another, and
 *               their ring cost;
 *   cg.c, elim.c, ilp.c, brute.c   the cost graph and its three solvers;
 *   search.c    meshes, roles (data / tensor), memory budgets, alternatives;
 *   fallback.c  what fits when no flat plan does: taken, or named in the refusal;
 *   emit.c      the chosen strategies as a ty_plan;
 *   shared.c    reads of one value that share one reshard.
 * The cost graph is a pairwise objective: sum over vertices of the chosen
 * strategy's cost plus, over edges, a matrix entry for the pair of choices.
 */
#ifndef TY_OPS_PLAN_PLAN_INTERNAL_H
#define TY_OPS_PLAN_PLAN_INTERNAL_H

#include "ops/plan/plan.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TY__PLAN_MAX_LOOPS 16
#define TY__NO_LOOP 0xFF

/* ---- model.c ----------------------------------------------------------------- */

/* What a split of a loop means, for strategy names. */
typedef enum {
  TY__LOOP_DIM = 0, /* a generic dim */
  TY__LOOP_M,       /* MatMul/Gemm rows of A */
  TY__LOOP_N,       /* MatMul/Gemm columns of B: column split */
  TY__LOOP_K,       /* MatMul/Gemm contraction: row split, partial sums */
  TY__LOOP_COUT,    /* Conv output channels */
  TY__LOOP_CHANNEL, /* pooling / normalisation channels */
  TY__LOOP_REDUCE,  /* a reduced dim: partial sums */
} ty__loop_role;

typedef struct ty__loop {
  int64_t size;
  bool split; /* a mesh axis may split it */
  bool batch; /* derived from the global batch */
  /* A mesh axis may split it unevenly (ceil / floor, ty_plan_block): a
   * loop every dim on which has the loop's size, so each tensor's block
   * along it is the same rows (a Reshape merging the batch with another
   * dim, or a hidden dim into heads, cuts other blocks: evenly only). */
  bool ragged;
  uint8_t role;
} ty__loop;

/* How one tensor of an op maps onto the op's loops: loop[d] for dim d, or -1
 * (a broadcast dim, or one never split). */
typedef struct ty__tmap {
  int8_t loop[TY_MAX_RANK];
} ty__tmap;

typedef struct ty__op {
  int node;
  bool vertex_less; /* Constant: no cost, no choice */
  bool fallback;    /* no sharding rule: replicated */
  char note[112];
  int n_loops;
  ty__loop loops[TY__PLAN_MAX_LOOPS];
  int batch_loop; /* first splittable batch loop, or -1 */
  int n_in, n_out;
  ty__tmap *in, *out;  /* n_in / n_out entries */
  bool *in_diff;       /* the slot carries a gradient back */
  bool *out_full;      /* split loops missing from this output leave it whole, not partial */
  double flops;        /* forward FLOPs of the whole op */
  bool backward;       /* some input takes a gradient */
  int grad_inputs;     /* how many: backward costs that many forwards, at most 2 */
  int64_t bn_channels; /* BatchNormalization: batch split syncs 2 x C statistics */
} ty__op;

typedef enum {
  TY__V_ACT = 0, /* written by an op */
  TY__V_PARAM,   /* a trainable float initializer */
  TY__V_DATA,    /* a graph input, fed in the layout its reader wants */
  TY__V_CONST,   /* an initializer or Constant output without gradient: free */
} ty__vkind;

typedef struct ty__value {
  ty_shape shape;     /* concrete (batch substituted) */
  size_t elem;        /* bytes per element */
  uint8_t batch_dims; /* bit d: dim d derives from the batch */
  uint8_t kind;
  bool grad;    /* carries a gradient in backward */
  bool frozen;  /* a float initializer the loss reaches that does not train (req->trained) */
  int producer; /* node, or -1 */
  int n_uses;   /* (node, slot) reads */
} ty__value;

typedef struct ty__model {
  const ty_graph *g;
  int64_t batch;
  size_t n_nodes;
  ty__op *ops;   /* by node index */
  size_t *order; /* topological order of the nodes */
  size_t n_values;
  ty__value *values;    /* by value id */
  double state_copies;  /* gradient + optimizer state per parameter element */
  uint64_t const_bytes; /* non-trainable initializers, replicated */
  int loss;
  size_t n_fallback;
  ty_shape *at_batch; /* every value's shape at the batch, shape arithmetic run
                         (ty__graph_shapes_at); made when first needed */
  /* Micro-batches per gradient synchronisation (a pipeline's M; 0 or 1:
   * every pass syncs). Trainrun all-reduces a stage's gradients once per
   * step, so each micro-batch is charged 1 / M of it (ty__space_build). */
  int sync_micro;
  bool separate_reads; /* the request's: no read shares another's reshard (shared.c) */
  /* Every loop splits evenly: a pipeline's model (ty__model_even_only), whose
   * micro-batches and stage boundaries assume equal blocks. */
  bool even_only;
} ty__model;

/* Whether loop l of op may be cut into `parts` blocks: evenly, or unevenly
 * for a ragged loop (every block at least one element). */
bool ty__loop_splits(const ty__op *op, int l, int64_t parts);
/* Clears every loop's ragged flag: a pipeline's model splits evenly only. */
void ty__model_even_only(ty__model *m);
/* The largest block of n cut into parts (ty_plan_block's first). */
static inline int64_t ty__ceil_div(int64_t n, int64_t parts) {
  return (n + parts - 1) / parts;
}

/* rules.c: the per-op sharding rules. */
int ty__op_init(ty__op *op, const ty_graph_node *n); /* allocates the maps (all -1) */
/* Fills op's loops, maps and FLOPs by n's rule, or marks it a fallback. */
void ty__op_rule(const ty__model *m, ty__op *op, const ty_graph_node *n);
/* Inputs that carry no gradient even when float (autodiff's list). */
bool ty__slot_differentiable(const ty_graph_node *n, int i, ty_dtype dt);
/* Concrete shape of input / output i of n, NULL when absent. */
const ty_shape *ty__in_shape(const ty__model *m, const ty_graph_node *n, int i);
const ty_shape *ty__out_shape(const ty__model *m, const ty_graph_node *n, int i);
double ty__numel(const ty_shape *s);
/* The rules' building blocks (rules.c): a loop (its index, -1 when full);
 * dim d of input / output i on loop l; tensor s right-aligned onto loops
 * loop0.. of shape full (dims of 1 broadcast; false when it does not
 * broadcast); a small int64 constant's values (their count, -1 when v is
 * not one). */
int ty__rule_loop(ty__op *op, int64_t size, bool split, uint8_t role);
void ty__rule_map_in(ty__op *op, int i, int d, int l);
void ty__rule_map_out(ty__op *op, int i, int d, int l);
bool ty__rule_map_aligned(ty__tmap *t, const ty_shape *s, const ty_shape *full, int loop0);
int ty__rule_const_ints(const ty__model *m, int v, int64_t *out, int max);
/* rules_layout.c: the rules of the ops that move or pick elements; false
 * when n's shapes fit none. */
bool ty__rule_reshape(const ty__model *m, ty__op *op, const ty_graph_node *n);
bool ty__rule_transpose(const ty__model *m, ty__op *op, const ty_graph_node *n);
bool ty__rule_concat(const ty__model *m, ty__op *op, const ty_graph_node *n);
bool ty__rule_split(const ty__model *m, ty__op *op, const ty_graph_node *n);
bool ty__rule_slice(const ty__model *m, ty__op *op, const ty_graph_node *n);
bool ty__rule_shape(const ty__model *m, ty__op *op, const ty_graph_node *n);
bool ty__rule_gather(const ty__model *m, ty__op *op, const ty_graph_node *n);
bool ty__rule_shaped(const ty__model *m, ty__op *op, const ty_graph_node *n);

/* model.c */
int ty__model_build(const ty_graph *g, const ty_plan_request *req, char *err, size_t err_len,
                    ty__model *out);
void ty__model_close(ty__model *m);
/* Full bytes of a value. */
double ty__value_bytes(const ty__value *v);

/* ---- layouts and resharding (reshard.c) --------------------------------------------- */

/* A layout packed in 32 bits: bits 2d, 2d+1 = the axes splitting dim d;
 * bits 16, 17 = partial axes. */
typedef uint32_t ty__lay;
#define TY__LAY_PARTIAL_SHIFT 16
static inline uint8_t ty__lay_dim(ty__lay l, int d) {
  return (uint8_t)((l >> (2 * d)) & 3u);
}
static inline uint8_t ty__lay_partial(ty__lay l) {
  return (uint8_t)((l >> TY__LAY_PARTIAL_SHIFT) & 3u);
}
static inline ty__lay ty__lay_whole(ty__lay l) {
  return l & 0xFFFFu;
}

typedef struct ty__mesh {
  int n[TY_PLAN_AXES];
  double flops; /* per device */
  double bw[TY_PLAN_AXES];
  double lat[TY_PLAN_AXES];
  double launch;
} ty__mesh;

/* One collective of a reshard, before it is given a tensor and a phase. */
typedef struct ty__step {
  uint8_t kind; /* ty_plan_coll_kind */
  uint8_t axis;
  int8_t dim, src_dim;
  double bytes, seconds;
} ty__step;

#define TY__MAX_STEPS 8
/* Seconds to turn a value held in layout src (possibly partial) into dst
 * (whole); the steps, when out_steps is non-NULL (TY__MAX_STEPS room). */
double ty__reshard(const ty__mesh *m, const ty_shape *shape, size_t elem, ty__lay src, ty__lay dst,
                   ty__step *out_steps, int *out_n);
/* Ring cost of one collective of `bytes` on an axis. */
double ty__coll_seconds(const ty__mesh *m, int axis, ty_plan_coll_kind kind, double bytes);
/* Local bytes of a value under a layout (partial sums keep the full size of
 * their dims). */
double ty__local_bytes(const ty__mesh *m, const ty_shape *shape, size_t elem, ty__lay l);
void ty__lay_to_public(ty__lay l, int rank, ty_plan_layout *out);

/* ---- cost graph --------------------------------------------------------------- */

typedef struct ty__cg_vertex {
  int n;        /* strategies */
  double *time; /* seconds per strategy */
  double *mem;  /* bytes per device per strategy */
} ty__cg_vertex;

typedef struct ty__cg_edge {
  int u, v;
  double *cost; /* n_u x n_v seconds, row-major in u's strategy */
} ty__cg_edge;

typedef struct ty__cg {
  int n_v, n_e;
  ty__cg_vertex *v;
  ty__cg_edge *e;
} ty__cg;

void ty__cg_close(ty__cg *cg);
/* Objective parts of an assignment. */
void ty__cg_eval(const ty__cg *cg, const int *assign, double *out_time, double *out_mem);
/* A copy holding only the allowed strategies (allowed[v][i]; NULL: all).
 * *out_map (the caller frees it): map[map[v] + j] is the original index of
 * the copy's strategy j of vertex v. */
int ty__cg_restrict(const ty__cg *cg, uint8_t *const *allowed, ty__cg *out, int **out_map);

/* The objective a solver minimises: wt * time + wm * mem, with sum mem <=
 * budget when budget >= 0 (ILP and brute force only). */
typedef struct ty__objective {
  double wt, wm;
  double budget;
} ty__objective;

typedef struct ty__solve_info {
  bool exact;    /* proved optimal */
  bool feasible; /* an assignment within the budget was found */
  int kernel;    /* vertices left after elimination */
} ty__solve_info;

/* elim.c: eliminates leaves and degree-2 vertices, merges parallel edges,
 * solves the irreducible rest (brute force when tiny, else the ILP, else a
 * local search), and substitutes back. */
int ty__solve_elim(const ty__cg *cg, ty__objective obj, int time_limit_ms, int *out_assign,
                   ty__solve_info *info);
/* ilp.c: GLPK over the whole cost graph. TY_ETIMEDOUT when the limit passed
 * before any assignment was found. */
int ty__solve_ilp(const ty__cg *cg, ty__objective obj, int time_limit_ms, int *out_assign,
                  ty__solve_info *info);
/* brute.c: depth-first branch and bound; TY_EINVAL above max_nodes visits. */
int ty__solve_brute(const ty__cg *cg, ty__objective obj, double max_nodes, int *out_assign,
                    ty__solve_info *info);

/* ---- strategies per mesh (strategy.c) -------------------------------------------- */

typedef struct ty__strat {
  uint8_t axis_loop[TY_PLAN_AXES]; /* loop split by each axis, or TY__NO_LOOP */
} ty__strat;

/* The choices of one vertex: an op's strategies or a shared parameter's
 * layouts. */
typedef struct ty__vchoice {
  int node;  /* op vertex: its node; -1 for a parameter */
  int value; /* parameter vertex: its value */
  int n;
  ty__strat *strat; /* op: n entries */
  ty__lay *lay;     /* op: n x (n_in + n_out) layouts (inputs first); param: n */
  uint8_t *gpart;   /* op: n x n_in axes over which an input's gradient is partial */
  /* n: the part of the vertex's memory that is parameters with gradient and
   * optimizer state; the rest (activations kept, data fed) grows with the
   * micro-batches a pipeline stage holds at once. */
  double *pmem;
} ty__vchoice;

typedef struct ty__space {
  const ty__model *model;
  ty__mesh mesh;
  /* The mesh as gradient synchronisation sees it: trainrun packs gradients
   * into buckets, so latency and launch are paid per bucket, not per
   * parameter; the planner charges their bandwidth only. */
  ty__mesh sync;
  int *vertex_of_node;  /* -1 for vertex-less nodes */
  int *vertex_of_value; /* shared parameters' vertices, else -1 */
  int n_vertices;
  ty__vchoice *choice; /* by vertex */
  ty__cg cg;
  double fixed_mem; /* constants every plan holds */
} ty__space;

int ty__space_build(const ty__model *m, const ty__mesh *mesh, ty__space *out);
void ty__space_close(ty__space *s);
/* Layouts of choice k of an op vertex: input i, output o; the axes over
 * which input i's gradient comes back partial. */
const ty__lay *ty__choice_lays(const ty__space *s, int vertex, int k);
uint8_t ty__choice_gpart(const ty__space *s, int vertex, int k, int input);
/* Forward + backward compute seconds of op under st. */
double ty__op_compute(const ty__space *s, const ty__op *op, const ty__strat *st);
/* Axes over which a BatchNormalization under st syncs its statistics. */
uint8_t ty__bn_axes(const ty__op *op, const ty__strat *st);
/* Strategy description for an op's choice ("column split (axis 1)"). */
void ty__strat_describe(const ty__model *m, const ty__op *op, const ty__strat *st,
                        const ty__mesh *mesh, char *buf, size_t len);

/* Roles of the axes for restricted searches. */
typedef enum {
  TY__ROLE_ANY = 0,
  TY__ROLE_DATA,   /* the axis splits the op's batch loop when it can, else nothing */
  TY__ROLE_TENSOR, /* the axis never splits a batch loop */
} ty__role;
/* allowed[v][i] for the roles; the caller frees each row and the array. */
int ty__space_allowed(const ty__space *s, const ty__role roles[TY_PLAN_AXES],
                      uint8_t ***out_allowed);

/* ---- pipelines (search.c, stages.c, pipeline.c, fallback.c) ------------------------ */

/* search.c: the meshes a cluster's devices form (the physical one first,
 * then its factorisations; only it when fixed); returns how many, at most max. */
int ty__list_meshes(const ty_plan_cluster *c, bool fixed, ty__mesh *out, int max);

#define TY__MAX_LAYERS 16
/* stages.c: the graph's layers as positions in m->order: (*out_start)[l]
 * is layer l's first, (*out_start)[*out_n] = n_nodes; the caller frees it. */
int ty__layers_find(const ty__model *m, int **out_start, int *out_n);
/* pipeline.c: the fastest pipelined plan (n_stages >= 2) for req within
 * budget bytes per device, without alternatives or identity (the caller
 * adds them). Stage and micro-batch counts whose compute alone cannot beat
 * `bound` seconds (the flat plan's step; INFINITY: none) are skipped.
 * one_micro_why (NULL: none) is why the loss allows one micro-batch only
 * (ty_plan_check_summed_losses): more are then refused, none tried.
 * TY_ENOTFOUND when none fits or beats it; TY_EINVAL for more stages than
 * layers; err says why. */
int ty__pipeline_search(const ty_graph *g, const ty_plan_request *req, double budget, double bound,
                        const char *one_micro_why, char *err, size_t err_len, ty_plan **out_plan);

/* fallback.c: what fits when no flat plan does. plan: the pipeline (or one
 * stage of micro-batches) to take, without alternatives or identity (the
 * caller adds them, and owns it); one_micro_why: why it has one
 * micro-batch only, "" when more were allowed. */
typedef struct ty__fallback {
  ty_plan *plan;
  char one_micro_why[TY_ERR_LEN];
} ty__fallback;
/* The chosen alternative's `why` of a plan taken for that starts so
 * (ty_plan_memory_fallback finds it). */
#define TY__FALLBACK_WHY "no flat plan fits in "
/* Called with the search's refusal for memory in err: 0 and out->plan
 * when req lets the search take what fits (pipeline_if_needed, AUTO) and
 * it changes nothing trained; else TY_EINVAL with err extended by what
 * would fit and why it was not taken (or TY_ENOMEM). loss: the model's. */
int ty__memory_fallback(const ty_graph *g, const ty_plan_request *req, int loss, double budget,
                        char *err, size_t err_len, ty__fallback *out);

/* ---- emit.c --------------------------------------------------------------------- */

/* Fills p's mesh, per-op, collective and parameter lists, step time and
 * memory for the assignment (original strategy indices of s). */
int ty__emit(const ty__space *s, const int *assign, ty_plan *p);
/* Reads of one activation that want it in the same layout, with the same
 * gradient layout, share one reshard: its first reader (lowest node, then
 * input) runs the collectives, the others read its result, and backward
 * sums their gradients before the one reshard back. The cost graph is
 * pairwise, so it charges each reader; `saved` is what it charged twice. */
typedef struct ty__shared_reads {
  size_t *base;       /* by node: the index of its input 0 in dup */
  bool *dup;          /* by (node, input): reads through an earlier reader's reshard */
  double *node_saved; /* by node: seconds its incoming edges charged for dup reads */
  double saved;
} ty__shared_reads;
int ty__shared_find(const ty__space *s, const int *assign, ty__shared_reads *out);
void ty__shared_close(ty__shared_reads *r);
/* The seconds a plan of assignment assign saves by shared reads (0 when out
 * of memory: the pairwise cost stands). */
double ty__shared_saving(const ty__space *s, const int *assign);
/* "1.5 GiB", "640.0 KiB". */
void ty__fmt_bytes(double bytes, char *buf, size_t len);

#endif
