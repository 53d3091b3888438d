/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward of the recurrent ops LSTM, GRU and RNN: backpropagation through
 * time. The forward pass runs again with a tape (ops/kernels/rnn.c); each
 * direction is then walked from its last step to its first, carrying dH
 * (and dC) back: per step the gate gradients of the active rows, dH_prev
 * through R (one GEMM over the batch) and dR from H_prev (another). The
 * input-side gate gradients of every step land in one matrix shaped like
 * the input projection, so dX and dW are one GEMM each, as the forward's
 * projection is.
 *
 * A TyGrad node carries dY of one output (Y, Y_h or Y_c); the pass is
 * linear in the output gradients, so the gradients from several outputs are
 * summed by autodiff's accumulation. autodiff gives the node an output per
 * input (ty__grad_all_inputs), so one pass yields every gradient; a node
 * with one output (wrt) runs the same pass and keeps its one gradient.
 */
#include "ops/autodiff/grad_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

/* Gradients of everything, all directions. */
typedef struct grads {
  float *da;  /* [rows of X, ndir * gates * hid]: input-side gate gradients */
  float *dr;  /* [ndir, gates * hid, hid] */
  float *dwb; /* [ndir, gates * hid] */
  float *drb; /* [ndir, gates * hid] */
  float *dp;  /* [ndir, 3 * hid] */
  float *dh0; /* initial_h-shaped */
  float *dc0; /* initial_c-shaped */
} grads;

/* Per-direction scratch of the backward walk. */
typedef struct bwd {
  const ty__rnn *r;
  const ty__rnn_io *io;
  const ty__rnn_tape *tape;
  int d;
  int64_t gh, H, B;
  const float *wr, *p, *h_init, *c_init;
  float *dh, *dc, *step_da, *step_dar, *dhp, *dq, *q, *hinit_buf, *cinit_buf;
} bwd;

static float cmask(const ty__rnn *r, float v) {
  return !r->has_clip || (v >= -r->clip && v <= r->clip) ? 1.0f : 0.0f;
}
static float clipv(const ty__rnn *r, float v) {
  return r->has_clip ? (v > r->clip ? r->clip : v < -r->clip ? -r->clip : v) : v;
}
static float act(const ty__act *a, const ty__rnn *r, float raw) {
  return ty__act_f(a, clipv(r, raw));
}
/* d act(clip(raw)) / d raw. */
static float dact(const ty__act *a, const ty__rnn *r, float raw) {
  return ty__act_d(a, clipv(r, raw)) * cmask(r, raw);
}

static const float *hprev_of(const bwd *s, int64_t step) {
  return step == 0 ? s->h_init : s->tape->h + (step - 1) * s->B * s->H;
}
static const float *cprev_of(const bwd *s, int64_t step) {
  return step == 0 ? s->c_init : s->tape->c + (step - 1) * s->B * s->H;
}

static void lstm_row(bwd *s, grads *g, int64_t step, int64_t b, float *da) {
  const ty__rnn *r = s->r;
  const ty__act *a = r->act[s->d];
  int64_t H = s->H;
  const float *pre = s->tape->pre + (step * s->B + b) * s->tape->pre_w;
  const float *cp = cprev_of(s, step) + b * H, *cn = s->tape->c + (step * s->B + b) * H;
  float *dp = g->dp ? g->dp + s->d * 3 * H : NULL;
  for (int64_t k = 0; k < H; k++) {
    float ai = pre[k], ao = pre[H + k], af = pre[2 * H + k], ac = pre[3 * H + k];
    float i = act(&a[0], r, ai), o = act(&a[0], r, ao), f = act(&a[0], r, af),
          gg = act(&a[1], r, ac);
    float dH = s->dh[b * H + k], C = cn[k];
    float d_ao = dH * ty__act_f(&a[2], C) * dact(&a[0], r, ao);
    float dC = s->dc[b * H + k] + dH * o * ty__act_d(&a[2], C) + (s->p ? d_ao * s->p[H + k] : 0);
    float d_ai = dC * gg * dact(&a[0], r, ai), d_af = dC * cp[k] * dact(&a[0], r, af),
          d_ac = dC * i * dact(&a[1], r, ac);
    float dcp = dC * f;
    if (s->p) {
      dcp += d_ai * s->p[k] + d_af * s->p[2 * H + k];
      dp[k] += d_ai * cp[k];
      dp[2 * H + k] += d_af * cp[k];
      dp[H + k] += d_ao * C;
    }
    s->dc[b * H + k] = dcp;
    da[k] = d_ai;
    da[H + k] = d_ao;
    da[2 * H + k] = d_af;
    da[3 * H + k] = d_ac;
  }
}

/* GRU, first half: dz and the candidate's gradient; dar gets the recurrent
 * side (the reset gate's follows in gru_reset once dq is known without
 * linear_before_reset). */
