/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A parallel plan's mesh over the world (see collective.h): one
 * communicator per mesh axis of more than one device, split from the world
 * with MPI_Comm_split (colour: the other coordinate, key: this one), plus a
 * duplicate of the world for both axes at once; and the checked
 * collectives ops/shard and ops/train run on them.
 *
 * Every collective is preceded by the (seq, hash, length, stop) exchange
 * of its group, the hash covering the kind, the tensor named by the caller
 * and the length: ranks that disagree (different plans, models or orders)
 * stop in that call with a message naming the rank and both tensors.
 * Waits have the same deadline as the gradient buckets'. A group of one
 * device needs no MPI: its collectives are copies. A world formed over
 * NCCL (the GPU build) runs the same collectives through nccl.c.
 */
#include "ops/collective/coll_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

/* One axis' group: the ranks sharing the other coordinate. */
static int split_axis(ty_coll *c, int axis, ty__group *g) {
  int m1 = c->mesh_n[1], me = (int)c->o.rank, c0 = me / m1, c1 = me % m1;
  int colour = axis == 0 ? c1 : c0, key = axis == 0 ? c0 : c1, n = c->mesh_n[axis];
  int rc = MPI_Comm_split(c->world.comm, colour, key, &g->comm);
  if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, "MPI_Comm_split (mesh axis)");
  MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
  MPI_Comm_size(g->comm, &g->size);
  MPI_Comm_rank(g->comm, &g->me);
  if (g->size != n || g->me != key)
    return ty__coll_set_err(c, TY_EINTERNAL,
                            "mesh axis %d: a group of %d with this rank at %d, expected %d and %d",
                            axis, g->size, g->me, n, key);
  if (!(g->world_rank = calloc((size_t)n + 1, sizeof *g->world_rank))) return TY_ENOMEM;
  for (int j = 0; j < n; j++)
    g->world_rank[j] = (uint32_t)(axis == 0 ? j * m1 + c1 : c0 * m1 + j);
  return 0;
}

static int dup_world(ty_coll *c, ty__group *g) {
  int rc = MPI_Comm_dup(c->world.comm, &g->comm);
  if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, "MPI_Comm_dup");
  MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
  g->size = c->world.size;
  g->me = c->world.me;
  if (!(g->world_rank = calloc((size_t)g->size + 1, sizeof *g->world_rank))) return TY_ENOMEM;
  for (int j = 0; j < g->size; j++)
    g->world_rank[j] = (uint32_t)j;
  return 0;
}

int ty_coll_set_mesh(ty_coll *c, int m0, int m1) {
  if (m0 < 1 || m1 < 1 || (int64_t)m0 * m1 != (int64_t)c->o.world_size)
    return ty__coll_set_err(c, TY_EINVAL, "mesh %dx%d does not hold the world of %u ranks", m0, m1,
                            c->o.world_size);
  for (int m = 0; m < 3; m++)
    ty__coll_group_close(&c->mesh[m]);
  for (int a = 0; a < 2; a++) {
    ty__coll_group_close(&c->inner[a]);
    c->inner_n[a] = 1;
  }
  c->mesh_n[0] = m0;
  c->mesh_n[1] = m1;
  int rc = 0;
  for (int m = 0; m < 3; m++) {
    c->mesh[m].noun = "collective";
    c->mesh[m].seq = 0;
  }
  if (c->o.world_size <= 1) return 0;
#ifdef TY_HAVE_NCCL
  if (c->nccl) return ty__nccl_set_mesh(c);
#endif
  /* Every rank runs every split in the same order: MPI_Comm_split is collective on the world. */
  for (int a = 0; rc == 0 && a < 2; a++)
    if (c->mesh_n[a] > 1) rc = split_axis(c, a, &c->mesh[a]);
  if (rc == 0 && m0 > 1 && m1 > 1) rc = dup_world(c, &c->mesh[2]);
  return rc;
}

/* One inner axis' group: the ranks of this rank's axis-1 group sharing
 * its inner coordinate on the other inner axis. */
