/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of ops/ that op families share between their shape inference,
 * CPU kernel and gradient: window and conv geometry, the normalisations'
 * sums and statistics (BatchNormalization, LRN, MVN), GridSample,
 * ConvTranspose, Einsum, pooling and the recurrent layers. The graph, the
 * inference entry point and the kernel interface stay in ops_internal.h,
 * which this header includes. Nothing outside ops/ includes it.
 */
#ifndef TY_OPS_KERNELS_INTERNAL_H
#define TY_OPS_KERNELS_INTERNAL_H

#include "ops/ops_internal.h"

#include <stdbool.h>
#include <stdint.h>

/* Pooling / conv window geometry shared by inference and kernels. */
typedef struct ty__window {
  int nsp; /* spatial dims (1..3) */
  int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3];
  bool ceil_mode, count_include_pad;
} ty__window;
/* Reads kernel_shape (or the weight's spatial dims), strides, dilations,
 * pads, auto_pad, ceil_mode from a Conv/MaxPool/AveragePool node. */
int ty__window_read(const ty_graph_node *n, int nsp, const int64_t *weight_spatial,
                    const int64_t *in_spatial, ty__window *w, char *err, size_t err_len);
/* Output spatial size for one dim; -1 for a symbolic input dim. */
int64_t ty__window_out(const ty__window *w, int d, int64_t in);

/* Conv geometry of one group of one image; 1-D convs as 2-D of height one,
 * 1-D and 2-D convs with a depth of one (id = od = kd = sd = dd = 1,
 * pd = 0); 3-D convs (rank-5 inputs) use the depth fields. Shared by the
 * forward kernel (ops/kernels/conv.c) and its backward (ops/autodiff). x,
 * w and y are the input, weight and output shapes. */
typedef struct ty__conv_geom {
  int64_t c, h, w, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw;
  int64_t id, od, kd, sd, dd, pd; /* depth: input, output, kernel, stride, dilation, pad */
} ty__conv_geom;
int ty__conv_geom_init(const ty_graph_node *n, const ty_shape *x, const ty_shape *w,
                       const ty_shape *y, ty__conv_geom *out);
/* Floats of one group of one image's input (c x id x h x w), of one output
 * plane (od x oh x ow), and of one output channel's filter row of a group
 * (c x kd x kh x kw). */
int64_t ty__conv_isz(const ty__conv_geom *g);
int64_t ty__conv_osz(const ty__conv_geom *g);
int64_t ty__conv_kdim(const ty__conv_geom *g);

/* kernels/conv.c: im2col of one image and group (col is (c*kd*kh*kw) x
 * (od*oh*ow), padding read as zeros) and its adjoint, which adds col back
 * into x and may overwrite col's entries that no input element owns
 * (col is the caller's scratch). Shared by Conv's forward and backward.
 * With again, col already holds im2col of another image of the same
 * geometry (the padding's zeros sit where this image's would): only the
 * data entries are written. */
void ty__im2col(const float *x, const ty__conv_geom *g, bool again, float *col);
void ty__col2im_add(float *col, const ty__conv_geom *g, float *x);
/* kernels/norm.c: the sum of x[i] - shift in double, in sixteen
 * interleaved partial sums (four vectors of four; a fixed order that
 * pipelines, unlike one running sum). */
double ty__sum4(const float *x, int64_t n, double shift);
/* The maximum of x[0..n) (-inf when n is 0), in 8 lanes the compiler
 * vectorises: a maximum is exact in any order, and NaNs are skipped as by
 * one running `x > m ? x : m` (ops/kernels/softmax.c). */
float ty__row_max(const float *x, int64_t n);
/* The sum of (x[i] - m)^2 in the same way. */
double ty__sqdev4(const float *x, int64_t n, double m);
/* One column buffer per thread of w, ncol floats each (*out NULL, owned by
 * the caller, when !needed); TY_ETOOBIG when the size overflows. */
int ty__conv_cols(const ty__conv_geom *g, ty_workers *w, bool needed, float **out,
                  size_t *out_ncol);

/* kernels/conv_dnnl.c, built when meson finds oneDNN (TY_HAVE_DNNL): Conv
 * of one group through oneDNN, the batch cut into blocks of
 * TY__DNNL_BLOCK images, each block one single-threaded oneDNN call on one
 * of w's threads (results independent of the thread count). The inputs
 * and outputs are plain NCHW / OIHW floats:
 *   TY__DNNL_FWD:          x, w, bias (or NULL) -> out = y;
 *   TY__DNNL_BWD_DATA:     y = dY, w -> out = dX;
 *   TY__DNNL_BWD_WEIGHTS:  x, y = dY -> out = the blocks' partial dW, one
 *                          m x kdim filter (ty__conv_kdim) per block, in block order
 *                          (the caller adds them in that order).
 * Returns TY_EUNSUPPORTED when oneDNN has no primitive for the shape (or
 * is switched off): the caller falls back to im2col. */
