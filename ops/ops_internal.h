/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the files of ops/: the graph struct, the per-op shape
 * inference entry point and the CPU kernel interface. What op families
 * share between their inference, kernels and gradients (conv and pooling
 * geometry, normalisation statistics, the recurrent layers) is in
 * kernels_internal.h. Nothing outside ops/ includes this header.
 *
 * Contract between inference and kernels: the executor runs
 * ty__infer_node on the concrete input tensors before each kernel, so a
 * kernel may assume dtypes, ranks and attribute values were validated and
 * its outputs are allocated with the inferred shapes.
 */
#ifndef TY_OPS_OPS_INTERNAL_H
#define TY_OPS_OPS_INTERNAL_H

#include "ops/conv_dnnl.h"
#include "ops/fold_matmul.h"
#include "ops/exec.h"
#include "ops/graph.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

struct ty_graph {
  int opset;
  ty_graph_node *nodes;
  size_t n_nodes, cap_nodes;
  ty_graph_value *values;
  size_t n_values, cap_values;
  int *inputs; /* graph inputs fed at run time */
  size_t n_inputs;
  int *outputs;
  size_t n_outputs;
  int *inits;
  size_t n_inits;
  char *name;
};

/* Writes `node "name" (Op): <message>` into err (lib/base's ty_errf) and
 * returns code. */
