/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Graphs for the planner's tests and benchmark, built with ops/graph.h's
 * builder API: the MLP of Alpa's tests, a BERT encoder, a GPT-like decoder
 * of any depth, a recurrent classifier (LSTM, GRU, RNN), and small random
 * graphs (chains, diamonds, residual blocks) for comparing the solvers. Every graph has
 * TY_DIM_BATCH as dim 0 of its inputs, shapes inferred, and one scalar loss output. Weights are
 * zero tensors: the planner reads only their shapes, and calloc'd pages of
 * a large model are never touched.
 */
#ifndef TY_TESTS_UNIT_OPS_PLAN_MODELS_H
#define TY_TESTS_UNIT_OPS_PLAN_MODELS_H

#include "ops/graph.h"

#include <stdint.h>

/* n_layers x (MatMul + Add bias + Relu), hidden wide, then the mean of the
 * squared error against input "y". Layer i's weight is "l<i>.w", its bias
 * "l<i>.b", its nodes "l<i>.mm", "l<i>.add", "l<i>.relu". */
ty_graph *model_mlp(int n_layers, int64_t hidden);
/* The same with batch statistics: its loss the root of the summed
 * (sqrt(((p - y) ** 2).sum()), "loss.sum") or mean ("loss.mean": an RMSE)
 * squared error, which micro-batches cannot add up; or the mean squared
 * error of its output normalised by the batch's mean and deviation by hand
 * ("norm.mu", "norm.var"), which they can, per micro-batch; or model_mlp's
 * mean squared error "loss" with a metric output beside it, its root
 * "rmse" (Sqrt): two one-element outputs, so a request names the loss;
 * or the same with the summed squared error as "loss"; or that summed
 * "loss" with half of it, "half" (Mul), as the metric output; or the
 * summed squared error "loss.sum" halved (Mul) as "loss" with the metric
 * "rmse" its root. */
typedef enum {
  MODEL_STAT_ROOT_SUM,
  MODEL_STAT_ROOT_MEAN,
  MODEL_STAT_HAND_NORM,
  MODEL_STAT_METRIC,
  MODEL_STAT_SUM_METRIC,
  MODEL_STAT_SUM_HALF_METRIC,
  MODEL_STAT_SUM_TERM_METRIC
} model_stat;
ty_graph *model_mlp_batch_stat(int n_layers, int64_t hidden, model_stat kind);
/* n_layers x (Conv "l<i>.conv" of 2 groups, 1x1, weight "l<i>.w"
 * [channels, channels / 2, 1, 1] + Relu) on x [batch, channels, 1, 1],
 * then model_mlp's mean squared error against "y", or with root_mean its
 * root (model_mlp_batch_stat's MODEL_STAT_ROOT_MEAN, "loss.mean"). A
 * grouped Conv splits neither its output nor its input channels, so its
 * weight splits on no mesh: only a pipeline spreads the weights. */
ty_graph *model_grouped_convs(int n_layers, int64_t channels, bool root_mean);
/* The same, its last layer an output layer without Relu ("out.mm",
 * "out.add" with its bias "out.b") whose weight is its own "out.w", or
 * with tied (n_layers >= 2) layer 0's "l0.w" (a tied output layer). */
ty_graph *model_mlp_out(int n_layers, int64_t hidden, int tied);
/* The same (n_layers >= 3), with layer 1's output shape (Shape, an int64
 * tensor) read by a Reshape of layer 2's output: no pipeline cut may fall
 * in between. */
ty_graph *model_mlp_shape_link(int n_layers, int64_t hidden);

/* A BERT encoder of n_layers blocks on input "x" [batch, seq, hidden]:
 * Q, K, V (MatMul + Add), heads by Reshape/Transpose, scores by batched
 * MatMul, scale, Softmax, context MatMul, attention-out MatMul + Add,
 * residual, LayerNormalization, FFN in (MatMul + Add), GELU written with
 * Erf, FFN out, residual, LayerNormalization. Weight names per layer L:
 * L.q.w L.k.w L.v.w L.o.w L.ffn_in.w L.ffn_out.w. Loss: mean of squares.
 * With causal, a mask is added to the scores (a GPT decoder block). */
