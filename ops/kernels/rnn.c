/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The recurrent ops LSTM, GRU and RNN on the CPU (see ops/kernels_internal.h):
 * reading a node's configuration, the activations of the activations
 * attribute, and the forward pass. The input projection X W^T of every step
 * and both directions is one GEMM; each step then adds H_prev R^T (one
 * GEMM over the batch) and the biases and applies the gates. Rows of a
 * batch shorter than the sequence (sequence_lens) stop at their length: Y
 * is zero past it and Y_h / Y_c hold the state of the row's last step; the
 * reverse direction starts at the row's last step. The forward pass can
 * keep a tape of every step, which ops/autodiff's backward replays.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- configuration ---------------------------------------------------------------- */
typedef struct act_name {
  const char *name;
  ty__act_kind kind;
  int n_params; /* 0, 1 (alpha) or 2 (alpha, beta) */
  float alpha, beta;
} act_name;

static const act_name act_names[] = {
    {"Sigmoid", TY__ACT_SIGMOID, 0, 0, 0},
    {"Tanh", TY__ACT_TANH, 0, 0, 0},
    {"Relu", TY__ACT_RELU, 0, 0, 0},
    {"Affine", TY__ACT_AFFINE, 2, 1.0f, 0.0f},
    {"LeakyRelu", TY__ACT_LEAKY_RELU, 1, 0.01f, 0},
    {"ThresholdedRelu", TY__ACT_THRESHOLDED_RELU, 1, 1.0f, 0},
    {"ScaledTanh", TY__ACT_SCALED_TANH, 2, 1.0f, 1.0f},
    {"HardSigmoid", TY__ACT_HARD_SIGMOID, 2, 0.2f, 0.5f},
    {"Elu", TY__ACT_ELU, 1, 1.0f, 0},
    {"Softsign", TY__ACT_SOFTSIGN, 0, 0, 0},
    {"Softplus", TY__ACT_SOFTPLUS, 0, 0, 0},
};

static int read_acts(const ty_graph_node *n, ty__rnn *r, char *err, size_t err_len) {
  static const ty__act_kind dflt[3] = {TY__ACT_SIGMOID, TY__ACT_TANH, TY__ACT_TANH};
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < 3; k++)
      r->act[d][k] = (ty__act){r->op == TY_OP_RNN ? TY__ACT_TANH : dflt[k], 0, 0};
  const ty_graph_attr *a = ty_graph_node_attr(n, "activations");
  if (!a) return 0;
  if (a->type != TY_ATTR_STRINGS || a->n < 1)
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute activations must be strings");
  int want = r->n_act * r->ndir;
  if ((int)a->n != want && (int)a->n != r->n_act)
    return ty__node_err(err, err_len, n, TY_EINVAL,
                        "attribute activations has %zu entries, expected %d", a->n, want);
  const ty_graph_attr *al = ty_graph_node_attr(n, "activation_alpha"),
                      *be = ty_graph_node_attr(n, "activation_beta");
  size_t ia = 0, ib = 0;
  for (int i = 0; i < want; i++) {
    const char *s = ty_graph_attr_string_at(a, (size_t)(i % (int)a->n));
    const act_name *m = NULL;
    for (size_t k = 0; k < sizeof act_names / sizeof act_names[0] && s; k++)
      if (strcasecmp(s, act_names[k].name) == 0) m = &act_names[k];
    if (!m)
      return ty__node_err(err, err_len, n, TY_EUNSUPPORTED,
                          "attribute activations: \"%s\" is not supported", s ? s : "");
    ty__act *t = &r->act[i / r->n_act][i % r->n_act];
    *t = (ty__act){m->kind, m->alpha, m->beta};
    if (m->n_params >= 1 && al && al->type == TY_ATTR_FLOATS && ia < al->n)
      t->alpha = al->floats[ia++];
    if (m->n_params >= 2 && be && be->type == TY_ATTR_FLOATS && ib < be->n)
      t->beta = be->floats[ib++];
  }
  return 0;
}

