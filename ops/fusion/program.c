/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fused programs: built from a region's members, turned into C for the JIT
 * and run by the interpreter. Both back ends evaluate each element with the
 * same float operations in the same order as the library kernels in
 * ops/kernels (same libm calls, same sigmoid split, pow in double, exp and
 * erf from ops/vmath.h, whose text the generated C embeds), so fused, JIT
 * and interpreted results are bitwise equal to unfused ones.
 *
 * The interpreter works on blocks of TY__FBLOCK elements: each register is
 * a block, each instruction a tight loop over it, which amortises dispatch.
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"
#include "ops/autodiff/grad_internal.h"
#include "ops/ops_internal.h"
#include "ops/vmath.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fopcode_of(ty_op op) {
  switch (op) {
  case TY_OP_ADD:
    return TY__FOP_ADD;
  case TY_OP_SUB:
    return TY__FOP_SUB;
  case TY_OP_MUL:
    return TY__FOP_MUL;
  case TY_OP_DIV:
    return TY__FOP_DIV;
  case TY_OP_POW:
    return TY__FOP_POW;
  case TY_OP_NEG:
    return TY__FOP_NEG;
  case TY_OP_RELU:
    return TY__FOP_RELU;
  case TY_OP_LEAKY_RELU:
    return TY__FOP_LEAKY_RELU;
  case TY_OP_SIGMOID:
    return TY__FOP_SIGMOID;
  case TY_OP_TANH:
    return TY__FOP_TANH;
  case TY_OP_EXP:
    return TY__FOP_EXP;
  case TY_OP_LOG:
    return TY__FOP_LOG;
  case TY_OP_SQRT:
    return TY__FOP_SQRT;
  case TY_OP_ERF:
    return TY__FOP_ERF;
  case TY_OP_IDENTITY:
    return TY__FOP_COPY;
  default:
    return -1;
  }
}

/* ---- node decoding ----------------------------------------------------- */

static void fnode_set(ty__fnode *f, int op, int a, int b, int c, int n_in) {
  *f = (ty__fnode){.op = op, .in = {a, b, c}, .n_in = n_in};
}

/* A TyGrad node of a binary forward op: x0, x1 the forward inputs. */
static bool decode_grad_binary(ty_op op, int wrt, int dy, int x0, int x1, ty__fnode *f) {
  switch (op) {
  case TY_OP_ADD:
    fnode_set(f, TY__FOP_G_PASS, dy, 0, 0, 1);
    return true;
  case TY_OP_SUB:
    fnode_set(f, wrt == 0 ? TY__FOP_G_PASS : TY__FOP_G_NPASS, dy, 0, 0, 1);
    return true;
  case TY_OP_MUL:
    fnode_set(f, TY__FOP_G_MUL, dy, wrt == 0 ? x1 : x0, 0, 2);
    return true;
  case TY_OP_DIV:
    if (wrt == 0)
      fnode_set(f, TY__FOP_G_DIV0, dy, x1, 0, 2);
    else
      fnode_set(f, TY__FOP_G_DIV1, dy, x0, x1, 3);
    return true;
  case TY_OP_POW:
    fnode_set(f, wrt == 0 ? TY__FOP_G_POW0 : TY__FOP_G_POW1, dy, x0, x1, 3);
    return true;
  default:
    return false;
  }
}

/* A TyGrad node of a unary forward op: x its input, y its output (or
 * TY_NO_VALUE). */
