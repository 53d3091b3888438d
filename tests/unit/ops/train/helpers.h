/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the ops/train tests: a small MLP built in C and configs. */
#ifndef TY_TESTS_OPS_TRAIN_HELPERS_H
#define TY_TESTS_OPS_TRAIN_HELPERS_H

#include "ops/graph.h"
#include "ops/train/train.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

bool have_fashion_mnist(void);
/* x [N,784] -> Gemm(hidden, transB) -> Relu -> Gemm(10) -> "logits", with
 * torch-style uniform init from seed. */
ty_graph *make_mlp(int hidden, uint64_t seed);
/* The same MLP with another elementwise activation act (TY_OP_TANH) in
 * place of the Relu, the parameters and their values the same. */
ty_graph *make_mlp_act(int hidden, uint64_t seed, ty_op act);
/* The same MLP as PyTorch exports it from images: x [N,1,28,28] ->
 * x.view(x.size(0), -1) (Shape, Gather, Unsqueeze, Concat, Reshape) ->
 * Gemm -> Gelu (opset 20) -> LayerNormalization -> Gemm -> "logits". */
ty_graph *make_exported_mlp(int hidden, uint64_t seed);
/* Builtin loss over "logits", SGD lr 0.05 momentum 0.9, cosine, batch 64. */
void make_config(ty_train_config *c, uint64_t max_steps, const char *ckpt);
/* Serialised TrainConfig bytes for the same settings (malloc'd). */
uint8_t *pack_config(uint64_t max_steps, uint32_t epochs, const char *ckpt, size_t *out_len);

#endif
