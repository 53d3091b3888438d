/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The central-difference gradient check shared by the autodiff tests.
 *
 * Each case builds a tiny graph with random float parameters (fixed seed),
 * appends loss = ReduceSum(op(...) * R) for a random R (so every output
 * element weighs differently), differentiates it and compares each
 * gradient element with (L(p + eps) - L(p - eps)) / 2 eps. The executor
 * runs in training mode and a fresh executor with the same seed serves each
 * evaluation, so Dropout draws the same mask every time. run_and_copy
 * runs such a graph once and keeps its values, for the fold tests.
 */
#ifndef TY_TESTS_UNIT_OPS_AUTODIFF_GRADCHECK_H
#define TY_TESTS_UNIT_OPS_AUTODIFF_GRADCHECK_H

#include "ops/autodiff/autodiff.h"
#include "ops/exec.h"
#include "ops/graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gb {
  ty_graph *g;
  uint64_t rng;
  int params[16];
  int np;
} gb;

void gb_init(gb *b, int opset);
/* A float initializer with values in [lo, hi); a parameter if param. When
 * away, |v| >= 0.1 (away from kinks at 0). */
int gb_float(gb *b, bool param, int rank, const int64_t *dims, double lo, double hi, bool away);
/* An int64 initializer. */
int gb_ints(gb *b, int rank, const int64_t *dims, const int64_t *vals);
/* Adds op(in) with n_out outputs; returns the node index, output 0 in *y. */
size_t gb_node(gb *b, ty_op op, const int *in, int n_in, int n_out, int *y);
/* Appends the weighted-sum head on y, differentiates and checks every
 * param; destroys the graph. */
void check(gb *b, int y, double eps, double tol);
/* The same with the head on several outputs (summed). */
void check_outputs(gb *b, const int *ys, int n_ys, double eps, double tol);
/* Appends the weighted-sum head on y, differentiates it for the first
 * n_grads params, runs the graph on `threads` threads and copies y's value
 * and then each gradient into out_v[0..n_grads] (malloc'd: the caller
 * frees them), their element counts into out_n; destroys the graph. The
 * fold tests compare these between folded and unfolded graphs and between
 * thread counts. */
void run_and_copy(gb *b, int y, int n_grads, int threads, float **out_v, int64_t *out_n);

#define D(...) ((const int64_t[]){__VA_ARGS__})
#define EPS 2e-3
#define TOL 1e-2

#endif
