/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the files of ops/: the graph struct, the per-op shape
 * inference entry point and the CPU kernel interface. Nothing outside ops/
 * includes this header.
 *
 * Contract between inference and kernels: the executor runs
 * ty__infer_node on the concrete input tensors before each kernel, so a
 * kernel may assume dtypes, ranks and attribute values were validated and
 * its outputs are allocated with the inferred shapes.
 */
#ifndef TY_OPS_OPS_INTERNAL_H
#define TY_OPS_OPS_INTERNAL_H

#include "ops/graph.h"

#include <stdarg.h>

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

/* ---- shape inference ---------------------------------------------------- */
typedef struct ty__infer {
  const ty_graph_node *node;
  int n_in;
  const ty_dtype *in_dt;     /* n_in entries; TY_DTYPE_INVALID for absent */
  const ty_shape *in_shape;  /* n_in entries */
  const ty_tensor *const *in_val; /* n_in entries; the value when known, else NULL */
  int n_out;
  ty_dtype *out_dt;          /* filled for every output */
  ty_shape *out_shape;
  char *err;
  size_t err_len;
} ty__infer;

/* Checks the node's inputs and attributes and fills its output dtypes and
 * shapes. TY_EUNSUPPORTED / TY_EINVAL with a message naming the node. */
int ty__infer_node(ty__infer *ic);
/* Families, dispatched by ty__infer_node (infer.c, infer_shape.c). */
int ty__infer_shape_op(ty__infer *ic);
/* Reads an int64 list from a known input value (axes, shape). */
int ty__infer_int_list(ty__infer *ic, int input, int64_t *out, int max, int *out_n);

/* Helpers for "attribute ints or default" lookups. */
int ty__attr_ints(const ty_graph_node *n, const char *name, int64_t *out, int max, int *out_n);

/* ---- kernels ------------------------------------------------------------ */
typedef struct ty__kctx {
  bool training;
  ty_rng rng; /* lib/base's SplitMix64 stream for Dropout, advanced per use */
} ty__kctx;

/* in[i] is NULL for an omitted optional input, out[i] NULL for an output
 * the graph does not use. Returns 0 or a TY_E* code. */
typedef int (*ty__kernel_fn)(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                             ty__kctx *ctx);

int ty__k_binary(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_unary(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_gemm(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_matmul(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_softmax(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_sce_loss(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_conv(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_pool(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_global_avg_pool(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_batch_norm(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_layer_norm(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_dropout(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_copy(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_constant(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_transpose(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_concat(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_gather(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__k_reduce(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
/* TyGrad, the backward op of ops/autodiff (kernels and inference live there). */
int ty__k_grad(const ty_graph_node *, const ty_tensor *const *, ty_tensor *const *, ty__kctx *);
int ty__infer_grad(ty__infer *ic);

/* The CPU kernel for op (never NULL for a valid op). A CUDA backend would
 * add a second table here, selected per device by ops/exec. */
ty__kernel_fn ty__kernel_for(ty_op op);

/* Pooling / conv window geometry shared by inference and kernels. */
typedef struct ty__window {
  int nsp;                 /* spatial dims (1..3) */
  int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3];
  bool ceil_mode, count_include_pad;
} ty__window;
/* Reads kernel_shape (or the weight's spatial dims), strides, dilations,
 * pads, auto_pad, ceil_mode from a Conv/MaxPool/AveragePool node. */
int ty__window_read(const ty_graph_node *n, int nsp, const int64_t *weight_spatial, const int64_t *in_spatial,
                    ty__window *w, char *err, size_t err_len);
/* Output spatial size for one dim; -1 for a symbolic input dim. */
int64_t ty__window_out(const ty__window *w, int d, int64_t in);

/* Conv geometry of one group of one image; 1-D convs as 2-D of height one.
 * Shared by the forward kernel (ops/kernels/conv.c) and its backward
 * (ops/autodiff). x, w and y are the input, weight and output shapes. */
typedef struct ty__conv_geom {
  int64_t c, h, w, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw;
} ty__conv_geom;
int ty__conv_geom_init(const ty_graph_node *n, const ty_shape *x, const ty_shape *w, const ty_shape *y,
                       ty__conv_geom *out);

/* A pooling window over three spatial dims (leading sizes of one), shared
 * by ops/kernels/pool.c and its backward. */
typedef struct ty__pool3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} ty__pool3;
void ty__pool3_init(const ty__window *w, const ty_shape *x, const ty_shape *y, ty__pool3 *out);
/* The window of output position o: [lo, hi) per dim with step d, and the
 * element count of the window clipped to the padded extent (AveragePool's
 * count_include_pad divisor). */
void ty__pool3_window(const ty__pool3 *p, const int64_t *o, int64_t *lo, int64_t *hi, int64_t *out_padded);

#endif
