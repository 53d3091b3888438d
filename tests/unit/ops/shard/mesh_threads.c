/* SPDX-License-Identifier: Apache-2.0 */
/* The in-process mesh transport (see mesh_threads.h). */
#include "tests/unit/ops/shard/mesh_threads.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void mt_mesh_init(mt_mesh *m, int m0, int m1) {
  memset(m, 0, sizeof *m);
  m->mesh[0] = m0;
  m->mesh[1] = m1;
  m->world = m0 * m1;
  m->inner[0] = 1;
  m->inner[1] = m1;
  for (int a = 0; a < MT_AXIS_SETS; a++)
    for (int r = 0; r < MT_MAX_RANKS; r++) {
      pthread_mutex_init(&m->bar[a][r].mu, NULL);
      pthread_cond_init(&m->bar[a][r].cv, NULL);
    }
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
}

void mt_mesh_set_inner(mt_mesh *m, int i0, int i1) {
  m->inner[0] = i0;
  m->inner[1] = i1;
}

struct mt_msg {
  int from;
  uint64_t hdr[4];
  float *buf;
  size_t n;
  mt_msg *next;
};

void mt_mesh_close(mt_mesh *m) {
  for (int r = 0; r < MT_MAX_RANKS; r++)
    while (m->box[r]) {
      mt_msg *x = m->box[r];
      m->box[r] = x->next;
      free(x->buf);
      free(x);
    }
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->mu);
  for (int a = 0; a < MT_AXIS_SETS; a++)
    for (int r = 0; r < MT_MAX_RANKS; r++) {
      pthread_mutex_destroy(&m->bar[a][r].mu);
      pthread_cond_destroy(&m->bar[a][r].cv);
    }
}

int mt_send(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n, void *user) {
  mt_rank *r = user;
  mt_msg *x = calloc(1, sizeof *x);
  if (!x || (int)peer >= r->m->world || !(x->buf = malloc(n * sizeof *buf + 1))) {
    free(x);
    return TY_EINVAL;
  }
  x->from = r->rank;
  memcpy(x->hdr, hdr, sizeof x->hdr);
  memcpy(x->buf, buf, n * sizeof *buf);
  x->n = n;
  pthread_mutex_lock(&r->m->mu);
  mt_msg **tail = &r->m->box[peer];
  while (*tail)
    tail = &(*tail)->next;
  *tail = x;
  pthread_cond_broadcast(&r->m->cv);
  pthread_mutex_unlock(&r->m->mu);
  return 0;
}

/* The oldest message from `from` in box, unlinked; NULL when none. */
static mt_msg *take(mt_msg **box, int from) {
  for (mt_msg **p = box; *p; p = &(*p)->next)
    if ((*p)->from == from) {
      mt_msg *x = *p;
      *p = x->next;
      return x;
    }
  return NULL;
}

/* The mesh's deadline from now (timeout_ms; 0: 30 s), for
 * pthread_cond_timedwait. */
static struct timespec deadline(const mt_mesh *m) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  int ms = m->timeout_ms ? m->timeout_ms : 30000;
  until.tv_sec += ms / 1000 + (until.tv_nsec + (long)(ms % 1000) * 1000000L) / 1000000000L;
  until.tv_nsec = (until.tv_nsec + (long)(ms % 1000) * 1000000L) % 1000000000L;
  return until;
}

int mt_recv(uint32_t peer, uint64_t out_hdr[4], float *buf, size_t n, size_t *out_n, void *user) {
  mt_rank *r = user;
  struct timespec until = deadline(r->m);
  pthread_mutex_lock(&r->m->mu);
  mt_msg *x;
  int w = 0;
  while (!(x = take(&r->m->box[r->rank], (int)peer)) && w == 0)
    w = pthread_cond_timedwait(&r->m->cv, &r->m->mu, &until);
  pthread_mutex_unlock(&r->m->mu);
  if (!x) return TY_ETIMEDOUT;
  memcpy(out_hdr, x->hdr, sizeof x->hdr);
  *out_n = x->n;
  if (x->n == n) memcpy(buf, x->buf, n * sizeof *buf);
  free(x->buf);
  free(x);
  return 0;
}

int mt_flush(void *user) {
  (void)user;
  return 0;
}

/* r's coordinates: axis 0, then axis 1's inner ones. */
static void coords(const mt_mesh *m, int rank, int out[3]) {
  out[0] = rank / m->mesh[1];
  out[1] = rank % m->mesh[1] / m->inner[1];
  out[2] = rank % m->mesh[1] % m->inner[1];
}

/* The ranks of r's group over `axes`, in coordinate order (axis 1 is both
 * inner axes). */
static int group(const mt_rank *r, unsigned axes, int *out) {
  const mt_mesh *m = r->m;
  int me[3], n = 0;
  coords(m, r->rank, me);
  if (axes & 2u) axes |= 12u;
  for (int q = 0; q < m->world; q++) {
    int c[3];
    coords(m, q, c);
    if (((axes & 1u) || c[0] == me[0]) && ((axes & 4u) || c[1] == me[1]) &&
        ((axes & 8u) || c[2] == me[2]))
      out[n++] = q;
  }
  return n;
}

static int coord(const mt_rank *r, int axis) {
  int c[3];
  coords(r->m, r->rank, c);
  return axis == 0 ? c[0] : axis == 1 ? r->rank % r->m->mesh[1] : c[axis - 1];
}

