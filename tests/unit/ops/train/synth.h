/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the ops/train tests of config-named data: synthetic data sets
 * written as .npy files, small models built in C, and array configs. */
#ifndef TY_TESTS_OPS_TRAIN_SYNTH_H
#define TY_TESTS_OPS_TRAIN_SYNTH_H

#include "ops/graph.h"
#include "ops/train/train.h"
#include "tests/unit/ops/data/npy_file.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A fresh temporary directory (one per process) and a path in it; the
 * path is one of 8 buffers of the calling thread, reused in turn. */
const char *synth_path(const char *name);
/* Removes that directory, asserting nothing stays (a suite's .fini). */
void synth_cleanup(void);
/* n samples of d floats around one of k well separated centres; labels in [0, k). */
void synth_blobs(uint32_t n, uint32_t d, uint32_t k, uint64_t seed, float *x, int64_t *y);
/* Writes blobs as DIR/<prefix>x.npy (float32 [n, 8]) and DIR/<prefix>y.npy (int64 [n]), 4 classes.
 */
void synth_blob_files(const char *prefix, uint32_t n, uint64_t seed);
/* A test split in DIR/<prefix>x.npy and <prefix>y.npy: n blobs as
 * synth_blob_files writes them, every third label wrong, so that no model
 * is right on all of them. */
void synth_test_files(const char *prefix, uint32_t n, uint64_t seed);

typedef enum { SYNTH_RNN_NONE, SYNTH_RNN_LSTM, SYNTH_RNN_GRU } synth_rnn;

