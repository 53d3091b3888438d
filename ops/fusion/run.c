/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running a fused region over concrete tensors. The loop shape is collapsed
 * to the fewest dims (adjacent dims merge when every input is contiguous or
 * broadcast across both, as ops/kernels/elementwise.c does for two), then
 * the rows (long rows cut into segments) are split over the executor's
 * threads, and each goes to the row kernel: the JIT's for the row's
 * broadcast pattern, else the interpreter. Sizes are run-time loop bounds
 * here; only the pattern (which inputs advance along the row) selects the
 * kernel. Every element is computed by the same code whatever the split,
 * so results do not depend on the thread count.
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"
#include "ops/exec.h"
#include "ops/ops_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct loop {
  int rank;
  int64_t dims[TY_MAX_RANK];
  int64_t st[TY__FUSE_MAX_IO][TY_MAX_RANK]; /* per input */
} loop;

static void loop_init(loop *lp, int n_in, const ty_tensor *const *ins, const ty_shape *out) {
  int64_t st[TY__FUSE_MAX_IO][TY_MAX_RANK];
  for (int i = 0; i < n_in; i++)
    ty_broadcast_strides(&ins[i]->shape, out, st[i]);
  lp->rank = 0;
  for (int d = 0; d < out->rank; d++) {
    if (out->dims[d] == 1) continue;
    int r = lp->rank;
    bool merge = r > 0;
    for (int i = 0; i < n_in && merge; i++)
      merge = st[i][d] * out->dims[d] == lp->st[i][r - 1];
    if (merge) {
      lp->dims[r - 1] *= out->dims[d];
      for (int i = 0; i < n_in; i++)
        lp->st[i][r - 1] = st[i][d];
      continue;
    }
    lp->dims[r] = out->dims[d];
    for (int i = 0; i < n_in; i++)
      lp->st[i][r] = st[i][d];
    lp->rank++;
  }
}

/* The row kernel for a pattern (NULL: interpret). */
static ty__frow_fn resolve(ty__fgroup *grp, ty_jit *j, uint32_t pattern) {
  for (int v = 0; v < grp->n_variants; v++)
    if (grp->variants[v].pattern == pattern) return grp->variants[v].fn;
  ty__frow_fn fn = NULL;
  char *src = NULL;
  if (j && ty__fprog_codegen(&grp->prog, pattern, &src) == 0) {
    void *sym = ty__jit_lookup(j, src, "ty_fk");
    memcpy(&fn, &sym, sizeof fn); /* object pointer to function pointer, as dlsym requires */
  }
  free(src);
  if (grp->n_variants < (int)(sizeof grp->variants / sizeof *grp->variants))
    grp->variants[grp->n_variants++] = (ty__fvariant){pattern, fn};
  return fn;
}

/* One region run split into items: item i is segment i % n_seg of row
 * i / n_seg, so a region of few long rows (the common contiguous case is
 * one row) still splits across threads. */
typedef struct job {
  const ty__fprog *p;
  const loop *lp;
  uint32_t pattern;
  ty__frow_fn fn;
  const ty_tensor *const *ins;
  ty_tensor *const *outs;
  int64_t inner, seg, n_seg;
  float *regs; /* interpreter scratch, n_regs * TY__FBLOCK floats per slot */
} job;

static void run_items(void *arg, int64_t begin, int64_t end, int slot) {
  const job *jb = arg;
  const ty__fprog *p = jb->p;
  const loop *lp = jb->lp;
  int r = lp->rank;
  float *regs = jb->regs ? jb->regs + (size_t)slot * (size_t)p->n_regs * TY__FBLOCK : NULL;
  const float *ip[TY__FUSE_MAX_IO];
  float *op[TY__FUSE_MAX_IO];
  for (int64_t it = begin; it < end; it++) {
    int64_t row = it / jb->n_seg, at = it % jb->n_seg * jb->seg;
    int64_t len = jb->inner - at < jb->seg ? jb->inner - at : jb->seg;
    int64_t off[TY__FUSE_MAX_IO] = {0}, rest = row;
    for (int d = r - 2; d >= 0; d--) { /* the row's offsets, outer dims only */
      int64_t i = rest % lp->dims[d];
      rest /= lp->dims[d];
      for (int k = 0; k < p->n_in; k++)
        off[k] += i * lp->st[k][d];
    }
    for (int k = 0; k < p->n_in; k++)
      ip[k] = (const float *)jb->ins[k]->data + off[k] + (jb->pattern >> k & 1u ? at : 0);
    for (int o = 0; o < p->n_out; o++)
      op[o] = (float *)jb->outs[o]->data + row * jb->inner + at;
    if (jb->fn)
      jb->fn(len, ip, op, p->params);
    else
      ty__fprog_interp(p, jb->pattern, len, ip, op, regs);
  }
}

int ty__fgroup_run(ty__fgroup *grp, ty_jit *j, ty_workers *w, const ty_tensor *const *ins,
                   ty_tensor *const *outs) {
  const ty__fprog *p = &grp->prog;
  const ty_shape *shape = &outs[0]->shape;
  int64_t total = ty_shape_numel(shape);
  if (total <= 0) return 0;
  loop lp;
  loop_init(&lp, p->n_in, ins, shape);
  int r = lp.rank;
  job jb = {.p = p, .lp = &lp, .ins = ins, .outs = outs, .inner = r ? lp.dims[r - 1] : 1};
  for (int i = 0; i < p->n_in && r > 0; i++)
    if (lp.st[i][r - 1] != 0) jb.pattern |= 1u << i;
  jb.fn = resolve(grp, j, jb.pattern);
  int slots = ty_workers_count(w);
  if (!jb.fn) {
    jb.regs = calloc((size_t)slots * (size_t)p->n_regs * TY__FBLOCK, sizeof *jb.regs);
    if (!jb.regs) return TY_ENOMEM;
    ty__jit_count_interp(j);
  }
  /* Segments of a multiple of TY__FBLOCK, about four per thread per row
   * when the rows are few; whole rows when they are many. */
  int64_t rows = total / jb.inner, want = 4 * (int64_t)slots;
  jb.seg = jb.inner;
  if (rows < want && jb.inner > TY__PAR_GRAIN) {
    int64_t seg = (jb.inner * rows + want - 1) / want;
    seg = (seg + TY__FBLOCK - 1) / TY__FBLOCK * TY__FBLOCK;
    jb.seg = seg < TY__PAR_GRAIN ? TY__PAR_GRAIN : seg;
  }
  jb.n_seg = (jb.inner + jb.seg - 1) / jb.seg;
  int64_t grain = (TY__PAR_GRAIN + jb.seg - 1) / jb.seg;
  ty__parallel_for(w, rows * jb.n_seg, grain, run_items, &jb);
  free(jb.regs);
  return 0;
}
