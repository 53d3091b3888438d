/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MatMul (numpy rules: batch dims broadcast, 1-D operands promoted) as a
 * batched product of strided matrices, forward here and both gradients in
 * ops/autodiff/kernels_grad_nn.c through the same driver (ty__mm_batched).
 *
 * An operand may be read through a permutation of its stored dims (the
 * node attributes TY__MM_PERM_A / TY__MM_PERM_B, set by
 * ty__fold_transpose_matmul when it folds a Transpose into the MatMul):
 * attention's heads ([N, T, H, D] read as [N, H, T, D]) and K^T, and a
 * Linear layer's W^T, are then matrices with a leading dimension or
 * transposed, which the GEMM reads in place instead of a copy. A matrix
 * needs one of its two dims at stride 1; a gradient written to a
 * transposed operand is computed as C^T = B^T A^T.
 *
 * Each GEMM is one ty__sgemm: the calls depend on the shapes only, so
 * results are the same whatever the thread count. Products whose batch
 * entries are rows of one matrix (a Linear layer on [N, T, C]) run as one
 * GEMM split over the threads; otherwise the entries are split over the
 * threads, or, where C is broadcast (a gradient summed over the batch),
 * run in order, each adding into C.
 */
#include "ops/exec.h"
#include "ops/gemm_dnnl.h"
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <string.h>

#define MM_PAR_MIN_MACS (1 << 18)

static void contiguous_strides(const ty_shape *s, int64_t *st) {
  int64_t acc = 1;
  for (int d = s->rank - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= s->dims[d];
  }
}

int ty__mm_view_of(const ty_graph_node *n, int i, const ty_shape *s, ty__mm_view *v) {
  int64_t st[TY_MAX_RANK];
  contiguous_strides(s, st);
  const ty_graph_attr *perm =
      n ? ty_graph_node_attr(n, i == 0 ? TY__MM_PERM_A : TY__MM_PERM_B) : NULL;
  v->dims = *s;
  memcpy(v->st, st, sizeof st);
  if (perm) {
    bool seen[TY_MAX_RANK] = {false};
    if (perm->type != TY_ATTR_INTS || s->rank < 2 || perm->n != (size_t)s->rank) return TY_EINVAL;
    for (int d = 0; d < s->rank; d++) {
      int64_t p = perm->ints[d];
      if (p < 0 || p >= s->rank || seen[p]) return TY_EINVAL;
      seen[p] = true;
      v->dims.dims[d] = s->dims[p];
      v->st[d] = st[p];
    }
    /* A matrix the GEMM can read: one of its dims at stride 1. */
    int r = s->rank;
    if (v->st[r - 1] != 1 && v->st[r - 2] != 1 && v->dims.dims[r - 1] > 1 &&
        v->dims.dims[r - 2] > 1)
      return TY_EINVAL;
  }
  if (s->rank == 1) { /* [K] is [1, K] on the left, [K, 1] on the right */
    int64_t k = s->dims[0];
    v->dims = i == 0 ? ty_shape_make(2, (int64_t[]){1, k}) : ty_shape_make(2, (int64_t[]){k, 1});
    v->st[0] = i == 0 ? k : 1;
    v->st[1] = 1;
  }
  return 0;
}

ty__mm_mat ty__mm_mat_of(const ty__mm_view *v, const ty_shape *batch, const float *p, bool swap) {
  ty__mm_mat m = {.p = (float *)p};
  int r = v->dims.rank, vb = r - 2;
  for (int d = 0; d < batch->rank; d++) {
    int od = d - (batch->rank - vb);
    m.st[d] = od < 0 || (v->dims.dims[od] == 1 && batch->dims[d] != 1) ? 0 : v->st[od];
  }
  m.sr = swap ? v->st[r - 1] : v->st[r - 2];
  m.sc = swap ? v->st[r - 2] : v->st[r - 1];
  return m;
}