typedef struct synth_mlp {
  int in, hidden, out; /* x [N, in] -> Gemm(hidden) -> Relu -> ... -> Gemm(out) -> "logits" */
  uint64_t seed;
  bool dropout;       /* Dropout(0.5) after the Relu, its training_mode input an initializer True */
  bool dropout_deep;  /* with deep: also a Dropout(0.5) "drop<k>" after each hidden layer's Relu,
                         all reading the one ratio and training_mode initializers */
  bool batch_mix;     /* then h = Dropout "mix.drop"(h h^T) h: a [N, N] mask */
  bool noise;         /* then h + RandomNormalLike "noise"(h, scale 0.5) */
  bool bn;            /* BatchNormalization after the first Gemm */
  bool bn_train_mode; /* ... exported in training mode (training_mode=1, outputs 1 and 2) */
  bool softmax;       /* "logits" is the output of a Softmax node named "softmax" */
  bool scale;         /* logits multiplied by a rank-0 initializer "scale" = 1 */
  bool unused;        /* a float initializer "unused" [hidden] feeding a second output only */
  bool neg_inf_mask;  /* fc1's output plus a float initializer "mask" [hidden], 0 but its first
                         value -inf (an additive attention mask's), before the Relu */
  bool own_loss;      /* SoftmaxCrossEntropyLoss "loss" over "logits" and an input "labels" */
  /* With own_loss: "loss" with reduction sum (own_sum), with the class
   * weights "class_weights" (0.5 to 2, own_weights), with ignore_index
   * -100 (own_ignore). */
  bool own_sum, own_weights, own_ignore;
  /* The loss "loss" over "logits" and an input "labels" as the zoo's
   * weighted_nll has it: SoftmaxCrossEntropyLoss "ce" with class weights
   * (an initializer "class_weights", 0.5 to 2) and ignore_index -100, plus
   * NegativeLogLikelihoodLoss "nll" of LogSoftmax with ignore_index -100,
   * plus a plain mean, ReduceMean(logits^2). */
  bool weighted_loss;
  /* With weighted_loss: the losses read labels + 0 x ArgMax(fc1.out), labels
   * that depend on the first layer's activations. */
  bool argmax_labels;
  /* With weighted_loss: class weights computed at run time, as
   * weight=self.w * 2 exports: "ce" reads Mul "weights_x2"(class_weights,
   * an initializer "two" = 2), and "nll" reads them too; the loss adds
   * 0.01 x NegativeLogLikelihoodLoss "nll_sum" (reduction sum,
   * ignore_index -100). */
  bool computed_weights;
  /* The loss "loss" over "logits" [N, out] and an input "labels" summed
   * over the batch by hand, as PyTorch exports them: 0.05 x ReduceSum of
   * SoftmaxCrossEntropyLoss "ce_rows" (reduction none, ignore_index -100),
   * plus 0.01 x ReduceSumSquare "sq_sum" of the logits (mse_loss(reduction
   * sum)), plus 0.01 x ReduceSum "row_sum" over axis 0 of the rows' mean
   * squares, plus a mean: ReduceSum "mean_sum" of the squares over
   * Cast(Size(logits)). With sqrt_sum, "row_sum" goes through a Sqrt;
   * with max_rows, it is a ReduceMax. */
  bool summed_losses;
  bool sqrt_sum;
  bool max_rows;
  /* With summed_losses: a metric output "ppl" beside the loss, Exp "ppl"
   * of ReduceMean "ce_mean" of ce_rows (a perplexity: a nonlinear
   * function of a batch mean), which the loss does not read. */
  bool metric;
  /* With summed_losses: a metric output "ce_root", Sqrt of the ReduceSum
   * "ce_sum" that the loss reads too (a root of the summed error); with
   * root_of_term, Sqrt of "ce_sum.scaled", the loss's term 0.05 x it. */
  bool root_metric;
  bool root_of_term;
  /* The loss "loss": SoftmaxCrossEntropyLoss of "logits" and an input
   * "labels" (ignore_index -100), plus 0.01 x the mean squared error of Gemm "recon" of the
   * first hidden activations against the input "x" itself (an
   * autoencoder's loss: a data feed read again at the end). */
  bool recon_loss;
  int64_t batch;  /* x's dim 0; 0: the symbolic batch */
  int deep;       /* more hidden layers after the first: Gemm "fc<k>" (hidden x hidden) + Relu */
  bool tied;      /* with deep >= 2: the last of them reads fc3's weight, not one of its own (as a
                     tied output layer reads the token embedding) */
  bool tied_bias; /* with tied: that layer reads fc3's bias too */
  /* With deep: each of those layers reads rows [0, hidden) of its weight
   * "fc<k>.weight" [2 hidden, hidden] through a Slice "fc<k>.slice" whose
   * starts, ends and axes are Constant nodes made just before it, as
   * PyTorch exports an LSTM's gate reorder. */
  bool sliced;
  /* With tied: that layer is MatMul by an initializer "onnx::MatMul_99"
   * holding fc3's weight transposed, plus its bias: what PyTorch's constant
   * folding makes of a tied Linear on a 3-D input (a second tensor). */
  bool tied_folded;
  /* After the Relu, two Mul nodes "gain1", "gain2" by one all-ones [hidden]
   * initializer "gain": 1 read directly by both, 2 the second through an
   * Identity (how PyTorch's eval export shares a deduplicated one). */
  int merged;
  /* After fc1, PyTorch's head-split idiom: h reshaped to [N * 2, hidden / 2]
   * by a shape computed from Shape(h) at run time (import leaves it
   * [?, hidden / 2]), Relu, back to [N, hidden], then a Slice whose end is
   * Shape(h)[1]: every dim is known only once the batch is. */
  bool shape_arith;
  /* A mask made from the data feed before fc1, as a padding mask
   * (x == 0) is: bool "mask.out" = Greater(x[:, 0:1], x[:, 1:2]) (two
   * Slices with int64 initializer bounds), read just before fc2 by
   * Where "masked"(mask, h, Neg(h)): a bool value from the input that
   * the last layer reads. */
  bool input_mask;
  /* fc2 reads the hidden activations h [N, hidden] through an Expand to a
   * shape made as PyTorch exports h.expand(N, -1): Where(Equal(s, -1), 1,
   * s) over s = Abs(Reshape([Shape(h)[0], -1], [-1])) (a ViT's class token, plus
   * the Abs: import follows the idiom itself but not an Abs, so it leaves the
   * logits' shape unknown, as models it cannot follow have them). */
  bool expand;
  /* After fc1 (hidden 64): h as [N, 4, 4, 4] through LRN (size 3) and
   * MeanVarianceNormalization over its last two dims, sampled by GridSample
   * at Tanh(Gemm "grid" of x) as [N, 4, 4, 2], back to [N, 64]. Opset 16. */
  bool local_norms;
  /* After fc1 (hidden 64): h as [N, 4, 16], 4 steps of 16 features, through
   * a recurrent node "rnn" and back to [N, 64]. LSTM: time-major (layout
   * 0, Transposes around it), hidden 16, Y plus Y_h and Y_c broadcast over
   * the steps. GRU: batch-major (layout 1), bidirectional, hidden 8, Y. */
  synth_rnn rnn;
  /* Nonzero: "x" is images [N, C, H, W] (chw; in must be C*H*W), flattened
   * by a Flatten node "flat" before fc1. */
  int64_t chw[3];
} synth_mlp;
ty_graph *synth_mlp_build(const synth_mlp *o);