/* Waits until the k ranks of group g (over axes) have all arrived, at
 * most the mesh's deadline: a peer that failed (a pipeline rank whose
 * stage message never came) never arrives, and its group must fail as
 * ops/collective's would, not wait for ever. A rank that gives up
 * withdraws its arrival, so the group's later arrivals time out too. */
static int group_wait(mt_rank *r, unsigned axes, const int *g, int k) {
  mt_gbar *b = &r->m->bar[axes % MT_AXIS_SETS][g[0]];
  struct timespec until = deadline(r->m);
  pthread_mutex_lock(&b->mu);
  unsigned gen = b->gen;
  if (++b->count == k) {
    b->count = 0;
    b->gen++;
    pthread_cond_broadcast(&b->cv);
  }
  int w = 0;
  while (gen == b->gen && w == 0)
    w = pthread_cond_timedwait(&b->cv, &b->mu, &until);
  bool late = gen == b->gen;
  if (late) b->count--;
  pthread_mutex_unlock(&b->mu);
  return late ? TY_ETIMEDOUT : 0;
}

/* Publishes in and waits for the group; done() waits until all have read. */
static int exchange(mt_rank *r, unsigned axes, const int *g, int k, const float *in) {
  r->m->slot[r->rank] = in;
  return group_wait(r, axes, g, k);
}
static int done(mt_rank *r, unsigned axes, const int *g, int k) {
  return group_wait(r, axes, g, k);
}

static int all_reduce(unsigned axes, float *buf, size_t n, const char *what, void *user) {
  (void)what;
  mt_rank *r = user;
  int g[MT_MAX_RANKS], k = group(r, axes, g);
  float *sum = calloc(n + 1, sizeof *sum);
  int rc = sum ? exchange(r, axes, g, k, buf) : TY_ENOMEM;
  for (int j = 0; rc == 0 && j < k; j++)
    for (size_t i = 0; i < n; i++)
      sum[i] += r->m->slot[g[j]][i];
  if (rc == 0) rc = done(r, axes, g, k);
  if (rc == 0) memcpy(buf, sum, n * sizeof *sum);
  free(sum);
  return rc;
}

static int all_gather(int axis, const float *in, size_t n, float *out, const char *what,
                      void *user) {
  (void)what;
  mt_rank *r = user;
  int g[MT_MAX_RANKS], k = group(r, 1u << axis, g);
  int rc = exchange(r, 1u << axis, g, k, in);
  for (int j = 0; rc == 0 && j < k; j++)
    memcpy(out + (size_t)j * n, r->m->slot[g[j]], n * sizeof *out);
  return rc ? rc : done(r, 1u << axis, g, k);
}

static int reduce_scatter(int axis, const float *in, size_t n_out, float *out, const char *what,
                          void *user) {
  (void)what;
  mt_rank *r = user;
  int g[MT_MAX_RANKS], k = group(r, 1u << axis, g), c = coord(r, axis);
  int rc = exchange(r, 1u << axis, g, k, in);
  if (rc != 0) return rc;
  memset(out, 0, n_out * sizeof *out);
  for (int j = 0; j < k; j++)
    for (size_t i = 0; i < n_out; i++)
      out[i] += r->m->slot[g[j]][(size_t)c * n_out + i];
  return done(r, 1u << axis, g, k);
}

static int all_to_all(int axis, const float *in, size_t chunk, float *out, const char *what,
                      void *user) {
  (void)what;
  mt_rank *r = user;
  int g[MT_MAX_RANKS], k = group(r, 1u << axis, g), c = coord(r, axis);
  int rc = exchange(r, 1u << axis, g, k, in);
  for (int j = 0; rc == 0 && j < k; j++)
    memcpy(out + (size_t)j * chunk, r->m->slot[g[j]] + (size_t)c * chunk, chunk * sizeof *out);
  return rc ? rc : done(r, 1u << axis, g, k);
}

ty_shard_comm mt_comm(mt_rank *r) {
  return (ty_shard_comm){.all_reduce = all_reduce,
                         .all_gather = all_gather,
                         .reduce_scatter = reduce_scatter,
                         .all_to_all = all_to_all,
                         .user = r};
}

int mt_start(unsigned axes, float *buf, size_t n, const char *what, void *user) {
  return all_reduce(axes, buf, n, what, user);
}

int mt_wait(void *user) {
  (void)user;
  return 0;
}

int mt_gather(const float *in, size_t n, float *out, void *user) {
  mt_rank *r = user;
  int g[MT_MAX_RANKS], k = group(r, 3u, g);
  int rc = exchange(r, 3u, g, k, in);
  for (int j = 0; rc == 0 && r->rank == 0 && j < r->m->world; j++)
    memcpy(out + (size_t)j * n, r->m->slot[j], n * sizeof *out);
  return rc ? rc : done(r, 3u, g, k);
}

int mt_agree_stop(double *step_s, void *user) {
  mt_rank *r = user;
  float mine[2] = {r->stop && *r->stop ? 1.0f : 0.0f, (float)*step_s};
  int g[MT_MAX_RANKS], k = group(r, 3u, g);
  int rc = exchange(r, 3u, g, k, mine);
  float most[2] = {0, 0};
  for (int j = 0; rc == 0 && j < k; j++)
    for (int i = 0; i < 2; i++)
      most[i] = fmaxf(most[i], r->m->slot[g[j]][i]);
  if (rc == 0) rc = done(r, 3u, g, k);
  if (rc == 0 && most[0] > 0 && r->stop) *r->stop = 1;
  if (rc == 0) *step_s = most[1];
  return rc;
}
