/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers: see helpers.h. */
#include "tests/unit/ops/helpers.h"

#include "proto/onnx.pb-c.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ty_tensor *tensor_f32(ty_shape s, const float *v) {
  ty_tensor *t;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &s, &t), 0);
  if (v) memcpy(t->data, v, t->nbytes);
  return t;
}

ty_tensor *tensor_i64(ty_shape s, const int64_t *v) {
  ty_tensor *t;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_I64, &s, &t), 0);
  if (v) memcpy(t->data, v, t->nbytes);
  return t;
}

void one_node_build(one_node *b, ty_op op, int n_in, const ty_dtype *dts, const ty_shape *shapes,
                    int n_out) {
  char name[16];
  cr_assert_eq(ty_graph_create(&b->g), 0);
  for (int i = 0; i < n_in; i++) {
    snprintf(name, sizeof name, "x%d", i);
    cr_assert_eq(ty_graph_add_value(b->g, name, dts[i], &shapes[i], &b->in[i]), 0);
    cr_assert_eq(ty_graph_mark_input(b->g, b->in[i]), 0);
  }
  for (int i = 0; i < n_out; i++) {
    snprintf(name, sizeof name, "y%d", i);
    cr_assert_eq(ty_graph_add_value(b->g, name, TY_DTYPE_INVALID, NULL, &b->out[i]), 0);
    cr_assert_eq(ty_graph_mark_output(b->g, b->out[i]), 0);
  }
  cr_assert_eq(ty_graph_add_node(b->g, op, "n", b->in, n_in, b->out, n_out, &b->node), 0);
}

int one_node_infer(one_node *b, char *err, size_t err_len) {
  return ty_graph_infer_shapes(b->g, err, err_len);
}

ty_exec *one_node_run(one_node *b, ty_tensor *const *inputs) {
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b->g, err, sizeof err), 0, "%s", err);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(b->g, NULL, &e), 0);
  for (size_t i = 0; i < ty_graph_n_inputs(b->g); i++)
    cr_assert_eq(ty_exec_bind_id(e, ty_graph_input(b->g, i), inputs[i], err, sizeof err), 0, "%s",
                 err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  return e;
}

