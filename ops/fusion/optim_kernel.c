/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fused optimizer updates: one generated loop per parameter buffer,
 * specialised on which terms exist (weight decay, momentum, nesterov, the
 * first step, AdamW), with the hyperparameters passed at run time so a
 * learning-rate schedule never recompiles. The arithmetic is ops/optim's
 * (torch's single-tensor path) operation by operation, scalars derived in
 * double the same way, so the two agree bit for bit. The reference loops
 * below double as the interpreter when the JIT is unavailable.
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgd_fn)(int64_t n, float *p, const float *g, float *buf, const float *h);
typedef void (*adam_fn)(int64_t n, float *p, const float *g, float *m, float *v, const float *h);

enum { SGD_WD = 1, SGD_MOM = 2, SGD_NESTEROV = 4, SGD_FIRST = 8 };
enum { ADAM_WD = 1, ADAM_W = 2 };

static void sgd_ref(unsigned fl, int64_t n, float *p, const float *g, float *buf, const float *h) {
  const float lr = h[0], wd = h[1], mom = h[2], damp = h[3];
  for (int64_t k = 0; k < n; k++) {
    float d = g[k];
    if (fl & SGD_WD) d = d + wd * p[k];
    if (fl & SGD_MOM) {
      buf[k] = (fl & SGD_FIRST) ? d : buf[k] * mom + damp * d;
      d = (fl & SGD_NESTEROV) ? d + mom * buf[k] : buf[k];
    }
    p[k] = p[k] + (-lr) * d;
  }
}

static int sgd_src(unsigned fl, char *buf, size_t len) {
  int n = snprintf(buf, len,
                   "#include <stdint.h>\n"
                   "void ty_sgd(int64_t n, float *p, const float *g, float *buf, const float *h) {\n"
                   "  const float lr = h[0], wd = h[1], mom = h[2], damp = h[3];\n"
                   "  (void)wd; (void)mom; (void)damp; (void)buf;\n"
                   "  for (int64_t k = 0; k < n; k++) {\n"
                   "    float d = g[k];\n%s%s%s"
                   "    p[k] = p[k] + (-lr) * d;\n  }\n}\n",
                   (fl & SGD_WD) ? "    d = d + wd * p[k];\n" : "",
                   !(fl & SGD_MOM) ? "" : (fl & SGD_FIRST) ? "    buf[k] = d;\n" : "    buf[k] = buf[k] * mom + damp * d;\n",
                   !(fl & SGD_MOM) ? "" : (fl & SGD_NESTEROV) ? "    d = d + mom * buf[k];\n" : "    d = buf[k];\n");
  return n > 0 && (size_t)n < len ? 0 : TY_EINTERNAL;
}

int ty_jit_sgd_step(ty_jit *j, const ty_fused_sgd *hp, size_t n, float *param, const float *grad, float *buf) {
  if (!hp || (n && (!param || !grad))) return TY_EINVAL;
  unsigned fl = (hp->weight_decay != 0.0f ? SGD_WD : 0u) | (hp->momentum != 0.0f ? SGD_MOM : 0u) |
                (hp->nesterov ? SGD_NESTEROV : 0u) | (hp->first ? SGD_FIRST : 0u);
  if ((fl & SGD_MOM) && n && !buf) return TY_EINVAL;
  const float h[4] = {hp->lr, hp->weight_decay, hp->momentum, (float)(1.0 - (double)hp->dampening)};
  char src[1024];
  sgd_fn fn = NULL;
  if (sgd_src(fl, src, sizeof src) == 0) {
    void *sym = ty__jit_lookup(j, src, "ty_sgd");
    memcpy(&fn, &sym, sizeof fn);
  }
  if (fn) {
    fn((int64_t)n, param, grad, buf, h);
  } else {
    ty__jit_count_interp(j);
    sgd_ref(fl, (int64_t)n, param, grad, buf, h);
  }
  return 0;
}

/* torch.lerp's CPU formula, which switches form at weight 0.5. */
#define LERPF_SRC                                                                     \
  "static inline float lerpf(float self, float end, float w) {\n"                     \
  "  return fabsf(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.0f - w);\n}\n"

static inline float lerpf(float self, float end, float w) {
  return fabsf(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.0f - w);
}

/* h: step_size, bc2_sqrt, decay, wd, beta2, 1-beta1, 1-beta2, eps. */
static void adam_ref(unsigned fl, int64_t n, float *p, const float *g, float *m, float *v, const float *h) {
  for (int64_t k = 0; k < n; k++) {
    float gk = g[k];
    if (fl & ADAM_W) p[k] = p[k] * h[2];
    else if (fl & ADAM_WD) gk = gk + h[3] * p[k];
    m[k] = lerpf(m[k], gk, h[5]);
    v[k] = v[k] * h[4] + h[6] * (gk * gk);
    float denom = sqrtf(v[k]) / h[1] + h[7];
    p[k] = p[k] + (-h[0]) * (m[k] / denom);
  }
}

static int adam_src(unsigned fl, char *buf, size_t len) {
  int n = snprintf(buf, len,
                   "#include <math.h>\n#include <stdint.h>\n" LERPF_SRC
                   "void ty_adam(int64_t n, float *p, const float *g, float *m, float *v, const float *h) {\n"
                   "  const float step_size = h[0], bc2_sqrt = h[1], decay = h[2], wd = h[3];\n"
                   "  const float b2 = h[4], w1 = h[5], w2 = h[6], eps = h[7];\n"
                   "  (void)decay; (void)wd;\n"
                   "  for (int64_t k = 0; k < n; k++) {\n"
                   "    float gk = g[k];\n%s"
                   "    m[k] = lerpf(m[k], gk, w1);\n"
                   "    v[k] = v[k] * b2 + w2 * (gk * gk);\n"
                   "    float denom = sqrtf(v[k]) / bc2_sqrt + eps;\n"
                   "    p[k] = p[k] + (-step_size) * (m[k] / denom);\n  }\n}\n",
                   (fl & ADAM_W) ? "    p[k] = p[k] * decay;\n" : (fl & ADAM_WD) ? "    gk = gk + wd * p[k];\n" : "");
  return n > 0 && (size_t)n < len ? 0 : TY_EINTERNAL;
}

int ty_jit_adam_step(ty_jit *j, const ty_fused_adam *hp, size_t n, float *param, const float *grad, float *m,
                     float *v) {
  if (!hp || hp->step == 0 || (n && (!param || !grad || !m || !v))) return TY_EINVAL;
  const double t = (double)hp->step;
  const double bc1 = 1.0 - pow((double)hp->beta1, t), bc2 = 1.0 - pow((double)hp->beta2, t);
  const float h[8] = {(float)((double)hp->lr / bc1), (float)sqrt(bc2),
                      (float)(1.0 - (double)hp->lr * (double)hp->weight_decay), hp->weight_decay, hp->beta2,
                      (float)(1.0 - (double)hp->beta1), (float)(1.0 - (double)hp->beta2), hp->eps};
  unsigned fl = hp->adamw ? ADAM_W : hp->weight_decay != 0.0f ? ADAM_WD : 0u;
  char src[1536];
  adam_fn fn = NULL;
  if (adam_src(fl, src, sizeof src) == 0) {
    void *sym = ty__jit_lookup(j, src, "ty_adam");
    memcpy(&fn, &sym, sizeof fn);
  }
  if (fn) {
    fn((int64_t)n, param, grad, m, v, h);
  } else {
    ty__jit_count_interp(j);
    adam_ref(fl, (int64_t)n, param, grad, m, v, h);
  }
  return 0;
}