int ty__node_err(char *err, size_t err_len, const ty_graph_node *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- elements of any dtype (kernels/dtype.c) ---------------------------- */
/* The domain a dtype computes in: double, int64 or uint64 (bool too). */
typedef enum { TY__DK_FLOAT, TY__DK_SINT, TY__DK_UINT } ty__dkind;
typedef union ty__num {
  double f;
  int64_t i;
  uint64_t u;
} ty__num;
ty__dkind ty__dkind_of(ty_dtype dt);
/* Element i of the array p of dtype dt, converted with Cast's rules. */
double ty__getf(ty_dtype dt, const void *p, int64_t i);
int64_t ty__geti(ty_dtype dt, const void *p, int64_t i);
uint64_t ty__getu(ty_dtype dt, const void *p, int64_t i);
void ty__putf(ty_dtype dt, void *p, int64_t i, double v);
void ty__puti(ty_dtype dt, void *p, int64_t i, int64_t v);
void ty__putu(ty_dtype dt, void *p, int64_t i, uint64_t v);
/* The element in (get) or from (put) the domain of dt's own kind. */
ty__num ty__get(ty_dtype dt, const void *p, int64_t i);
void ty__put(ty_dtype dt, void *p, int64_t i, ty__num v);
/* n elements from one dtype to another (ONNX Cast). */
void ty__cast_elems(ty_dtype from, const void *src, ty_dtype to, void *dst, int64_t n);
float ty__f16_to_f32(uint16_t h);
uint16_t ty__f64_to_f16(double x);
float ty__bf16_to_f32(uint16_t h);
uint16_t ty__f32_to_bf16(float x);

/* ---- walking a broadcast ------------------------------------------------- */
/* An odometer over the shape `out` that keeps, for up to four operands
 * broadcast to it, the element offset of the current position. */
#define TY__ODO_MAX 4
typedef struct ty__odo {
  int rank, n;
  int64_t dims[TY_MAX_RANK], idx[TY_MAX_RANK];
  int64_t st[TY__ODO_MAX][TY_MAX_RANK];
  int64_t off[TY__ODO_MAX];
} ty__odo;
static inline void ty__odo_init(ty__odo *w, const ty_shape *out, int n,
                                const ty_shape *const *ins) {
  w->rank = out->rank;
  w->n = n;
  for (int d = 0; d < out->rank; d++) {
    w->dims[d] = out->dims[d];
    w->idx[d] = 0;
  }
  for (int k = 0; k < n; k++) {
    ty_broadcast_strides(ins[k], out, w->st[k]);
    w->off[k] = 0;
  }
}
/* One operand with explicit strides st from offset off0 (a strided view:
 * Slice, the reductions' output slots). */
static inline void ty__odo_init_strided(ty__odo *w, const ty_shape *shape, const int64_t *st,
                                        int64_t off0) {
  w->rank = shape->rank;
  w->n = 1;
  for (int d = 0; d < shape->rank; d++) {
    w->dims[d] = shape->dims[d];
    w->idx[d] = 0;
    w->st[0][d] = st[d];
  }
  w->off[0] = off0;
}
static inline void ty__odo_next(ty__odo *w) {
  for (int d = w->rank - 1; d >= 0; d--) {
    w->idx[d]++;
    for (int k = 0; k < w->n; k++)
      w->off[k] += w->st[k][d];
    if (w->idx[d] < w->dims[d]) return;
    for (int k = 0; k < w->n; k++)
      w->off[k] -= w->st[k][d] * w->idx[d];
    w->idx[d] = 0;
  }
}

/* Turns an initialised odometer into one over rows: ty__odo_next then
 * walks every dim but the last, and the caller covers a row of the
 * returned length, operand k advancing by st[k][rank] per element
 * (0 when broadcast along the row, 1 when contiguous). */
static inline int64_t ty__odo_rows(ty__odo *w) {
  if (w->rank == 0) return 1;
  w->rank--;
  return w->dims[w->rank];
}

/* The scatters into y (same walks as ScatterND / ScatterElements; n NULL
 * means reduction "add", what the gathers' gradients need). TY_EINVAL for
 * an index out of range. */
int ty__scatter_nd_into(ty_tensor *y, const ty_tensor *ind, const ty_tensor *up,
                        const ty_graph_node *n);
int ty__scatter_elements_into(ty_tensor *y, const ty_tensor *ind, const ty_tensor *up, int axis,
                              const ty_graph_node *n);
/* The gathers from x into y (GatherElements along axis, GatherND with b
 * batch dims), also the scatters' gradients. TY_EINVAL out of range. */
int ty__gather_elements_from(const ty_tensor *x, const ty_tensor *ind, int axis, ty_tensor *y);
int ty__gather_nd_from(const ty_tensor *x, const ty_tensor *ind, int b, ty_tensor *y);
/* GatherND's gradient: each slice of dy (GatherND's output shape) added
 * into dx (the data's shape, zeroed by the caller) where GatherND with b
 * batch dims read it; repeated indices add up. */
int ty__gather_nd_add(ty_tensor *dx, const ty_tensor *ind, const ty_tensor *dy, int b);
/* Pad's mode (0 constant, 1 reflect, 2 edge) and the input index of output
 * index o along a dim of size dim padded by begin; -1 for a constant cell. */
int ty__pad_mode(const ty_graph_node *n);
int64_t ty__pad_src(int64_t o, int64_t begin, int64_t dim, int mode);
/* DepthToSpace/SpaceToDepth (op) between x and y with n's attributes:
 * y from x, or with back x from y (the gradient). */
void ty__depth_space_move(const ty_graph_node *n, ty_op op, const ty_tensor *x, ty_tensor *y,
                          bool back);

/* Whether a Reduce* node takes axes as input 1 (ReduceSum from opset 13,
 * the others from 18) rather than as an attribute. */
bool ty__reduce_axes_is_input(const ty_graph_node *n);
/* The reduced dims of a Reduce* node (axes input or attribute, as its
 * opset says; all when none) and whether it is a no-op
 * (noop_with_empty_axes). */
int ty__reduce_mask(const ty_graph_node *n, const ty_tensor *const *in, int rank, bool *red,
                    bool *out_noop);
/* The stride in the reduced output of each input dim (0 for reduced dims):
 * walking x with ty__odo_init_strided gives each element's output slot. */
void ty__reduce_slots(const ty_shape *x, const bool *red, int64_t *out_strides);

/* The shape to broadcast a binary op's second input b as: b itself, or
 * before opset 7 (Add's broadcast/axis attributes, PRelu's per-channel
 * slope) b padded with trailing 1s so that it lines up at the axis. */
ty_shape ty__binary_bshape(const ty_graph_node *n, ty_op op, const ty_shape *a, const ty_shape *b);

/* Copies x broadcast to y's shape (Expand, the variadic ops). */
void ty__broadcast_copy(const ty_tensor *x, ty_tensor *y);

/* ---- shape inference ---------------------------------------------------- */
/* The largest dim inference accepts. Shapes come from untrusted models, so
 * dim arithmetic saturates (ty__dim_mul/add give INT64_MAX on overflow) and
 * ty__infer_node refuses any output dim above this, or whose element count
 * overflows, naming the node. */
#define TY__DIM_MAX ((int64_t)1 << 40)
/* True when a known dim exceeds TY__DIM_MAX or the product of the nonzero
 * known dims overflows (a tensor with a 0 dim is empty, but its strides
 * are still products of the others). */
static inline bool ty__shape_too_large(const ty_shape *s) {
  int64_t n = 1;
  for (int d = 0; d < s->rank; d++)
    if (s->dims[d] > TY__DIM_MAX || (s->dims[d] > 0 && __builtin_mul_overflow(n, s->dims[d], &n)))
      return true;
  return false;
}
static inline int64_t ty__dim_mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}
static inline int64_t ty__dim_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