static int read_attrs(const ty_graph_node *n, ty__rnn *r, char *err, size_t err_len) {
  memset(r, 0, sizeof *r);
  r->op = n->op;
  r->gates = n->op == TY_OP_LSTM ? 4 : n->op == TY_OP_GRU ? 3 : 1;
  r->n_act = n->op == TY_OP_LSTM ? 3 : n->op == TY_OP_GRU ? 2 : 1;
  const char *dir = ty_graph_node_attr_string(n, "direction", "forward");
  if (strcmp(dir, "forward") == 0 || strcmp(dir, "reverse") == 0)
    r->ndir = 1;
  else if (strcmp(dir, "bidirectional") == 0)
    r->ndir = 2;
  else
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute direction=\"%s\" is not valid", dir);
  r->rev0 = strcmp(dir, "reverse") == 0;
  int64_t layout = ty_graph_node_attr_int(n, "layout", 0);
  if (layout != 0 && layout != 1)
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute layout=%lld must be 0 or 1",
                        (long long)layout);
  r->layout = (int)layout;
  const ty_graph_attr *c = ty_graph_node_attr(n, "clip");
  r->has_clip = c != NULL;
  r->clip = c ? c->f : 0;
  if (c && !(c->f > 0))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute clip=%g must be positive",
                        (double)c->f);
  r->lbr = ty_graph_node_attr_int(n, "linear_before_reset", 0) != 0;
  if (n->op == TY_OP_LSTM && ty_graph_node_attr_int(n, "input_forget", 0) != 0)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED,
                        "attribute input_forget=1 (coupled gates) is not supported");
  return read_acts(n, r, err, err_len);
}

/* True when known dims a and b differ. */
static bool differ(int64_t a, int64_t b) {
  return a >= 0 && b >= 0 && a != b;
}

static int check_shape(const ty_graph_node *n, const char *what, const ty_shape *s, int64_t d0,
                       int64_t d1, int64_t d2, int rank, char *err, size_t err_len) {
  if (!s || s->rank < 0) return 0;
  int64_t want[3] = {d0, d1, d2};
  bool bad = s->rank != rank;
  for (int i = 0; i < rank && !bad; i++)
    bad = differ(s->dims[i], want[i]);
  if (!bad) return 0;
  char buf[96];
  int off = 0;
  for (int i = 0; i < rank; i++)
    off += snprintf(buf + off, sizeof buf - (size_t)off, "%s%lld", i ? "," : "",
                    want[i] >= 0 ? (long long)want[i] : -1LL);
  return ty__node_err(err, err_len, n, TY_EINVAL, "input %s must have shape [%s] (-1: any)", what,
                      buf);
}

static const ty_shape *shape_at(const ty_shape *const *s, int n, int i) {
  return i < n && s[i] && s[i]->rank >= 0 ? s[i] : NULL;
}

