/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running a fused region over concrete tensors. The loop shape is collapsed
 * to the fewest dims (adjacent dims merge when every input is contiguous or
 * broadcast across both, as ops/kernels/elementwise.c does for two), then an
 * odometer walks the outer dims and hands each inner row to the row kernel:
 * the JIT's for the row's broadcast pattern, else the interpreter. Sizes
 * are run-time loop bounds here; only the pattern (which inputs advance
 * along the row) selects the kernel.
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

typedef struct loop {
  int rank;
  int64_t dims[TY_MAX_RANK];
  int64_t st[TY__FUSE_MAX_IO][TY_MAX_RANK]; /* per input */
} loop;

static void loop_init(loop *lp, int n_in, const ty_tensor *const *ins, const ty_shape *out) {
  int64_t st[TY__FUSE_MAX_IO][TY_MAX_RANK];
  for (int i = 0; i < n_in; i++) ty_broadcast_strides(&ins[i]->shape, out, st[i]);
  lp->rank = 0;
  for (int d = 0; d < out->rank; d++) {
    if (out->dims[d] == 1) continue;
    int r = lp->rank;
    bool merge = r > 0;
    for (int i = 0; i < n_in && merge; i++) merge = st[i][d] * out->dims[d] == lp->st[i][r - 1];
    if (merge) {
      lp->dims[r - 1] *= out->dims[d];
      for (int i = 0; i < n_in; i++) lp->st[i][r - 1] = st[i][d];
      continue;
    }
    lp->dims[r] = out->dims[d];
    for (int i = 0; i < n_in; i++) lp->st[i][r] = st[i][d];
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

int ty__fgroup_run(ty__fgroup *grp, ty_jit *j, const ty_tensor *const *ins, ty_tensor *const *outs) {
  const ty__fprog *p = &grp->prog;
  const ty_shape *shape = &outs[0]->shape;
  int64_t total = ty_shape_numel(shape);
  if (total <= 0) return 0;
  loop lp;
  loop_init(&lp, p->n_in, ins, shape);
  int r = lp.rank;
  int64_t inner = r ? lp.dims[r - 1] : 1;
  uint32_t pattern = 0;
  for (int i = 0; i < p->n_in && r > 0; i++)
    if (lp.st[i][r - 1] != 0) pattern |= 1u << i;
  ty__frow_fn fn = resolve(grp, j, pattern);
  float *regs = NULL;
  if (!fn) {
    regs = calloc((size_t)p->n_regs * TY__FBLOCK, sizeof *regs);
    if (!regs) return TY_ENOMEM;
    ty__jit_count_interp(j);
  }
  const float *ip[TY__FUSE_MAX_IO];
  float *op[TY__FUSE_MAX_IO];
  int64_t idx[TY_MAX_RANK] = {0}, off[TY__FUSE_MAX_IO] = {0};
  for (int64_t row = 0; row * inner < total; row++) {
    for (int i = 0; i < p->n_in; i++) ip[i] = (const float *)ins[i]->data + off[i];
    for (int o = 0; o < p->n_out; o++) op[o] = (float *)outs[o]->data + row * inner;
    if (fn) fn(inner, ip, op, p->params);
    else ty__fprog_interp(p, pattern, inner, ip, op, regs);
    for (int d = r - 2; d >= 0; d--) { /* odometer over the outer dims */
      idx[d]++;
      for (int i = 0; i < p->n_in; i++) off[i] += lp.st[i][d];
      if (idx[d] < lp.dims[d]) break;
      for (int i = 0; i < p->n_in; i++) off[i] -= lp.st[i][d] * idx[d];
      idx[d] = 0;
    }
  }
  free(regs);
  return 0;
}