static Onnx__ValueInfoProto *vinfo(const char *name, int elem_type, int rank, const int64_t *dims,
                                   Onnx__TypeProto *tp, Onnx__TypeProto__Tensor *tt,
                                   Onnx__TensorShapeProto *sp,
                                   Onnx__TensorShapeProto__Dimension *dv,
                                   Onnx__TensorShapeProto__Dimension **dp,
                                   Onnx__ValueInfoProto *vi) {
  *vi = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
  *tp = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
  *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
  *sp = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
  vi->name = (char *)name;
  vi->type = tp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  tt->has_elem_type = 1;
  tt->elem_type = elem_type;
  tt->shape = sp;
  sp->n_dim = (size_t)rank;
  sp->dim = dp;
  for (int i = 0; i < rank; i++) {
    dv[i] = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    dv[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    dv[i].dim_value = dims[i];
    dp[i] = &dv[i];
  }
  return vi;
}

/* Wraps graph g in a ModelProto (IR 8, opset 17) and packs it. */
static void pack_model(Onnx__GraphProto *g, uint8_t **out, size_t *out_len) {
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  Onnx__OperatorSetIdProto *osp[1] = {&os};
  os.domain = (char *)"";
  os.has_version = 1;
  os.version = 17;
  m.has_ir_version = 1;
  m.ir_version = 8;
  m.n_opset_import = 1;
  m.opset_import = osp;
  m.graph = g;
  *out_len = onnx__model_proto__get_packed_size(&m);
  *out = malloc(*out_len);
  onnx__model_proto__pack(&m, *out);
}

void raw_model(const char *op_type, const char *node_name, int elem_type, int rank,
               const int64_t *dims, const raw_attr *attr, uint8_t **out, size_t *out_len) {
  Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
  Onnx__NodeProto n = ONNX__NODE_PROTO__INIT;
  Onnx__AttributeProto a = ONNX__ATTRIBUTE_PROTO__INIT;
  Onnx__AttributeProto *ap[1] = {&a};
  Onnx__TypeProto tp[2];
  Onnx__TypeProto__Tensor tt[2];
  Onnx__TensorShapeProto sp[2];
  Onnx__TensorShapeProto__Dimension dv[2][8], *dp[2][8];
  Onnx__ValueInfoProto vi[2], *vin[1], *vout[1];
  char *ins[1] = {(char *)"x"}, *outs[1] = {(char *)"y"};
  Onnx__NodeProto *np[1] = {&n};
  g.name = (char *)"t";
  g.n_node = 1;
  g.node = np;
  vin[0] = vinfo("x", elem_type, rank, dims, &tp[0], &tt[0], &sp[0], dv[0], dp[0], &vi[0]);
  vout[0] = vinfo("y", elem_type, rank, dims, &tp[1], &tt[1], &sp[1], dv[1], dp[1], &vi[1]);
  g.n_input = 1;
  g.input = vin;
  g.n_output = 1;
  g.output = vout;
  n.name = (char *)node_name;
  n.op_type = (char *)op_type;
  n.n_input = 1;
  n.input = ins;
  n.n_output = 1;
  n.output = outs;
  if (attr) {
    a.name = (char *)attr->name;
    a.has_type = 1;
    if (attr->s) {
      a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
      a.has_s = 1;
      a.s.data = (uint8_t *)attr->s;
      a.s.len = strlen(attr->s);
    } else {
      a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
      a.has_i = 1;
      a.i = attr->i;
    }
    n.n_attribute = 1;
    n.attribute = ap;
  }
  pack_model(&g, out, out_len);
}

void raw_model_with_init(int elem_type, int w_rank, const int64_t *w_dims, size_t raw_len,
                         uint8_t **out, size_t *out_len) {
  Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
  Onnx__NodeProto n = ONNX__NODE_PROTO__INIT;
  Onnx__TensorProto w = ONNX__TENSOR_PROTO__INIT;
  Onnx__TensorProto *wp[1] = {&w};
  Onnx__TypeProto tp[2];
  Onnx__TypeProto__Tensor tt[2];
  Onnx__TensorShapeProto sp[2];
  Onnx__TensorShapeProto__Dimension dv[2][8], *dp[2][8];
  Onnx__ValueInfoProto vi[2], *vin[1], *vout[1];
  char *ins[2] = {(char *)"x", (char *)"w"}, *outs[1] = {(char *)"y"};
  Onnx__NodeProto *np[1] = {&n};
  int64_t dims[1] = {4};
  uint8_t *raw = calloc(raw_len ? raw_len : 1, 1);
  g.name = (char *)"t";
  g.n_node = 1;
  g.node = np;
  g.n_initializer = 1;
  g.initializer = wp;
  w.name = (char *)"w";
  w.has_data_type = 1;
  w.data_type = elem_type;
  w.n_dims = (size_t)w_rank;
  w.dims = (int64_t *)w_dims;
  w.has_raw_data = 1;
  w.raw_data.data = raw;
  w.raw_data.len = raw_len;
  vin[0] = vinfo("x", 1, 1, dims, &tp[0], &tt[0], &sp[0], dv[0], dp[0], &vi[0]);
  vout[0] = vinfo("y", 1, 1, dims, &tp[1], &tt[1], &sp[1], dv[1], dp[1], &vi[1]);
  g.n_input = 1;
  g.input = vin;
  g.n_output = 1;
  g.output = vout;
  n.op_type = (char *)"Add";
  n.n_input = 2;
  n.input = ins;
  n.n_output = 1;
  n.output = outs;
  pack_model(&g, out, out_len);
  free(raw);
}

ty_graph *gemm_model(const float w[6], const float b[2], float alpha, bool extra) {
  ty_graph *g;
  int x, wi, bi, y, k, e, node;
  ty_shape xs = SHAPE(TY_DIM_BATCH, 3);
  cr_assert_eq(ty_graph_create(&g), 0);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  cr_assert_eq(ty_graph_add_value(g, "W", TY_DTYPE_F32, NULL, &wi), 0);
  cr_assert_eq(ty_graph_set_initializer(g, wi, tensor_f32(SHAPE(2, 3), w)), 0);
  cr_assert_eq(ty_graph_add_value(g, "b", TY_DTYPE_F32, NULL, &bi), 0);
  cr_assert_eq(ty_graph_set_initializer(g, bi, tensor_f32(SHAPE(2), b)), 0);
  if (extra) {
    cr_assert_eq(ty_graph_add_value(g, "k", TY_DTYPE_I64, NULL, &k), 0);
    cr_assert_eq(ty_graph_set_initializer(g, k, tensor_i64(SHAPE(2), (int64_t[]){-1, 300})), 0);
    cr_assert_eq(ty_graph_add_value(g, "empty", TY_DTYPE_F32, NULL, &e), 0);
    cr_assert_eq(ty_graph_set_initializer(g, e, tensor_f32(SHAPE(0), NULL)), 0);
  }
  cr_assert_eq(ty_graph_add_value(g, "y", TY_DTYPE_INVALID, NULL, &y), 0);
  cr_assert_eq(ty_graph_mark_output(g, y), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_GEMM, "fc", (int[]){x, wi, bi}, 3, &y, 1, &node), 0);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)node, "transB", 1), 0);
  if (alpha != 1.0f) cr_assert_eq(ty_graph_node_set_float(g, (size_t)node, "alpha", alpha), 0);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

int each_corpus_file(const char *prefix, void (*fn)(const char *path, const char *name, void *user),
                     void *user) {
  const char *dir = getenv("TY_FUZZ_CORPUS");
  cr_assert_not_null(dir, "TY_FUZZ_CORPUS is not set");
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s", dir);
  int n = 0;
  for (struct dirent *de; (de = readdir(d));) {
    if (strncmp(de->d_name, prefix, strlen(prefix)) != 0) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    fn(path, de->d_name, user);
    n++;
  }
  closedir(d);
  return n;
}