int ty__rnn_read(const ty_graph_node *n, const ty_shape *const *shapes, int n_shapes, ty__rnn *r,
                 char *err, size_t err_len) {
  int rc = read_attrs(n, r, err, err_len);
  if (rc != 0 || !shapes) return rc;
  const ty_shape *x = shape_at(shapes, n_shapes, TY__RNN_X), *w = shape_at(shapes, n_shapes, 1),
                 *rr = shape_at(shapes, n_shapes, 2);
  r->seq = r->batch = r->in = r->hid = TY_DIM_UNKNOWN;
  int64_t hs = ty_graph_node_attr_int(n, "hidden_size", -1);
  if (x) {
    if (x->rank != 3)
      return ty__node_err(err, err_len, n, TY_EINVAL, "input X has rank %d, expected 3", x->rank);
    r->seq = x->dims[r->layout == 0 ? 0 : 1];
    r->batch = x->dims[r->layout == 0 ? 1 : 0];
    r->in = x->dims[2];
  }
  if (w && w->rank == 3 && w->dims[1] >= 0) {
    if (w->dims[1] % r->gates != 0)
      return ty__node_err(err, err_len, n, TY_EINVAL,
                          "input W: dim 1 (%lld) is not %d x hidden_size", (long long)w->dims[1],
                          r->gates);
    r->hid = w->dims[1] / r->gates;
  }
  if (hs >= 0 && r->hid >= 0 && hs != r->hid)
    return ty__node_err(err, err_len, n, TY_EINVAL,
                        "attribute hidden_size=%lld does not match W (%lld x %d gates)",
                        (long long)hs, (long long)w->dims[1], r->gates);
  if (hs > 0) r->hid = hs;
  if (hs == 0) return ty__node_err(err, err_len, n, TY_EINVAL, "attribute hidden_size=0");
  int64_t g = r->gates, h = r->hid, gh = h >= 0 ? g * h : -1, nd = r->ndir;
  if ((rc = check_shape(n, "W", w, nd, gh, r->in, 3, err, err_len)) != 0) return rc;
  if (!w && !rr) return 0;
  if ((rc = check_shape(n, "R", rr, nd, gh, h, 3, err, err_len)) != 0) return rc;
  if ((rc = check_shape(n, "B", shape_at(shapes, n_shapes, TY__RNN_B), nd, gh >= 0 ? 2 * gh : -1, 0,
                        2, err, err_len)) != 0)
    return rc;
  if ((rc = check_shape(n, "sequence_lens", shape_at(shapes, n_shapes, TY__RNN_SEQ), r->batch, 0, 0,
                        1, err, err_len)) != 0)
    return rc;
  int64_t a0 = r->layout == 0 ? nd : r->batch, a1 = r->layout == 0 ? r->batch : nd;
  const char *hn[2] = {"initial_h", "initial_c"};
  for (int i = 0; i < 2 && (i == 0 || n->op == TY_OP_LSTM); i++)
    if ((rc = check_shape(n, hn[i], shape_at(shapes, n_shapes, TY__RNN_H0 + i), a0, a1, h, 3, err,
                          err_len)) != 0)
      return rc;
  if (n->op == TY_OP_LSTM && (rc = check_shape(n, "P", shape_at(shapes, n_shapes, TY__RNN_P), nd,
                                               h >= 0 ? 3 * h : -1, 0, 2, err, err_len)) != 0)
    return rc;
  return 0;
}

/* ---- activations -------------------------------------------------------------------- */
float ty__act_f(const ty__act *a, float x) {
  switch (a->kind) {
  case TY__ACT_SIGMOID:
    return 1.0f / (1.0f + expf(-x));
  case TY__ACT_TANH:
    return tanhf(x);
  case TY__ACT_RELU: /* NaN stays NaN */
    return x < 0 ? 0 : x;
  case TY__ACT_AFFINE:
    return a->alpha * x + a->beta;
  case TY__ACT_LEAKY_RELU:
    return x >= 0 ? x : a->alpha * x;
  case TY__ACT_THRESHOLDED_RELU:
    return x > a->alpha ? x : 0;
  case TY__ACT_SCALED_TANH:
    return a->alpha * tanhf(a->beta * x);
  case TY__ACT_HARD_SIGMOID:
    return isnan(x) ? x : fmaxf(0.0f, fminf(1.0f, a->alpha * x + a->beta));
  case TY__ACT_ELU:
    return x >= 0 ? x : a->alpha * (expf(x) - 1.0f);
  case TY__ACT_SOFTSIGN:
    return x / (1.0f + fabsf(x));
  default:
    return x > 20 ? x : log1pf(expf(x)); /* Softplus */
  }
}

