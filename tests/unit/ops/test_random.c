/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The random generators (ops/kernels/random.c, ops/infer_random.c): the
 * moments of what they draw, held to bounds computed from the sample size
 * (6 standard errors, so a test cannot flake), the seed attribute's fixed
 * stream, fresh draws per run and per noise_seed, a rank's slice of the
 * global draw, shape and dtype inference and the refusals of bad
 * attributes naming the node.
 */
#include "tests/unit/ops/helpers.h"

#include "ops/autodiff/autodiff.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NS 100000

/* Runs b's graph with opts (may be NULL) on inputs; *out_e owns the output. */
static const ty_tensor *run(one_node *b, const ty_exec_opts *o, ty_tensor *const *inputs,
                            ty_exec **out_e) {
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b->g, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_create(b->g, o, out_e), 0);
  for (size_t i = 0; i < ty_graph_n_inputs(b->g); i++)
    cr_assert_eq(ty_exec_bind_id(*out_e, ty_graph_input(b->g, i), inputs[i], err, sizeof err), 0,
                 "%s", err);
  cr_assert_eq(ty_exec_run(*out_e, err, sizeof err), 0, "%s", err);
  return ty_exec_value(*out_e, b->out[0]);
}

static bool shape_is(const ty_shape *s, ty_shape want) {
  return ty_shape_equal(s, &want);
}

static void moments(const float *v, int64_t n, double *mean, double *var) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; i++)
    s += v[i];
  *mean = s / (double)n;
  for (int64_t i = 0; i < n; i++)
    s2 += (v[i] - *mean) * (v[i] - *mean);
  *var = s2 / (double)(n - 1);
}

static void fixed_shape(one_node *b, ty_op op, int64_t n) {
  one_node_build(b, op, 0, NULL, NULL, 1);
  ty_graph_node_set_ints(b->g, (size_t)b->node, "shape", (int64_t[]){n}, 1);
}

Test(random, normal_has_its_mean_and_scale) {
  one_node b;
  fixed_shape(&b, TY_OP_RANDOM_NORMAL, NS);
  ty_graph_node_set_float(b.g, (size_t)b.node, "mean", 2.0f);
  ty_graph_node_set_float(b.g, (size_t)b.node, "scale", 3.0f);
  ty_exec *e;
  const ty_tensor *y = run(&b, NULL, NULL, &e);
  cr_assert_eq(y->dtype, TY_DTYPE_F32);
  cr_assert_eq(ty_tensor_numel(y), NS);
  double m, v, sd = 3.0;
  moments(y->data, NS, &m, &v);
  /* the mean's standard error sd/sqrt(n); the variance's sd^2*sqrt(2/n) */
  cr_assert(fabs(m - 2.0) < 6 * sd / sqrt(NS), "mean %g", m);
  cr_assert(fabs(v - sd * sd) < 6 * sd * sd * sqrt(2.0 / NS), "variance %g", v);
  int tail = 0; /* |z| > 3: 0.27% of a normal's draws */
  for (int64_t i = 0; i < NS; i++)
    tail += fabs(((const float *)y->data)[i] - 2.0) > 3 * sd;
  double p = 0.0027;
  cr_assert(fabs(tail - p * NS) < 6 * sqrt(p * (1 - p) * NS), "%d beyond 3 sigma", tail);
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
}

Test(random, uniform_stays_in_low_high_with_its_mean) {
  one_node b;
  fixed_shape(&b, TY_OP_RANDOM_UNIFORM, NS);
  ty_graph_node_set_float(b.g, (size_t)b.node, "low", -1.0f);
  ty_graph_node_set_float(b.g, (size_t)b.node, "high", 3.0f);
  ty_exec *e;
  const ty_tensor *y = run(&b, NULL, NULL, &e);
  const float *d = y->data;
  for (int64_t i = 0; i < NS; i++)
    cr_assert(d[i] >= -1.0f && d[i] < 3.0f, "element %lld is %g", (long long)i, (double)d[i]);
  double m, v, sd = 4.0 / sqrt(12.0);
  moments(d, NS, &m, &v);
  cr_assert(fabs(m - 1.0) < 6 * sd / sqrt(NS), "mean %g", m);
  cr_assert(fabs(v - sd * sd) < 0.05 * sd * sd, "variance %g", v); /* ~10 standard errors */
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
}

