/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fused optimizer updates: one generated loop per parameter buffer,
 * specialised on which terms exist (weight decay, momentum, nesterov, the
 * first step, AdamW), with the hyperparameters passed at run time so a
 * learning-rate schedule never recompiles. The loop body is ops/optim's
 * rule itself (TY_OPTIM_SGD_RULE / TY_OPTIM_ADAM_RULE in ops/optim/optim.h,
 * stringified here), and the scalars come from the same functions, so the
 * two paths agree bit for bit. The reference loops below expand the same
 * rules and double as the interpreter when the JIT is unavailable.
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"
#include "ops/optim/optim.h"

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
  const bool has_wd = fl & SGD_WD, has_mom = fl & SGD_MOM, first = fl & SGD_FIRST,
             nesterov = fl & SGD_NESTEROV;
  for (int64_t k = 0; k < n; k++)
    TY_OPTIM_SGD_RULE
}

static int sgd_src(unsigned fl, char *buf, size_t len) {
  int n =
      snprintf(buf, len,
               "#include <stdint.h>\n"
               "void ty_sgd(int64_t n, float *p, const float *g, float *buf, const float *h) {\n"
               "  const float lr = h[0], wd = h[1], mom = h[2], damp = h[3];\n"
               "  const int has_wd = %d, has_mom = %d, first = %d, nesterov = %d;\n"
               "  (void)wd; (void)mom; (void)damp; (void)buf;\n"
               "  for (int64_t k = 0; k < n; k++)\n    %s\n}\n",
               !!(fl & SGD_WD), !!(fl & SGD_MOM), !!(fl & SGD_FIRST), !!(fl & SGD_NESTEROV),
               TY_OPTIM_SRC(TY_OPTIM_SGD_RULE));
  return n > 0 && (size_t)n < len ? 0 : TY_EINTERNAL;
}

int ty_jit_sgd_step(ty_jit *j, const ty_fused_sgd *hp, size_t n, float *param, const float *grad,
                    float *buf) {
  if (!hp || (n && (!param || !grad))) return TY_EINVAL;
  unsigned fl = (hp->weight_decay != 0.0f ? SGD_WD : 0u) | (hp->momentum != 0.0f ? SGD_MOM : 0u) |
                (hp->nesterov ? SGD_NESTEROV : 0u) | (hp->first ? SGD_FIRST : 0u);
  if ((fl & SGD_MOM) && n && !buf) return TY_EINVAL;
  float h[4];
  ty_optim_sgd_scalars(hp->lr, hp->weight_decay, hp->momentum, hp->dampening, h);
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

TY_OPTIM_LERPF_DEF

/* h: ty_optim_adam_scalars' order. */
static void adam_ref(unsigned fl, int64_t n, float *p, const float *g, float *m, float *v,
                     const float *h) {
  const float step_size = h[0], bc2_sqrt = h[1], decay = h[2], wd = h[3], b2 = h[4], w1 = h[5],
              w2 = h[6], eps = h[7];
  const bool adamw = fl & ADAM_W, has_wd = fl & ADAM_WD;
  for (int64_t k = 0; k < n; k++)
    TY_OPTIM_ADAM_RULE
}

static int adam_src(unsigned fl, char *buf, size_t len) {
  int n = snprintf(
      buf, len,
      "#include <math.h>\n#include <stdint.h>\n%s\n"
      "void ty_adam(int64_t n, float *p, const float *g, float *m, float *v, const float *h) {\n"
      "  const float step_size = h[0], bc2_sqrt = h[1], decay = h[2], wd = h[3];\n"
      "  const float b2 = h[4], w1 = h[5], w2 = h[6], eps = h[7];\n"
      "  const int adamw = %d, has_wd = %d;\n"
      "  (void)decay; (void)wd;\n"
      "  for (int64_t k = 0; k < n; k++)\n    %s\n}\n",
      TY_OPTIM_SRC(TY_OPTIM_LERPF_DEF), !!(fl & ADAM_W), !!(fl & ADAM_WD),
      TY_OPTIM_SRC(TY_OPTIM_ADAM_RULE));
  return n > 0 && (size_t)n < len ? 0 : TY_EINTERNAL;
}

int ty_jit_adam_step(ty_jit *j, const ty_fused_adam *hp, size_t n, float *param, const float *grad,
                     float *m, float *v) {
  if (!hp || hp->step == 0 || (n && (!param || !grad || !m || !v))) return TY_EINVAL;
  float h[8];
  ty_optim_adam_scalars(hp->lr, hp->weight_decay, hp->beta1, hp->beta2, hp->eps, hp->step, h);
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
