/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pipeline's tied parameters (pipe_internal.h): a weight read by several
 * stages (a GPT's output layer tied to its token embedding) is held by
 * each, and every step the holders swap their gradient sums for it and
 * add them in stage order, so each makes the same update (Megatron's tied
 * embeddings; docs/planner.md, "Layers").
 *
 * On stage meshes of more than one device each holder keeps the block its
 * layout gives it: the plan has one layout per parameter and one mesh
 * shape for every stage, so rank i of one holder stage holds the same
 * block as rank i of another (ty_plan_slice reads a rank's coordinates
 * within its stage). The swap is then block-wise between those ranks
 * (ty__pipe_rank_of: the same replica index), after each block's gradient
 * has been summed over its own stage's axes (pipe.c).
 */
#include "ops/train/pipe_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

/* Whether parameter p (a tied one) is one this stage shares with stage s. */
static bool shared(const ty__pipe *pp, size_t p, int s) {
  uint64_t h = pp->holders[p];
  return (h & (h - 1)) && s != pp->stage && ty__pipe_holds(pp, p, s);
}

/* The bucket of the tied parameters this stage shares with stage s, in
 * parameter order (both sides list the same ones): its floats (this rank's
 * blocks) and the hash of their names; *first: the first one's name. */
static size_t bucket(const ty_train *t, int s, uint64_t *hash, const char **first) {
  const ty__pipe *pp = t->pipe;
  uint64_t h = 0xcbf29ce484222325ull;
  size_t n = 0;
  *first = NULL;
  for (size_t k = 0; k < pp->n_mine; k++) {
    size_t p = pp->mine[k];
    if (!shared(pp, p, s)) continue;
    const char *name = ty_graph_value_at(t->g, t->param_ids[p])->name;
    if (!*first) *first = name;
    h = ty__pipe_fnv(h, name, strlen(name) + 1);
    n += (size_t)ty_tensor_numel(t->params[p]);
  }
  *hash = ty__pipe_fnv(h, "tied", 4);
  return n;
}

/* Exchanges this stage's bucket for stage s (n floats, `mine`) with s's:
 * the lower stage sends first, the higher receives first (NCCL's point to
 * point blocks until the peer takes part). got: s's floats. */
static int swap(ty_train *t, int s, const float *mine, float *got, size_t n, char *err,
                size_t err_len) {
  ty__pipe *pp = t->pipe;
  const ty_train_parallel *par = t->opts.parallel;
  const char *first;
  uint64_t hash, hdr[4] = {0};
  size_t len = 0;
  bucket(t, s, &hash, &first);
  uint64_t out[4] = {t->step, (uint64_t)pp->stage, (uint64_t)pp->M, hash};
  uint64_t want[4] = {t->step, (uint64_t)s, (uint64_t)pp->M, hash};
  int rc = 0;
  for (int turn = 0; rc == 0 && turn < 2; turn++) {
    if ((turn == 0) == (pp->stage < s))
      rc = par->send(ty__pipe_rank_of(pp, s), out, mine, n, par->comm.user);
    else if ((rc = par->recv(ty__pipe_rank_of(pp, s), hdr, got, n, &len, par->comm.user)) == 0 &&
             (memcmp(hdr, want, sizeof hdr) != 0 || len != n))
      rc = TY_EINVAL;
  }
  return rc ? ty_errf(err, err_len, rc,
                      "pipeline: rank %u (stage %d), step %llu: exchanging the gradients of the "
                      "tied parameters it shares with stage %d (\"%s\" first, %zu floats) "
                      "failed: %s",
                      t->opts.rank, pp->stage, (unsigned long long)t->step, s, first, n,
                      ty_strerror(rc))
            : 0;
}

/* got[s] (malloc'd): stage s's bucket, swapped for this stage's; NULL for
 * a stage that shares none. */
static int swap_all(ty_train *t, float **got, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  int rc = 0;
  for (int s = 0; rc == 0 && s < pp->S; s++) {
    uint64_t hash;
    const char *first;
    size_t n = bucket(t, s, &hash, &first), at = 0;
    if (n == 0) continue;
    float *mine = malloc(n * sizeof *mine);
    got[s] = malloc(n * sizeof *got[s]);
    if (!mine || !got[s]) rc = TY_ENOMEM;
    for (size_t k = 0; rc == 0 && k < pp->n_mine; k++) {
      size_t p = pp->mine[k], m = (size_t)ty_tensor_numel(t->params[p]);
      if (!shared(pp, p, s)) continue;
      memcpy(mine + at, pp->acc + pp->acc_off[k], m * sizeof *mine);
      at += m;
    }
    if (rc == 0) rc = swap(t, s, mine, got[s], n, err, err_len);
    free(mine);
  }
  return rc;
}

/* Every tied parameter's gradient becomes the sum of its holders', added
 * in stage order, so that every holder gets the same bits and makes the
 * same update (Megatron's tied embeddings). One message each way per
 * pair of holder stages and step: the bucket of every tied parameter the
 * two share. */
int ty__pipe_sum_tied(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  float **got = calloc((size_t)pp->S, sizeof *got);
  size_t *at = calloc((size_t)pp->S, sizeof *at);
  int rc = got && at ? swap_all(t, got, err, err_len) : TY_ENOMEM;
  for (size_t k = 0; rc == 0 && k < pp->n_mine; k++) {
    size_t p = pp->mine[k], n = (size_t)ty_tensor_numel(t->params[p]);
    uint64_t h = pp->holders[p];
    if (!(h & (h - 1))) continue;
    float *acc = pp->acc + pp->acc_off[k], *sum = calloc(n + 1, sizeof *sum);
    if (!sum) rc = TY_ENOMEM;
    for (int s = 0; rc == 0 && s < pp->S; s++) {
      if (!ty__pipe_holds(pp, p, s)) continue;
      const float *src = s == pp->stage ? acc : got[s] + at[s];
      for (size_t e = 0; e < n; e++)
        sum[e] += src[e];
      if (s != pp->stage) at[s] += n;
    }
    if (rc == 0) memcpy(acc, sum, n * sizeof *acc);
    free(sum);
  }
  for (int s = 0; got && s < pp->S; s++)
    free(got[s]);
  free(got);
  free(at);
  const ty_train_parallel *par = t->opts.parallel;
  if (rc == 0 && pp->S > 1 && (rc = par->flush(par->comm.user)) != 0)
    rc = ty_errf(err, err_len, rc, "pipeline: rank %u: completing the tied sends: %s", t->opts.rank,
                 ty_strerror(rc));
  return rc;
}
