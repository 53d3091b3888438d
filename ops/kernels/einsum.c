/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Einsum: numpy's equation language (explicit "->" or implicit output,
 * "..." with broadcasting, repeated labels for diagonals, sums over labels
 * the output drops), on FLOAT and DOUBLE.
 *
 * Two evaluation paths. A two-operand float32 contraction whose labels
 * each are batch (both operands and the output), row (first and output),
 * column (second and output) or contracted (both operands only), which is
 * every attention pattern ("bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd") and
 * batched matmul, is permuted into [batch, M, K] x [batch, K, N] and runs
 * as one sgemm per batch entry. Everything else runs as one loop over the
 * product of all label sizes, accumulating in double.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_DIM (-3)

/* One term of the equation (an input's or the output's labels): where it
 * is in the string, its letters, and whether it has "...". Labels are
 * numbered: the E ellipsis dims first (right-aligned), then the 52
 * letters. */
typedef struct term {
  const char *s;
  size_t len;
  int n_letters;
  bool ell;
} term;

static int split_terms(const char *eq, term *t, int max, int *out_n, term *out_t, bool *has_out) {
  const char *arrow = strstr(eq, "->");
  const char *end = arrow ? arrow : eq + strlen(eq);
  int n = 0;
  for (const char *p = eq; p <= end; p++) {
    if (p != end && *p != ',') continue;
    if (n == max) return -1;
    t[n].s = n ? t[n - 1].s + t[n - 1].len + 1 : eq;
    t[n].len = (size_t)(p - t[n].s);
    n++;
  }
  *out_n = n;
  *has_out = arrow != NULL;
  if (arrow) *out_t = (term){.s = arrow + 2, .len = strlen(arrow + 2)};
  return 0;
}

/* Checks a term's characters; counts its letters and ellipsis. */
static int scan_term(term *t, char *why, size_t why_len) {
  t->n_letters = 0;
  t->ell = false;
  for (size_t i = 0; i < t->len; i++) {
    char c = t->s[i];
    if (c == ' ') continue;
    if (c == '.' && i + 2 < t->len && t->s[i + 1] == '.' && t->s[i + 2] == '.' && !t->ell) {
      t->ell = true;
      i += 2;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      t->n_letters++;
    } else {
      snprintf(why, why_len, "unexpected character '%c'", c);
      return -1;
    }
  }
  return 0;
}

static int letter_id(char c) {
  return c >= 'a' && c <= 'z' ? c - 'a' : 26 + (c - 'A');
}

/* Assigns one label per dim of term t (rank dims, ne of them under the
 * ellipsis, right-aligned to the E ellipsis labels). */
static void label_term(const term *t, int ne, int E, int8_t *lab) {
  int k = 0;
  for (size_t i = 0; i < t->len; i++) {
    char c = t->s[i];
    if (c == ' ') continue;
    if (c == '.') {
      for (int e = 0; e < ne; e++)
        lab[k++] = (int8_t)(E - ne + e);
      i += 2;
    } else {
      lab[k++] = (int8_t)(E + letter_id(c));
    }
  }
}

static int set_dim(ty__einsum *es, int l, int64_t d, bool ell) {
  int64_t *cur = &es->dim[l];
  if (*cur == NO_DIM || (ell && *cur == 1))
    *cur = d;
  else if (d >= 0 && *cur >= 0 && d != *cur && !(ell && d == 1))
    return -1;
  return 0;
}