/* An int64 vector (or scalar) partly known at import: the shape of a value
 * whose batch dim is symbolic, and what Gather, Concat, Slice and friends
 * make of it. Lets `x.view(x.size(0), -1)` infer [N, 784] statically while
 * the Shape node itself runs at run time. */
#define TY__SYM_MAX 16
enum { TY__SYM_KNOWN = 0, TY__SYM_BATCH = 1, TY__SYM_UNKNOWN = 2 };
typedef struct ty__symvec {
  int n;    /* entries */
  int rank; /* 0 (scalar, n == 1) or 1 */
  int64_t v[TY__SYM_MAX];
  int8_t kind[TY__SYM_MAX];
} ty__symvec;

typedef struct ty__infer {
  const ty_graph_node *node;
  int n_in;
  const ty_dtype *in_dt;           /* n_in entries; TY_DTYPE_INVALID for absent */
  const ty_shape *in_shape;        /* n_in entries */
  const ty_tensor *const *in_val;  /* n_in entries; the value when known, else NULL */
  const ty__symvec *const *in_sym; /* NULL, or n_in entries: a partly known int vector, else NULL */
  int n_out;
  ty_dtype *out_dt; /* filled for every output */
  ty_shape *out_shape;
  char *err;
  size_t err_len;
} ty__infer;

/* Checks the node's inputs and attributes and fills its output dtypes and
 * shapes. TY_EUNSUPPORTED / TY_EINVAL with a message naming the node. */
int ty__infer_node(ty__infer *ic);
/* Reads an int64 list from a known input value (axes, shape). *out_n: -1
 * when the input is absent, -2 when its value is not known. */
int ty__infer_int_list(ty__infer *ic, int input, int64_t *out, int max, int *out_n);
/* Like ty__infer_int_list, but also from a partly known vector: entries of
 * kind[i] != TY__SYM_KNOWN are the batch or unknown. */
int ty__infer_dims_list(ty__infer *ic, int input, int64_t *out, int8_t *kind, int max, int *out_n);
/* Writes `node "name" (Op): <message>` and returns code (for inference). */
int ty__infer_fail(ty__infer *ic, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Checks that input i is present (unless optional) with a dtype in mask
 * (bits 1 << dtype; TY__DT_* below). */
int ty__infer_need(ty__infer *ic, int i, uint32_t mask, bool optional);
bool ty__infer_has(const ty__infer *ic, int i);
void ty__infer_set(ty__infer *ic, int i, ty_dtype dt, const ty_shape *s);
#define TY__DT(d) (1u << TY_DTYPE_##d)
#define TY__DT_FLOATS (TY__DT(F32) | TY__DT(F64) | TY__DT(F16) | TY__DT(BF16))
#define TY__DT_SINTS (TY__DT(I8) | TY__DT(I16) | TY__DT(I32) | TY__DT(I64))
#define TY__DT_UINTS (TY__DT(U8) | TY__DT(U16) | TY__DT(U32) | TY__DT(U64))
#define TY__DT_INTS (TY__DT_SINTS | TY__DT_UINTS)
#define TY__DT_NUMS (TY__DT_FLOATS | TY__DT_INTS)
#define TY__DT_ALL (TY__DT_NUMS | TY__DT(BOOL))
#define TY__DT_INDEX (TY__DT(I32) | TY__DT(I64))

/* Evaluates node n on partly known int vectors (Shape, Gather, Concat,
 * Slice, Unsqueeze, Squeeze, Cast, elementwise int arithmetic, comparisons,
 * And, Or, Not, Min and Max); 1 when
 * *out was computed, 0 when the op or its inputs give nothing (fold.c). */
int ty__sym_eval(const ty_graph_node *n, const ty_shape *in_shape, const ty__symvec *const *in_sym,
                 const ty_tensor *const *in_val, ty__symvec *out);

/* Infers g's shapes (as ty_graph_infer_shapes) and reports what the pass
 * knew of value id's contents: its int or bool entries, partly known or
 * known (*have 1), or nothing (*have 0). For import's If (import.c). */
int ty__graph_infer_value(ty_graph *g, int id, ty__symvec *out, int *have, char *err,
                          size_t err_len);

/* Slice's parameters per axis (from inputs 1..4, or attributes before
 * opset 10); axes not sliced keep the whole dim. TY_EINVAL when malformed. */
typedef struct ty__slice {
  int64_t start[TY_MAX_RANK], end[TY_MAX_RANK], step[TY_MAX_RANK];
  bool given[TY_MAX_RANK];
} ty__slice;
int ty__slice_params(const ty_graph_node *n, const ty_tensor *const *in, int rank, ty__slice *s);
/* Resolves one axis of a slice against its dim (numpy's rules): the first
 * index and the number of elements taken. */
void ty__slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *out_start,
                    int64_t *out_len);
