/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU executor's plan: its steps (ops/fusion's GPU regions, each a
 * step, and every other node), ordered so each step's inputs come first,
 * and where each runs. Pure (no device), so the decision for the example
 * models is unit-tested on any machine.
 *
 * A node runs on the GPU when ty_cuda_placement gives it a kernel AND the
 * executor has a launcher for it (launcher_of below); a node placed on the
 * GPU that the executor cannot launch yet runs on the CPU saying so, never
 * silently.
 */
#include "ops/cuda/exec.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/cuda/cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_view(int op) {
  return op == TY_OP_RESHAPE || op == TY_OP_FLATTEN || op == TY_OP_SQUEEZE ||
         op == TY_OP_UNSQUEEZE || op == TY_OP_IDENTITY;
}

/* The launcher exec.c has for a forward op (or, grad, its TyGrad). */
static const char *launcher_of_op(int op, bool grad) {
  if (is_view(op)) return "copy";
  switch (op) {
  case TY_OP_MATMUL:
  case TY_OP_GEMM:
    return "cuBLAS";
  case TY_OP_SOFTMAX:
  case TY_OP_LOG_SOFTMAX:
    return "softmax.cu";
  case TY_OP_SOFTMAX_CE_LOSS:
    return "cross_entropy.cu";
  case TY_OP_TRANSPOSE:
  case TY_OP_SLICE:
  case TY_OP_SPLIT:
  case TY_OP_CONCAT:
    return "copy.cu";
  case TY_OP_LAYER_NORM:
    return "layer_norm.cu";
  case TY_OP_GATHER:
    return "embedding.cu";
  case TY_OP_WHERE:
    return "where.cu";
  case TY_OP_ADD:
  case TY_OP_SUB: /* a broadcast input's gradient: dY summed */
    return grad ? "reduce.cu" : NULL;
#ifdef TY_HAVE_CUDNN
  case TY_OP_CONV:
  case TY_OP_MAX_POOL:
  case TY_OP_AVERAGE_POOL:
  case TY_OP_GLOBAL_AVERAGE_POOL:
  case TY_OP_BATCH_NORM:
    return "cuDNN";
#endif
  default:
    (void)grad;
    return NULL;
  }
}

static const char *launcher_of(const ty_graph_node *n) {
  if (n->op != TY_OP_GRAD) {
    /* The loss' optional log_prob output is not what cross_entropy.cu writes. */
    if (n->op == TY_OP_SOFTMAX_CE_LOSS && n->n_outputs > 1 && n->outputs[1] != TY_NO_VALUE)
      return NULL;
    return launcher_of_op(n->op, false);
  }
  int fwd = ty_autodiff_grad_forward_op(n);
  if (fwd == TY_OP_SOFTMAX_CE_LOSS && ty_graph_node_attr_int(n, "wrt", 0) != 0) return NULL;
  return fwd < 0 ? NULL : launcher_of_op(fwd, true);
}

static void place_step(const ty_graph *g, size_t i, const ty_cuda_place *pl, ty_cuda_step *s) {
  const ty_graph_node *n = ty_graph_node_at(g, i);
  s->node = i;
  s->region = -1;
  if (pl->gpu && !strcmp(pl->how, "host metadata")) {
    s->kind = TY_CUDA_STEP_HOST;
    s->how = "host";
  } else if (!pl->gpu) {
    s->kind = TY_CUDA_STEP_CPU;
    snprintf(s->why, sizeof s->why, "%s", pl->why);
  } else if ((s->how = launcher_of(n)) != NULL) {
    s->kind = TY_CUDA_STEP_GPU;
  } else {
    s->kind = TY_CUDA_STEP_CPU;
    int fwd = n->op == TY_OP_GRAD ? ty_autodiff_grad_forward_op(n) : -1;
    snprintf(s->why, sizeof s->why, "%s%s: the executor has no launcher for %s yet",
             fwd >= 0 ? "gradient of " : "", ty_op_name(fwd >= 0 ? (ty_op)fwd : n->op), pl->how);
  }
}