static bool decode_grad_unary(const ty_graph_node *n, ty_op op, int dy, int x, int y,
                              ty__fnode *f) {
  switch (op) {
  case TY_OP_RELU:
    fnode_set(f, TY__FOP_G_RELU, dy, x, 0, 2);
    return true;
  case TY_OP_LEAKY_RELU:
    fnode_set(f, TY__FOP_G_LEAKY_RELU, dy, x, 0, 2);
    f->has_param = true;
    f->param = ty_graph_node_attr_float(n, "alpha", 0.01f);
    return true;
  case TY_OP_SIGMOID:
    fnode_set(f, TY__FOP_G_SIGMOID, dy, y, 0, 2);
    return y != TY_NO_VALUE;
  case TY_OP_TANH:
    fnode_set(f, TY__FOP_G_TANH, dy, y, 0, 2);
    return y != TY_NO_VALUE;
  case TY_OP_SQRT:
    fnode_set(f, TY__FOP_G_SQRT, dy, y, 0, 2);
    return y != TY_NO_VALUE;
  case TY_OP_EXP:
    fnode_set(f, TY__FOP_G_EXP, dy, y, 0, 2);
    return y != TY_NO_VALUE;
  case TY_OP_ERF:
    fnode_set(f, TY__FOP_G_ERF, dy, x, 0, 2);
    return true;
  case TY_OP_LOG:
    fnode_set(f, TY__FOP_G_LOG, dy, x, 0, 2);
    return true;
  case TY_OP_NEG:
    fnode_set(f, TY__FOP_G_NEG, dy, 0, 0, 1);
    return true;
  default:
    return false;
  }
}

/* TyGrad layout (ops/autodiff/grad_internal.h): dY, the forward inputs,
 * the forward outputs; attributes fwd_op, wrt, n_fwd_in. Only gradients
 * shaped like dY fuse: a broadcast input's gradient is a reduction. */
static bool decode_grad(const ty_graph *g, const ty_graph_node *n, ty__fnode *f) {
  int64_t op = ty_graph_node_attr_int(n, TY__GRAD_FWD_OP, -1),
          wrt = ty_graph_node_attr_int(n, TY__GRAD_WRT, -1);
  int64_t nfi = ty_graph_node_attr_int(n, TY__GRAD_NFI, -1);
  if (op < 0 || op > TY_OP_NEG || nfi < 1 || nfi > 2 || 1 + nfi > n->n_inputs || wrt < 0 ||
      wrt >= nfi)
    return false;
  if (n->n_outputs != 1 || n->outputs[0] == TY_NO_VALUE || n->inputs[0] == TY_NO_VALUE)
    return false;
  const ty_graph_value *dv = ty_graph_value_at(g, n->inputs[0]),
                       *ov = ty_graph_value_at(g, n->outputs[0]);
  if (!ty_shape_equal(&dv->shape, &ov->shape)) return false;
  bool binary = op <= TY_OP_POW, ok;
  if (nfi != (binary ? 2 : 1)) return false;
  int dy = n->inputs[0], x0 = n->inputs[1], x1 = binary ? n->inputs[2] : TY_NO_VALUE;
  int y = n->n_inputs > 1 + nfi ? n->inputs[1 + nfi] : TY_NO_VALUE;
  ok = binary ? decode_grad_binary((ty_op)op, (int)wrt, dy, x0, x1, f)
              : decode_grad_unary(n, (ty_op)op, dy, x0, y, f);
  for (int i = 0; ok && i < f->n_in; i++)
    ok = f->in[i] != TY_NO_VALUE;
  return ok;
}

bool ty__fnode_decode(const ty_graph *g, const ty_graph_node *n, ty__fnode *out) {
  if (n->op == TY_OP_GRAD) return decode_grad(g, n, out);
  int op = fopcode_of(n->op);
  bool binary = n->op <= TY_OP_POW;
  if (op < 0 || n->n_inputs != (binary ? 2 : 1)) return false;
  if (binary && n->opset < 7 && ty_graph_node_attr(n, "axis"))
    return false; /* legacy broadcast: not numpy's */
  fnode_set(out, op, n->inputs[0], binary ? n->inputs[1] : 0, 0, binary ? 2 : 1);
  if (n->op == TY_OP_LEAKY_RELU) {
    out->has_param = true;
    out->param = ty_graph_node_attr_float(n, "alpha", 0.01f);
  }
  for (int i = 0; i < out->n_in; i++)
    if (out->in[i] == TY_NO_VALUE) return false;
  return true;
}

/* ---- program construction ---------------------------------------------- */

static int reg_of(const int *ids, int n, int id) {
  for (int i = 0; i < n; i++)
    if (ids[i] == id) return i;
  return -1;
}

