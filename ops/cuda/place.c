/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-node placement: which nodes of a graph the CUDA backend has a kernel
 * for, and for every other node why it stays on the CPU. Pure (no device,
 * no CUDA call), so the decision is unit-tested anywhere and printed by
 * trainrun for DEVICE_GPU jobs.
 *
 * A node is placed on the GPU only when ops/cuda has the kernel that would
 * run it, with the node's attributes in the range that kernel handles:
 * generated regions (ops/fusion's GPU schedule), cuBLAS GEMM, cuDNN's 2-D
 * convolution, pooling and batch normalisation (where the build has cuDNN),
 * the hand-written row kernels (kernels/NAME.cu) and views. Everything else is
 * a CPU fallback with a reason naming the op and what is missing, never a
 * silent one.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/fusion/fusion.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cpu(ty_cuda_place *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cpu(ty_cuda_place *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  p->gpu = false;
  p->how = "";
  vsnprintf(p->why, sizeof p->why, fmt, ap);
  va_end(ap);
}

static void gpu(ty_cuda_place *p, const char *how) {
  p->gpu = true;
  p->how = how;
  p->why[0] = '\0';
}

static const ty_graph_value *in_value(const ty_graph *g, const ty_graph_node *n, int i) {
  return i < n->n_inputs && n->inputs[i] != TY_NO_VALUE ? ty_graph_value_at(g, n->inputs[i]) : NULL;
}

/* The normalised axis attribute against the first input's rank; -1 when
 * the rank is unknown. */
static int axis_of(const ty_graph *g, const ty_graph_node *n, int64_t dflt) {
  const ty_graph_value *x = in_value(g, n, 0);
  int rank = x ? x->shape.rank : -1;
  int64_t a = ty_graph_node_attr_int(n, "axis", dflt);
  if (rank < 0) return -1;
  return (int)(a < 0 ? a + rank : a);
}

static bool last_axis(const ty_graph *g, const ty_graph_node *n, int64_t dflt) {
  const ty_graph_value *x = in_value(g, n, 0);
  return x && x->shape.rank > 0 && axis_of(g, n, dflt) == x->shape.rank - 1;
}

/* cuDNN's ops: 2-D NCHW (BatchNormalization also [N, C]); x is input 0 of
 * the forward node. */
static void place_dnn(ty_op op, const ty_graph_value *x, ty_cuda_place *p) {
#ifdef TY_HAVE_CUDNN
  int rank = x ? x->shape.rank : -1;
  if (rank == 4 || (op == TY_OP_BATCH_NORM && rank == 2))
    gpu(p, "cuDNN");
  else
    cpu(p, "%s on a rank-%d input: the cuDNN path takes 2-D images (NCHW)", ty_op_name(op), rank);
#else
  (void)x;
  cpu(p, "%s: this build has no cuDNN", ty_op_name(op));
#endif
}

static void place_forward(const ty_graph *g, const ty_graph_node *n, ty_cuda_place *p) {
  const char *name = ty_op_name(n->op);
  const ty_graph_value *a = in_value(g, n, 0), *b = in_value(g, n, 1);
  switch (n->op) {
  case TY_OP_MATMUL:
    if (a && b && a->shape.rank >= 2 && b->shape.rank >= 2)
      gpu(p, "cuBLAS");
    else
      cpu(p, "MatMul with a 1-D or unknown-rank operand: no cuBLAS mapping yet");
    return;
  case TY_OP_GEMM: {
    const ty_graph_value *c = in_value(g, n, 2), *y = ty_graph_value_at(g, n->outputs[0]);
    if (!c || ty_shape_equal(&c->shape, &y->shape))
      gpu(p, "cuBLAS");
    else if (c->shape.rank == 1 && y->shape.rank == 2 && c->shape.dims[0] == y->shape.dims[1] &&
             ty_graph_node_attr_float(n, "beta", 1.0f) == 1.0f)
      gpu(p, "cuBLASLt (bias epilogue)");
    else
      cpu(p, "Gemm with a bias broadcast other than per column: no kernel for it yet");
    return;
  }
  case TY_OP_SOFTMAX:
  case TY_OP_LOG_SOFTMAX:
    if (last_axis(g, n, n->opset >= 13 ? -1 : 1))
      gpu(p, "softmax.cu");
    else
      cpu(p, "%s over axis %d, not the last: the row kernel needs the last axis", name,
          axis_of(g, n, n->opset >= 13 ? -1 : 1));
    return;
  case TY_OP_LAYER_NORM:
    if (last_axis(g, n, -1))
      gpu(p, "layer_norm.cu");
    else
      cpu(p, "LayerNormalization over more than the last axis: the row kernel needs one axis");
    return;
  case TY_OP_SOFTMAX_CE_LOSS:
    if (n->n_inputs > 2 && n->inputs[2] != TY_NO_VALUE)
      cpu(p, "SoftmaxCrossEntropyLoss with class weights: not in cross_entropy.cu");
    else if (ty_graph_node_attr(n, "ignore_index"))
      cpu(p, "SoftmaxCrossEntropyLoss with ignore_index: not in cross_entropy.cu");
    else if (strcmp(ty_graph_node_attr_string(n, "reduction", "mean"), "mean") != 0)
      cpu(p, "SoftmaxCrossEntropyLoss reduction \"%s\": cross_entropy.cu computes the mean",
          ty_graph_node_attr_string(n, "reduction", "mean"));
    else
      gpu(p, "cross_entropy.cu");
    return;
  case TY_OP_GATHER:
    if (axis_of(g, n, 0) == 0 && a && a->shape.rank == 2 && b &&
        (b->dtype == TY_DTYPE_I64 || b->dtype == TY_DTYPE_I32))
      gpu(p, "embedding.cu");
    else
      cpu(p, "Gather other than rows of a 2-D table: only the embedding lookup has a kernel");
    return;
  case TY_OP_RESHAPE:
  case TY_OP_FLATTEN:
  case TY_OP_SQUEEZE:
  case TY_OP_UNSQUEEZE:
  case TY_OP_IDENTITY:
    gpu(p, "view");
    return;
  case TY_OP_TRANSPOSE:
  case TY_OP_SLICE:
  case TY_OP_CONCAT:
  case TY_OP_SPLIT:
    gpu(p, "copy.cu");
    return;
  case TY_OP_REDUCE_SUM:
  case TY_OP_REDUCE_MEAN:
    gpu(p, "reduce.cu");
    return;
  case TY_OP_WHERE:
    if (a && a->dtype == TY_DTYPE_BOOL)
      gpu(p, "where.cu");
    else
      cpu(p, "Where with a condition that is not bool: where.cu reads bytes");
    return;
  case TY_OP_CONV:
  case TY_OP_MAX_POOL:
  case TY_OP_AVERAGE_POOL:
  case TY_OP_GLOBAL_AVERAGE_POOL:
  case TY_OP_BATCH_NORM:
    place_dnn(n->op, a, p);
    return;
  default:
    cpu(p, "%s: no CUDA kernel", name);
    return;
  }
}

/* The backward kernel of each forward op whose TyGrad nodes have one.
 * Elementwise gradients shaped like dY are regions; Add/Sub/Mul/Div/Pow
 * nodes left here are a broadcast input's, which sum dY (or a region's
 * dY * other) over the broadcast dims. A reduction's gradient broadcasts
 * dY: a copy with stride 0. */
static const char *const grad_kernel[TY_OP_COUNT_] = {
    [TY_OP_MATMUL] = "cuBLAS",
    [TY_OP_GEMM] = "cuBLAS",
    [TY_OP_SOFTMAX] = "softmax.cu",
    [TY_OP_LOG_SOFTMAX] = "softmax.cu",
    [TY_OP_LAYER_NORM] = "layer_norm.cu",
    [TY_OP_SOFTMAX_CE_LOSS] = "cross_entropy.cu",
    [TY_OP_GATHER] = "embedding.cu",
    [TY_OP_RESHAPE] = "view",
    [TY_OP_FLATTEN] = "view",
    [TY_OP_SQUEEZE] = "view",
    [TY_OP_UNSQUEEZE] = "view",
    [TY_OP_TRANSPOSE] = "copy.cu",
    [TY_OP_SLICE] = "copy.cu",
    [TY_OP_CONCAT] = "copy.cu",
    [TY_OP_SPLIT] = "copy.cu",
    [TY_OP_REDUCE_SUM] = "copy.cu",
    [TY_OP_REDUCE_MEAN] = "copy.cu",
    [TY_OP_ADD] = "reduce.cu",
    [TY_OP_SUB] = "reduce.cu",
    [TY_OP_MUL] = "generated region + reduce.cu",
    [TY_OP_DIV] = "generated region + reduce.cu",
    [TY_OP_POW] = "generated region + reduce.cu",
    [TY_OP_WHERE] = "where.cu",
};

static bool dnn_op(int op) {
  return op == TY_OP_CONV || op == TY_OP_MAX_POOL || op == TY_OP_AVERAGE_POOL ||
         op == TY_OP_GLOBAL_AVERAGE_POOL || op == TY_OP_BATCH_NORM;
}

static void place_grad(const ty_graph *g, const ty_graph_node *n, ty_cuda_place *p) {
  int fwd = ty_autodiff_grad_forward_op(n);
  if (fwd < 0)
    cpu(p, "TyGrad without a forward op");
  else if (dnn_op(fwd)) /* input 1 is the forward node's input 0 */
    place_dnn((ty_op)fwd, in_value(g, n, 1), p);
  else if (grad_kernel[fwd])
    gpu(p, grad_kernel[fwd]);
  else
    cpu(p, "gradient of %s: no CUDA kernel", ty_op_name((ty_op)fwd));
}

static void place_node(const ty_graph *g, const ty_graph_node *n, ty_cuda_place *p) {
  /* Constants and shapes are host metadata: no device work to place. */
  if (n->op == TY_OP_CONSTANT || n->op == TY_OP_SHAPE) {
    gpu(p, "host metadata");
    return;
  }
  for (int o = 0; o < n->n_outputs; o++) {
    if (n->outputs[o] == TY_NO_VALUE) continue;
    ty_dtype dt = ty_graph_value_at(g, n->outputs[o])->dtype;
    if (dt != TY_DTYPE_F32) {
      cpu(p, "%s on %s: only float32 has CUDA kernels", ty_op_name(n->op), ty_dtype_name((int)dt));
      return;
    }
  }
  if (n->op == TY_OP_GRAD)
    place_grad(g, n, p);
  else
    place_forward(g, n, p);
}

int ty_cuda_placement(const ty_graph *g, ty_cuda_place **out_places, size_t *out_n) {
  size_t nn = ty_graph_n_nodes(g), nk = 0;
  ty_cuda_place *pl = calloc(nn ? nn : 1, sizeof *pl);
  ty_fused_src *k = NULL;
  if (!pl) return TY_ENOMEM;
  int rc = ty_fusion_cuda_sources(g, NULL, 0, TY_DTYPE_F32, &k, &nk);
  if (rc != 0) {
    free(pl);
    return rc;
  }
  bool *fused = calloc(nn ? nn : 1, sizeof *fused);
  if (!fused) rc = TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < nk; i++)
    for (size_t m = 0; m < k[i].n_nodes; m++)
      fused[k[i].nodes[m]] = true;
  for (size_t i = 0; rc == 0 && i < nn; i++) {
    if (fused[i])
      gpu(&pl[i], "generated region (NVRTC)");
    else
      place_node(g, ty_graph_node_at(g, i), &pl[i]);
  }
  free(fused);
  ty_fused_srcs_free(k, nk);
  if (rc != 0) {
    free(pl);
    return rc;
  }
  *out_places = pl;
  *out_n = nn;
  return 0;
}

/* Fallback reasons with their counts, most frequent first, after the
 * count of GPU nodes: "41 of 52 nodes have CUDA kernels; CPU: 6 x Conv: the
 * cuDNN path ...; ...". Truncated (with "...") to len. */
int ty_cuda_placement_summary(const ty_cuda_place *p, size_t n, char *out, size_t len) {
  size_t on = 0, *count = calloc(n ? n : 1, sizeof *count);
  if (!count) return TY_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (p[i].gpu) {
      on++;
      continue;
    }
    size_t first = i;
    for (size_t j = 0; j < i; j++)
      if (!p[j].gpu && !strcmp(p[j].why, p[i].why)) {
        first = j;
        break;
      }
    count[first]++;
  }
  size_t at = (size_t)snprintf(out, len, "%zu of %zu nodes have CUDA kernels", on, n);
  for (bool any = true; any && at < len;) {
    size_t best = n;
    for (size_t i = 0; i < n; i++)
      if (count[i] && (best == n || count[i] > count[best])) best = i;
    any = best < n;
    if (any) {
      at += (size_t)snprintf(out + at, len - at, "; CPU: %zu x %s", count[best], p[best].why);
      count[best] = 0;
    }
  }
  if (at >= len && len > 4) memcpy(out + len - 4, "...", 4);
  free(count);
  return 0;
}
