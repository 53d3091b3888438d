/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Import of an If whose condition shape inference decides (ops/import.c):
 * the taken branch is inlined, whichever it is, also with the batch
 * symbolic when the condition reads another dim; a condition that depends
 * on the data or on the batch size, and a malformed If, are refused
 * naming the node; Ifs nested in a taken branch are inlined up to 8 deep.
 *
 * The model: y = If(Equal(Gather(Shape(x), axis), k), then: Neg(x),
 * else: Relu(x)), x float [B, 3, 4] (B a dim_param when symbolic), or
 * with the condition a bool graph input.
 */
#include "ops/graph.h"
#include "proto/onnx.pb-c.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct if_spec {
  int64_t axis, k; /* the condition: dim axis of x == k */
  bool symbolic;   /* x's dim 0 a dim_param */
  bool cond_input; /* the condition a graph input instead */
  bool no_else;    /* leave else_branch out */
} if_spec;

static Onnx__NodeProto node(const char *op, char **in, size_t n_in, char **out) {
  Onnx__NodeProto n = ONNX__NODE_PROTO__INIT;
  n.op_type = (char *)op;
  n.name = (char *)op;
  n.n_input = n_in;
  n.input = in;
  n.n_output = 1;
  n.output = out;
  return n;
}

/* A ValueInfoProto of elem_type and rank (dims of x: [B, 3, 4]). */
static void vinfo(Onnx__ValueInfoProto *vi, Onnx__TypeProto *tp, Onnx__TypeProto__Tensor *tt,
                  Onnx__TensorShapeProto *sp, Onnx__TensorShapeProto__Dimension *dv,
                  Onnx__TensorShapeProto__Dimension **dp, const char *name, int elem, int rank,
                  bool symbolic) {
  static const int64_t dims[3] = {2, 3, 4};
  *vi = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
  *tp = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
  *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
  *sp = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
  vi->name = (char *)name;
  vi->type = tp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  tt->has_elem_type = 1;
  tt->elem_type = elem;
  tt->shape = sp;
  sp->n_dim = (size_t)rank;
  sp->dim = dp;
  for (int i = 0; i < rank; i++) {
    dv[i] = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    if (i == 0 && symbolic) {
      dv[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dv[i].dim_param = (char *)"B";
    } else {
      dv[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dv[i].dim_value = dims[i];
    }
    dp[i] = &dv[i];
  }
}

/* A Constant's value attribute: an int64 scalar. */
static void int_attr(Onnx__AttributeProto *a, Onnx__TensorProto *t, int64_t *v) {
  *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
  *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
  a->name = (char *)"value";
  a->has_type = 1;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
  a->t = t;
  t->has_data_type = 1;
  t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  t->n_int64_data = 1;
  t->int64_data = v;
}

static void branch_attr(Onnx__AttributeProto *a, const char *name, Onnx__GraphProto *g) {
  *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
  a->name = (char *)name;
  a->has_type = 1;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
  a->g = g;
}

/* Imports the model of s; the graph or NULL (with the error in err). */
static ty_graph *load_if(const if_spec *s, int *rc, char *err, size_t err_len) {
  char *x[] = {"x"}, *sh[] = {"s"}, *ax[] = {"ax"}, *gi[] = {"s", "ax"}, *d[] = {"d"},
       *kk[] = {"k"}, *eq[] = {"d", "k"}, *c[] = {"c"}, *y[] = {"y"}, *yt[] = {"yt"},
       *ye[] = {"ye"};
  int64_t axis = s->axis, k = s->k;
  Onnx__AttributeProto a_ax, a_k, a_br[2], *pa_ax[] = {&a_ax}, *pa_k[] = {&a_k},
                                           *pa_br[] = {&a_br[0], &a_br[1]};
  Onnx__TensorProto t_ax, t_k;
  int_attr(&a_ax, &t_ax, &axis);
  int_attr(&a_k, &t_k, &k);
  /* the branches: then Neg(x) -> yt, else Relu(x) -> ye */
  Onnx__NodeProto bn[2] = {node("Neg", x, 1, yt), node("Relu", x, 1, ye)},
                  *pbn[2] = {&bn[0], &bn[1]};
  Onnx__GraphProto br[2] = {ONNX__GRAPH_PROTO__INIT, ONNX__GRAPH_PROTO__INIT};
  Onnx__ValueInfoProto bvi[2], *pbvi[2] = {&bvi[0], &bvi[1]};
  Onnx__TypeProto btp[2];
  Onnx__TypeProto__Tensor btt[2];
  Onnx__TensorShapeProto bsp[2];
  for (int b = 0; b < 2; b++) {
    br[b].name = (char *)(b ? "else" : "then");
    br[b].n_node = 1;
    br[b].node = &pbn[b];
    vinfo(&bvi[b], &btp[b], &btt[b], &bsp[b], NULL, NULL, b ? "ye" : "yt", 1, 0, false);
    bsp[b].n_dim = 0;
    btt[b].shape = NULL; /* shape left to inference */
    br[b].n_output = 1;
    br[b].output = &pbvi[b];
  }
  branch_attr(&a_br[0], "then_branch", &br[0]);
  branch_attr(&a_br[1], "else_branch", &br[1]);
  /* the main graph */
  Onnx__NodeProto n[6] = {node("Shape", x, 1, sh),  node("Constant", NULL, 0, ax),
                          node("Gather", gi, 2, d), node("Constant", NULL, 0, kk),
                          node("Equal", eq, 2, c),  node("If", c, 1, y)};
  n[1].name = (char *)"axis";
  n[1].n_attribute = 1;
  n[1].attribute = pa_ax;
  n[3].name = (char *)"k";
  n[3].n_attribute = 1;
  n[3].attribute = pa_k;
  n[5].name = (char *)"the_if";
  n[5].n_attribute = s->no_else ? 1 : 2;
  n[5].attribute = pa_br;
  Onnx__NodeProto *pn[6] = {&n[0], &n[1], &n[2], &n[3], &n[4], &n[5]};
  Onnx__ValueInfoProto vi[3], *pin[2] = {&vi[0], &vi[2]}, *pout[1] = {&vi[1]};
  Onnx__TypeProto tp[3];
  Onnx__TypeProto__Tensor tt[3];
  Onnx__TensorShapeProto sp[3];
  Onnx__TensorShapeProto__Dimension dv[2][3], *dp[2][3];
  vinfo(&vi[0], &tp[0], &tt[0], &sp[0], dv[0], dp[0], "x", 1, 3, s->symbolic);
  vinfo(&vi[1], &tp[1], &tt[1], &sp[1], dv[1], dp[1], "y", 1, 3, s->symbolic);
  vinfo(&vi[2], &tp[2], &tt[2], &sp[2], NULL, NULL, "c", 9, 0, false); /* BOOL scalar */
  Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
  g.name = (char *)"if";
  g.n_node = s->cond_input ? 1 : 6;
  g.node = s->cond_input ? &pn[5] : pn;
  g.n_input = s->cond_input ? 2 : 1;
  g.input = pin;
  g.n_output = 1;
  g.output = pout;
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT, *pos[1] = {&os};
  os.domain = (char *)"";
  os.has_version = 1;
  os.version = 17;
  m.has_ir_version = 1;
  m.ir_version = 8;
  m.n_opset_import = 1;
  m.opset_import = pos;
  m.graph = &g;
  size_t len = onnx__model_proto__get_packed_size(&m);
  uint8_t *buf = malloc(len);
  cr_assert(buf);
  onnx__model_proto__pack(&m, buf);
  ty_graph *out = NULL;
  *rc = ty_graph_load_bytes(buf, len, err, err_len, &out);
  free(buf);
  return *rc == 0 ? out : NULL;
}

/* The ops of g's nodes: whether one is op. */
static bool has_op(const ty_graph *g, ty_op op) {
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++)
    if (ty_graph_node_at(g, i)->op == op) return true;
  return false;
}

static void expect_branch(const if_spec *s, ty_op taken, ty_op other) {
  char err[TY_ERR_LEN] = "";
  int rc;
  ty_graph *g = load_if(s, &rc, err, sizeof err);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert(has_op(g, taken), "the taken branch was not inlined");
  cr_assert(!has_op(g, other), "the other branch was inlined");
  const ty_graph_value *y = ty_graph_value_at(g, ty_graph_output(g, 0));
  cr_assert_str_eq(y->name, "y");
  cr_assert_eq(y->dtype, TY_DTYPE_F32);
  cr_assert_eq(y->shape.rank, 3);
  cr_assert_eq(y->shape.dims[2], 4);
  ty_graph_destroy(g);
}

Test(import_if, inlines_then_when_the_shape_decides_true) {
  expect_branch(&(if_spec){.axis = 1, .k = 3}, TY_OP_NEG, TY_OP_RELU);
}

Test(import_if, inlines_else_when_the_shape_decides_false) {
  expect_branch(&(if_spec){.axis = 2, .k = 3}, TY_OP_RELU, TY_OP_NEG);
}

/* A condition on another dim is decided with the batch symbolic. */
Test(import_if, decides_with_a_symbolic_batch) {
  expect_branch(&(if_spec){.axis = 1, .k = 3, .symbolic = true}, TY_OP_NEG, TY_OP_RELU);
}

static void expect_refused(const if_spec *s, int code, const char *msg) {
  char err[TY_ERR_LEN] = "";
  int rc;
  cr_assert_null(load_if(s, &rc, err, sizeof err));
  cr_assert_eq(rc, code, "%s", err);
  cr_assert(strstr(err, msg), "\"%s\" does not contain \"%s\"", err, msg);
}

Test(import_if, refuses_a_condition_on_the_batch_size) {
  expect_refused(&(if_spec){.axis = 0, .k = 2, .symbolic = true}, TY_EUNSUPPORTED,
                 "node \"the_if\" (If): op is not supported: its condition is not known at "
                 "import (it depends on the data or the batch size)");
}

Test(import_if, refuses_a_data_dependent_condition) {
  expect_refused(&(if_spec){.cond_input = true}, TY_EUNSUPPORTED,
                 "node \"the_if\" (If): op is not supported: its condition is not known");
}

Test(import_if, refuses_a_missing_branch) {
  expect_refused(&(if_spec){.axis = 1, .k = 3, .no_else = true}, TY_EINVAL,
                 "node \"the_if\" (If): attribute else_branch (a graph) is missing");
}

/* Ifs nested depth deep, each on a Constant true, the innermost branches
 * Neg(x) and Relu(x); imports into *rc as load_if does. */
#define NEST_MAX 10
static ty_graph *load_nested(int depth, int *rc, char *err, size_t err_len) {
  static char names[NEST_MAX + 1][8];
  char *x[] = {"x"}, *c[] = {"c"}, *ye[] = {"ye"};
  char *outs[NEST_MAX + 1][1];
  for (int l = 0; l <= depth; l++) {
    snprintf(names[l], sizeof names[l], "y%d", l);
    outs[l][0] = names[l];
  }
  uint8_t one = 1;
  Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
  t.has_data_type = 1;
  t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
  t.has_raw_data = 1;
  t.raw_data.data = &one;
  t.raw_data.len = 1;
  Onnx__AttributeProto av = ONNX__ATTRIBUTE_PROTO__INIT, *pav[] = {&av};
  av.name = (char *)"value";
  av.has_type = 1;
  av.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
  av.t = &t;
  /* level l's If writes y<l>; its then branch holds level l+1's If (or
   * Neg(x) -> y<depth> at the bottom), its else branch Relu(x) -> ye */
  Onnx__NodeProto ifs[NEST_MAX], inner = node("Neg", x, 1, outs[depth]),
                                 relu = node("Relu", x, 1, ye);
  Onnx__NodeProto *pthen[NEST_MAX], *pelse[1] = {&relu};
  Onnx__GraphProto then_g[NEST_MAX], else_g[NEST_MAX];
  Onnx__AttributeProto br[NEST_MAX][2], *pbr[NEST_MAX][2];
  Onnx__ValueInfoProto tvi[NEST_MAX], evi[NEST_MAX], *ptvi[NEST_MAX], *pevi[NEST_MAX];
  Onnx__TypeProto tp[2 * NEST_MAX];
  Onnx__TypeProto__Tensor tt[2 * NEST_MAX];
  Onnx__TensorShapeProto sp[2 * NEST_MAX];
  for (int l = depth - 1; l >= 0; l--) {
    ifs[l] = node("If", c, 1, outs[l]);
    pthen[l] = l + 1 < depth ? &ifs[l + 1] : &inner;
    then_g[l] = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    else_g[l] = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    then_g[l].n_node = else_g[l].n_node = 1;
    then_g[l].node = &pthen[l];
    else_g[l].node = pelse;
    vinfo(&tvi[l], &tp[2 * l], &tt[2 * l], &sp[2 * l], NULL, NULL, names[l + 1], 1, 0, false);
    vinfo(&evi[l], &tp[2 * l + 1], &tt[2 * l + 1], &sp[2 * l + 1], NULL, NULL, "ye", 1, 0, false);
    tt[2 * l].shape = tt[2 * l + 1].shape = NULL;
    ptvi[l] = &tvi[l];
    pevi[l] = &evi[l];
    then_g[l].n_output = else_g[l].n_output = 1;
    then_g[l].output = &ptvi[l];
    else_g[l].output = &pevi[l];
    branch_attr(&br[l][0], "then_branch", &then_g[l]);
    branch_attr(&br[l][1], "else_branch", &else_g[l]);
    pbr[l][0] = &br[l][0];
    pbr[l][1] = &br[l][1];
    ifs[l].n_attribute = 2;
    ifs[l].attribute = pbr[l];
  }
  Onnx__NodeProto cn = node("Constant", NULL, 0, c), *pn[2] = {&cn, &ifs[0]};
  cn.n_attribute = 1;
  cn.attribute = pav;
  Onnx__ValueInfoProto vi[2], *pin[1] = {&vi[0]}, *pout[1] = {&vi[1]};
  Onnx__TypeProto mtp[2];
  Onnx__TypeProto__Tensor mtt[2];
  Onnx__TensorShapeProto msp[2];
  Onnx__TensorShapeProto__Dimension dv[2][3], *dp[2][3];
  vinfo(&vi[0], &mtp[0], &mtt[0], &msp[0], dv[0], dp[0], "x", 1, 3, false);
  vinfo(&vi[1], &mtp[1], &mtt[1], &msp[1], dv[1], dp[1], "y0", 1, 3, false);
  Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
  g.name = (char *)"nested";
  g.n_node = 2;
  g.node = pn;
  g.n_input = 1;
  g.input = pin;
  g.n_output = 1;
  g.output = pout;
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT, *pos[1] = {&os};
  os.domain = (char *)"";
  os.has_version = 1;
  os.version = 17;
  m.has_ir_version = 1;
  m.ir_version = 8;
  m.n_opset_import = 1;
  m.opset_import = pos;
  m.graph = &g;
  size_t len = onnx__model_proto__get_packed_size(&m);
  uint8_t *buf = malloc(len);
  cr_assert(buf);
  onnx__model_proto__pack(&m, buf);
  ty_graph *out = NULL;
  *rc = ty_graph_load_bytes(buf, len, err, err_len, &out);
  free(buf);
  return *rc == 0 ? out : NULL;
}

/* A Constant condition is decided too; Ifs inside the taken branch are
 * inlined in turn, up to 8 deep, and a ninth is refused. */
Test(import_if, inlines_nested_ifs_up_to_eight_deep) {
  char err[TY_ERR_LEN] = "";
  int rc;
  ty_graph *g = load_nested(8, &rc, err, sizeof err);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert(has_op(g, TY_OP_NEG) && !has_op(g, TY_OP_RELU));
  cr_assert_eq(ty_graph_value_at(g, ty_graph_output(g, 0))->shape.rank, 3);
  ty_graph_destroy(g);
  cr_assert_null(load_nested(9, &rc, err, sizeof err));
  cr_assert_eq(rc, TY_EUNSUPPORTED, "%s", err);
  cr_assert(strstr(err, "(If): Ifs nested more than 8 deep"), "%s", err);
}