int ty__fprog_build(const ty_graph *g, ty__fgroup *grp, int n_in, int n_out) {
  ty__fprog *p = &grp->prog;
  size_t cap = (size_t)n_in + grp->n_nodes + (size_t)n_out;
  int *reg_ids = calloc(cap, sizeof *reg_ids); /* register -> value id */
  p->code = calloc(cap, sizeof *p->code);
  p->params = calloc(grp->n_nodes + 1, sizeof *p->params);
  if (!reg_ids || !p->code || !p->params) {
    free(reg_ids);
    ty__fprog_free(p);
    return TY_ENOMEM;
  }
  p->n_in = n_in;
  p->n_out = n_out;
  for (int i = 0; i < n_in; i++) {
    p->code[p->n_code++] = (ty__finstr){TY__FOP_LOAD, p->n_regs, i, 0, -1, 0};
    reg_ids[p->n_regs++] = grp->in_ids[i];
  }
  for (size_t m = 0; m < grp->n_nodes; m++) {
    const ty_graph_node *n = ty_graph_node_at(g, grp->nodes[m]);
    ty__fnode f;
    if (!ty__fnode_decode(g, n, &f)) {
      free(reg_ids);
      ty__fprog_free(p);
      return TY_EINTERNAL;
    }
    int r[3] = {0, 0, 0};
    for (int i = 0; i < f.n_in; i++)
      r[i] = reg_of(reg_ids, p->n_regs, f.in[i]);
    ty__finstr in = {f.op, p->n_regs, r[0], r[1], -1, r[2]};
    if (f.has_param) {
      in.param = p->n_params;
      p->params[p->n_params++] = f.param;
    }
    p->code[p->n_code++] = in;
    reg_ids[p->n_regs++] = n->outputs[0];
  }
  for (int j = 0; j < n_out; j++)
    p->code[p->n_code++] =
        (ty__finstr){TY__FOP_STORE, j, reg_of(reg_ids, p->n_regs, grp->out_ids[j]), 0, -1, 0};
  free(reg_ids);
  return 0;
}

void ty__fprog_free(ty__fprog *p) {
  free(p->code);
  free(p->params);
  p->code = NULL;
  p->params = NULL;
}

/* ---- code generation --------------------------------------------------- */

void ty__sb_printf(ty__sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (b->oom || n < 0) return;
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->oom = true;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Backward formulas, operation for operation as ops/autodiff's kernels
 * write them (see fusion_internal.h); COPY otherwise. The kernels' binary
 * partials are double; where one is a single product, quotient or sign
 * change of two floats it is written in float here: the double result
 * rounds to the same float (a product of two floats is exact in double,
 * and double's 53 bits make a quotient's double rounding innocuous). Zeros
 * keep the double form's signs: "+ 0.0f" turns an exact -0 (an operand 0,
 * a divisor infinite) into (float)(0.0 + partial)'s +0, while a nonzero
 * partial that underflows keeps its sign, as it does rounding from double
 * (tests/unit/ops/fusion/test_fusion_grad.c checks every case). Float keeps
 * the loop in one vector width: the double forms cost the GPT's GELU
 * gradient conversions and a vdivpd per four elements. */