Test(random, bernoulli_draws_at_its_rate_and_dtype) {
  float *p = malloc(NS * sizeof *p);
  for (int64_t i = 0; i < NS; i++)
    p[i] = i < 10 ? 0.0f : i < 20 ? 1.0f : 0.3f;
  ty_tensor *x = tensor_f32(SHAPE(NS), p);
  one_node b;
  one_node_build(&b, TY_OP_BERNOULLI, 1, (ty_dtype[]){TY_DTYPE_F32}, (ty_shape[]){SHAPE(NS)}, 1);
  ty_exec *e;
  const ty_tensor *y = run(&b, NULL, &x, &e);
  cr_assert_eq(y->dtype, TY_DTYPE_F32);
  const float *d = y->data;
  double ones = 0;
  for (int64_t i = 0; i < NS; i++) {
    cr_assert(d[i] == 0.0f || d[i] == 1.0f);
    if (i < 10) cr_assert_eq(d[i], 0.0f, "p = 0 drew 1");
    if (i >= 10 && i < 20) cr_assert_eq(d[i], 1.0f, "p = 1 drew 0");
    if (i >= 20) ones += d[i];
  }
  double n = NS - 20, rate = ones / n;
  cr_assert(fabs(rate - 0.3) < 6 * sqrt(0.3 * 0.7 / n), "rate %g", rate);
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  /* dtype BOOL */
  one_node_build(&b, TY_OP_BERNOULLI, 1, (ty_dtype[]){TY_DTYPE_F32}, (ty_shape[]){SHAPE(NS)}, 1);
  ty_graph_node_set_int(b.g, (size_t)b.node, "dtype", TY_DTYPE_BOOL);
  y = run(&b, NULL, &x, &e);
  cr_assert_eq(y->dtype, TY_DTYPE_BOOL);
  cr_assert_eq(ty_tensor_bool(y)[15], 1);
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  ty_tensor_destroy(x);
  free(p);
}

Test(random, multinomial_draws_classes_by_their_probability) {
  /* row 0: log-probabilities of 0.2, 0.8; row 1: class 0 only */
  ty_tensor *x = tensor_f32(SHAPE(2, 2), (float[]){logf(0.2f), logf(0.8f), 0.0f, -1e30f});
  one_node b;
  one_node_build(&b, TY_OP_MULTINOMIAL, 1, (ty_dtype[]){TY_DTYPE_F32}, (ty_shape[]){SHAPE(2, 2)},
                 1);
  ty_graph_node_set_int(b.g, (size_t)b.node, "sample_size", 20000);
  ty_graph_node_set_int(b.g, (size_t)b.node, "dtype", TY_DTYPE_I64);
  ty_exec *e;
  const ty_tensor *y = run(&b, NULL, &x, &e);
  cr_assert_eq(y->dtype, TY_DTYPE_I64);
  cr_assert(shape_is(&y->shape, SHAPE(2, 20000)));
  const int64_t *d = y->data;
  double ones = 0;
  for (int64_t s = 0; s < 20000; s++) {
    cr_assert(d[s] == 0 || d[s] == 1);
    ones += d[s];
    cr_assert_eq(d[20000 + s], 0);
  }
  cr_assert(fabs(ones / 20000 - 0.8) < 6 * sqrt(0.8 * 0.2 / 20000), "rate %g", ones / 20000);
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  ty_tensor_destroy(x);
}

/* Two executors' outputs of a 64-element RandomNormal; seed < 0: none. */
static bool draws_equal(double seed, uint64_t noise_a, uint64_t noise_b, int runs_a) {
  one_node b;
  fixed_shape(&b, TY_OP_RANDOM_NORMAL, 64);
  if (seed >= 0) ty_graph_node_set_float(b.g, (size_t)b.node, "seed", (float)seed);
  ty_exec *ea, *eb;
  ty_exec_opts oa = {.noise_seed = noise_a}, ob = {.noise_seed = noise_b};
  const ty_tensor *ya = run(&b, &oa, NULL, &ea);
  char err[256];
  for (int r = 1; r < runs_a; r++) {
    cr_assert_eq(ty_exec_run(ea, err, sizeof err), 0, "%s", err);
    ya = ty_exec_value(ea, b.out[0]);
  }
  const ty_tensor *yb = run(&b, &ob, NULL, &eb);
  bool eq = memcmp(ya->data, yb->data, ya->nbytes) == 0;
  ty_exec_destroy(ea);
  ty_exec_destroy(eb);
  ty_graph_destroy(b.g);
  return eq;
}