/* Orders the steps: depth first from each node in topological order, a
 * step after the steps producing what it reads. */
typedef struct order_ctx {
  const ty_graph *g;
  const ty_cuda_plan *p;
  const int *node_step; /* per node: its step */
  int *state;           /* per step: 0 new, 1 on the path, 2 emitted */
  size_t *out, n_out;
} order_ctx;

static int emit(order_ctx *c, int st);

static int emit_reads_of(order_ctx *c, int value) {
  if (value == TY_NO_VALUE) return 0;
  int prod = ty_graph_value_at(c->g, value)->producer;
  return prod < 0 ? 0 : emit(c, c->node_step[prod]);
}

static int emit(order_ctx *c, int st) {
  if (c->state[st] == 2) return 0;
  if (c->state[st] == 1) return TY_EINTERNAL; /* the regions would form a cycle */
  c->state[st] = 1;
  const ty_cuda_step *s = &c->p->steps[st];
  int rc = 0;
  if (s->kind == TY_CUDA_STEP_REGION) {
    const ty_fused_src *r = &c->p->regions[s->region];
    for (int i = 0; rc == 0 && i < r->n_in; i++)
      rc = emit_reads_of(c, r->in_ids[i]);
  } else {
    const ty_graph_node *n = ty_graph_node_at(c->g, s->node);
    for (int i = 0; rc == 0 && i < n->n_inputs; i++)
      rc = emit_reads_of(c, n->inputs[i]);
  }
  c->state[st] = 2;
  if (rc == 0) c->out[c->n_out++] = (size_t)st;
  return rc;
}

/* steps[0 .. n_regions) are the regions, then one per node outside them;
 * reorders them into dependency order. */
static int order_steps(const ty_graph *g, ty_cuda_plan *p, const int *node_step) {
  size_t nn = ty_graph_n_nodes(g);
  size_t *topo = calloc(nn + 1, sizeof *topo), *out = calloc(p->n_steps + 1, sizeof *out);
  int *state = calloc(p->n_steps + 1, sizeof *state);
  ty_cuda_step *sorted = calloc(p->n_steps + 1, sizeof *sorted);
  int rc = topo && out && state && sorted ? ty_graph_topo_order(g, topo) : TY_ENOMEM;
  order_ctx c = {g, p, node_step, state, out, 0};
  for (size_t i = 0; rc == 0 && i < nn; i++)
    rc = emit(&c, node_step[topo[i]]);
  if (rc == 0 && c.n_out != p->n_steps) rc = TY_EINTERNAL;
  for (size_t k = 0; rc == 0 && k < p->n_steps; k++)
    sorted[k] = p->steps[out[k]];
  if (rc == 0) {
    free(p->steps);
    p->steps = sorted;
    sorted = NULL;
  }
  free(topo);
  free(out);
  free(state);
  free(sorted);
  return rc;
}

static int build_steps(const ty_graph *g, ty_cuda_plan *p, const ty_cuda_place *pl,
                       int *node_step) {
  size_t nn = ty_graph_n_nodes(g);
  for (size_t i = 0; i < nn; i++)
    node_step[i] = -1;
  for (size_t r = 0; r < p->n_regions; r++) {
    const ty_fused_src *src = &p->regions[r];
    p->steps[r] = (ty_cuda_step){.kind = TY_CUDA_STEP_REGION,
                                 .node = src->n_nodes ? src->nodes[0] : 0,
                                 .region = (int)r,
                                 .how = "generated region (NVRTC)"};
    for (size_t m = 0; m < src->n_nodes; m++)
      node_step[src->nodes[m]] = (int)r;
    p->gpu_nodes += src->n_nodes;
  }
  size_t k = p->n_regions;
  for (size_t i = 0; i < nn; i++) {
    if (node_step[i] >= 0) continue;
    place_step(g, i, &pl[i], &p->steps[k]);
    p->gpu_nodes += p->steps[k].kind == TY_CUDA_STEP_GPU;
    p->host_nodes += p->steps[k].kind == TY_CUDA_STEP_HOST;
    p->cpu_nodes += p->steps[k].kind == TY_CUDA_STEP_CPU;
    node_step[i] = (int)k++;
  }
  p->n_steps = k;
  return 0;
}

