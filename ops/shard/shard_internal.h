/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of ops/shard shared by local.c (the local graph, with bn.c and
 * scale.c for the nodes whose partial results are combined) and route.c
 * (reshard routes: building, checking and running them).
 *
 * A route is a list of steps on a buffer whose layout is tracked with its
 * split order: for each dim, the mesh axes cutting it, major first. The
 * plan's layouts cut a dim split by both axes axis 0 major; a free slice
 * appends its axis as the minor one, a gather removes the minor one, so
 * every step is a local copy or one collective on contiguous chunks.
 */
#ifndef TY_OPS_SHARD_SHARD_INTERNAL_H
#define TY_OPS_SHARD_SHARD_INTERNAL_H

#include "ops/shard/shard.h"

#define TY__ROUTE_MAX 16
#define TY__SLICE 4 /* a step kind beside ty_plan_coll_kind: a free local slice */

typedef struct ty__order {
  int rank;
  uint8_t axes[TY_MAX_RANK][TY_PLAN_AXES]; /* major first */
  uint8_t n[TY_MAX_RANK];
  uint8_t partial;
} ty__order;

typedef struct ty__step {
  uint8_t kind; /* ty_plan_coll_kind or TY__SLICE */
  uint8_t axis;
  int8_t dim, src_dim;
} ty__step;

typedef struct ty__route {
  bool generic; /* the plan's route could not run here: gather and slice instead */
  ty__order start;
  int n;
  ty__step s[TY__ROUTE_MAX];
} ty__route;

/* A TyExtern node: one (reader, input) whose layout differs from the one
 * the value is held in. */
typedef struct ty__point {
  char what[160]; /* "fc2.out at relu2 input 0", for errors and checks */
  ty_shape full;  /* the value's global shape */
  ty__route fwd, bwd;
} ty__point;

struct ty_shard {
  ty_plan *plan; /* owned copy (decoded from its encoding) */
  int rank;
  int loss;       /* the value the trainer differentiates; TY_NO_VALUE: every output */
  bool inference; /* ty_shard_create_inference: evaluated, not trained */
  int coords[TY_PLAN_AXES];
  ty_graph *g;         /* the local graph */
  size_t n_values;     /* values of the graph given to create */
  ty_shape *full;      /* per such value: its global shape, batch substituted */
  ty_plan_layout *lay; /* per such value: the layout it is held in */
  unsigned *grad_axes; /* per such value: bucketed sync axes of a parameter */
  bool *is_param;
  bool *param_points; /* per parameter: read through TyExtern nodes (synced inside backward) */
  ty__point *points;
  size_t n_points, cap_points;
  ty_shard_bn_info *bns; /* decomposed BatchNormalizations */
  size_t n_bns;
  ty_shard_comm comm;
  bool have_comm;
  char err[TY_ERR_LEN];
};

/* The local graph while it is built (local.c, bn.c, scale.c). */
typedef struct builder {
  ty_shard *s;
  const ty_graph *src; /* the graph the plan was made for */
  ty_graph *g;         /* the local graph being built */
  char *err;
  size_t err_len;
  bool *grad; /* per value: may carry a gradient (depends on a float initializer
                 through differentiable inputs); owned, freed by the build */
  /* Activations already resharded for a reader: a later reader wanting the
   * same layout reads the same result (the plan lists the collectives on
   * the first reader only: ops/plan/shared.c). Owned, freed by the build. */
  struct ty__shared_read *shared;
  size_t n_shared, cap_shared;
} builder;

typedef struct ty__shared_read {
  int value;          /* of the source graph */
  ty_plan_layout lay; /* the layout read, its grad_partial included */
  bool backward;      /* its point runs a backward route */
  int out;            /* the local value readers read */
} ty__shared_read;

/* local.c */
/* The local shape of value v held in layout l. */
ty_shape ty__shard_local_of(const ty_shard *s, int v, const ty_plan_layout *l);
/* A new point (its routes zeroed) at s->points[s->n_points - 1]. */
int ty__shard_add_point(builder *b, ty__point **out);
/* A TyExtern node of point `id` reading v, writing a new value of local shape ls. */
int ty__shard_add_extern(builder *b, int v, const ty_shape *ls, const char *name, int64_t id,
                         int *out);