static void emit_grad_expr(ty__sbuf *b, const ty__finstr *in) {
  int g = in->a, x = in->b, z = in->c;
  switch (in->op) {
  case TY__FOP_G_RELU:
    ty__sb_printf(b, "r%d <= 0 ? 0.0f : r%d", x, g);
    break;
  case TY__FOP_G_LEAKY_RELU:
    ty__sb_printf(b, "r%d > 0 ? r%d : p%d * r%d", x, g, in->param, g);
    break;
  case TY__FOP_G_SIGMOID:
    ty__sb_printf(b, "r%d * r%d * (1.0f - r%d)", g, x, x);
    break;
  case TY__FOP_G_TANH:
    ty__sb_printf(b, "r%d * (1.0f - r%d * r%d)", g, x, x);
    break;
  case TY__FOP_G_SQRT:
    ty__sb_printf(b, "r%d * 0.5f / r%d", g, x);
    break;
  case TY__FOP_G_EXP:
    ty__sb_printf(b, "r%d * r%d", g, x);
    break;
  case TY__FOP_G_ERF:
    ty__sb_printf(b, "r%d * 1.1283791670955126f * ty_vexpf(-r%d * r%d)", g, x, x);
    break;
  case TY__FOP_G_LOG:
    ty__sb_printf(b, "r%d / r%d", g, x);
    break;
  case TY__FOP_G_NEG:
    ty__sb_printf(b, "-r%d", g);
    break;
  case TY__FOP_G_PASS:
    ty__sb_printf(b, "(r%d + 0.0f)", g);
    break;
  case TY__FOP_G_NPASS:
    ty__sb_printf(b, "(-r%d + 0.0f)", g);
    break;
  case TY__FOP_G_MUL:
    ty__sb_printf(b, "(r%d != 0.0f && r%d != 0.0f ? r%d * r%d : r%d * r%d + 0.0f)", g, x, g, x, g,
                  x);
    break;
  case TY__FOP_G_DIV0:
    ty__sb_printf(b,
                  "(r%d != 0.0f && fabsf(r%d) <= 3.40282347e+38f ? r%d / r%d : r%d / r%d + "
                  "0.0f)",
                  g, x, g, x, g, x);
    break;
  case TY__FOP_G_DIV1:
    ty__sb_printf(b, "(float)(0.0 + -(double)r%d * (double)r%d / ((double)r%d * (double)r%d))", g,
                  x, z, z);
    break;
  case TY__FOP_G_POW0:
    ty__sb_printf(b,
                  "(float)(0.0 + ((double)r%d == 0 ? 0.0 : (double)r%d * (double)r%d * "
                  "pow((double)r%d, (double)r%d - 1)))",
                  z, g, z, x, z);
    break;
  case TY__FOP_G_POW1:
    ty__sb_printf(
        b,
        "(float)(0.0 + ((double)r%d > 0 ? (double)r%d * log((double)r%d) * pow((double)r%d, "
        "(double)r%d) : 0.0))",
        x, g, x, x, z);
    break;
  default:
    ty__sb_printf(b, "r%d", in->a);
    break; /* COPY */
  }
}

void ty__fprog_emit_expr(ty__sbuf *b, const ty__finstr *in) {
  int a = in->a, c = in->b;
  switch (in->op) {
  case TY__FOP_ADD:
    ty__sb_printf(b, "r%d + r%d", a, c);
    break;
  case TY__FOP_SUB:
    ty__sb_printf(b, "r%d - r%d", a, c);
    break;
  case TY__FOP_MUL:
    ty__sb_printf(b, "r%d * r%d", a, c);
    break;
  case TY__FOP_DIV:
    ty__sb_printf(b, "r%d / r%d", a, c);
    break;
  case TY__FOP_POW:
    ty__sb_printf(b, "(float)pow((double)r%d, (double)r%d)", a, c);
    break;
  case TY__FOP_NEG:
    ty__sb_printf(b, "-r%d", a);
    break;
  case TY__FOP_RELU:
    ty__sb_printf(b, "r%d < 0 ? 0.0f : r%d", a, a);
    break;
  case TY__FOP_LEAKY_RELU:
    ty__sb_printf(b, "r%d >= 0 ? r%d : p%d * r%d", a, a, in->param, a);
    break;
  case TY__FOP_SIGMOID:
    ty__sb_printf(b, "ty_sigmoid(r%d)", a);
    break;
  case TY__FOP_TANH:
    ty__sb_printf(b, "tanhf(r%d)", a);
    break;
  case TY__FOP_EXP:
    ty__sb_printf(b, "ty_vexpf(r%d)", a);
    break;
  case TY__FOP_LOG:
    ty__sb_printf(b, "logf(r%d)", a);
    break;
  case TY__FOP_SQRT:
    ty__sb_printf(b, "sqrtf(r%d)", a);
    break;
  case TY__FOP_ERF:
    ty__sb_printf(b, "ty_verff(r%d)", a);
    break;
  default:
    emit_grad_expr(b, in);
    break;
  }
}

static const char codegen_prelude[] =
    "/* generated by trainyard ops/fusion */\n"
    "#include <math.h>\n#include <stdint.h>\n"
    "static inline float ty_sigmoid(float x) {\n"
    "  if (x >= 0) return 1.0f / (1.0f + expf(-x));\n"
    "  float e = expf(x);\n  return e / (1.0f + e);\n}\n" TY_VMATH_SOURCE "\n";