static int split_inner(ty_coll *c, int axis, ty__group *g) {
  int m1 = c->mesh_n[1], i1 = c->inner_n[1], me = (int)c->o.rank;
  int c0 = me / m1, j0 = me % m1 / i1, j1 = me % m1 % i1, n = c->inner_n[axis];
  int colour = axis == 0 ? c0 * i1 + j1 : c0 * c->inner_n[0] + j0, key = axis == 0 ? j0 : j1;
  int rc = MPI_Comm_split(c->world.comm, colour, key, &g->comm);
  if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, "MPI_Comm_split (inner mesh axis)");
  MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
  MPI_Comm_size(g->comm, &g->size);
  MPI_Comm_rank(g->comm, &g->me);
  if (g->size != n || g->me != key)
    return ty__coll_set_err(c, TY_EINTERNAL,
                            "inner mesh axis %d: a group of %d with this rank at %d, expected %d "
                            "and %d",
                            axis, g->size, g->me, n, key);
  if (!(g->world_rank = calloc((size_t)n + 1, sizeof *g->world_rank))) return TY_ENOMEM;
  for (int j = 0; j < n; j++)
    g->world_rank[j] = (uint32_t)(c0 * m1 + (axis == 0 ? j * i1 + j1 : j0 * i1 + j));
  return 0;
}

int ty_coll_set_mesh_inner(ty_coll *c, int i0, int i1) {
  if (i0 < 1 || i1 < 1 || (int64_t)i0 * i1 != (int64_t)c->mesh_n[1])
    return ty__coll_set_err(c, TY_EINVAL,
                            "inner mesh %dx%d does not hold mesh axis 1's %d ranks (mesh %dx%d)",
                            i0, i1, c->mesh_n[1], c->mesh_n[0], c->mesh_n[1]);
  for (int a = 0; a < 2; a++)
    ty__coll_group_close(&c->inner[a]);
  c->inner_n[0] = i0;
  c->inner_n[1] = i1;
  for (int a = 0; a < 2; a++) {
    c->inner[a].noun = "collective";
    c->inner[a].seq = 0;
  }
  if (c->o.world_size <= 1 || (i0 == 1 || i1 == 1)) return 0; /* axis 1's group serves */
#ifdef TY_HAVE_NCCL
  if (c->nccl)
    return ty__coll_set_err(c, TY_EUNSUPPORTED,
                            "inner mesh %dx%d: a world formed over NCCL has no communicators "
                            "inside mesh axis 1 (a pipeline stage with both mesh axes split runs "
                            "over MPI only)",
                            i0, i1);
#endif
  int rc = 0; /* every rank runs both splits in the same order */
  for (int a = 0; rc == 0 && a < 2; a++)
    rc = split_inner(c, a, &c->inner[a]);
  return rc;
}

/* NCCL (c->nccl, the GPU build's backend) instead of MPI: the same
 * collectives, checked the same way, in nccl.c. */
static bool on_nccl(const ty_coll *c) {
#ifdef TY_HAVE_NCCL
  return c->nccl != NULL;
#else
  (void)c;
  return false;
#endif
}

static int nccl_mesh(ty_coll *c, const char *kind, unsigned axes, const float *in, size_t n_in,
                     float *out, size_t n_out, const char *what) {
  if (c->failed) return ty__coll_failed_before(c);
  char desc[TY__COLL_DESC];
  snprintf(desc, sizeof desc, "%s of %.180s (%zu floats)", kind, what ? what : "?", n_in);
  c->stats.mesh_ops++;
#ifdef TY_HAVE_NCCL
  int64_t t0 = ty__coll_now_us();
  int rc = ty__nccl_mesh(c, kind, axes, in, n_in, out, n_out, fnv(desc), desc);
  c->stats.mesh_s += (double)(ty__coll_now_us() - t0) / 1e6;
  return rc;
#else
  (void)axes, (void)in, (void)out, (void)n_out;
  return ty__coll_set_err(c, TY_EUNSUPPORTED, "%s: this build has no NCCL", desc);
#endif
}

static int nccl_allgather_bytes(ty_coll *c, const void *in, size_t n, void *out) {
#ifdef TY_HAVE_NCCL
  return ty__nccl_allgather_bytes(c, in, n, out);
#else
  (void)in, (void)n, (void)out;
  return ty__coll_set_err(c, TY_EUNSUPPORTED, "this build has no NCCL");
#endif
}

/* An axis set with inner axes (4, 8) as the group it names: both inner
 * axes, or one that holds all of axis 1, are axis 1 (2); one inner axis of
 * an axis 1 it splits stays itself, and may not be combined with axis 0. */