/* Split's part sizes along a dim of size dim (TY_DIM_UNKNOWN entries when
 * dim is symbolic and no split is given). */
int ty__split_sizes(const ty_graph_node *n, const ty_tensor *split_in, int64_t dim, int n_out,
                    int64_t *sizes);
/* Pad's begin/end per axis, pads[0..rank) begins and pads[rank..2 rank) ends. */
int ty__pad_params(const ty_graph_node *n, const ty_tensor *const *in, int rank, int64_t *pads);
/* Range's element count; -1 for a zero delta or an absurd length. */
int64_t ty__range_len(const ty_tensor *start, const ty_tensor *limit, const ty_tensor *delta);
/* Shape's [start, end) window of a rank (opset 15 attributes), clamped. */
void ty__shape_window(const ty_graph_node *n, int rank, int *out_start, int *out_end);

/* A unary op's attributes, read once per node (kernels/activation.c), and
 * its value at x in double: the definition the generic kernel and the
 * backward kernels share. */
typedef struct ty__uparams {
  ty_op op;
  float alpha, beta, gamma, bias, lambd;
  bool tanh_gelu, neg_inf, pos_inf;
} ty__uparams;
/* op is n's own, or the forward op of a TyGrad node carrying its attributes. */
ty__uparams ty__uparams_of(const ty_graph_node *n, ty_op op);
double ty__unary_f(const ty__uparams *p, double x);
/* Clip's bounds (inputs 1 and 2, or attributes before opset 11). */
int ty__clip_bounds(const ty_graph_node *n, const ty_tensor *const *in, double *lo, double *hi);

/* Constant folding at import (fold.c; see there): replaces nodes whose
 * inputs are all constants by Constant nodes and drops constants nobody
 * reads. Run after shape inference; infer again afterwards. */
int ty__graph_fold(ty_graph *g, char *err, size_t err_len);
/* A deep copy of g numbered as an import of its encoding numbers it
 * (values in the order met, nodes in topological order, values no node,
 * input or initializer names left out, node outputs untyped), the passes
 * of an import not run (ty_graph_clone runs them): TY_ENOMEM, TY_EINVAL
 * (a cycle, as the export), or 0 and *out_graph, the caller's. In
 * graph.c, for trainctl, which links no import. */
int ty__graph_copy(const ty_graph *g, ty_graph **out_graph);
/* import_soft.c: replaces every SoftmaxCrossEntropyLoss whose labels are
 * float (class probabilities, as PyTorch exports F.cross_entropy with a
 * probability target) by LogSoftmax, Einsum, Neg and a reduction computing
 * PyTorch's loss. Run at import before shape inference. */
int ty__import_lower_soft_labels(ty_graph *g, char *err, size_t err_len);
/* import_logsig.c: rewrites Log(Sigmoid(x)) as Neg(Softplus(Neg(x))) and
 * Log(Sub(1, Sigmoid(x))) as Neg(Softplus(x)) (PyTorch's logsigmoid and
 * BCE-with-logits exports, which overflow to -inf in float32), dropping a
 * Sigmoid or Sub nothing else reads. Run at import after shape inference
 * (infer again after it); *rewritten: the Log nodes rewritten (may be
 * NULL). */