#define TY__DNNL_BLOCK 16
typedef enum { TY__DNNL_FWD, TY__DNNL_BWD_DATA, TY__DNNL_BWD_WEIGHTS } ty__conv_dnnl_kind;
typedef struct ty__conv_dnnl_call {
  ty__conv_dnnl_kind kind;
  ty__conv_geom g;
  int64_t batch, m; /* images, output channels */
  const float *x, *w, *y, *bias;
  float *out;
} ty__conv_dnnl_call;
int ty__conv_dnnl_run(const ty__conv_dnnl_call *c, ty_workers *w);
/* Its test hooks: ops/conv_dnnl.h. */

/* kernels/local_norm.c: LRN's attributes and window (channels
 * [c - lo, c + hi] around c), and s = bias + alpha / size * the window's
 * sum of squares for one image x (ch x sp floats) into s (ch x sp). */
typedef struct ty__lrn {
  int64_t size, lo, hi;
  double alpha, beta, bias;
} ty__lrn;
void ty__lrn_read(const ty_graph_node *n, ty__lrn *p);
void ty__lrn_scale(const ty__lrn *p, const float *x, int64_t ch, int64_t sp, double *s);
/* MeanVarianceNormalization over the axes attribute (default [0, 2, 3]):
 * groups slices of count elements each; element j of slice g is at
 * goff[g] + roff[j]. goff (one allocation with roff) is the caller's to
 * free. TY_EINVAL for axes out of range or repeated. */
#define TY__MVN_EPS 1e-9
typedef struct ty__mvn {
  int64_t groups, count;
  int64_t *goff, *roff;
} ty__mvn;
int ty__mvn_geom(const ty_graph_node *n, const ty_shape *x, ty__mvn *m);
/* Slice g's mean and biased standard deviation. */
void ty__mvn_stats(const ty__mvn *m, const float *x, int64_t g, double *mean, double *sd);

/* kernels/grid_sample.c: GridSample's attributes (0; 1 for a mode and 2
 * for a padding_mode it does not take) and the taps of one grid point
 * g = (x, y) on an h x w image: n offsets into the plane (-1: none,
 * outside), each with its weight and the weight's derivatives by the
 * grid's x and y (the backward kernel's grid gradient is the sum over the
 * taps of the value times them; nearest sets none: its grid gradient is
 * zero). Only the first n entries are set. */
typedef enum { TY__GS_BILINEAR, TY__GS_NEAREST, TY__GS_BICUBIC } ty__gs_mode;
typedef enum { TY__GS_ZEROS, TY__GS_BORDER, TY__GS_REFLECTION } ty__gs_pad;
typedef struct ty__gs {
  ty__gs_mode mode;
  ty__gs_pad pad;
  bool align;
} ty__gs;
#define TY__GS_MAX_TAPS 16 /* bicubic's 4 x 4 */
typedef struct ty__gs_tap {
  int n; /* 1 nearest, 4 bilinear, 16 bicubic */
  int64_t at[TY__GS_MAX_TAPS];
  double wt[TY__GS_MAX_TAPS], dgx[TY__GS_MAX_TAPS], dgy[TY__GS_MAX_TAPS];
} ty__gs_tap;
int ty__gs_read(const ty_graph_node *n, ty__gs *p);
void ty__gs_taps(const ty__gs *p, const float *g, int64_t h, int64_t w, ty__gs_tap *t);

/* ConvTranspose geometry (1-D to 3-D): input, output, kernel, strides,
 * dilations, pads (begin/end, may be negative when output_shape asks for
 * more) and output_padding per spatial dim. Output dims of symbolic input
 * dims are TY_DIM_UNKNOWN. Shared by inference, the kernel and its
 * backward (kernels/conv_transpose.c). */
typedef struct ty__tconv {
  int nsp;
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3], opad[3];
} ty__tconv;
int ty__tconv_read(const ty_graph_node *n, const ty_shape *x, const ty_shape *w, ty__tconv *t,
                   char *err, size_t err_len);
/* Moves between an output-shaped plane set y [m][out...] and columns
 * col [m][k...][in...] of one group: scatter-adds col into y (forward)
 * or gathers y into col (backward's data gradient). */
void ty__tconv_col(const ty__tconv *t, int64_t m, float *y, float *col, bool to_y);

/* Einsum, parsed against the operand shapes: one label per distinct
 * letter (and per dim an ellipsis covers), each label's size, and which
 * labels each operand and the output carry. */