static int norm_axes(ty_coll *c, unsigned axes, unsigned *out) {
  if ((axes & 12u) == 12u || (axes & 2u)) axes = (axes & 3u) | (axes & 12u ? 2u : 0);
  for (int a = 0; a < 2; a++)
    if ((axes >> (a + 2) & 1u) && c->inner_n[a] == c->mesh_n[1]) axes = (axes & 3u) | 2u;
  if ((axes & 1u) && (axes & 12u))
    return ty__coll_set_err(c, TY_EUNSUPPORTED,
                            "axis set 0x%x: mesh axis 0 with one inner axis of axis 1 has no "
                            "communicator",
                            axes);
  *out = axes;
  return 0;
}

/* The group of a normalised axis set; NULL when it holds this rank alone. */
static ty__group *group_of(ty_coll *c, unsigned axes) {
  for (int a = 0; a < 2; a++)
    if (axes >> (a + 2) & 1u)
      return c->inner_n[a] > 1 && c->inner[a].comm != MPI_COMM_NULL ? &c->inner[a] : NULL;
  unsigned m = 0;
  for (int a = 0; a < 2; a++)
    if ((axes >> a & 1u) && c->mesh_n[a] > 1) m |= 1u << a;
  if (m == 0 || c->o.world_size <= 1) return NULL;
  if (m == 3 && c->mesh[2].comm == MPI_COMM_NULL) return NULL;
  return c->mesh[m - 1].comm == MPI_COMM_NULL ? NULL : &c->mesh[m - 1];
}

/* Whether a collective of kind on n floats may run now. */
static int runnable(ty_coll *c, const char *kind, const char *what, size_t n) {
  if (c->failed) return ty__coll_failed_before(c);
  if (n > (size_t)INT32_MAX / 16)
    return ty__coll_set_err(c, TY_EINVAL, "%s of %s: %zu floats is too many", kind, what, n);
  return 0;
}

/* Starts the check of a collective of kind on group g (desc: its
 * description, which must stay until the check's finish). */
static void check_start(ty_coll *c, ty__group *g, const char *kind, const char *what, size_t n,
                        char desc[TY__COLL_DESC], ty__check *k) {
  snprintf(desc, TY__COLL_DESC, "%s of %.180s (%zu floats)", kind, what ? what : "?", n);
  c->stats.mesh_ops++;
  ty__coll_check_start(c, g, g->seq++, fnv(desc), n, desc, k);
}

/* The check before a collective of kind on group g. */
static int checked(ty_coll *c, ty__group *g, const char *kind, const char *what, size_t n) {
  int rc = runnable(c, kind, what, n);
  if (rc != 0) return rc;
  char desc[TY__COLL_DESC];
  ty__check k;
  check_start(c, g, kind, what, n, desc, &k);
  return ty__coll_check_finish(c, &k);
}

/* Waits for a started mesh collective, counting its time. */
static int finish(ty_coll *c, MPI_Request *rq, int rc, const char *kind, uint64_t seq, int64_t t0) {
  if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, kind);
  rc = ty__coll_wait_req(c, rq, kind, seq);
  c->stats.mesh_s += (double)(ty__coll_now_us() - t0) / 1e6;
  return rc;
}

/* The kinds of a mesh collective; names as ops/plan writes them. */
typedef enum { K_ALL_REDUCE, K_ALL_GATHER, K_REDUCE_SCATTER, K_ALL_TO_ALL } kind;
static const char *const kind_names[] = {"all-reduce", "all-gather", "reduce-scatter",
                                         "all-to-all"};

/* One checked collective of kind k over the group of `axes`: in holds
 * n_in floats, out n_out (all-reduce: in place, out = in). A group of one
 * copies. */