int ty__import_stable_log_sigmoid(ty_graph *g, size_t *rewritten, char *err, size_t err_len);
/* Turns node k into a Constant holding t (taken, also on failure). */
int ty__graph_node_to_constant(ty_graph *g, size_t k, ty_tensor *t);
/* Removes the nodes with drop[k] set; their outputs lose their producer. */
int ty__graph_drop_nodes(ty_graph *g, const bool *drop);
/* Puts g's nodes in topological order (after a pass appended some out of
 * order); an ordered graph stays as it is. TY_EINVAL for a cycle. */
int ty__graph_sort(ty_graph *g);

/* infer_batch.c: every value's shape (out: one per value id) with the batch
 * at `batch`, shape arithmetic run where it is constant there; a dim that
 * stays unknown stays negative. Errors are shape inference's. */
int ty__graph_shapes_at(const ty_graph *g, int64_t batch, ty_shape *out, char *err, size_t err_len);
/* A copy of src for shape questions (infer_batch.c): the batch dims set
 * to batch (TY_DIM_BATCH keeps them symbolic), float initializers made
 * inputs of their shape, the other initializers cloned; the ids are src's. */
int ty__graph_shape_copy(const ty_graph *src, int64_t batch, ty_graph **out);
/* Infers g's shapes, then folds its shape arithmetic and infers again
 * while that makes unknown dims known (a graph whose inputs are all
 * concrete ends fully concrete). Nodes are replaced and dropped as by
 * ty__graph_fold; value ids stay. */
int ty__graph_fold_shapes(ty_graph *g, char *err, size_t err_len);
/* Sets a copy of attribute a on node idx of g. */
int ty__graph_copy_attr(ty_graph *g, size_t idx, const ty_graph_attr *a);

/* Helpers for "attribute ints or default" lookups. */
int ty__attr_ints(const ty_graph_node *n, const char *name, int64_t *out, int max, int *out_n);

/* ---- Resize and Upsample (kernels/resize.c) ------------------------------ */
enum { TY__RESIZE_NEAREST, TY__RESIZE_LINEAR, TY__RESIZE_CUBIC };
enum {
  TY__RESIZE_HALF_PIXEL,
  TY__RESIZE_HALF_PIXEL_SYMMETRIC,
  TY__RESIZE_PYTORCH_HALF_PIXEL,
  TY__RESIZE_ALIGN_CORNERS,
  TY__RESIZE_ASYMMETRIC,
  TY__RESIZE_TF_HALF_PIXEL_FOR_NN,
  TY__RESIZE_TF_CROP_AND_RESIZE,
  TY__RESIZE_COORD_COUNT_
};
enum {
  TY__RESIZE_ROUND_PREFER_FLOOR,
  TY__RESIZE_ROUND_PREFER_CEIL,
  TY__RESIZE_FLOOR,
  TY__RESIZE_CEIL,
  TY__RESIZE_NEAREST_COUNT_
};
/* A Resize/Upsample node's attributes, checked. */
typedef struct ty__resize_attrs {
  int mode, coord, nearest; /* the enums above */
  int keep_aspect;          /* 0 stretch, 1 not_larger, 2 not_smaller */
  float cubic_a, extrapolation;
  bool exclude_outside;
  int64_t axes[TY_MAX_RANK];
  int n_axes;                      /* -1: every axis */
  int roi_in, scales_in, sizes_in; /* input slots; -1 where the op has none */
} ty__resize_attrs;
/* Per axis: input and output length (negative: symbolic, as ty_shape),
 * the scale the coordinate transform divides by, and the crop box. */
typedef struct ty__resize_geom {
  int rank;
  int64_t in[TY_MAX_RANK], out[TY_MAX_RANK];
  double scale[TY_MAX_RANK], roi_lo[TY_MAX_RANK], roi_hi[TY_MAX_RANK];
} ty__resize_geom;
/* One resized axis: output index j reads taps source indices idx[j*taps +
 * t] (clamped to the axis) with weights w[j*taps + t]; outside[j] (crop
 * only, else NULL) marks outputs that take the extrapolation value. */