/* Constants (initializers) named `<node>.<what>`: one holding t (owns t,
 * also on failure), a 1-D int64 one of n values, and a scalar of dtype dt
 * holding x (cast as ONNX Cast does). */
int ty__shard_add_const(builder *b, const char *node, const char *what, ty_tensor *t, int *id);
int ty__shard_add_ints(builder *b, const char *node, const char *what, const int64_t *v, int n,
                       int *id);
int ty__shard_add_scalar(builder *b, const char *node, const char *what, ty_dtype dt, double x,
                         int *id);

/* scale.c: node n's partial results scaled to one process's. *out_scale:
 * a mean over a split dim's scale to the global count, or a pipeline's
 * micro-batch count for a summed loss (1: neither); out = x * scale as a
 * Constant and a Mul writing value `out`; the mesh axes (of more than one
 * device) splitting n's batch; whether n is a weighted or ignore_index
 * mean loss computed here as a sum over the global weight sum, and that
 * computation over inputs in[]; a metric's inputs reading a summed loss
 * divided back by the micro-batch count (in[] rewritten). */
int ty__shard_mean_scale(const builder *b, size_t n, double *out_scale);
int ty__shard_add_scale(builder *b, const char *node, int x, double scale, int out);
unsigned ty__shard_batch_axes(const ty_shard *s, size_t n);
bool ty__shard_weighted_here(const builder *b, size_t n);
int ty__shard_weighted_mean(builder *b, size_t n, const int *in);
int ty__shard_unscaled_inputs(builder *b, size_t n, int *in);

/* bn.c: node n (BatchNormalization over inputs in[], its batch split over
 * `axes`) as primitive ops whose sums a TyExtern all-reduces. */
int ty__shard_bn(builder *b, size_t n, const int *in, unsigned axes);
/* Fills s->g, the points and the per-value tables from src and s->plan. */
int ty__shard_build(ty_shard *s, const ty_graph *src, char *err, size_t err_len);

/* wmean.c (shard.h: ty_shard_weighted_mean): in g, over node gn's
 * inputs in[] (values of g): a scalar named `name` = the sum of the weights
 * of the labels in[1] (in[2]'s, or 1; an ignored label's 0), with no
 * gradient path to the weights; scores and labels are gn's inputs 0 and 1
 * as the source graph knows them (the class count and the labels' rank;
 * refused naming the node when unknown and the loss has weights); then
 * gn's output 0 = its loss with reduction sum * k / d (NaN when d is 0,
 * with zero gradients), its other outputs as gn's. */
int ty__wmean_weight_sum(ty_graph *g, const ty_graph_node *gn, const int *in,
                         const ty_shape *scores, const ty_shape *labels, const char *name, int *out,
                         char *err, size_t err_len);
int ty__wmean_loss(ty_graph *g, const ty_graph_node *gn, const int *in, int d, double k);

/* route.c */
/* The ordered form of a plan layout (axis 0 major). */
void ty__order_of(const ty_plan_layout *l, ty__order *out);
/* Builds the route from src to dst (whole) with the plan's listed steps
 * (after the free slices); falls back to the generic route when the listed
 * one cannot run here. TY_EINVAL, naming `what` in err, when the listed
 * route is valid but ends elsewhere. */
int ty__route_build(const ty_shard *s, const ty_shape *full, const ty_plan_layout *src,
                    const ty_plan_layout *dst, const ty__step *listed, int n_listed,
                    const char *what, ty__route *out, char *err, size_t err_len);
/* Runs a route on in (global shape full) into out. */
int ty__route_run(ty_shard *s, const ty__route *r, const ty_shape *full, const char *what,
                  const ty_tensor *in, ty_tensor *out);
/* The local block of a value held in o on the shard's rank. */
void ty__order_block(const ty_shard *s, const ty__order *o, const ty_shape *full, int64_t *start,
                     int64_t *len);

#endif