float ty__act_d(const ty__act *a, float x) {
  switch (a->kind) {
  case TY__ACT_SIGMOID: {
    float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f - s);
  }
  case TY__ACT_TANH: {
    float t = tanhf(x);
    return 1.0f - t * t;
  }
  case TY__ACT_RELU:
    return x > 0 ? 1.0f : 0.0f;
  case TY__ACT_AFFINE:
    return a->alpha;
  case TY__ACT_LEAKY_RELU:
    return x >= 0 ? 1.0f : a->alpha;
  case TY__ACT_THRESHOLDED_RELU:
    return x > a->alpha ? 1.0f : 0.0f;
  case TY__ACT_SCALED_TANH: {
    float t = tanhf(a->beta * x);
    return a->alpha * a->beta * (1.0f - t * t);
  }
  case TY__ACT_HARD_SIGMOID: {
    float v = a->alpha * x + a->beta;
    return v > 0 && v < 1 ? a->alpha : 0.0f;
  }
  case TY__ACT_ELU:
    return x >= 0 ? 1.0f : a->alpha * expf(x);
  case TY__ACT_SOFTSIGN: {
    float d = 1.0f + fabsf(x);
    return 1.0f / (d * d);
  }
  default:
    return 1.0f / (1.0f + expf(-x)); /* Softplus */
  }
}

/* ---- inputs --------------------------------------------------------------------------- */
static const float *opt_f32(const ty_tensor *const *in, int n_in, int i) {
  return i < n_in && in[i] ? in[i]->data : NULL;
}

int ty__rnn_io_init(const ty__rnn *r, const ty_tensor *const *in, int n_in, ty__rnn_io *io) {
  memset(io, 0, sizeof *io);
  io->x = in[0]->data;
  io->w = in[1]->data;
  io->r = in[2]->data;
  io->b = opt_f32(in, n_in, TY__RNN_B);
  io->h0 = opt_f32(in, n_in, TY__RNN_H0);
  if (r->op == TY_OP_LSTM) {
    io->c0 = opt_f32(in, n_in, TY__RNN_C0);
    io->p = opt_f32(in, n_in, TY__RNN_P);
  }
  io->len = malloc((size_t)(r->batch > 0 ? r->batch : 1) * sizeof *io->len);
  if (!io->len) return TY_ENOMEM;
  const ty_tensor *sl = TY__RNN_SEQ < n_in ? in[TY__RNN_SEQ] : NULL;
  for (int64_t b = 0; b < r->batch; b++) {
    int64_t v = sl ? ty__geti(sl->dtype, sl->data, b) : r->seq;
    if (v < 0 || v > r->seq) {
      ty__rnn_io_free(io);
      return TY_EINVAL;
    }
    io->len[b] = v;
  }
  return 0;
}

void ty__rnn_io_free(ty__rnn_io *io) {
  free(io->len);
  io->len = NULL;
}

/* ---- forward ------------------------------------------------------------------------------ */
int ty__rnn_project(const ty__rnn *r, const ty__rnn_io *io, ty_workers *w, float **out_xw) {
  int64_t rows = r->seq * r->batch, cols = r->ndir * r->gates * r->hid;
  size_t n;
  if (ty_mul_overflow((size_t)rows, (size_t)cols, &n) || n > ((size_t)1 << 34)) return TY_ETOOBIG;
  float *xw = malloc((n ? n : 1) * sizeof *xw);
  if (!xw) return TY_ENOMEM;
  if (n)
    ty__sgemm(w, false, true, rows, cols, r->in, 1.0f, io->x, r->in, io->w, r->in, 0.0f, xw, cols);
  *out_xw = xw;
  return 0;
}

void ty__rnn_tape_free(ty__rnn_tape *t) {
  free(t->pre);
  free(t->c);
  free(t->h);
  memset(t, 0, sizeof *t);
}

static float clipv(const ty__rnn *r, float v) {
  return r->has_clip ? fminf(r->clip, fmaxf(-r->clip, v)) : v;
}