Test(random, a_seed_gives_the_same_draw_and_none_a_new_one) {
  cr_assert(draws_equal(7, 1, 2, 1), "a seed draws alike whatever the executor's noise");
  cr_assert(draws_equal(7, 1, 1, 3), "a seed draws alike on every run");
  cr_assert(draws_equal(-1, 5, 5, 1), "the same noise_seed and run draw alike");
  cr_assert(!draws_equal(-1, 5, 6, 1), "another noise_seed (rank, step) draws anew");
  cr_assert(!draws_equal(-1, 5, 5, 2), "another run draws anew");
}

Test(random, seeds_differ) {
  one_node a, b;
  fixed_shape(&a, TY_OP_RANDOM_UNIFORM, 16);
  fixed_shape(&b, TY_OP_RANDOM_UNIFORM, 16);
  ty_graph_node_set_float(a.g, (size_t)a.node, "seed", 1.0f);
  ty_graph_node_set_float(b.g, (size_t)b.node, "seed", 2.0f);
  ty_exec *ea, *eb;
  const ty_tensor *ya = run(&a, NULL, NULL, &ea), *yb = run(&b, NULL, NULL, &eb);
  cr_assert(memcmp(ya->data, yb->data, ya->nbytes) != 0);
  ty_exec_destroy(ea);
  ty_exec_destroy(eb);
  ty_graph_destroy(a.g);
  ty_graph_destroy(b.g);
}

/* A node given a slice (as ops/shard does) draws those elements of the
 * whole tensor: rows 2..3 of a [4, 5] draw. */
Test(random, a_slice_draws_its_part_of_the_global_tensor) {
  float whole[20], part[10];
  for (int k = 0; k < 2; k++) {
    one_node b;
    one_node_build(&b, TY_OP_RANDOM_NORMAL_LIKE, 1, (ty_dtype[]){TY_DTYPE_F32},
                   (ty_shape[]){k ? SHAPE(2, 5) : SHAPE(4, 5)}, 1);
    if (k) {
      ty_graph_node_set_ints(b.g, (size_t)b.node, TY_RANDOM_FULL, (int64_t[]){4, 5}, 2);
      ty_graph_node_set_ints(b.g, (size_t)b.node, TY_RANDOM_START, (int64_t[]){2, 0}, 2);
    }
    float zeros[20] = {0};
    ty_tensor *x = tensor_f32(k ? SHAPE(2, 5) : SHAPE(4, 5), zeros);
    ty_exec *e;
    ty_exec_opts o = {.noise_seed = 42};
    const ty_tensor *y = run(&b, &o, &x, &e);
    memcpy(k ? part : whole, y->data, y->nbytes);
    ty_exec_destroy(e);
    ty_graph_destroy(b.g);
    ty_tensor_destroy(x);
  }
  cr_assert_eq(memcmp(part, whole + 10, sizeof part), 0);
  cr_assert_neq(memcmp(part, whole, sizeof part), 0);
}

Test(random, like_ops_take_the_input_shape_and_dtype) {
  one_node b;
  one_node_build(&b, TY_OP_RANDOM_UNIFORM_LIKE, 1, (ty_dtype[]){TY_DTYPE_F64},
                 (ty_shape[]){SHAPE(TY_DIM_BATCH, 3)}, 1);
  char err[256] = "";
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0, "%s", err);
  const ty_graph_value *v = ty_graph_value_at(b.g, b.out[0]);
  cr_assert_eq(v->dtype, TY_DTYPE_F64);
  cr_assert(shape_is(&v->shape, SHAPE(TY_DIM_BATCH, 3)));
  ty_graph_destroy(b.g);
  one_node_build(&b, TY_OP_RANDOM_NORMAL_LIKE, 1, (ty_dtype[]){TY_DTYPE_I64},
                 (ty_shape[]){SHAPE(2, 3)}, 1);
  ty_graph_node_set_int(b.g, (size_t)b.node, "dtype", TY_DTYPE_F16);
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_graph_value_at(b.g, b.out[0])->dtype, TY_DTYPE_F16);
  ty_graph_destroy(b.g);
  fixed_shape(&b, TY_OP_RANDOM_NORMAL, 0);
  ty_graph_node_set_ints(b.g, (size_t)b.node, "shape", (int64_t[]){2, 0, 3}, 3);
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0, "%s", err);
  cr_assert(shape_is(&ty_graph_value_at(b.g, b.out[0])->shape, SHAPE(2, 0, 3)));
  cr_assert_eq(ty_graph_value_at(b.g, b.out[0])->dtype, TY_DTYPE_F32);
  ty_graph_destroy(b.g);
}

