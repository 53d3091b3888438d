/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shard's lifecycle, its accessors and the TyExtern hook that runs a
 * point's route (see shard.h). The shard keeps its own copy of the plan
 * (through the plan file encoding, which also normalises it), so the
 * caller's plan may go away.
 */
#include "ops/shard/shard_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_plan(const ty_plan *p, ty_plan **out, char *err, size_t err_len) {
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty_plan_encode(p, &b);
  if (rc == 0) rc = ty_plan_decode(b.data, b.len, out, err, err_len);
  ty_buf_close(&b);
  return rc;
}

static int create(const ty_graph *g, int loss, const ty_plan *p, int rank, bool inference,
                  char *err, size_t err_len, ty_shard **out_shard) {
  *out_shard = NULL;
  int rc = ty_plan_check(p, g, err, err_len);
  if (rc != 0) return rc;
  if (rank < 0 || rank >= p->devices)
    return ty_errf(err, err_len, TY_EINVAL,
                   "shard: rank %d is not one of the plan's %d devices (mesh %dx%d)", rank,
                   p->devices, p->mesh[0], p->mesh[1]);
  if (loss != TY_NO_VALUE && (loss < 0 || (size_t)loss >= ty_graph_n_values(g)))
    return ty_errf(err, err_len, TY_EINVAL, "shard: loss: value %d is not one of the graph's %zu",
                   loss, ty_graph_n_values(g));
  ty_shard *s = calloc(1, sizeof *s);
  if (!s) return TY_ENOMEM;
  s->rank = rank;
  s->loss = loss;
  s->inference = inference;
  s->n_values = ty_graph_n_values(g);
  s->full = calloc(s->n_values + 1, sizeof *s->full);
  s->lay = calloc(s->n_values + 1, sizeof *s->lay);
  s->grad_axes = calloc(s->n_values + 1, sizeof *s->grad_axes);
  s->is_param = calloc(s->n_values + 1, sizeof *s->is_param);
  s->param_points = calloc(s->n_values + 1, sizeof *s->param_points);
  rc = s->full && s->lay && s->grad_axes && s->is_param && s->param_points ? 0 : TY_ENOMEM;
  if (rc == 0) rc = copy_plan(p, &s->plan, err, err_len);
  if (rc == 0) {
    ty_plan_coords(s->plan, rank, s->coords);
    rc = ty__shard_build(s, g, err, err_len);
  }
  if (rc != 0) {
    ty_shard_destroy(s);
    return rc;
  }
  *out_shard = s;
  return 0;
}

int ty_shard_create(const ty_graph *g, int loss, const ty_plan *p, int rank, char *err,
                    size_t err_len, ty_shard **out_shard) {
  return create(g, loss, p, rank, false, err, err_len, out_shard);
}

int ty_shard_create_inference(const ty_graph *g, int loss, const ty_plan *p, int rank, char *err,
                              size_t err_len, ty_shard **out_shard) {
  return create(g, loss, p, rank, true, err, err_len, out_shard);
}

void ty_shard_destroy(ty_shard *s) {
  if (!s) return;
  ty_graph_destroy(s->g);
  ty_plan_destroy(s->plan);
  free(s->full);
  free(s->lay);
  free(s->grad_axes);
  free(s->is_param);
  free(s->param_points);
  free(s->points);
  free(s->bns);
  free(s);
}

ty_graph *ty_shard_graph(ty_shard *s) {
  return s->g;
}
ty_graph *ty_shard_take_graph(ty_shard *s) {
  ty_graph *g = s->g;
  s->g = NULL;
  return g;
}
int ty_shard_rank(const ty_shard *s) {
  return s->rank;
}
const ty_plan *ty_shard_plan(const ty_shard *s) {
  return s->plan;
}
const char *ty_shard_error(const ty_shard *s) {
  return s->err;
}
const char *ty_shard_extern_error(const void *user) {
  return ty_shard_error(user);
}

size_t ty_shard_n_points(const ty_shard *s, size_t *out_rerouted) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_points; i++)
    n += s->points[i].fwd.generic || s->points[i].bwd.generic;
  if (out_rerouted) *out_rerouted = n;
  return s->n_points;
}

int ty_shard_slice_of(const ty_shard *s, int v, int rank, ty_shape *out_full, int64_t *out_start,
                      int64_t *out_len) {
  if (v < 0 || (size_t)v >= s->n_values || rank < 0 || rank >= s->plan->devices)
    return TY_ENOTFOUND;
  *out_full = s->full[v];
  ty_plan_slice(s->plan, &s->lay[v], &s->full[v], rank, out_start, out_len);
  return 0;
}

int ty_shard_grad_axes(const ty_shard *s, int v, unsigned *out_axes) {
  if (v < 0 || (size_t)v >= s->n_values || !s->is_param[v]) return TY_ENOTFOUND;
  *out_axes = s->grad_axes[v];
  return 0;
}

unsigned ty_shard_partial_axes(const ty_shard *s, int v) {
  if (v < 0 || (size_t)v >= s->n_values) return 0;
  unsigned axes = s->lay[v].partial;
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (s->plan->mesh[a] <= 1) axes &= ~(1u << a);
  return axes;
}

size_t ty_shard_n_bn(const ty_shard *s) {
  return s->n_bns;
}
const ty_shard_bn_info *ty_shard_bn_at(const ty_shard *s, size_t i) {
  return i < s->n_bns ? &s->bns[i] : NULL;
}

void ty_shard_set_comm(ty_shard *s, const ty_shard_comm *comm) {
  s->comm = *comm;
  s->have_comm = true;
}

int ty_shard_extern(int64_t id, bool backward, const ty_tensor *in, ty_tensor *out, void *user) {
  ty_shard *s = user;
  s->err[0] = '\0'; /* what this call fails with, not an older failure */
  if (id < 0 || (size_t)id >= s->n_points) {
    snprintf(s->err, sizeof s->err, "TyExtern id %lld is not a point of this shard", (long long)id);
    return TY_EINTERNAL;
  }
  const ty__point *pt = &s->points[id];
  return ty__route_run(s, backward ? &pt->bwd : &pt->fwd, &pt->full, pt->what, in, out);
}