/* State and scratch of one direction's pass. */
typedef struct dir_run {
  const ty__rnn *r;
  const ty__rnn_io *io;
  int d;
  int64_t gh, xw_cols;
  const float *wr, *wb, *rb, *p; /* this direction's R, biases (NULL: zero), peepholes */
  float *h, *c, *hr, *q, *pre;   /* state [B,H], [B,H]; scratch [B,GH], [B,H], [B,pre_w] */
  int64_t pre_w;
} dir_run;

static float bias(const float *b, int64_t j) {
  return b ? b[j] : 0.0f;
}

/* One row's gates of one step from pre (raw pre-activations written here). */
static void lstm_row(dir_run *s, const float *xw, const float *hr, float *pre, float *h, float *c) {
  const ty__rnn *r = s->r;
  const ty__act *a = r->act[s->d];
  int64_t H = r->hid;
  for (int64_t j = 0; j < 4 * H; j++)
    pre[j] = xw[j] + hr[j] + bias(s->wb, j) + bias(s->rb, j);
  for (int64_t k = 0; k < H; k++) {
    float cp = c[k];
    if (s->p) {
      pre[k] += s->p[k] * cp;                 /* i */
      pre[2 * H + k] += s->p[2 * H + k] * cp; /* f */
    }
    float i = ty__act_f(&a[0], clipv(r, pre[k])), f = ty__act_f(&a[0], clipv(r, pre[2 * H + k])),
          g = ty__act_f(&a[1], clipv(r, pre[3 * H + k]));
    float cn = f * cp + i * g;
    if (s->p) pre[H + k] += s->p[H + k] * cn; /* o */
    float o = ty__act_f(&a[0], clipv(r, pre[H + k]));
    c[k] = cn;
    h[k] = o * ty__act_f(&a[2], cn);
  }
}

static void gru_row(dir_run *s, const float *xw, const float *hr, float *pre) {
  const ty__rnn *r = s->r;
  const ty__act *a = r->act[s->d];
  int64_t H = r->hid;
  for (int64_t j = 0; j < 2 * H; j++)
    pre[j] = xw[j] + hr[j] + bias(s->wb, j) + bias(s->rb, j);
  for (int64_t k = 0; k < H; k++) {
    float rg = ty__act_f(&a[0], clipv(r, pre[H + k]));
    if (r->lbr) {
      float hrh = hr[2 * H + k] + bias(s->rb, 2 * H + k);
      pre[3 * H + k] = hrh;
      pre[2 * H + k] = xw[2 * H + k] + bias(s->wb, 2 * H + k) + rg * hrh;
    } else {
      pre[2 * H + k] = xw[2 * H + k] + bias(s->wb, 2 * H + k) + bias(s->rb, 2 * H + k);
    }
  }
}

/* GRU without linear_before_reset: the candidate's recurrent term is
 * (r * H_prev) R_h^T, a second GEMM after the gates z and r. */
static void gru_finish(dir_run *s, const float *hq, float *pre, float *h) {
  const ty__rnn *r = s->r;
  const ty__act *a = r->act[s->d];
  int64_t H = r->hid;
  for (int64_t k = 0; k < H; k++) {
    if (!r->lbr) pre[2 * H + k] += hq[k];
    float z = ty__act_f(&a[0], clipv(r, pre[k]));
    float hc = ty__act_f(&a[1], clipv(r, pre[2 * H + k]));
    h[k] = (1.0f - z) * hc + z * h[k];
  }
}

static bool row_active(const dir_run *s, int64_t step, int64_t b) {
  return step < s->io->len[b];
}

static const float *xw_row(const dir_run *s, const float *xw, int64_t step, int64_t b) {
  int64_t t = ty__rnn_time(s->r, s->d, step, s->io->len[b]);
  return xw + ty__rnn_row(s->r, t, b) * s->xw_cols + s->d * s->gh;
}