int ty__fprog_codegen(const ty__fprog *p, uint32_t pattern, char **out_src) {
  ty__sbuf b = {0};
  ty__sb_printf(&b, "%s", codegen_prelude);
  ty__sb_printf(
      &b, "void ty_fk(int64_t n, const float *const *in, float *const *out, const float *prm) {\n");
  for (int i = 0; i < p->n_in; i++)
    if (pattern >> i & 1u)
      ty__sb_printf(&b, "  const float *i%d = in[%d];\n", i, i);
    else
      ty__sb_printf(&b, "  const float b%d = in[%d][0];\n", i, i);
  for (int j = 0; j < p->n_out; j++)
    ty__sb_printf(&b, "  float *o%d = out[%d];\n", j, j);
  for (int q = 0; q < p->n_params; q++)
    ty__sb_printf(&b, "  const float p%d = prm[%d];\n", q, q);
  if (p->n_params == 0) ty__sb_printf(&b, "  (void)prm;\n");
  /* Outputs are distinct buffers, an output may be an input's own buffer
   * (memory planning's in-place), never another offset of it: no element
   * reads what another wrote, so the loop vectorises as it stands. gcc
   * cannot see that and, past ten pairs to check at run time, would leave
   * a region with many outputs (GELU's forward keeps six) scalar. */
  ty__sb_printf(&b, "#pragma GCC ivdep\n  for (int64_t k = 0; k < n; k++) {\n");
  for (int c = 0; c < p->n_code; c++) {
    const ty__finstr *in = &p->code[c];
    if (in->op == TY__FOP_LOAD)
      ty__sb_printf(&b,
                    (pattern >> in->a & 1u) ? "    const float r%d = i%d[k];\n"
                                            : "    const float r%d = b%d;\n",
                    in->dst, in->a);
    else if (in->op == TY__FOP_STORE)
      ty__sb_printf(&b, "    o%d[k] = r%d;\n", in->dst, in->a);
    else {
      ty__sb_printf(&b, "    const float r%d = ", in->dst);
      ty__fprog_emit_expr(&b, in);
      ty__sb_printf(&b, ";\n");
    }
  }
  ty__sb_printf(&b, "  }\n}\n");
  if (b.oom) {
    free(b.s);
    return TY_ENOMEM;
  }
  *out_src = b.s;
  return 0;
}

/* ---- interpreter ------------------------------------------------------- */

/* The interpreter's block loops are its whole cost; -O2's very cheap
 * vectoriser leaves them scalar, so ask gcc for -O3 here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

static float sigmoidf_(float x) {
  if (x >= 0) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

/* Compute instructions always cover the whole block (a constant trip count
 * and restrict let gcc vectorise them at -O2); lanes past the row's end
 * hold stale but initialised values and are never stored. */
#define UNARY(EXPR)                                                                                \
  for (int k = 0; k < TY__FBLOCK; k++) {                                                           \
    float x = ra[k];                                                                               \
    rd[k] = (EXPR);                                                                                \
  }                                                                                                \
  break
#define BINARY(EXPR)                                                                               \
  for (int k = 0; k < TY__FBLOCK; k++) {                                                           \
    float x = ra[k], y = rb[k];                                                                    \
    rd[k] = (EXPR);                                                                                \
  }                                                                                                \
  break
#define TERNARY(EXPR)                                                                              \
  for (int k = 0; k < TY__FBLOCK; k++) {                                                           \
    float x = ra[k], y = rb[k], z = rc[k];                                                         \
    rd[k] = (EXPR);                                                                                \
  }                                                                                                \
  break

