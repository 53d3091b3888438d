/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The equivalence harness of ops/shard's tests (equiv.c): runs a plan's
 * ranks as threads and asserts they train like one process. Every
 * function asserts (Criterion) instead of returning an error.
 */
#ifndef TY_TESTS_UNIT_OPS_SHARD_EQUIV_H
#define TY_TESTS_UNIT_OPS_SHARD_EQUIV_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/graph.h"
#include "ops/plan/plan.h"

/* Random weights (the test models are built with zeros). */
void eq_randomize(ty_graph *g, uint64_t seed);
/* Runs plan p on every rank (fusion: the executor fuses kernels) and
 * compares the loss and every parameter's gradient with one process. */
void eq_expect_equivalent(const ty_graph *g, const ty_plan *p, bool fusion);
/* A plan of g on nodes x per_node devices (the caller frees it); slow:
 * devices so slow next to their links that every op splits, which is
 * what exercises the routes. */
ty_plan *eq_plan(const ty_graph *g, int nodes, int per_node, int64_t batch, ty_plan_mode mode,
                 bool slow);
/* eq_expect_equivalent for the auto, data, tensor and (on 4 devices or
 * more) grid plans, each with default and slow devices. */
void eq_each_mode(ty_graph *g, int nodes, int per_node, int64_t batch);

#endif