static int parse_output(ty__einsum *es, const term *t, bool has_out, int E, bool any_ell,
                        const int *count, char *why, size_t why_len) {
  es->out_rank = 0;
  if (!has_out) { /* numpy's implicit output: the ellipsis, then letters seen once, sorted */
    for (int e = 0; any_ell && e < E; e++)
      es->out_lab[es->out_rank++] = (int8_t)e;
    for (int c = 0; c < 52; c++)
      if (count[c] == 1) {
        if (es->out_rank == TY_MAX_RANK)
          return snprintf(why, why_len, "the output has too many dims"), -1;
        es->out_lab[es->out_rank++] = (int8_t)(E + c);
      }
    return 0;
  }
  term o = *t;
  if (scan_term(&o, why, why_len) != 0) return -1;
  if (o.n_letters + (o.ell ? E : 0) > TY_MAX_RANK)
    return snprintf(why, why_len, "the output has too many dims"), -1;
  label_term(&o, o.ell ? E : 0, E, es->out_lab);
  es->out_rank = o.n_letters + (o.ell ? E : 0);
  for (int i = 0; i < es->out_rank; i++) {
    int l = es->out_lab[i];
    if (l >= E && count[l - E] == 0)
      return snprintf(why, why_len, "output label '%c' is in no input",
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[l - E]),
             -1;
    for (int j = 0; j < i; j++)
      if (es->out_lab[j] == l) return snprintf(why, why_len, "output label repeated"), -1;
  }
  if (!o.ell && any_ell && E > 0)
    return snprintf(why, why_len, "the inputs have \"...\" but the output does not"), -1;
  return 0;
}

int ty__einsum_parse(const char *eq, const ty_shape *shapes, int n, ty__einsum *es, char *why,
                     size_t why_len) {
  term t[TY__EINSUM_MAX_IN + 1], out;
  int nt, count[52] = {0}, E = 0;
  bool has_out, any_ell = false;
  memset(es, 0, sizeof *es);
  if (split_terms(eq, t, TY__EINSUM_MAX_IN, &nt, &out, &has_out) != 0 || nt != n)
    return snprintf(why, why_len, "needs one term per input (%d)", n), -1;
  for (int i = 0; i < n; i++) {
    if (scan_term(&t[i], why, why_len) != 0) return -1;
    int ne = shapes[i].rank - t[i].n_letters;
    if (ne < 0 || (!t[i].ell && ne != 0))
      return snprintf(why, why_len, "term %d has %d labels for rank %d", i, t[i].n_letters,
                      shapes[i].rank),
             -1;
    E = ne > E ? ne : E;
    any_ell |= t[i].ell;
  }
  es->n_in = n;
  es->n_labels = E + 52;
  for (int l = 0; l < es->n_labels; l++)
    es->dim[l] = NO_DIM;
  for (int i = 0; i < n; i++) {
    int ne = shapes[i].rank - t[i].n_letters;
    es->in_rank[i] = shapes[i].rank;
    label_term(&t[i], ne, E, es->in_lab[i]);
    for (int d = 0; d < shapes[i].rank; d++) {
      int l = es->in_lab[i][d];
      if (l >= E) count[l - E]++;
      if (set_dim(es, l, shapes[i].dims[d], l < E) != 0)
        return snprintf(why, why_len, "operand %d dim %d has size %lld, another operand's %lld", i,
                        d, (long long)shapes[i].dims[d], (long long)es->dim[l]),
               -1;
    }
  }
  if (parse_output(es, &out, has_out, E, any_ell, count, why, why_len) != 0) return -1;
  es->out_shape.rank = es->out_rank;
  for (int i = 0; i < es->out_rank; i++)
    es->out_shape.dims[i] = es->dim[es->out_lab[i]];
  return 0;
}

/* ---- evaluation --------------------------------------------------------------- */
/* Element strides per label of an operand (summed for repeated labels: a
 * diagonal; 0 for labels it lacks or broadcasts). */
static void label_strides(const ty__einsum *es, const int8_t *lab, int rank, const ty_shape *s,
                          int64_t *st) {
  int64_t ds[TY_MAX_RANK];
  memset(st, 0, (size_t)es->n_labels * sizeof *st);
  ty_shape_strides(s, ds);
  for (int d = 0; d < rank; d++)
    if (s->dims[d] != 1 || es->dim[lab[d]] == 1) st[lab[d]] += ds[d];
}