static void run_step(dir_run *s, const float *xw, int64_t step, ty_workers *w) {
  const ty__rnn *r = s->r;
  int64_t B = r->batch, H = r->hid;
  int64_t ncols = r->op == TY_OP_GRU && !r->lbr ? 2 * H : s->gh;
  ty__sgemm(w, false, true, B, ncols, H, 1.0f, s->h, H, s->wr, H, 0.0f, s->hr, s->gh);
  for (int64_t b = 0; b < B; b++) {
    if (!row_active(s, step, b)) continue;
    const float *x = xw_row(s, xw, step, b), *hr = s->hr + b * s->gh;
    float *pre = s->pre + b * s->pre_w, *h = s->h + b * H;
    if (r->op == TY_OP_LSTM) {
      lstm_row(s, x, hr, pre, h, s->c + b * H);
    } else if (r->op == TY_OP_GRU) {
      gru_row(s, x, hr, pre);
    } else {
      for (int64_t k = 0; k < H; k++) {
        pre[k] = x[k] + hr[k] + bias(s->wb, k) + bias(s->rb, k);
        h[k] = ty__act_f(&r->act[s->d][0], clipv(r, pre[k]));
      }
    }
  }
  if (r->op != TY_OP_GRU) return;
  if (!r->lbr) {
    /* q = r * H_prev (zero on inactive rows), then q R_h^T into hr. */
    for (int64_t b = 0; b < B; b++)
      for (int64_t k = 0; k < H; k++)
        s->q[b * H + k] =
            row_active(s, step, b)
                ? ty__act_f(&r->act[s->d][0], clipv(r, s->pre[b * s->pre_w + H + k])) *
                      s->h[b * H + k]
                : 0.0f;
    ty__sgemm(w, false, true, B, H, H, 1.0f, s->q, H, s->wr + 2 * H * H, H, 0.0f, s->hr, s->gh);
  }
  for (int64_t b = 0; b < B; b++)
    if (row_active(s, step, b))
      gru_finish(s, s->hr + b * s->gh, s->pre + b * s->pre_w, s->h + b * H);
}

static int dir_init(dir_run *s, const ty__rnn *r, const ty__rnn_io *io, int d) {
  int64_t B = r->batch, H = r->hid;
  memset(s, 0, sizeof *s);
  s->r = r;
  s->io = io;
  s->d = d;
  s->gh = r->gates * H;
  s->xw_cols = r->ndir * s->gh;
  s->pre_w = r->op == TY_OP_GRU && r->lbr ? 4 * H : s->gh;
  s->wr = io->r + d * s->gh * H;
  s->wb = io->b ? io->b + d * 2 * s->gh : NULL;
  s->rb = io->b ? s->wb + s->gh : NULL;
  s->p = io->p ? io->p + d * 3 * H : NULL;
  size_t bh = (size_t)(B * H) + 1;
  s->h = calloc(bh, sizeof(float));
  s->c = calloc(bh, sizeof(float));
  s->q = calloc(bh, sizeof(float));
  s->hr = calloc((size_t)(B * s->gh) + 1, sizeof(float));
  s->pre = calloc((size_t)(B * s->pre_w) + 1, sizeof(float));
  if (!s->h || !s->c || !s->q || !s->hr || !s->pre) return TY_ENOMEM;
  for (int64_t b = 0; b < B; b++) {
    if (io->h0) memcpy(s->h + b * H, io->h0 + ty__rnn_hoff(r, d, b), (size_t)H * sizeof(float));
    if (io->c0) memcpy(s->c + b * H, io->c0 + ty__rnn_hoff(r, d, b), (size_t)H * sizeof(float));
  }
  return 0;
}

static void dir_free(dir_run *s) {
  free(s->h);
  free(s->c);
  free(s->q);
  free(s->hr);
  free(s->pre);
}

