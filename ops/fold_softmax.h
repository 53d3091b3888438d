/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attention's scale and mask folded into the Softmax that reads them
 * (ops/fold_softmax.c): Softmax(Where(cond, -inf, x * c)) as PyTorch
 * exports a scaled, masked attention (and the equivalents: Div by c,
 * Where(cond, x, fill), Add of a float mask, either of the two alone)
 * becomes one Softmax over x that scales, masks and normalises each row
 * in one pass, and whose gradient applies the mask and the scale too. The
 * Softmax records the fold in internal attributes (not ONNX: run the pass
 * on a training graph, never on one that is exported) and reads the mask
 * as its input 1. The CPU executor only; the CUDA backend and the
 * parallel planner do not read the attributes.
 */
#ifndef TY_OPS_FOLD_SOFTMAX_H
#define TY_OPS_FOLD_SOFTMAX_H

#include "ops/graph.h"

#include <stdbool.h>
#include <stddef.h>

/* int: how x is scaled (TY__SM_SCALE_*); float: the constant. */
#define TY__SM_SCALE_OP "ty_sm_scale_op"
#define TY__SM_SCALE "ty_sm_scale"
/* int: how input 1 masks the scaled row (TY__SM_MASK_*); float: the fill. */
#define TY__SM_MASK "ty_sm_mask"
#define TY__SM_FILL "ty_sm_fill"

enum { TY__SM_SCALE_NONE, TY__SM_SCALE_MUL, TY__SM_SCALE_DIV };
enum {
  TY__SM_MASK_NONE,
  TY__SM_MASK_FILL_TRUE,  /* Where(cond, fill, x): bool input 1 */
  TY__SM_MASK_FILL_FALSE, /* Where(cond, x, fill): bool input 1 */
  TY__SM_MASK_ADD,        /* x + mask: float input 1 */
};

/* Folds what it can. trained: the ids of the values that may get a
 * gradient (the trainable initializers); the scale and the fill must be
 * scalar initializers not among them, and no gradient may be needed
 * through the mask. *folded: the Softmax nodes rewritten. 0 or
 * TY_ENOMEM. */
int ty__fold_softmax(ty_graph *g, const int *trained, size_t n_trained, size_t *folded);

/* A folded Softmax as its kernels read it (ops/kernels/softmax_fused.c). */
typedef struct ty__smf {
  int scale_op, mask;
  float scale, fill;
  const void *m;                /* the mask's data (uint8 or float), or NULL */
  int lead;                     /* x's rank - 1: the dims that index rows */
  int64_t dims[TY_MAX_RANK];    /* x's dims */
  int64_t mstride[TY_MAX_RANK]; /* the mask's strides per x dim (0: broadcast) */
} ty__smf;

/* Whether node n (a Softmax, or a TyGrad node with its attributes) has
 * the fold's attributes. */
bool ty__smf_folded(const ty_graph_node *n);
/* The fold of n over x (its shape) with mask tensor m (NULL without one);
 * TY_EINVAL when the attributes or the mask do not fit. */
int ty__smf_init(const ty_graph_node *n, const ty_shape *x, const ty_tensor *m, ty__smf *out);
/* Row r (of x's last axis) scaled and masked: row[d] from x's row px. */
void ty__smf_row(const ty__smf *f, int64_t r, const float *px, float *row);
/* The gradient of the scale and the mask applied to g, Softmax's gradient
 * of row r, in place. */
void ty__smf_row_grad(const ty__smf *f, int64_t r, float *g);

#endif