static void run_generic(const ty__einsum *es, const ty_tensor *const *in, ty_tensor *y,
                        double *acc) {
  int64_t st[TY__EINSUM_MAX_IN + 1][TY__EINSUM_MAX_LABELS], idx[TY__EINSUM_MAX_LABELS] = {0};
  int used[TY__EINSUM_MAX_LABELS], nu = 0, n = es->n_in;
  for (int i = 0; i < n; i++)
    label_strides(es, es->in_lab[i], es->in_rank[i], &in[i]->shape, st[i]);
  label_strides(es, es->out_lab, es->out_rank, &y->shape, st[n]);
  for (int l = 0; l < es->n_labels; l++)
    if (es->dim[l] != NO_DIM) used[nu++] = l;
  int64_t total = 1, off[TY__EINSUM_MAX_IN + 1] = {0};
  for (int u = 0; u < nu; u++)
    total *= es->dim[used[u]];
  for (int64_t it = 0; it < total; it++) {
    double p = 1;
    for (int i = 0; i < n; i++)
      p *= ty__getf(in[i]->dtype, in[i]->data, off[i]);
    acc[off[n]] += p;
    for (int u = nu - 1; u >= 0; u--) { /* odometer over the used labels */
      int l = used[u];
      idx[l]++;
      for (int i = 0; i <= n; i++)
        off[i] += st[i][l];
      if (idx[l] < es->dim[l]) break;
      for (int i = 0; i <= n; i++)
        off[i] -= st[i][l] * idx[l];
      idx[l] = 0;
    }
  }
}

/* Copies operand x into dst laid out in the label order `order`. */
static void gather_labels(const ty__einsum *es, const ty_tensor *x, const int8_t *lab, int rank,
                          const int *order, int no, float *dst) {
  int64_t st[TY__EINSUM_MAX_LABELS], idx[TY_MAX_RANK] = {0}, off = 0, total = 1;
  label_strides(es, lab, rank, &x->shape, st);
  for (int k = 0; k < no; k++)
    total *= es->dim[order[k]];
  for (int64_t i = 0; i < total; i++) {
    dst[i] = ty_tensor_f32(x)[off];
    for (int k = no - 1; k >= 0; k--) {
      idx[k]++;
      off += st[order[k]];
      if (idx[k] < es->dim[order[k]]) break;
      off -= st[order[k]] * idx[k];
      idx[k] = 0;
    }
  }
}

/* The matmul classes of the labels of a two-operand contraction; false
 * when a label is summed away by one operand alone or repeated. */
static bool classify(const ty__einsum *es, int *b, int *nb, int *m, int *nm, int *nn, int *nk,
                     int *k, int *ncol) {
  bool ina[TY__EINSUM_MAX_LABELS] = {0}, inb[TY__EINSUM_MAX_LABELS] = {0},
       ino[TY__EINSUM_MAX_LABELS] = {0};
  for (int d = 0; d < es->in_rank[0]; d++) {
    if (ina[es->in_lab[0][d]]) return false;
    ina[es->in_lab[0][d]] = true;
  }
  for (int d = 0; d < es->in_rank[1]; d++) {
    if (inb[es->in_lab[1][d]]) return false;
    inb[es->in_lab[1][d]] = true;
  }
  for (int d = 0; d < es->out_rank; d++)
    ino[es->out_lab[d]] = true;
  *nb = *nm = *nn = *nk = 0;
  for (int l = 0; l < es->n_labels; l++) {
    if (!ina[l] && !inb[l]) continue;
    if (ina[l] && inb[l] && ino[l])
      b[(*nb)++] = l;
    else if (ina[l] && inb[l])
      k[(*nk)++] = l;
    else if (ina[l] && ino[l])
      m[(*nm)++] = l;
    else if (inb[l] && ino[l])
      ncol[(*nn)++] = l;
    else
      return false;
  }
  return true;
}

static void concat3(int *dst, const int *a, int na, const int *b, int nb, const int *c, int nc) {
  memcpy(dst, a, (size_t)na * sizeof *a);
  memcpy(dst + na, b, (size_t)nb * sizeof *b);
  memcpy(dst + na + nb, c, (size_t)nc * sizeof *c);
}

static int64_t span_of(const ty__einsum *es, const int *l, int n) {
  int64_t p = 1;
  for (int i = 0; i < n; i++)
    p *= es->dim[l[i]];
  return p;
}