/* The same model with a trainer's weights and BatchNormalization statistics. */
ty_graph *synth_with_weights(const ty_graph *g, const ty_train *t);

/* Builtin loss over "logits", SGD lr 0.1 momentum 0.9, batch 32, arrays
 * x.npy -> "x" and y.npy -> "labels" (and tx.npy / ty.npy for testing) in
 * synth_path's directory. */
void synth_config(ty_train_config *c, uint64_t max_steps, bool with_test);
/* c (synth_config's, with no test arrays) fed by a token stream instead:
 * its train arrays dropped, data_input "ids", c->tokens = *tokens (whose
 * strings c then owns). */
void synth_tokens_config(ty_train_config *c, const ty_train_tokens *tokens);
/* Writes DIR/wy.npy: y.npy's labels (synth_blob_files("", 256, 1)) with
 * -100 (ignored) at rows 0-2, 8-15, 41, 48-63, 64-95 (every row of the
 * third batch of 32) and every 7th row from 96 on. */
void synth_ignored_labels(void);
/* Writes DIR/tiy.npy: ty.npy's labels (synth_blob_files("t", n, seed))
 * with every third one, from the first, -100 (ignored). */
void synth_ignored_test_labels(uint32_t n, uint64_t seed);
/* c trained on the model's own loss, output "loss" (no logits_output). */
void synth_own_loss(ty_train_config *c);
/* The builtin loss on synth_ignored_labels' labels (torch's default
 * ignore_index -100 at many rows) with label_smoothing 0.1, shuffle off. */
void synth_ignored_builtin_config(ty_train_config *c);
/* c (synth_config's) for a weighted_loss model: loss_output "loss",
 * labels from wy.npy, in file order (no shuffle), so the ignored rows
 * fall where synth_ignored_labels says: all of some micro-batches and
 * ranks' rows, some of others', none of others. */
void synth_weighted_config(ty_train_config *c);
/* Adds one array to c's train (test = false) or test split. */
void synth_add_array(ty_train_config *c, bool test, const char *path, const char *input);

/* Token language models (test_feed_tokens.c, test_parallel.c): a bigram
 * ids [N, t_dim] -> Gather(embed [V, D]) -> MatMul(head) -> "logits"
 * [N, t_dim, V], fixed initial weights; and the same computing its own
 * mean cross-entropy "loss" as TokenStream.labels form expects (NEXT: a
 * "labels" input of the next tokens; SAME: "labels" holding the window,
 * shifted inside; NONE: the loss reads ids[:, 1:]). */
enum { SYNTH_LM_V = 16, SYNTH_LM_D = 12 };
ty_graph *synth_bigram_lm(int64_t t_dim);
ty_graph *synth_shifting_lm(int64_t t_dim, ty_train_token_labels form);

/* Creates a trainer or fails the test with the error. */
ty_train *synth_trainer(const ty_graph *g, const ty_train_config *c, const ty_train_opts *o);
/* The whole content of a log stream written so far. */
char *synth_log_text(FILE *log);
/* How often what occurs in text (occurrences not overlapping). */
int synth_count(const char *text, const char *what);

/* Asserts that a and b hold bit-identical parameters, naming the first
 * that differs: the same training from two sources of the same data. */
void synth_assert_same_params(const ty_train *a, const ty_train *b);

/* Asserts that ty_train_create(g, c, o) fails with `code` and a message
 * containing every want[i] (NULL-ended); o may be NULL. */
void synth_refused(const ty_graph *g, const ty_train_config *c, const ty_train_opts *o, int code,
                   const char *const *want);

/* The whole file at path (malloc'd; *out_len bytes). */
uint8_t *synth_read_all(const char *path, size_t *out_len);
/* Renames initializer `name` of the checkpoint model at path in place (its
 * last letter changed, the encoding's lengths kept) and re-forges the
 * state's CRCs, so only the walk of the model's encoding can notice. */
void synth_rename_init(const char *path, const char *name);

#endif