typedef struct ty__resize_axis {
  int64_t in, out;
  int taps;
  int64_t *idx;
  float *w;
  uint8_t *outside;
} ty__resize_axis;
typedef struct ty__resize_plan {
  ty__resize_attrs attrs;
  ty__resize_geom geom;
  bool active[TY_MAX_RANK]; /* axes that change; the others are copied */
  ty__resize_axis ax[TY_MAX_RANK];
} ty__resize_plan;
int ty__resize_read_attrs(const ty_graph_node *n, ty__resize_attrs *a, char *err, size_t len);
/* The output geometry from the input dims (negative: unknown or batch),
 * roi, scales (n_* 0: absent) and sizes (negative entries: symbolic). */
int ty__resize_geom_make(const ty_graph_node *n, const ty__resize_attrs *a, int rank,
                         const int64_t *in, const double *roi, int n_roi, const double *scales,
                         int n_scales, const int64_t *sizes, int n_sizes, ty__resize_geom *g,
                         char *err, size_t len);
/* The taps of every resized axis from the node's concrete inputs (in[0]
 * the data); ty__resize_plan_free releases them. */
int ty__resize_plan_make(const ty_graph_node *n, const ty_tensor *const *in, int n_in,
                         ty__resize_plan *p, char *err, size_t len);
void ty__resize_plan_free(ty__resize_plan *p);
void ty__resize_forward(const ty__resize_plan *p, const ty_tensor *x, ty_tensor *y, ty_workers *w);

/* ---- kernels ------------------------------------------------------------ */
typedef struct ty_workers ty_workers; /* ops/exec.h */

/* True when n's kernel writes every element of its outputs, so the
 * executor need not zero-fill them first (exec.c; the kernels of the ops
 * it lists, and ops/autodiff's for TyGrad, keep that promise). */
bool ty__kernel_overwrites(const ty_graph_node *n);
bool ty__grad_overwrites(const ty_graph_node *n);