int ty_cuda_plan_create(const ty_graph *g, const int *keep, size_t n_keep, ty_cuda_plan **out,
                        char *err, size_t err_len) {
  size_t nn = ty_graph_n_nodes(g), np = 0;
  ty_cuda_plan *p = calloc(1, sizeof *p);
  ty_cuda_place *pl = NULL;
  int *node_step = calloc(nn + 1, sizeof *node_step);
  int rc = p && node_step ? 0 : TY_ENOMEM;
  if (rc == 0) rc = ty_cuda_placement(g, &pl, &np);
  if (rc == 0)
    rc = ty_fusion_cuda_sources(g, keep, n_keep, TY_DTYPE_F32, &p->regions, &p->n_regions);
  if (rc == 0 && !(p->steps = calloc(p->n_regions + nn + 1, sizeof *p->steps))) rc = TY_ENOMEM;
  if (rc == 0) {
    p->n_nodes = nn;
    rc = build_steps(g, p, pl, node_step);
  }
  if (rc == 0) rc = order_steps(g, p, node_step);
  free(pl);
  free(node_step);
  if (rc != 0) {
    ty_cuda_plan_destroy(p);
    return ty_errf(err, err_len, rc, "GPU plan: %s", ty_strerror(rc));
  }
  *out = p;
  return 0;
}

void ty_cuda_plan_destroy(ty_cuda_plan *p) {
  if (!p) return;
  ty_fused_srcs_free(p->regions, p->n_regions);
  free(p->steps);
  free(p);
}

/* The CPU steps' reasons with their counts, most frequent first. */
static size_t append_reasons(const ty_cuda_plan *p, char *out, size_t at, size_t len) {
  size_t *count = calloc(p->n_steps + 1, sizeof *count);
  if (!count) return at;
  for (size_t i = 0; i < p->n_steps; i++) {
    if (p->steps[i].kind != TY_CUDA_STEP_CPU) continue;
    size_t first = i;
    for (size_t j = 0; j < i && first == i; j++)
      if (p->steps[j].kind == TY_CUDA_STEP_CPU && !strcmp(p->steps[j].why, p->steps[i].why))
        first = j;
    count[first]++;
  }
  const char *sep = " (";
  for (bool any = true; any && at < len;) {
    size_t best = p->n_steps;
    for (size_t i = 0; i < p->n_steps; i++)
      if (count[i] && (best == p->n_steps || count[i] > count[best])) best = i;
    any = best < p->n_steps;
    if (any) {
      at +=
          (size_t)snprintf(out + at, len - at, "%s%zu x %s", sep, count[best], p->steps[best].why);
      count[best] = 0;
      sep = "; ";
    }
  }
  if (sep[0] == ';' && at < len) at += (size_t)snprintf(out + at, len - at, ")");
  free(count);
  return at;
}

int ty_cuda_plan_summary(const ty_cuda_plan *p, const ty_graph *g, char *out, size_t len) {
  (void)g;
  if (len == 0) return TY_EINVAL;
  size_t at = (size_t)snprintf(
      out, len, "GPU: %zu of %zu nodes (%zu regions, %zu steps); host: %zu; CPU: %zu", p->gpu_nodes,
      p->n_nodes, p->n_regions, p->n_steps, p->host_nodes, p->cpu_nodes);
  if (at < len) at = append_reasons(p, out, at, len);
  if (at >= len && len > 4) memcpy(out + len - 4, "...", 4);
  return 0;
}