static void gru_row(bwd *s, int64_t step, int64_t b, float *da, float *dar) {
  const ty__rnn *r = s->r;
  const ty__act *a = r->act[s->d];
  int64_t H = s->H;
  const float *pre = s->tape->pre + (step * s->B + b) * s->tape->pre_w;
  const float *hp = hprev_of(s, step) + b * H;
  for (int64_t k = 0; k < H; k++) {
    float az = pre[k], ar = pre[H + k], ah = pre[2 * H + k];
    float z = act(&a[0], r, az), hc = act(&a[1], r, ah), dH = s->dh[b * H + k];
    float d_ah = dH * (1.0f - z) * dact(&a[1], r, ah);
    da[k] = dar[k] = dH * (hp[k] - hc) * dact(&a[0], r, az);
    da[2 * H + k] = d_ah;
    s->dhp[b * H + k] = dH * z;
    if (r->lbr) {
      float hrh = pre[3 * H + k], rg = act(&a[0], r, ar);
      da[H + k] = dar[H + k] = d_ah * hrh * dact(&a[0], r, ar);
      dar[2 * H + k] = d_ah * rg;
    } else {
      dar[2 * H + k] = d_ah;
      s->q[b * H + k] = act(&a[0], r, ar) * hp[k];
    }
  }
}

/* GRU without linear_before_reset: dq = d_ah R_h gives the reset gate's
 * gradient and part of dH_prev. */
static void gru_reset(bwd *s, int64_t step, int64_t b, float *da, float *dar) {
  const ty__rnn *r = s->r;
  int64_t H = s->H;
  const float *pre = s->tape->pre + (step * s->B + b) * s->tape->pre_w;
  const float *hp = hprev_of(s, step) + b * H, *dq = s->dq + b * H;
  for (int64_t k = 0; k < H; k++) {
    float ar = pre[H + k], rg = act(&r->act[s->d][0], r, ar);
    da[H + k] = dar[H + k] = dq[k] * hp[k] * dact(&r->act[s->d][0], r, ar);
    s->dhp[b * H + k] += dq[k] * rg;
  }
}

static bool active(const bwd *s, int64_t step, int64_t b) {
  return step < s->io->len[b];
}

/* The gate gradients of every row at one step into step_da / step_dar. */
static void step_gates(bwd *s, grads *g, int64_t step, ty_workers *w) {
  const ty__rnn *r = s->r;
  int64_t B = s->B, H = s->H, gh = s->gh;
  memset(s->step_da, 0, (size_t)(B * gh) * sizeof(float));
  memset(s->step_dar, 0, (size_t)(B * gh) * sizeof(float));
  memset(s->dhp, 0, (size_t)(B * H) * sizeof(float));
  memset(s->q, 0, (size_t)(B * H) * sizeof(float));
  for (int64_t b = 0; b < B; b++) {
    if (!active(s, step, b)) continue;
    float *da = s->step_da + b * gh, *dar = s->step_dar + b * gh;
    if (r->op == TY_OP_LSTM) {
      lstm_row(s, g, step, b, da);
      memcpy(dar, da, (size_t)gh * sizeof(float));
    } else if (r->op == TY_OP_GRU) {
      gru_row(s, step, b, da, dar);
    } else {
      const float *pre = s->tape->pre + (step * B + b) * s->tape->pre_w;
      for (int64_t k = 0; k < H; k++)
        da[k] = dar[k] = s->dh[b * H + k] * dact(&r->act[s->d][0], r, pre[k]);
    }
  }
  if (r->op == TY_OP_GRU && !r->lbr) {
    ty__sgemm(w, false, false, B, H, H, 1.0f, s->step_da + 2 * H, gh, s->wr + 2 * H * H, H, 0.0f,
              s->dq, H);
    for (int64_t b = 0; b < B; b++)
      if (active(s, step, b)) gru_reset(s, step, b, s->step_da + b * gh, s->step_dar + b * gh);
  }
}

/* dH_prev, dR and the biases from one step's gate gradients. */
static void step_recur(bwd *s, grads *g, int64_t step, ty_workers *w) {
  const ty__rnn *r = s->r;
  int64_t B = s->B, H = s->H, gh = s->gh;
  const float *hp = hprev_of(s, step);
  float *dr = g->dr + s->d * gh * H;
  bool split = r->op == TY_OP_GRU && !r->lbr;
  int64_t nrec = split ? 2 * H : gh; /* gate rows of R that multiply H_prev itself */
  ty__sgemm(w, false, false, B, H, nrec, 1.0f, s->step_dar, gh, s->wr, H, 1.0f, s->dhp, H);
  ty__sgemm(w, true, false, nrec, H, B, 1.0f, s->step_dar, gh, hp, H, 1.0f, dr, H);
  if (split)
    ty__sgemm(w, true, false, H, H, B, 1.0f, s->step_da + 2 * H, gh, s->q, H, 1.0f, dr + 2 * H * H,
              H);
  for (int64_t b = 0; b < B; b++) {
    if (!active(s, step, b)) continue;
    for (int64_t j = 0; j < gh; j++) {
      g->dwb[s->d * gh + j] += s->step_da[b * gh + j];
      g->drb[s->d * gh + j] += s->step_dar[b * gh + j];
    }
    memcpy(s->dh + b * H, s->dhp + b * H, (size_t)H * sizeof(float));
  }
}