typedef struct ty__kctx {
  bool training;
  uint64_t noise; /* this run's key for the random ops and Dropout without a seed (ty__noise_run) */
  ty_exec_extern_fn extern_op; /* TyExtern (ops/exec.h); NULL outside an executor that has one */
  void *extern_user;
  ty_workers *workers; /* the executor's threads; NULL: run on the caller */
  /* Where a kernel that fails on its data says what is wrong ("index 12 at
   * position 3 is outside [-10, 10)"), for the executor's error; NULL: not
   * asked (ty__kctx_why writes nothing). */
  char *why;
  size_t why_len;
} ty__kctx;
/* Fills ctx->why (when there is one) and returns rc. */
int ty__kctx_why(ty__kctx *ctx, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The key of one run's random-op draws (ops/kernels/random.c): from
 * noise_seed, or when that is 0 from the executor's seed, and the run's
 * number, so every run draws anew and the same (seeds, run) draws alike. */
static inline uint64_t ty__noise_run(uint64_t noise_seed, uint64_t seed, uint64_t run) {
  uint64_t base = noise_seed ? noise_seed : ty_mix2(seed, 0x6e6f697365ull /* "noise" */);
  return ty_mix2(base, run);
}

/* ops/workers.c: calls fn(arg, begin, end, slot) over chunks covering
 * [0, n), each chunk at least grain items (the last may be shorter), and
 * returns when all are done. slot < ty_workers_count(w) names the thread
 * (per-thread scratch); which thread gets which chunk varies between runs,
 * so results must not depend on it. With w NULL, one thread, n <= grain or
 * a job already running on w, fn runs once over [0, n) on the caller. */
typedef void (*ty__par_fn)(void *arg, int64_t begin, int64_t end, int slot);
/* Elements of a simple elementwise loop below which waking a thread costs
 * more than it saves. */
#define TY__PAR_GRAIN 16384
void ty__parallel_for(ty_workers *w, int64_t n, int64_t grain, ty__par_fn fn, void *arg);
/* OpenBLAS runs each call on its caller: kernels split their GEMMs over
 * the executor's pool themselves (or run on the caller without one), so
 * results never depend on OpenBLAS' own threads. Set by every pool and
 * every executor. */
void ty__blas_on_caller(void);

/* kernels/gemm.c: row-major C = alpha op(A) op(B) + beta C (cblas_sgemm's
 * arguments), split over w's threads by blocks of C's rows or columns when
 * the product is large enough; each element of C is computed the same way
 * whatever the split. */
void ty__sgemm(ty_workers *w, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc);
/* The same product as one call on the calling thread, on oneDNN or
 * OpenBLAS by its shape (kernels/gemm.c); its test hooks: ops/gemm_dnnl.h. */
void ty__sgemm1(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/* kernels/gemm_small.c: the product on the calling thread by an AVX2 + FMA
 * kernel for small shapes; false (C untouched) where the CPU lacks AVX2 or
 * FMA, k is 0 or over the kernel's limit, or the build is not x86-64. */
bool ty__sgemm_small(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/* kernels/gemm_dnnl.c (TY_HAVE_DNNL only): the product through oneDNN's
 * dnnl_sgemm on the calling thread; false when oneDNN refuses it. */
bool ty__sgemm_dnnl(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* kernels/matmul.c: MatMul as a batched product of strided matrices. An
 * operand may be read through a permutation of its stored dims, the node
 * attribute TY__MM_PERM_A or TY__MM_PERM_B (ops/fold_matmul.h). */
typedef struct ty__mm_view {
  ty_shape dims;           /* the operand as the product reads it, 1-D promoted */
  int64_t st[TY_MAX_RANK]; /* element strides of those dims in the stored tensor */
} ty__mm_view;
/* The view of MatMul input i (0: A, 1: B) stored with shape s, through
 * n's permutation attribute (n may be NULL: none). TY_EINVAL when the
 * attribute is not a permutation of s's dims or leaves no matrix dim at
 * stride 1. */
int ty__mm_view_of(const ty_graph_node *n, int i, const ty_shape *s, ty__mm_view *v);
/* The batch dims of a product of two views (numpy broadcasting). */
int ty__mm_batch(const ty__mm_view *a, const ty__mm_view *b, ty_shape *batch);
typedef struct ty__mm_mat {
  float *p;                /* entry 0's first element */
  int64_t st[TY_MAX_RANK]; /* strides per batch dim, 0 where broadcast */
  int64_t sr, sc;          /* strides of a row and a column; one of them is 1 */
} ty__mm_mat;
/* A view as a matrix over batch (swap: its transpose). */
ty__mm_mat ty__mm_mat_of(const ty__mm_view *v, const ty_shape *batch, const float *p, bool swap);
/* C = A B for every batch entry (a: m x k, b: k x n); where c is broadcast
 * over batch, C = the sum over the entries, in entry order. c_numel: the
 * elements of c's tensor, zeroed where the sum needs it. */
void ty__mm_batched(ty_workers *w, const ty_shape *batch, const ty__mm_mat *a, const ty__mm_mat *b,
                    const ty__mm_mat *c, int64_t m, int64_t n, int64_t k, size_t c_numel);

/* in[i] is NULL for an omitted optional input, out[i] NULL for an output
 * the graph does not use. Returns 0 or a TY_E* code. */
typedef int (*ty__kernel_fn)(const ty_graph_node *n, const ty_tensor *const *in,
                             ty_tensor *const *out, ty__kctx *ctx);

/* The kernel ty__k_<k> and inference rule ty__infer_<r> of every op of
 * TY_OP_LIST (ops sharing one declare it again, which C allows). TyGrad's
 * live in ops/autodiff. */
#define TY__OP_DECLS_(e, s, k, r)                                                                  \
  int ty__k_##k(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);  \
  int ty__infer_##r(ty__infer *ic);
TY_OP_LIST(TY__OP_DECLS_)
#undef TY__OP_DECLS_

/* Runs one node outside an executor (constant folding): infers its output
 * shapes from the inputs, allocates the outputs (out[i] NULL for outputs
 * the node does not name) and runs its kernel in inference mode. Returns 1,
 * allocating nothing, when an output would hold more than max_numel
 * elements. The caller owns the outputs. Errors name the node. */
int ty__eval_node(const ty_graph_node *n, const ty_tensor *const *in, int64_t max_numel,
                  ty_tensor **out, char *err, size_t err_len);

/* The CPU kernel for op (never NULL for a valid op). A CUDA backend would
 * add a second table here, selected per device by ops/exec. */
ty__kernel_fn ty__kernel_for(ty_op op);

#endif