/* Backward formulas (x = dY; see emit_grad_expr); false: not one. */
static bool interp_grad(const ty__finstr *in, float alpha, float *restrict rd,
                        const float *restrict ra, const float *restrict rb,
                        const float *restrict rc) {
  switch (in->op) {
  case TY__FOP_G_RELU:
    BINARY(y <= 0 ? 0.0f : x);
  case TY__FOP_G_LEAKY_RELU:
    BINARY(y > 0 ? x : alpha * x);
  case TY__FOP_G_SIGMOID:
    BINARY(x * y * (1.0f - y));
  case TY__FOP_G_TANH:
    BINARY(x * (1.0f - y * y));
  case TY__FOP_G_SQRT:
    BINARY(x * 0.5f / y);
  case TY__FOP_G_EXP:
    BINARY(x * y);
  case TY__FOP_G_ERF:
    ty_vmath_erf_grad(ra, rb, rd, TY__FBLOCK);
    break;
  case TY__FOP_G_LOG:
    BINARY(x / y);
  case TY__FOP_G_NEG:
    UNARY(-x);
  case TY__FOP_G_PASS:
    UNARY(x + 0.0f);
  case TY__FOP_G_NPASS:
    UNARY(-x + 0.0f);
  case TY__FOP_G_MUL:
    BINARY(x != 0.0f && y != 0.0f ? x * y : x * y + 0.0f);
  case TY__FOP_G_DIV0:
    BINARY(x != 0.0f && fabsf(y) <= 3.40282347e+38f ? x / y : x / y + 0.0f);
  case TY__FOP_G_DIV1:
    TERNARY((float)(0.0 + -(double)x * (double)y / ((double)z * (double)z)));
  case TY__FOP_G_POW0:
    TERNARY(
        (float)(0.0 +
                ((double)z == 0 ? 0.0 : (double)x * (double)z * pow((double)y, (double)z - 1))));
  case TY__FOP_G_POW1:
    TERNARY((float)(0.0 + ((double)y > 0 ? (double)x * log((double)y) * pow((double)y, (double)z)
                                         : 0.0)));
  default:
    return false;
  }
  return true;
}

static void interp_instr(const ty__fprog *p, const ty__finstr *in, uint32_t pattern, int64_t s,
                         int64_t m, const float *const *inp, float *const *out, float *regs) {
  /* Registers are SSA: the destination is never an operand. */
  float *restrict rd = regs + (size_t)in->dst * TY__FBLOCK;
  const float *restrict ra = regs + (size_t)in->a * TY__FBLOCK;
  const float *restrict rb = regs + (size_t)in->b * TY__FBLOCK;
  float alpha = in->param >= 0 ? p->params[in->param] : 0.0f;
  if (in->op >= TY__FOP_G_RELU &&
      interp_grad(in, alpha, rd, ra, rb, regs + (size_t)in->c * TY__FBLOCK))
    return;
  switch (in->op) {
  case TY__FOP_LOAD:
    if (pattern >> in->a & 1u)
      memcpy(rd, inp[in->a] + s, (size_t)m * sizeof *rd);
    else
      for (int64_t k = 0; k < m; k++)
        rd[k] = inp[in->a][0];
    break;
  case TY__FOP_STORE:
    memcpy(out[in->dst] + s, regs + (size_t)in->a * TY__FBLOCK, (size_t)m * sizeof *rd);
    break;
  case TY__FOP_ADD:
    BINARY(x + y);
  case TY__FOP_SUB:
    BINARY(x - y);
  case TY__FOP_MUL:
    BINARY(x * y);
  case TY__FOP_DIV:
    BINARY(x / y);
  case TY__FOP_POW:
    BINARY((float)pow((double)x, (double)y));
  case TY__FOP_NEG:
    UNARY(-x);
  case TY__FOP_RELU:
    UNARY(x < 0 ? 0.0f : x);
  case TY__FOP_LEAKY_RELU:
    UNARY(x >= 0 ? x : alpha * x);
  case TY__FOP_SIGMOID:
    UNARY(sigmoidf_(x));
  case TY__FOP_TANH:
    UNARY(tanhf(x));
  case TY__FOP_EXP:
    ty_vmath_exp(ra, rd, TY__FBLOCK);
    break;
  case TY__FOP_LOG:
    UNARY(logf(x));
  case TY__FOP_SQRT:
    UNARY(sqrtf(x));
  case TY__FOP_ERF:
    ty_vmath_erf(ra, rd, TY__FBLOCK);
    break;
  default:
    UNARY(x); /* COPY */
  }
}

void ty__fprog_interp(const ty__fprog *p, uint32_t pattern, int64_t n, const float *const *in,
                      float *const *out, float *regs) {
  for (int64_t s = 0; s < n; s += TY__FBLOCK) {
    int64_t m = n - s < TY__FBLOCK ? n - s : TY__FBLOCK;
    for (int c = 0; c < p->n_code; c++)
      interp_instr(p, &p->code[c], pattern, s, m, in, out, regs);
  }
}