static int group_op(ty_coll *c, ty__group *g, kind k, const float *in, size_t n_in, float *out,
                    size_t n_out, const char *what) {
  if (!g) {
    if (out != in) memcpy(out, in, n_out * sizeof *out);
    return 0;
  }
  int64_t t0 = ty__coll_now_us();
  int rc = runnable(c, kind_names[k], what, n_in);
  if (rc != 0) return rc;
  /* The check and the collective travel together; the check is waited
   * for first, so a mismatch is still named before any result is used
   * (the collective's own buffers bound what a mismatched one writes). */
  char desc[TY__COLL_DESC];
  ty__check ck;
  check_start(c, g, kind_names[k], what, n_in, desc, &ck);
  int n = (int)n_in, per = (int)(n_in / (size_t)g->size), mr;
  MPI_Request rq = MPI_REQUEST_NULL;
  switch (k) {
  case K_ALL_REDUCE:
    mr = MPI_Iallreduce(MPI_IN_PLACE, out, n, MPI_FLOAT, MPI_SUM, g->comm, &rq);
    break;
  case K_ALL_GATHER:
    mr = MPI_Iallgather(in, n, MPI_FLOAT, out, n, MPI_FLOAT, g->comm, &rq);
    break;
  case K_REDUCE_SCATTER:
    mr = MPI_Ireduce_scatter_block(in, out, (int)n_out, MPI_FLOAT, MPI_SUM, g->comm, &rq);
    break;
  default:
    mr = MPI_Ialltoall(in, per, MPI_FLOAT, out, per, MPI_FLOAT, g->comm, &rq);
    break;
  }
  c->stats.mesh_bytes += (n_in > n_out ? n_in : n_out) * sizeof(float);
  if ((rc = ty__coll_check_finish(c, &ck)) != 0) {
    c->failed = true; /* the collective may still be in flight: no more MPI */
    return rc;
  }
  return finish(c, &rq, mr, kind_names[k], g->seq, t0);
}

static int mesh_op(ty_coll *c, kind k, unsigned axes, const float *in, size_t n_in, float *out,
                   size_t n_out, const char *what) {
  int nrc = norm_axes(c, axes, &axes);
  if (nrc != 0) return nrc;
  if (on_nccl(c)) return nccl_mesh(c, kind_names[k], axes, in, n_in, out, n_out, what);
  return group_op(c, group_of(c, axes), k, in, n_in, out, n_out, what);
}

int ty_coll_world_sum(float *buf, size_t n, const char *what, void *user) {
  ty_coll *c = user;
  if (c->o.world_size <= 1) return 0;
#ifdef TY_HAVE_NCCL
  if (on_nccl(c)) { /* the data-parallel communicator: the world */
    char desc[TY__COLL_DESC];
    snprintf(desc, sizeof desc, "all-reduce of %.180s (%zu floats)", what, n);
    c->stats.mesh_ops++;
    return ty__nccl_allreduce(c, buf, n, c->world.seq++, fnv(desc), desc);
  }
#endif
  return group_op(c, &c->world, K_ALL_REDUCE, buf, n, buf, n, what);
}

int ty_coll_mesh_all_reduce(unsigned axes, float *buf, size_t n, const char *what, void *user) {
  return mesh_op(user, K_ALL_REDUCE, axes, buf, n, buf, n, what);
}

/* The ranks along one axis: 0 and 1 the mesh's, 2 and 3 the inner ones. */
static size_t axis_size(const ty_coll *c, int axis) {
  return (size_t)(axis < 2 ? c->mesh_n[axis] : c->inner_n[axis - 2]);
}

int ty_coll_mesh_all_gather(int axis, const float *in, size_t n, float *out, const char *what,
                            void *user) {
  ty_coll *c = user;
  return mesh_op(c, K_ALL_GATHER, 1u << axis, in, n, out, n * axis_size(c, axis), what);
}

int ty_coll_mesh_reduce_scatter(int axis, const float *in, size_t n_out, float *out,
                                const char *what, void *user) {
  ty_coll *c = user;
  return mesh_op(c, K_REDUCE_SCATTER, 1u << axis, in, n_out * axis_size(c, axis), out, n_out, what);
}

int ty_coll_mesh_all_to_all(int axis, const float *in, size_t chunk, float *out, const char *what,
                            void *user) {
  ty_coll *c = user;
  size_t n = chunk * axis_size(c, axis);
  return mesh_op(c, K_ALL_TO_ALL, 1u << axis, in, n, out, n, what);
}

int ty_coll_mesh_start(unsigned axes, float *buf, size_t n, const char *what, void *user) {
  ty_coll *c = user;
  int nrc = norm_axes(c, axes, &axes);
  if (nrc != 0) return nrc;
  if (on_nccl(c))
    return nccl_mesh(c, "all-reduce", axes, buf, n, buf, n, what); /* complete on return */
  ty__group *g = group_of(c, axes);
  if (!g)
    return ty__coll_set_err(c, TY_EINVAL, "gradient bucket %s: axes 0x%x hold this rank alone",
                            what, axes);
  if (c->count == TY__COLL_MAX_INFLIGHT)
    return ty__coll_set_err(c, TY_ESTATE, "more than %d all-reduces in flight",
                            TY__COLL_MAX_INFLIGHT);
  int rc = checked(c, g, "gradient bucket", what, n);
  if (rc != 0) return rc;
  c->stats.ops++;
  c->stats.bytes += n * sizeof(float);
  ty__inflight *f = &c->inflight[(c->head + c->count) % TY__COLL_MAX_INFLIGHT];
  f->seq = g->seq - 1;
  f->n = n;
  f->t0_us = ty__coll_now_us();
  f->t1_us = 0;
  rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, g->comm, &f->req);
  if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, "MPI_Iallreduce");
  c->count++;
  return 0;
}

