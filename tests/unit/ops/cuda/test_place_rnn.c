/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/cuda placement of the recurrent layers: LSTM, GRU and RNN (and their
 * gradients) have no CUDA kernel, so they run on the CPU, saying so.
 */
#include "ops/autodiff/autodiff.h"
#include "ops/cuda/cuda.h"
#include "ops/graph.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int value(ty_graph *g, int rank, const int64_t *dims) {
  int id;
  ty_shape s = ty_shape_make(rank, dims);
  cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_F32, rank < 0 ? NULL : &s, &id), 0);
  return id;
}

Test(cuda_place, recurrent_layers_run_on_the_cpu) {
  static const ty_op ops[3] = {TY_OP_LSTM, TY_OP_GRU, TY_OP_RNN};
  static const char *const names[3] = {"LSTM", "GRU", "RNN"};
  for (int k = 0; k < 3; k++) {
    ty_graph *g = NULL;
    cr_assert_eq(ty_graph_create(&g), 0);
    int gates = k == 0 ? 4 : k == 1 ? 3 : 1;
    int x = value(g, 3, (int64_t[]){5, 2, 3}), w = value(g, 3, (int64_t[]){1, gates * 4, 3}),
        r = value(g, 3, (int64_t[]){1, gates * 4, 4}), y = value(g, -1, NULL), idx;
    ty_graph_mark_input(g, x);
    ty_graph_mark_input(g, w);
    ty_graph_mark_input(g, r);
    cr_assert_eq(ty_graph_add_node(g, ops[k], NULL, (int[]){x, w, r}, 3, &y, 1, &idx), 0);
    ty_graph_mark_output(g, y);
    char err[256];
    cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
    ty_cuda_place *p = NULL;
    size_t n = 0;
    cr_assert_eq(ty_cuda_placement(g, &p, &n), 0);
    cr_assert_eq(n, 1);
    char want[64];
    snprintf(want, sizeof want, "%s: no CUDA kernel", names[k]);
    cr_assert(!p[0].gpu && strstr(p[0].why, want), "%s", p[0].why);
    free(p);
    ty_graph_destroy(g);
  }
}
