/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resharding: the collectives that turn a value held in one layout into
 * another, and what they cost. Costs follow the ring algorithms on one mesh
 * axis of n devices with bandwidth B and per-step latency L, plus a fixed
 * launch cost per collective:
 *   all-reduce of S bytes       2 (n-1)/n S/B + 2 (n-1) L
 *   all-gather (S = result),
 *   reduce-scatter (S = input),
 *   all-to-all (S = local)        (n-1)/n S/B +   (n-1) L
 * A dim split by several axes is cut axis 0 major, so of a source's axes
 * on a dim only a common prefix with the target's stays in place; the others
 * are released (gathered, or exchanged all-to-all when the axis moves to
 * another dim) and the target's new axes are local slices, which are free.
 * Steps run slices first, then reduce-scatters, all-to-alls, all-reduces,
 * and all-gathers last, so every collective moves as few bytes as it can;
 * except that an all-to-all bringing a lower axis onto the dim a
 * reduce-scatter splits runs before it, so the dim's chunks stay axis 0
 * major (the other order would leave them axis 1 major, which the target
 * layout does not mean).
 * This function runs for every pair of layouts on every edge of the cost
 * graph, so it allocates nothing.
 */
#include "ops/plan/plan_internal.h"

#include <math.h>
#include <string.h>

double ty__coll_seconds(const ty__mesh *m, int axis, ty_plan_coll_kind kind, double bytes) {
  double n = m->n[axis];
  if (n <= 1) return 0;
  double f = (n - 1) / n;
  if (kind == TY_PLAN_ALL_REDUCE)
    return m->launch + 2 * f * bytes / m->bw[axis] + 2 * (n - 1) * m->lat[axis];
  return m->launch + f * bytes / m->bw[axis] + (n - 1) * m->lat[axis];
}

static double split_of(const ty__mesh *m, uint8_t axes) {
  double s = 1;
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (axes >> a & 1u) s *= m->n[a];
  return s;
}

/* The largest block a device holds (a batch split unevenly: ceil). */
double ty__local_bytes(const ty__mesh *m, const ty_shape *shape, size_t elem, ty__lay l) {
  double b = (double)elem;
  for (int d = 0; d < shape->rank; d++) {
    double parts = split_of(m, ty__lay_dim(l, d)), n = (double)shape->dims[d];
    b *= n > 0 ? ceil(n / parts) : n / parts;
  }
  return b;
}

/* The axes of a dim's set that stay in place: the common prefix (axis 0
 * first) of the source's and the target's sets. */
static uint8_t kept_axes(uint8_t src, uint8_t dst) {
  uint8_t kept = 0;
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    bool s = src >> a & 1u, t = dst >> a & 1u;
    if (!s && !t) continue;
    if (s != t) break;
    kept |= (uint8_t)(1u << a);
  }
  return kept;
}

typedef struct axis_move {
  int released; /* dim the axis leaves, or -1 */
  int added;    /* dim the axis newly splits, or -1 */
  bool partial;
} axis_move;

static void add_step(ty__step *steps, int *n, const ty__mesh *m, ty_plan_coll_kind kind, int axis,
                     int dim, int src_dim, double bytes, double *total) {
  double s = ty__coll_seconds(m, axis, kind, bytes);
  *total += s;
  if (!steps || *n >= TY__MAX_STEPS) return;
  steps[*n] = (ty__step){.kind = (uint8_t)kind,
                         .axis = (uint8_t)axis,
                         .dim = (int8_t)dim,
                         .src_dim = (int8_t)src_dim,
                         .bytes = bytes,
                         .seconds = s};
  (*n)++;
}

double ty__reshard(const ty__mesh *m, const ty_shape *shape, size_t elem, ty__lay src, ty__lay dst,
                   ty__step *out_steps, int *out_n) {
  axis_move mv[TY_PLAN_AXES];
  uint8_t partial = ty__lay_partial(src);
  for (int a = 0; a < TY_PLAN_AXES; a++)
    mv[a] = (axis_move){-1, -1, (partial >> a & 1u) && m->n[a] > 1};
  for (int d = 0; d < shape->rank; d++) {
    uint8_t s = ty__lay_dim(src, d), t = ty__lay_dim(dst, d), k = kept_axes(s, t);
    for (int a = 0; a < TY_PLAN_AXES; a++) {
      if (m->n[a] <= 1) continue;
      if ((s & ~k) >> a & 1u) mv[a].released = d;
      if ((t & ~k) >> a & 1u) mv[a].added = d;
    }
  }
  int n = 0;
  double total = 0, cur = ty__local_bytes(m, shape, elem, ty__lay_whole(src));
  for (int a = 0; a < TY_PLAN_AXES; a++) /* free slices */
    if (mv[a].added >= 0 && mv[a].released < 0 && !mv[a].partial) cur /= m->n[a];
  bool moved[TY_PLAN_AXES] = {false};
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (mv[a].partial && mv[a].added >= 0) {
      for (int b = 0; b < a; b++) /* a lower axis joining the same dim goes first (axis 0 major) */
        if (mv[b].released >= 0 && mv[b].added == mv[a].added && !moved[b]) {
          add_step(out_steps, &n, m, TY_PLAN_ALL_TO_ALL, b, mv[b].added, mv[b].released, cur,
                   &total);
          moved[b] = true;
        }
      add_step(out_steps, &n, m, TY_PLAN_REDUCE_SCATTER, a, mv[a].added, -1, cur, &total);
      cur /= m->n[a];
    }
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (mv[a].released >= 0 && mv[a].added >= 0 && !moved[a])
      add_step(out_steps, &n, m, TY_PLAN_ALL_TO_ALL, a, mv[a].added, mv[a].released, cur, &total);
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (mv[a].partial && mv[a].added < 0)
      add_step(out_steps, &n, m, TY_PLAN_ALL_REDUCE, a, -1, -1, cur, &total);
  for (int a = TY_PLAN_AXES; a-- > 0;)
    if (mv[a].released >= 0 && mv[a].added < 0) {
      cur *= m->n[a];
      add_step(out_steps, &n, m, TY_PLAN_ALL_GATHER, a, mv[a].released, -1, cur, &total);
    }
  if (out_n) *out_n = n;
  return total;
}

void ty__lay_to_public(ty__lay l, int rank, ty_plan_layout *out) {
  memset(out, 0, sizeof *out);
  out->rank = rank;
  if (rank < 0) return;
  for (int d = 0; d < rank && d < TY_MAX_RANK; d++)
    out->dim_axes[d] = ty__lay_dim(l, d);
  out->partial = ty__lay_partial(l);
}