/* ---- whole-world helpers ------------------------------------------------------------ */

int ty_coll_gather(const float *in, size_t n, float *out, void *user) {
  ty_coll *c = user;
  if (c->o.world_size <= 1) {
    memcpy(out, in, n * sizeof *out);
    return 0;
  }
  if (on_nccl(c)) { /* every rank gets it; rank 0 keeps it */
    float *all = malloc(n * c->o.world_size * sizeof *all + 1);
    int rc = all ? nccl_allgather_bytes(c, in, n * sizeof *in, all) : TY_ENOMEM;
    if (rc == 0 && c->o.rank == 0) memcpy(out, all, n * c->o.world_size * sizeof *all);
    free(all);
    return rc;
  }
  int rc = checked(c, &c->world, "gather to rank 0", "checkpoint", n);
  MPI_Request rq;
  if (rc == 0)
    rc = finish(c, &rq,
                MPI_Igather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, 0, c->world.comm, &rq),
                "MPI_Igather", c->world.seq, ty__coll_now_us());
  return rc;
}

int ty_coll_allgather_u64(ty_coll *c, uint64_t mine, uint64_t *out_all) {
  if (c->o.world_size <= 1) {
    out_all[0] = mine;
    return 0;
  }
  if (on_nccl(c)) return nccl_allgather_bytes(c, &mine, sizeof mine, out_all);
  MPI_Request rq;
  int rc = MPI_Iallgather(&mine, 1, MPI_UINT64_T, out_all, 1, MPI_UINT64_T, c->world.comm, &rq);
  return finish(c, &rq, rc, "MPI_Iallgather", c->world.seq, ty__coll_now_us());
}

int ty_coll_bcast_f64(ty_coll *c, double *v) {
  if (c->o.world_size <= 1) return 0;
  if (on_nccl(c)) {
    double *all = malloc(c->o.world_size * sizeof *all);
    int rc = all ? nccl_allgather_bytes(c, v, sizeof *v, all) : TY_ENOMEM;
    if (rc == 0) *v = all[0];
    free(all);
    return rc;
  }
  MPI_Request rq;
  int rc = MPI_Ibcast(v, 1, MPI_DOUBLE, 0, c->world.comm, &rq);
  return finish(c, &rq, rc, "MPI_Ibcast", c->world.seq, ty__coll_now_us());
}

/* The largest of every rank's two values (the stop flag, the step time). */
static int world_max2(ty_coll *c, double v[2]) {
  if (on_nccl(c)) {
    double *all = malloc(c->o.world_size * 2 * sizeof *all);
    int rc = all ? nccl_allgather_bytes(c, v, 2 * sizeof *v, all) : TY_ENOMEM;
    for (uint32_t r = 0; rc == 0 && r < c->o.world_size; r++)
      for (int k = 0; k < 2; k++)
        v[k] = fmax(v[k], all[2 * r + k]);
    free(all);
    return rc;
  }
  double out[2] = {0, 0};
  MPI_Request rq;
  int rc = MPI_Iallreduce(v, out, 2, MPI_DOUBLE, MPI_MAX, c->world.comm, &rq);
  rc = finish(c, &rq, rc, "MPI_Iallreduce (stop)", c->world.seq, ty__coll_now_us());
  if (rc == 0) memcpy(v, out, sizeof out);
  return rc;
}

int ty_coll_agree_stop(double *step_s, void *user) {
  ty_coll *c = user;
  if (c->o.world_size <= 1) return 0;
  double v[2] = {c->o.stop && ty__coll_stop_mine(c) ? 1.0 : 0.0, *step_s};
  int rc = world_max2(c, v);
  if (rc != 0) return rc;
  if (v[0] > 0 && c->o.stop) ty__coll_stop_seen(c);
  *step_s = v[1];
  return 0;
}