static int bwd_init(bwd *s, const ty__rnn *r, const ty__rnn_io *io, const ty__rnn_tape *tape,
                    int d) {
  memset(s, 0, sizeof *s);
  s->r = r;
  s->io = io;
  s->tape = tape;
  s->d = d;
  s->H = r->hid;
  s->B = r->batch;
  s->gh = r->gates * r->hid;
  s->wr = io->r + d * s->gh * s->H;
  s->p = io->p ? io->p + d * 3 * s->H : NULL;
  size_t bh = (size_t)(s->B * s->H) + 1, bg = (size_t)(s->B * s->gh) + 1;
  s->dh = calloc(bh, sizeof(float));
  s->dc = calloc(bh, sizeof(float));
  s->dhp = calloc(bh, sizeof(float));
  s->dq = calloc(bh, sizeof(float));
  s->q = calloc(bh, sizeof(float));
  s->hinit_buf = calloc(bh, sizeof(float));
  s->cinit_buf = calloc(bh, sizeof(float));
  s->step_da = calloc(bg, sizeof(float));
  s->step_dar = calloc(bg, sizeof(float));
  if (!s->dh || !s->dc || !s->dhp || !s->dq || !s->q || !s->hinit_buf || !s->cinit_buf ||
      !s->step_da || !s->step_dar)
    return TY_ENOMEM;
  for (int64_t b = 0; b < s->B; b++) {
    int64_t off = ty__rnn_hoff(r, d, b);
    if (io->h0) memcpy(s->hinit_buf + b * s->H, io->h0 + off, (size_t)s->H * sizeof(float));
    if (io->c0) memcpy(s->cinit_buf + b * s->H, io->c0 + off, (size_t)s->H * sizeof(float));
  }
  s->h_init = s->hinit_buf;
  s->c_init = s->cinit_buf;
  return 0;
}

static void bwd_free(bwd *s) {
  free(s->dh);
  free(s->dc);
  free(s->dhp);
  free(s->dq);
  free(s->q);
  free(s->hinit_buf);
  free(s->cinit_buf);
  free(s->step_da);
  free(s->step_dar);
}

/* Walks direction d backwards; dy is the gradient of output `out`. */
static int direction_back(const ty__rnn *r, const ty__rnn_io *io, const ty__rnn_tape *tape, int d,
                          int out, const float *dy, grads *g, ty_workers *w) {
  bwd s;
  int rc = bwd_init(&s, r, io, tape, d);
  int64_t H = s.H, gh = s.gh, cols = r->ndir * gh;
  for (int64_t b = 0; rc == 0 && b < s.B; b++) {
    if (out == 1) memcpy(s.dh + b * H, dy + ty__rnn_hoff(r, d, b), (size_t)H * sizeof(float));
    if (out == 2) memcpy(s.dc + b * H, dy + ty__rnn_hoff(r, d, b), (size_t)H * sizeof(float));
  }
  for (int64_t step = tape->steps; rc == 0 && step-- > 0;) {
    for (int64_t b = 0; out == 0 && b < s.B; b++) {
      if (!active(&s, step, b)) continue;
      const float *src = dy + ty__rnn_yoff(r, ty__rnn_time(r, d, step, io->len[b]), d, b);
      for (int64_t k = 0; k < H; k++)
        s.dh[b * H + k] += src[k];
    }
    step_gates(&s, g, step, w);
    for (int64_t b = 0; b < s.B; b++)
      if (active(&s, step, b))
        memcpy(g->da + ty__rnn_row(r, ty__rnn_time(r, d, step, io->len[b]), b) * cols + d * gh,
               s.step_da + b * gh, (size_t)gh * sizeof(float));
    step_recur(&s, g, step, w);
  }
  for (int64_t b = 0; rc == 0 && b < s.B; b++) {
    memcpy(g->dh0 + ty__rnn_hoff(r, d, b), s.dh + b * H, (size_t)H * sizeof(float));
    if (g->dc0) memcpy(g->dc0 + ty__rnn_hoff(r, d, b), s.dc + b * H, (size_t)H * sizeof(float));
  }
  bwd_free(&s);
  return rc;
}