/* The sgemm path; 1 when the einsum is not of its form. */
static int run_gemm(const ty__einsum *es, const ty_tensor *const *in, ty_tensor *y) {
  int b[TY_MAX_RANK], m[TY_MAX_RANK], k[TY_MAX_RANK], nc[TY_MAX_RANK], nb, nm, nk, nn;
  if (es->n_in != 2 || y->dtype != TY_DTYPE_F32 || !classify(es, b, &nb, m, &nm, &nn, &nk, k, nc))
    return 1;
  for (int i = 0; i < 2; i++)
    for (int d = 0; d < es->in_rank[i]; d++)
      if (in[i]->shape.dims[d] != es->dim[es->in_lab[i][d]]) return 1; /* broadcast ellipsis dims */
  int64_t B = span_of(es, b, nb), M = span_of(es, m, nm), K = span_of(es, k, nk),
          N = span_of(es, nc, nn);
  int oa[3 * TY_MAX_RANK], ob[3 * TY_MAX_RANK], oy[3 * TY_MAX_RANK];
  concat3(oa, b, nb, m, nm, k, nk);  /* A as [batch, M, K] */
  concat3(ob, b, nb, k, nk, nc, nn); /* B as [batch, K, N] */
  concat3(oy, b, nb, m, nm, nc, nn); /* the product as [batch, M, N] */
  size_t na = (size_t)(B * M * K), nbb = (size_t)(B * K * N), ny = (size_t)(B * M * N);
  float *buf = malloc((na + nbb + ny + 1) * sizeof *buf);
  if (!buf) return TY_ENOMEM;
  float *pa = buf, *pb = buf + na, *py = pb + nbb;
  gather_labels(es, in[0], es->in_lab[0], es->in_rank[0], oa, nb + nm + nk, pa);
  gather_labels(es, in[1], es->in_lab[1], es->in_rank[1], ob, nb + nk + nn, pb);
  for (int64_t i = 0; i < B && M && N; i++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f,
                pa + i * M * K, (blasint)(K ? K : 1), pb + i * K * N, (blasint)N, 0.0f,
                py + i * M * N, (blasint)N);
  if (K == 0) memset(py, 0, ny * sizeof *py);
  /* py is laid out [b, m, n]: scatter it into y's label order. */
  ty__einsum back = *es;
  if (nb + nm + nn > TY_MAX_RANK) { /* the output's labels: cannot happen, and tells GCC so */
    free(buf);
    return TY_EINTERNAL;
  }
  back.n_in = 1;
  back.in_rank[0] = nb + nm + nn;
  for (int d = 0; d < back.in_rank[0]; d++)
    back.in_lab[0][d] = (int8_t)oy[d];
  ty_shape ps = {.rank = back.in_rank[0]};
  for (int d = 0; d < ps.rank; d++)
    ps.dims[d] = es->dim[oy[d]];
  ty_tensor pt = {.dtype = TY_DTYPE_F32, .shape = ps, .data = py, .nbytes = ny * sizeof *py};
  int ord[TY_MAX_RANK];
  for (int d = 0; d < es->out_rank; d++)
    ord[d] = es->out_lab[d];
  gather_labels(&back, &pt, back.in_lab[0], ps.rank, ord, es->out_rank, y->data);
  free(buf);
  return 0;
}

int ty__einsum_run(const ty__einsum *es, const ty_tensor *const *in, ty_tensor *y) {
  int rc = run_gemm(es, in, y);
  if (rc <= 0) return rc;
  int64_t ny = ty_tensor_numel(y);
  double *acc = calloc((size_t)(ny ? ny : 1), sizeof *acc);
  if (!acc) return TY_ENOMEM;
  run_generic(es, in, y, acc);
  for (int64_t i = 0; i < ny; i++)
    ty__putf(y->dtype, y->data, i, acc[i]);
  free(acc);
  return 0;
}

int ty__k_einsum(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  (void)ctx;
  if (!out[0]) return 0;
  ty_shape shapes[TY__EINSUM_MAX_IN];
  for (int i = 0; i < n->n_inputs; i++)
    shapes[i] = in[i]->shape;
  ty__einsum es;
  char why[160];
  if (ty__einsum_parse(ty_graph_node_attr_string(n, "equation", ""), shapes, n->n_inputs, &es, why,
                       sizeof why) != 0)
    return TY_EINTERNAL;
  return ty__einsum_run(&es, in, out[0]);
}