static int64_t max3(int64_t a, int64_t b, int64_t c) {
  int64_t m = a > b ? a : b;
  return m > c ? m : c;
}

static ty__mm_mat swapped(const ty__mm_mat *x) {
  ty__mm_mat s = *x;
  s.sr = x->sc;
  s.sc = x->sr;
  return s;
}

/* One product of matrices a (m x k), b (k x n), c (m x n) at their bases. */
static void gemm_mats(ty_workers *w, const ty__mm_mat *a, const ty__mm_mat *b, const ty__mm_mat *c,
                      int64_t m, int64_t n, int64_t k, float beta) {
  if (c->sc != 1 && (c->sr == 1 || m == 1)) { /* C stored transposed: C^T = B^T A^T */
    ty__mm_mat at = swapped(a), bt = swapped(b), ct = swapped(c);
    gemm_mats(w, &bt, &at, &ct, n, m, k, beta);
    return;
  }
  bool ta = a->sc != 1 && (a->sr == 1 || k == 1), tb = b->sc != 1 && (b->sr == 1 || n == 1);
  /* A dim of size 1 leaves its stride free: the leading dims only need to
   * be at least what cblas asks for. */
  int64_t lda = ta ? max3(a->sc, m, 1) : max3(a->sr, k, 1);
  int64_t ldb = tb ? max3(b->sc, k, 1) : max3(b->sr, n, 1);
  int64_t ldc = max3(c->sr, n, 1);
  ty__sgemm(w, ta, tb, m, n, k, 1.0f, a->p, lda, b->p, ldb, beta, c->p, ldc);
}

/* True when the batch entries of x follow one another along a matrix dim
 * of stride inner and length len (so entries and that dim form one dim). */
static bool chained(const int64_t *st, const ty_shape *batch, int64_t inner, int64_t len) {
  int64_t want = inner * len;
  for (int d = batch->rank - 1; d >= 0; d--) {
    if (batch->dims[d] == 1) continue;
    if (st[d] != want) return false;
    want *= batch->dims[d];
  }
  return true;
}

static bool all_zero(const int64_t *st, const ty_shape *batch) {
  for (int d = 0; d < batch->rank; d++)
    if (batch->dims[d] != 1 && st[d] != 0) return false;
  return true;
}

static bool any_zero(const int64_t *st, const ty_shape *batch) {
  for (int d = 0; d < batch->rank; d++)
    if (batch->dims[d] != 1 && st[d] == 0) return true;
  return false;
}

typedef struct mm_job {
  const ty_shape *batch;
  const ty__mm_mat *a, *b, *c;
  int64_t m, n, k;
  float beta;
} mm_job;

static ty__mm_mat entry(const ty__mm_mat *x, const ty_shape *batch, int64_t linear) {
  ty__mm_mat e = *x;
  for (int d = batch->rank - 1; d >= 0; d--) {
    e.p += (linear % batch->dims[d]) * x->st[d];
    linear /= batch->dims[d];
  }
  return e;
}

static void mm_entries(void *arg, int64_t begin, int64_t end, int slot) {
  (void)slot;
  const mm_job *j = arg;
  for (int64_t i = begin; i < end; i++) {
    ty__mm_mat a = entry(j->a, j->batch, i), b = entry(j->b, j->batch, i),
               c = entry(j->c, j->batch, i);
    gemm_mats(NULL, &a, &b, &c, j->m, j->n, j->k, j->beta);
  }
}