static void grads_free(grads *g) {
  free(g->da);
  free(g->dr);
  free(g->dwb);
  free(g->drb);
  free(g->dp);
  free(g->dh0);
  free(g->dc0);
}

static int grads_init(const ty__rnn *r, grads *g) {
  memset(g, 0, sizeof *g);
  int64_t gh = r->gates * r->hid, nd = r->ndir, bh = nd * r->batch * r->hid;
  size_t nda;
  if (ty_mul_overflow((size_t)(r->seq * r->batch), (size_t)(nd * gh), &nda) ||
      nda > ((size_t)1 << 34))
    return TY_ETOOBIG;
  g->da = calloc(nda + 1, sizeof(float));
  g->dr = calloc((size_t)(nd * gh * r->hid) + 1, sizeof(float));
  g->dwb = calloc((size_t)(nd * gh) + 1, sizeof(float));
  g->drb = calloc((size_t)(nd * gh) + 1, sizeof(float));
  g->dp = calloc((size_t)(nd * 3 * r->hid) + 1, sizeof(float));
  g->dh0 = calloc((size_t)bh + 1, sizeof(float));
  g->dc0 = r->op == TY_OP_LSTM ? calloc((size_t)bh + 1, sizeof(float)) : NULL;
  if (!g->da || !g->dr || !g->dwb || !g->drb || !g->dp || !g->dh0 ||
      (r->op == TY_OP_LSTM && !g->dc0))
    return TY_ENOMEM;
  return 0;
}

/* Writes the gradient of input wrt from g into dx. */
static void emit(const ty__rnn *r, const ty__rnn_io *io, const grads *g, int wrt, float *dx,
                 ty_workers *w) {
  int64_t gh = r->gates * r->hid, cols = r->ndir * gh, rows = r->seq * r->batch;
  switch (wrt) {
  case TY__RNN_X:
    ty__sgemm(w, false, false, rows, r->in, cols, 1.0f, g->da, cols, io->w, r->in, 0.0f, dx, r->in);
    return;
  case TY__RNN_W:
    ty__sgemm(w, true, false, cols, r->in, rows, 1.0f, g->da, cols, io->x, r->in, 0.0f, dx, r->in);
    return;
  case TY__RNN_R:
    memcpy(dx, g->dr, (size_t)(cols * r->hid) * sizeof(float));
    return;
  case TY__RNN_B:
    for (int d = 0; d < r->ndir; d++) {
      memcpy(dx + d * 2 * gh, g->dwb + d * gh, (size_t)gh * sizeof(float));
      memcpy(dx + d * 2 * gh + gh, g->drb + d * gh, (size_t)gh * sizeof(float));
    }
    return;
  case TY__RNN_H0:
    memcpy(dx, g->dh0, (size_t)(r->ndir * r->batch * r->hid) * sizeof(float));
    return;
  case TY__RNN_C0:
    memcpy(dx, g->dc0, (size_t)(r->ndir * r->batch * r->hid) * sizeof(float));
    return;
  default: /* P */
    memcpy(dx, g->dp, (size_t)(r->ndir * 3 * r->hid) * sizeof(float));
    return;
  }
}

int ty__g_rnn(ty__gctx *c) {
  ty_shape sh[8];
  const ty_shape *shp[8] = {NULL};
  for (int i = 0; i < c->nx && i < 8; i++)
    if (c->x[i]) {
      sh[i] = c->x[i]->shape;
      shp[i] = &sh[i];
    }
  ty_graph_node f = *c->n;
  f.op = c->op;
  ty__rnn r;
  if (ty__rnn_read(&f, shp, c->nx < 8 ? c->nx : 8, &r, NULL, 0) != 0) return TY_EINTERNAL;
  ty__rnn_io io;
  int rc = ty__rnn_io_init(&r, c->x, c->nx, &io);
  if (rc != 0) return rc;
  float *xw = NULL;
  grads g = {0};
  rc = ty__rnn_project(&r, &io, c->workers, &xw);
  if (rc == 0) rc = grads_init(&r, &g);
  for (int d = 0; rc == 0 && d < r.ndir; d++) {
    ty__rnn_tape tape;
    rc = ty__rnn_direction(&r, &io, xw, d, c->workers, NULL, NULL, NULL, &tape);
    if (rc != 0) break;
    rc = direction_back(&r, &io, &tape, d, c->out, c->dy->data, &g, c->workers);
    ty__rnn_tape_free(&tape);
  }
  for (int i = 0; rc == 0 && c->ndx > 1 && i < c->ndx && i < c->nx; i++)
    if (c->dxs[i] && c->x[i]) emit(&r, &io, &g, i, c->dxs[i]->data, c->workers);
  if (rc == 0 && c->ndx == 1) emit(&r, &io, &g, c->wrt, c->dx->data, c->workers);
  grads_free(&g);
  free(xw);
  ty__rnn_io_free(&io);
  return rc;
}
