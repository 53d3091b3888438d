/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pipeline's tied parameters (pipe_internal.h): a weight read by several
 * stages (a GPT's output layer tied to its token embedding) is held whole
 * by each, and every step the holders swap their gradient sums for it and
 * add them in stage order, so each makes the same update (Megatron's tied
 * embeddings; docs/planner.md, "Layers").
 */
#include "ops/train/pipe_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

/* The message of tied parameter p's gradient sum from stage s. */
static void tied_hdr(const ty_train *t, size_t p, int s, uint64_t hdr[4]) {
  const char *name = ty_graph_value_at(t->g, t->param_ids[p])->name;
  uint64_t h = ty__pipe_fnv(0xcbf29ce484222325ull, name, strlen(name));
  hdr[0] = t->step, hdr[1] = (uint64_t)s, hdr[2] = (uint64_t)t->pipe->M,
  hdr[3] = ty__pipe_fnv(h, "tied", 4);
}

/* Exchanges this stage's n floats of tied parameter p with stage s: the
 * lower stage sends first, the higher receives first (NCCL's point to
 * point blocks until the peer takes part). got: s's floats. */
static int tied_swap(ty_train *t, size_t p, int s, const float *mine, float *got, size_t n,
                     char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  const ty_train_parallel *par = t->opts.parallel;
  uint64_t out[4], want[4], hdr[4] = {0};
  tied_hdr(t, p, pp->stage, out);
  tied_hdr(t, p, s, want);
  size_t len = 0;
  int rc = 0;
  for (int turn = 0; rc == 0 && turn < 2; turn++) {
    if ((turn == 0) == (pp->stage < s))
      rc = par->send(ty__pipe_rank_of(pp, s), out, mine, n, par->comm.user);
    else if ((rc = par->recv(ty__pipe_rank_of(pp, s), hdr, got, n, &len, par->comm.user)) == 0 &&
             (memcmp(hdr, want, sizeof hdr) != 0 || len != n))
      rc = TY_EINVAL;
  }
  return rc ? ty_errf(err, err_len, rc,
                      "pipeline: rank %u (stage %d), step %llu: exchanging the gradient of the "
                      "tied parameter \"%s\" with stage %d failed: %s",
                      t->opts.rank, pp->stage, (unsigned long long)t->step,
                      ty_graph_value_at(t->g, t->param_ids[p])->name, s, ty_strerror(rc))
            : 0;
}

/* Every tied parameter's gradient becomes the sum of its holders', added
 * in stage order, so that every holder gets the same bits and makes the
 * same update (Megatron's tied embeddings). */
int ty__pipe_sum_tied(ty_train *t, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < pp->n_mine; k++) {
    size_t p = pp->mine[k], n = (size_t)ty_tensor_numel(t->params[p]);
    uint64_t h = pp->holders[p];
    if (!(h & (h - 1))) continue;
    float *acc = pp->acc + pp->acc_off[k];
    float *got = malloc((size_t)pp->S * n * sizeof *got + 1), *sum = calloc(n + 1, sizeof *sum);
    if (!got || !sum) rc = TY_ENOMEM;
    for (int s = 0; rc == 0 && s < pp->S; s++)
      if (ty__pipe_holds(pp, p, s) && s != pp->stage)
        rc = tied_swap(t, p, s, acc, got + (size_t)s * n, n, err, err_len);
    for (int s = 0; rc == 0 && s < pp->S; s++) {
      const float *src = s == pp->stage ? acc : got + (size_t)s * n;
      for (size_t e = 0; ty__pipe_holds(pp, p, s) && e < n; e++)
        sum[e] += src[e];
    }
    if (rc == 0) memcpy(acc, sum, n * sizeof *acc);
    free(got);
    free(sum);
  }
  const ty_train_parallel *par = t->opts.parallel;
  if (rc == 0 && pp->S > 1 && (rc = par->flush(par->comm.user)) != 0)
    rc = ty_errf(err, err_len, rc, "pipeline: rank %u: completing the tied sends: %s", t->opts.rank,
                 ty_strerror(rc));
  return rc;
}
