/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The recurrent ops LSTM, GRU and RNN, shared by their shape inference
 * (ops/infer_rnn.c), forward kernel (ops/kernels/rnn.c) and backward
 * (ops/autodiff/kernels_grad_rnn.c): the node's configuration read once
 * from its attributes and input shapes, and the forward pass that can keep
 * a tape of every step for backpropagation through time.
 *
 * Inputs (ONNX): X, W, R, B, sequence_lens, initial_h, then for LSTM
 * initial_c and P. Outputs: Y, Y_h, and for LSTM Y_c. Gate order in W, R
 * and B is ONNX's: LSTM i o f c, GRU z r h. layout 0 is [seq, batch, ...],
 * layout 1 [batch, seq, ...].
 */
#ifndef TY_OPS_RNN_INTERNAL_H
#define TY_OPS_RNN_INTERNAL_H

#include "ops/ops_internal.h"

enum { TY__RNN_X, TY__RNN_W, TY__RNN_R, TY__RNN_B, TY__RNN_SEQ, TY__RNN_H0, TY__RNN_C0, TY__RNN_P };

/* An activation of the activations attribute and its alpha/beta. */
typedef enum {
  TY__ACT_SIGMOID,
  TY__ACT_TANH,
  TY__ACT_RELU,
  TY__ACT_AFFINE,
  TY__ACT_LEAKY_RELU,
  TY__ACT_THRESHOLDED_RELU,
  TY__ACT_SCALED_TANH,
  TY__ACT_HARD_SIGMOID,
  TY__ACT_ELU,
  TY__ACT_SOFTSIGN,
  TY__ACT_SOFTPLUS,
} ty__act_kind;
typedef struct ty__act {
  ty__act_kind kind;
  float alpha, beta;
} ty__act;

typedef struct ty__rnn {
  ty_op op;
  int gates;  /* gate blocks in W: LSTM 4, GRU 3, RNN 1 */
  int n_act;  /* activations per direction: LSTM 3 (f g h), GRU 2 (f g), RNN 1 (f) */
  int ndir;   /* 1 or 2 */
  bool rev0;  /* direction 0 runs backwards in time (direction="reverse") */
  int layout; /* 0 or 1 */
  int64_t seq, batch, in, hid;
  bool has_clip;
  float clip;
  bool lbr; /* GRU linear_before_reset */
  ty__act act[2][3];
} ty__rnn;

/* Reads the attributes (and, with shapes, checks the inputs' shapes;
 * shapes may be NULL for the attributes only). Errors name the node. */
int ty__rnn_read(const ty_graph_node *n, const ty_shape *const *shapes, int n_shapes, ty__rnn *r,
                 char *err, size_t err_len);

/* The activation at x and its derivative at x. */
float ty__act_f(const ty__act *a, float x);
float ty__act_d(const ty__act *a, float x);

/* What the forward pass keeps of one direction for backpropagation: per
 * step s (processing order) and batch row b, the gate pre-activations
 * (before clip; LSTM/RNN: gates*hid, GRU: 3*hid plus hid of H_prev R_h^T +
 * Rb_h when linear_before_reset), the cell state (LSTM) and hidden state
 * after the step. len[b] is the row's sequence length; rows are active at
 * step s while s < len[b]. */
typedef struct ty__rnn_tape {
  int64_t steps, pre_w; /* pre_w: floats of pre per (s, b) */
  float *pre, *c, *h;
} ty__rnn_tape;

/* The inputs of one run as plain arrays (NULL for absent ones). */
typedef struct ty__rnn_io {
  const float *x, *w, *r, *b, *h0, *c0, *p;
  int64_t *len; /* batch entries, filled from sequence_lens or seq */
} ty__rnn_io;

/* Reads in[] into io (len allocated; free with ty__rnn_io_free). */
int ty__rnn_io_init(const ty__rnn *r, const ty_tensor *const *in, int n_in, ty__rnn_io *io);
void ty__rnn_io_free(ty__rnn_io *io);

/* Row of time t, batch b in X's memory order (and of Y's per direction). */
static inline int64_t ty__rnn_row(const ty__rnn *r, int64_t t, int64_t b) {
  return r->layout == 0 ? t * r->batch + b : b * r->seq + t;
}
/* Time index of step s of direction d for batch row b. */
static inline int64_t ty__rnn_time(const ty__rnn *r, int d, int64_t s, int64_t len) {
  bool back = d == 1 || r->rev0;
  return back ? len - 1 - s : s;
}
/* Offset of (d, b) in a Y_h/Y_c-shaped tensor (and initial_h/c). */
static inline int64_t ty__rnn_hoff(const ty__rnn *r, int d, int64_t b) {
  return r->layout == 0 ? (d * r->batch + b) * r->hid : (b * r->ndir + d) * r->hid;
}
/* Offset of (t, d, b) in Y. */
static inline int64_t ty__rnn_yoff(const ty__rnn *r, int64_t t, int d, int64_t b) {
  return r->layout == 0 ? ((t * r->ndir + d) * r->batch + b) * r->hid
                        : ((b * r->seq + t) * r->ndir + d) * r->hid;
}

/* X W^T for every step and both directions in one GEMM: [rows of X] x
 * [ndir * gates * hid] (caller frees). */
int ty__rnn_project(const ty__rnn *r, const ty__rnn_io *io, ty_workers *w, float **out_xw);

/* Runs direction d over the sequence from the projection xw; writes Y,
 * Y_h, Y_c where not NULL, and the tape where not NULL (allocated here;
 * free with ty__rnn_tape_free). */
int ty__rnn_direction(const ty__rnn *r, const ty__rnn_io *io, const float *xw, int d,
                      ty_workers *w, float *y, float *yh, float *yc, ty__rnn_tape *tape);
void ty__rnn_tape_free(ty__rnn_tape *t);

#endif