#define TY__EINSUM_MAX_IN 8
#define TY__EINSUM_MAX_LABELS 64
typedef struct ty__einsum {
  int n_in, n_labels;
  int64_t dim[TY__EINSUM_MAX_LABELS];
  int in_rank[TY__EINSUM_MAX_IN];
  int8_t in_lab[TY__EINSUM_MAX_IN][TY_MAX_RANK];
  int out_rank;
  int8_t out_lab[TY_MAX_RANK];
  ty_shape out_shape;
} ty__einsum;
int ty__einsum_parse(const char *eq, const ty_shape *shapes, int n, ty__einsum *out, char *why,
                     size_t why_len);
/* Evaluates a parsed einsum on tensors of one float dtype into y. */
int ty__einsum_run(const ty__einsum *es, const ty_tensor *const *in, ty_tensor *y);

/* kernels/bn_sweep.c: BatchNormalization's per-channel sums in one sweep
 * over channel k of x and dy ([nb, c, sp] each), in double over fixed
 * lanes (the same bits at any SIMD width and thread count). what says
 * which sums to take; x or dy may be NULL when none of them reads it. */
#define TY__BN_STATS 1u /* count, mean, population variance (reads x) */
#define TY__BN_DY 2u    /* sum(dy) (reads dy) */
#define TY__BN_DYX 4u   /* sum(dy * (x - mean)) and the other two (reads both) */
typedef struct ty__bn_sums {
  double count, mean, var, sdy, sdyx;
} ty__bn_sums;
void ty__bn_sweep(const float *x, const float *dy, int64_t nb, int64_t c, int64_t sp, int64_t k,
                  unsigned what, ty__bn_sums *out);
/* y[i] = x[i] * k + b (y may be x): the normalise, scale and shift. */
void ty__bn_affine(const float *x, float *y, int64_t n, float k, float b);
/* dx[i] = (a * dy[i] + c) + bx * (x[i] - m): the data gradient. */
void ty__bn_dx(const float *x, const float *dy, float *dx, int64_t n, float a, float c, float m,
               float bx);

/* Mean and 1 / sqrt(biased variance + eps) of n floats, in double: the
 * statistics of LayerNormalization and InstanceNormalization, forward and
 * backward (kernels/norm.c). */
void ty__moments(const float *x, int64_t n, double eps, double *out_mean, double *out_inv);

/* A pooling window over three spatial dims (leading sizes of one), shared
 * by ops/kernels/pool.c and its backward. */
typedef struct ty__pool3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} ty__pool3;
void ty__pool3_init(const ty__window *w, const ty_shape *x, const ty_shape *y, ty__pool3 *out);
/* The window of output coordinate o along one axis: taps lo, lo + d, ...
 * below hi inside the input (n of them), and the window's size clipped to
 * the padded extent (AveragePool's count_include_pad divisor is the
 * product over the axes). */
typedef struct ty__pool3_span {
  int64_t lo, hi, n, padded;
} ty__pool3_span;
/* The spans of every output coordinate, axis 0's out[0] first, then axis
 * 1's and 2's, in one allocation the caller frees. */
int ty__pool3_spans(const ty__pool3 *p, ty__pool3_span **out);
/* One plane (image x channel) forward: y (may be NULL for MaxPool) and,
 * for MaxPool, idx = idx_base + the plane index of the first maximum
 * (idx may be NULL). */
void ty__pool3_plane(const ty__pool3 *p, const ty__pool3_span *sp, const float *x, bool is_max,
                     bool incl_pad, float *y, int64_t *idx, int64_t idx_base);
/* One plane backward: dx += dy routed to the first maximum (max) or spread
 * evenly with the forward divisor (average). Where
 * ty__pool3_back_overwrites, it writes every element of dx instead (=),
 * so dx needs no zero-fill first. */
bool ty__pool3_back_overwrites(const ty__pool3 *p, bool is_max);
void ty__pool3_plane_back(const ty__pool3 *p, const ty__pool3_span *sp, const float *x,
                          const float *dy, bool is_max, bool incl_pad, float *dx);

/* ---- recurrent layers ---------------------------------------------------- */
/* LSTM, GRU and RNN, shared by their shape inference (infer_rnn.c), forward
 * kernel (kernels/rnn.c) and backward (autodiff/kernels_grad_rnn.c): the
 * node's configuration read once from its attributes and input shapes, and
 * the forward pass that can keep a tape of every step for backpropagation
 * through time. Inputs (ONNX): X, W, R, B, sequence_lens, initial_h, then
 * for LSTM initial_c and P. Outputs: Y, Y_h, and for LSTM Y_c. Gate order
 * in W, R and B is ONNX's: LSTM i o f c, GRU z r h. layout 0 is
 * [seq, batch, ...], layout 1 [batch, seq, ...]. */
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
int ty__rnn_direction(const ty__rnn *r, const ty__rnn_io *io, const float *xw, int d, ty_workers *w,
                      float *y, float *yh, float *yc, ty__rnn_tape *tape);
void ty__rnn_tape_free(ty__rnn_tape *t);

#endif