ty_graph *model_transformer(int n_layers, int64_t seq, int64_t hidden, int64_t heads, int64_t ffn,
                            int causal);

/* x [batch, in] -> Gemm "fc1" (weight "fc1.w", bias "fc1.b") to hidden ->
 * GELU as torch 1.13 exports it ("fc1.gelu.div", .erf, .add, .mul, .half:
 * fc1's output read by both the Div and the Mul) -> Gemm "fc2" to out ->
 * mean of squares. With shaped, a Shape of fc1's output ("fc1.shape", a
 * reader before the Div, as torch's F.normalize reads its input) reshapes
 * the GELU's ("fc1.reshape"). */
ty_graph *model_gelu_mlp(int64_t in, int64_t hidden, int64_t out, int shaped);

/* x [batch, 2, 8, 8] -> Conv 2->channels 3x3 ("conv") -> LRN size 3
 * ("lrn") -> MeanVarianceNormalization ("mvn") over H, W (mvn_batch 0) or
 * its default N, H, W -> GridSample ("gs") at input "grid" [batch, 4, 4, 2]
 * -> Flatten -> "fc" (MatMul + Add) to 4 -> squared error against "y". */
ty_graph *model_local_norms(int64_t channels, int mvn_batch);

/* Noise: x [batch, 16] -> "fc" (MatMul + Add) -> times RandomNormalLike
 * of itself ("eps") -> plus a RandomUniform of shape [1, 16] ("fixed"). */
ty_graph *model_noise(void);

/* Tensors built from the batch size, as PyTorch exports torch.ones(
 * x.shape[0], 1), x.new_zeros(x.size(0), 8) and torch.arange(
 * x.size(0)): x [batch, 8] -> "fc" (MatMul + Add) to 8, times a
 * ConstantOfShape [batch, 1] of ones ("mask", its shape Concat(Unsqueeze(
 * Gather(Shape(x), 0)), [1])) and by stochastic depth's keep mask,
 * Cast(RandomUniformLike(mask, seed 3) < 0.7) ("draw", "keep"), plus the
 * [1, 8] parameter "bias" Expanded
 * to [batch, 8] ("expand"), plus the [1, 8] parameter "tiled" Tiled to
 * [batch, 8] ("tile"), times 1 + Range(0, batch, 1) cast to float
 * ("range", as a column), squared. */
ty_graph *model_batch_shaped(void);

/* NegativeLogLikelihoodLoss "nll" (ignore_index -1) over log-probabilities
 * x [batch, classes] (classes unknown to the graph when 0), labels
 * [batch] and weights w: an initializer [4] (init_weights) or a graph
 * input of unknown size; shapes not inferred (tests add outputs). */
ty_graph *model_nll(int64_t classes, bool init_weights);

/* A recurrent classifier as PyTorch exports nn.LSTM (GRU, RNN: op) with
 * batch_first: x [batch, seq, 64] through two layers "rnn0", "rnn1"
 * (weights "rnn<i>.W", ".R", ".B"), 64 -> hidden -> hidden, time-major
 * (layout 0, x transposed by "to_time") or batch-major (layout 1), each
 * layer's Y squeezed ("rnn<i>.y") for the next; the last layer's Y_h
 * squeezed ("rnn1.h") to 10 classes ("fc", MatMul + Add) and
 * SoftmaxCrossEntropyLoss "loss" against "labels". */
ty_graph *model_rnn(ty_op op, int layout, int64_t seq, int64_t hidden);

/* Small random graphs for the solver comparison, of `ops` MatMul/Relu/Add
 * nodes: shape 0 a chain, 1 diamonds (fork into two branches, join by
 * Add), 2 residual blocks, 3 any DAG (an op reads one or two earlier
 * values). Widths drawn from {4, 8, 16}. */
ty_graph *model_random(uint64_t seed, int shape, int ops);

#endif