static int tape_init(const ty__rnn *r, const dir_run *s, int64_t steps, ty__rnn_tape *t) {
  memset(t, 0, sizeof *t);
  t->steps = steps;
  t->pre_w = s->pre_w;
  size_t np, nh;
  if (ty_mul_overflow((size_t)(steps * r->batch), (size_t)s->pre_w, &np) ||
      ty_mul_overflow((size_t)(steps * r->batch), (size_t)r->hid, &nh) || np > ((size_t)1 << 34))
    return TY_ETOOBIG;
  t->pre = malloc((np + 1) * sizeof(float));
  t->h = malloc((nh + 1) * sizeof(float));
  t->c = r->op == TY_OP_LSTM ? malloc((nh + 1) * sizeof(float)) : NULL;
  if (!t->pre || !t->h || (r->op == TY_OP_LSTM && !t->c)) return TY_ENOMEM;
  return 0;
}

static void tape_keep(const ty__rnn *r, const dir_run *s, int64_t step, ty__rnn_tape *t) {
  int64_t B = r->batch, H = r->hid;
  memcpy(t->pre + step * B * s->pre_w, s->pre, (size_t)(B * s->pre_w) * sizeof(float));
  memcpy(t->h + step * B * H, s->h, (size_t)(B * H) * sizeof(float));
  if (t->c) memcpy(t->c + step * B * H, s->c, (size_t)(B * H) * sizeof(float));
}

int ty__rnn_direction(const ty__rnn *r, const ty__rnn_io *io, const float *xw, int d, ty_workers *w,
                      float *y, float *yh, float *yc, ty__rnn_tape *tape) {
  dir_run s;
  int64_t B = r->batch, H = r->hid, steps = 0;
  for (int64_t b = 0; b < B; b++)
    steps = io->len[b] > steps ? io->len[b] : steps;
  int rc = dir_init(&s, r, io, d);
  if (rc == 0 && tape) rc = tape_init(r, &s, steps, tape);
  for (int64_t step = 0; rc == 0 && step < steps; step++) {
    run_step(&s, xw, step, w);
    if (tape) tape_keep(r, &s, step, tape);
    for (int64_t b = 0; y && b < B; b++)
      if (row_active(&s, step, b))
        memcpy(y + ty__rnn_yoff(r, ty__rnn_time(r, d, step, io->len[b]), d, b), s.h + b * H,
               (size_t)H * sizeof(float));
  }
  for (int64_t b = 0; rc == 0 && b < B; b++) {
    if (yh) memcpy(yh + ty__rnn_hoff(r, d, b), s.h + b * H, (size_t)H * sizeof(float));
    if (yc) memcpy(yc + ty__rnn_hoff(r, d, b), s.c + b * H, (size_t)H * sizeof(float));
  }
  dir_free(&s);
  if (rc != 0 && tape) ty__rnn_tape_free(tape);
  return rc;
}

/* ---- the kernel ------------------------------------------------------------------------------ */
int ty__k_rnn(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
              ty__kctx *ctx) {
  ty_shape sh[8];
  const ty_shape *shp[8] = {NULL};
  for (int i = 0; i < n->n_inputs && i < 8; i++)
    if (in[i]) {
      sh[i] = in[i]->shape;
      shp[i] = &sh[i];
    }
  ty__rnn r;
  if (ty__rnn_read(n, shp, n->n_inputs < 8 ? n->n_inputs : 8, &r, NULL, 0) != 0)
    return TY_EINTERNAL;
  ty__rnn_io io;
  int rc = ty__rnn_io_init(&r, in, n->n_inputs, &io);
  if (rc != 0) return rc;
  float *xw = NULL;
  rc = ty__rnn_project(&r, &io, ctx->workers, &xw);
  ty_tensor *y = out[0], *yh = n->n_outputs > 1 ? out[1] : NULL,
            *yc = n->n_outputs > 2 ? out[2] : NULL;
  if (rc == 0 && y) memset(y->data, 0, (size_t)ty_tensor_numel(y) * sizeof(float));
  for (int d = 0; rc == 0 && d < r.ndir; d++)
    rc = ty__rnn_direction(&r, &io, xw, d, ctx->workers, y ? y->data : NULL, yh ? yh->data : NULL,
                           yc ? yc->data : NULL, NULL);
  free(xw);
  ty__rnn_io_free(&io);
  return rc;
}
