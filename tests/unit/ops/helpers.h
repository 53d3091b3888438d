/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the ops unit tests: tensors from literals, a one-node
 * graph builder, and a raw ONNX ModelProto writer for import tests (so
 * rejections can be tested with ops and dtypes the IR cannot express).
 */
#ifndef TY_TESTS_UNIT_OPS_HELPERS_H
#define TY_TESTS_UNIT_OPS_HELPERS_H

#include "ops/ops.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHAPE(...)                                                                                 \
  ty_shape_make((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
#define SCALAR_SHAPE ty_shape_make(0, NULL)

ty_tensor *tensor_f32(ty_shape s, const float *v);
ty_tensor *tensor_i64(ty_shape s, const int64_t *v);

/* x[N,3] -> Gemm(W[2,3]^T, b) -> y ("fc"), W and b given, alpha set
 * unless 1; with extra, also an int64 initializer k = [-1, 300] and an
 * empty float one, "empty", that nothing reads. Shapes inferred. */
ty_graph *gemm_model(const float w[6], const float b[2], float alpha, bool extra);

/* Calls fn for each file of the fuzz corpus ($TY_FUZZ_CORPUS, which must be
 * set) whose name starts with prefix: its path and name. The count. */
int each_corpus_file(const char *prefix, void (*fn)(const char *path, const char *name, void *user),
                     void *user);

/* A graph with inputs named x0.. (dtype/shape of each given tensor or
 * shape), one node of op, and outputs y0..y<n_out-1>. */
typedef struct one_node {
  ty_graph *g;
  int node;
  int in[8];
  int out[8];
} one_node;
void one_node_build(one_node *b, ty_op op, int n_in, const ty_dtype *dts, const ty_shape *shapes,
                    int n_out);
/* Runs shape inference; returns its code (err filled). */
int one_node_infer(one_node *b, char *err, size_t err_len);
/* Runs the graph on the given inputs; the returned executor owns the outputs. */
ty_exec *one_node_run(one_node *b, ty_tensor *const *inputs);

/* Raw ONNX model: one node `op_type` named node_name reading "x" (elem_type,
 * shape dims) and writing "y", with optional int/string attribute. The
 * caller frees *out with free(). */
typedef struct raw_attr {
  const char *name;
  const char *s; /* string attribute when non-NULL */
  int64_t i;     /* int attribute otherwise */
} raw_attr;
void raw_model(const char *op_type, const char *node_name, int elem_type, int rank,
               const int64_t *dims, const raw_attr *attr, uint8_t **out, size_t *out_len);

/* Raw ONNX model: y = Add(x, w) with x float [4] and the initializer w of
 * dtype elem_type and dims w_dims, holding raw_len bytes of raw_data (any
 * length, to test the importer's size checks). The caller frees *out. */
void raw_model_with_init(int elem_type, int w_rank, const int64_t *w_dims, size_t raw_len,
                         uint8_t **out, size_t *out_len);

#endif