/* Inference of b refuses with a message holding want. */
static void refused(one_node *b, const char *want) {
  char err[256] = "";
  cr_assert_eq(one_node_infer(b, err, sizeof err), TY_EINVAL, "accepted; wanted %s", want);
  cr_assert(strstr(err, want), "%s (wanted %s)", err, want);
  ty_graph_destroy(b->g);
}

Test(random, bad_attributes_are_refused_naming_the_node) {
  one_node b;
  fixed_shape(&b, TY_OP_RANDOM_NORMAL, 4);
  ty_graph_node_set_float(b.g, (size_t)b.node, "scale", -1.0f);
  refused(&b, "node \"n\" (RandomNormal): attribute scale=-1 must be finite and not negative");
  fixed_shape(&b, TY_OP_RANDOM_UNIFORM, 4);
  ty_graph_node_set_float(b.g, (size_t)b.node, "low", 2.0f);
  ty_graph_node_set_float(b.g, (size_t)b.node, "high", 1.0f);
  refused(&b, "node \"n\" (RandomUniform): attribute low=2 exceeds high=1");
  fixed_shape(&b, TY_OP_RANDOM_NORMAL, 4);
  ty_graph_node_set_int(b.g, (size_t)b.node, "dtype", TY_DTYPE_I64);
  refused(&b, "node \"n\" (RandomNormal): dtype INT64 is not allowed: the output must be FLOAT");
  fixed_shape(&b, TY_OP_RANDOM_UNIFORM, 4);
  ty_graph_node_set_ints(b.g, (size_t)b.node, "shape", (int64_t[]){3, -2}, 2);
  refused(&b, "node \"n\" (RandomUniform): attribute shape has a negative dim (-2)");
  one_node_build(&b, TY_OP_RANDOM_UNIFORM, 0, NULL, NULL, 1);
  refused(&b, "node \"n\" (RandomUniform): attribute shape is missing");
  fixed_shape(&b, TY_OP_RANDOM_NORMAL, 4);
  ty_graph_node_set_string(b.g, (size_t)b.node, "seed", "x");
  refused(&b, "node \"n\" (RandomNormal): attribute seed must be a finite number");
  one_node_build(&b, TY_OP_RANDOM_NORMAL_LIKE, 1, (ty_dtype[]){TY_DTYPE_I64},
                 (ty_shape[]){SHAPE(2)}, 1);
  refused(&b, "node \"n\" (RandomNormalLike): dtype INT64 is not allowed");
  one_node_build(&b, TY_OP_BERNOULLI, 1, (ty_dtype[]){TY_DTYPE_F32}, (ty_shape[]){SHAPE(2)}, 1);
  ty_graph_node_set_int(b.g, (size_t)b.node, "dtype", 8 /* STRING */);
  refused(&b, "node \"n\" (Bernoulli): dtype STRING is not allowed");
  one_node_build(&b, TY_OP_MULTINOMIAL, 1, (ty_dtype[]){TY_DTYPE_F32}, (ty_shape[]){SHAPE(2, 3)},
                 1);
  ty_graph_node_set_int(b.g, (size_t)b.node, "sample_size", 0);
  refused(&b, "node \"n\" (Multinomial): attribute sample_size=0 must be positive");
  one_node_build(&b, TY_OP_MULTINOMIAL, 1, (ty_dtype[]){TY_DTYPE_F32}, (ty_shape[]){SHAPE(2, 3)},
                 1);
  ty_graph_node_set_int(b.g, (size_t)b.node, "dtype", TY_DTYPE_F32);
  refused(&b, "node \"n\" (Multinomial): dtype FLOAT is not allowed: the output must be INT32 or");
}

Test(random, draws_carry_no_gradient) {
  ty_op ops[] = {TY_OP_RANDOM_NORMAL_LIKE, TY_OP_RANDOM_UNIFORM_LIKE, TY_OP_BERNOULLI,
                 TY_OP_MULTINOMIAL};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    cr_assert(!ty_autodiff_input_differentiable(ops[i], 0), "%s", ty_op_name(ops[i]));
    cr_assert(ty_op_is_random(ops[i]));
  }
  cr_assert(!ty_op_is_random(TY_OP_DROPOUT));
}