void ty__mm_batched(ty_workers *w, const ty_shape *batch, const ty__mm_mat *a, const ty__mm_mat *b,
                    const ty__mm_mat *c, int64_t m, int64_t n, int64_t k, size_t c_numel) {
  int64_t nb = ty_shape_numel(batch);
  if (nb == 0 || m == 0 || n == 0 || k == 0) { /* C is empty, or all zeros */
    if (c_numel) memset(c->p, 0, c_numel * sizeof(float));
    return;
  }
  if (all_zero(b->st, batch) && a->sc == 1 && c->sc == 1 && chained(a->st, batch, a->sr, m) &&
      chained(c->st, batch, c->sr, m)) { /* entries are rows of A and C: one GEMM */
    gemm_mats(w, a, b, c, nb * m, n, k, 0.0f);
    return;
  }
  if (all_zero(c->st, batch) && a->sr == 1 && b->sc == 1 && chained(a->st, batch, a->sc, k) &&
      chained(b->st, batch, b->sr, k)) { /* C summed over entries along K: one GEMM */
    gemm_mats(w, a, b, c, m, n, nb * k, 0.0f);
    return;
  }
  mm_job j = {.batch = batch, .a = a, .b = b, .c = c, .m = m, .n = n, .k = k};
  if (any_zero(c->st, batch)) { /* C broadcast: entries add into it in order */
    memset(c->p, 0, c_numel * sizeof(float));
    for (int64_t i = 0; i < nb; i++) {
      ty__mm_mat ea = entry(a, batch, i), eb = entry(b, batch, i), ec = entry(c, batch, i);
      gemm_mats(w, &ea, &eb, &ec, m, n, k, 1.0f);
    }
    return;
  }
  /* Entries of at least MM_PAR_MIN_MACS work each, else in one call. */
  int64_t grain = (int64_t)(MM_PAR_MIN_MACS / ((double)m * (double)n * (double)k)) + 1;
  ty__parallel_for(w, nb, grain, mm_entries, &j);
}

static ty__mm_mat from_test(const ty__mm_test_mat *x) {
  return (ty__mm_mat){.p = x->p, .st = {x->st[0], x->st[1]}, .sr = x->sr, .sc = x->sc};
}

void ty__mm_batched_2d(ty_workers *w, const int64_t batch[2], const ty__mm_test_mat *a,
                       const ty__mm_test_mat *b, const ty__mm_test_mat *c, int64_t m, int64_t n,
                       int64_t k, size_t c_numel) {
  ty_shape bs = ty_shape_make(2, batch);
  ty__mm_mat ma = from_test(a), mb = from_test(b), mc = from_test(c);
  ty__mm_batched(w, &bs, &ma, &mb, &mc, m, n, k, c_numel);
}

int ty__mm_batch(const ty__mm_view *a, const ty__mm_view *b, ty_shape *batch) {
  ty_shape ba = ty_shape_make(a->dims.rank - 2, a->dims.dims),
           bb = ty_shape_make(b->dims.rank - 2, b->dims.dims);
  return ty_shape_broadcast(&ba, &bb, batch) != 0 ? TY_EINTERNAL : 0;
}

int ty__k_matmul(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  ty_tensor *y = out[0];
  if (!y) return 0;
  ty__mm_view va, vb;
  ty_shape batch;
  if (ty__mm_view_of(n, 0, &in[0]->shape, &va) != 0 ||
      ty__mm_view_of(n, 1, &in[1]->shape, &vb) != 0 || ty__mm_batch(&va, &vb, &batch) != 0)
    return TY_EINTERNAL; /* shape inference refused these */
  int64_t m = va.dims.dims[va.dims.rank - 2], k = va.dims.dims[va.dims.rank - 1],
          nn = vb.dims.dims[vb.dims.rank - 1];
  ty__mm_mat a = ty__mm_mat_of(&va, &batch, in[0]->data, false),
             b = ty__mm_mat_of(&vb, &batch, in[1]->data, false),
             c = {.p = y->data, .sr = nn, .sc = 1};
  int64_t acc = m * nn;
  for (int d = batch.rank - 1; d >= 0; d--) {
    c.st[d] = acc;
    acc *= batch.dims[d];
  }
  ty__mm_batched(ctx->workers, &batch, &a, &b, &c, m, nn, k, (size_t)ty_tensor_numel(y));
  return 0;
}
