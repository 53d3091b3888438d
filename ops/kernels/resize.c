/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resize and Upsample: the attributes, the output geometry (shared with
 * shape inference), the per-axis interpolation taps, and the forward pass.
 * The backward pass (ops/autodiff) applies the same taps' adjoint.
 *
 * Every mode of ONNX's Resize is separable: an output element is a
 * weighted sum over a few source positions on each axis, the weights of
 * one axis depending only on that axis's output index. So a resize is one
 * 1-D pass per resized axis, innermost first (the order in which ONNX's
 * reference nests them): nearest (one tap, any dtype), linear (two taps)
 * and cubic (four taps, cubic_coeff_a, exclude_outside), with the
 * coordinate transforms half_pixel, half_pixel_symmetric,
 * pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn and
 * tf_crop_and_resize (roi, extrapolation_value). Source positions past an
 * edge take the edge's value, as the reference's edge padding does.
 * Opset 18's axes and keep_aspect_ratio_policy are read; antialias is
 * refused.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const coord_names[] = {
    [TY__RESIZE_HALF_PIXEL] = "half_pixel",
    [TY__RESIZE_HALF_PIXEL_SYMMETRIC] = "half_pixel_symmetric",
    [TY__RESIZE_PYTORCH_HALF_PIXEL] = "pytorch_half_pixel",
    [TY__RESIZE_ALIGN_CORNERS] = "align_corners",
    [TY__RESIZE_ASYMMETRIC] = "asymmetric",
    [TY__RESIZE_TF_HALF_PIXEL_FOR_NN] = "tf_half_pixel_for_nn",
    [TY__RESIZE_TF_CROP_AND_RESIZE] = "tf_crop_and_resize",
};
static const char *const nearest_names[] = {
    [TY__RESIZE_ROUND_PREFER_FLOOR] = "round_prefer_floor",
    [TY__RESIZE_ROUND_PREFER_CEIL] = "round_prefer_ceil",
    [TY__RESIZE_FLOOR] = "floor",
    [TY__RESIZE_CEIL] = "ceil",
};

static int name_index(const char *s, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

/* Input slots: Upsample-7 takes scales as an attribute, Upsample-9 and
 * Resize-10 as input 1; Resize-11 on has roi, scales, sizes as 1, 2, 3. */
static void slots(const ty_graph_node *n, ty__resize_attrs *a) {
  bool v10 = n->op == TY_OP_UPSAMPLE || n->opset < 11;
  a->roi_in = v10 ? -1 : 1;
  a->scales_in = n->op == TY_OP_UPSAMPLE && n->opset < 9 ? -1 : v10 ? 1 : 2;
  a->sizes_in = v10 ? -1 : 3;
}

static int read_modes(const ty_graph_node *n, ty__resize_attrs *a, char *err, size_t len) {
  const char *mode = ty_graph_node_attr_string(n, "mode", "nearest");
  a->mode = !strcmp(mode, "nearest")                          ? TY__RESIZE_NEAREST
            : !strcmp(mode, "linear")                         ? TY__RESIZE_LINEAR
            : !strcmp(mode, "cubic") && n->op == TY_OP_RESIZE ? TY__RESIZE_CUBIC
                                                              : -1;
  if (a->mode < 0)
    return ty__node_err(err, len, n, TY_EINVAL, "attribute mode=%s: expected nearest, linear%s",
                        mode, n->op == TY_OP_RESIZE ? " or cubic" : "");
  bool v10 = n->op == TY_OP_UPSAMPLE || n->opset < 11;
  const char *ct = ty_graph_node_attr_string(n, "coordinate_transformation_mode", "half_pixel");
  a->coord = v10 ? TY__RESIZE_ASYMMETRIC : name_index(ct, coord_names, TY__RESIZE_COORD_COUNT_);
  if (a->coord < 0)
    return ty__node_err(err, len, n, TY_EINVAL,
                        "attribute coordinate_transformation_mode=%s is not an ONNX mode", ct);
  const char *nm = ty_graph_node_attr_string(n, "nearest_mode", "round_prefer_floor");
  a->nearest = v10 ? TY__RESIZE_FLOOR : name_index(nm, nearest_names, TY__RESIZE_NEAREST_COUNT_);
  if (a->nearest < 0)
    return ty__node_err(err, len, n, TY_EINVAL, "attribute nearest_mode=%s is not an ONNX mode",
                        nm);
  return 0;
}

int ty__resize_read_attrs(const ty_graph_node *n, ty__resize_attrs *a, char *err, size_t len) {
  memset(a, 0, sizeof *a);
  slots(n, a);
  int rc = read_modes(n, a, err, len);
  if (rc != 0) return rc;
  a->cubic_a = ty_graph_node_attr_float(n, "cubic_coeff_a", -0.75f);
  a->exclude_outside = ty_graph_node_attr_int(n, "exclude_outside", 0) != 0;
  a->extrapolation = ty_graph_node_attr_float(n, "extrapolation_value", 0.0f);
  if (ty_graph_node_attr_int(n, "antialias", 0) != 0)
    return ty__node_err(err, len, n, TY_EUNSUPPORTED,
                        "attribute antialias=1 is not supported (resize without it, or "
                        "low-pass filter first)");
  const char *kp = ty_graph_node_attr_string(n, "keep_aspect_ratio_policy", "stretch");
  a->keep_aspect = !strcmp(kp, "stretch")       ? 0
                   : !strcmp(kp, "not_larger")  ? 1
                   : !strcmp(kp, "not_smaller") ? 2
                                                : -1;
  if (a->keep_aspect < 0)
    return ty__node_err(err, len, n, TY_EINVAL,
                        "attribute keep_aspect_ratio_policy=%s: expected stretch, not_larger "
                        "or not_smaller",
                        kp);
  if (ty__attr_ints(n, "axes", a->axes, TY_MAX_RANK, &a->n_axes) != 0)
    return ty__node_err(err, len, n, TY_EINVAL, "attribute axes has more than %d values",
                        TY_MAX_RANK);
  return 0;
}

/* The resized axes (attribute axes, default all) as 0..rank-1 indices. */
static int resized_axes(const ty_graph_node *n, const ty__resize_attrs *a, int rank, int *axes,
                        char *err, size_t len) {
  if (a->n_axes < 0) {
    for (int d = 0; d < rank; d++)
      axes[d] = d;
    return rank;
  }
  bool seen[TY_MAX_RANK] = {false};
  for (int i = 0; i < a->n_axes; i++) {
    if (ty_axis_normalize(a->axes[i], rank, &axes[i]) != 0 || seen[axes[i]])
      return ty__node_err(err, len, n, TY_EINVAL,
                          "attribute axes: %lld is out of range or repeated for rank %d",
                          (long long)a->axes[i], rank);
    seen[axes[i]] = true;
  }
  return a->n_axes;
}

static int from_sizes(const ty_graph_node *n, const ty__resize_attrs *a, const int64_t *in,
                      const int *axes, int na, const int64_t *sizes, ty__resize_geom *g, char *err,
                      size_t len) {
  double keep = a->keep_aspect == 1 ? INFINITY : 0;
  for (int i = 0; i < na; i++) {
    int d = axes[i];
    if (sizes[i] == TY_DIM_UNKNOWN || sizes[i] == TY_DIM_BATCH) {
      if (a->keep_aspect) return ty__node_err(err, len, n, TY_EINVAL, "sizes must be known");
      g->out[d] = sizes[i];
      continue;
    }
    if (sizes[i] < 1)
      return ty__node_err(err, len, n, TY_EINVAL, "sizes[%d]=%lld: every size must be >= 1", i,
                          (long long)sizes[i]);
    g->out[d] = sizes[i];
    if (in[d] >= 1) g->scale[d] = (double)sizes[i] / (double)in[d];
    if (a->keep_aspect == 1 && g->scale[d] < keep) keep = g->scale[d];
    if (a->keep_aspect == 2 && g->scale[d] > keep) keep = g->scale[d];
  }
  if (a->keep_aspect)
    for (int i = 0; i < na; i++) {
      int d = axes[i];
      g->scale[d] = keep;
      g->out[d] = in[d] < 0 ? TY_DIM_UNKNOWN : (int64_t)floor(keep * (double)in[d] + 0.5);
    }
  return 0;
}

static int from_scales(const ty_graph_node *n, const ty__resize_attrs *a, const int64_t *in,
                       const int *axes, int na, const double *scales, ty__resize_geom *g, char *err,
                       size_t len) {
  for (int i = 0; i < na; i++) {
    int d = axes[i];
    if (!(scales[i] > 0) || !isfinite(scales[i]))
      return ty__node_err(err, len, n, TY_EINVAL, "scales[%d]=%g: every scale must be > 0", i,
                          scales[i]);
    g->scale[d] = scales[i];
    double extent = a->coord == TY__RESIZE_TF_CROP_AND_RESIZE ? g->roi_hi[d] - g->roi_lo[d] : 1;
    if (in[d] < 0) {
      g->out[d] = scales[i] == 1 && extent == 1 ? in[d] : TY_DIM_UNKNOWN;
      continue;
    }
    double o = floor((double)in[d] * extent * scales[i]);
    if (o < 1 || o > (double)INT64_MAX / 2)
      return ty__node_err(err, len, n, TY_EINVAL,
                          "scales[%d]=%g gives an output dim of %g for input dim %lld", i,
                          scales[i], o, (long long)in[d]);
    g->out[d] = (int64_t)o;
  }
  return 0;
}

int ty__resize_geom_make(const ty_graph_node *n, const ty__resize_attrs *a, int rank,
                         const int64_t *in, const double *roi, int n_roi, const double *scales,
                         int n_scales, const int64_t *sizes, int n_sizes, ty__resize_geom *g,
                         char *err, size_t len) {
  int axes[TY_MAX_RANK];
  int na = resized_axes(n, a, rank, axes, err, len);
  if (na < 0) return na;
  g->rank = rank;
  for (int d = 0; d < rank; d++) {
    g->in[d] = in[d];
    g->out[d] = in[d];
    g->scale[d] = 1;
    g->roi_lo[d] = 0;
    g->roi_hi[d] = 1;
  }
  if (a->coord == TY__RESIZE_TF_CROP_AND_RESIZE && n_roi > 0) {
    if (n_roi != 2 * na)
      return ty__node_err(err, len, n, TY_EINVAL, "roi has %d values; expected %d (2 per axis)",
                          n_roi, 2 * na);
    for (int i = 0; i < na; i++) {
      g->roi_lo[axes[i]] = roi[i];
      g->roi_hi[axes[i]] = roi[na + i];
    }
  }
  if (n_scales > 0 && n_sizes > 0)
    return ty__node_err(err, len, n, TY_EINVAL, "give scales or sizes, not both");
  if (n_sizes > 0) {
    if (n_sizes != na)
      return ty__node_err(err, len, n, TY_EINVAL, "sizes has %d values; expected %d", n_sizes, na);
    return from_sizes(n, a, in, axes, na, sizes, g, err, len);
  }
  if (n_scales > 0) {
    if (n_scales != na)
      return ty__node_err(err, len, n, TY_EINVAL, "scales has %d values; expected %d", n_scales,
                          na);
    return from_scales(n, a, in, axes, na, scales, g, err, len);
  }
  return ty__node_err(err, len, n, TY_EINVAL, "one of scales and sizes must be given");
}

/* ---- taps ---------------------------------------------------------------- */

/* The source coordinate of output index j on an axis of in_len -> out
 * (ONNX's reference: the "resized length" of align_corners and
 * tf_crop_and_resize is scale * in_len, not the rounded one). */
static double source_coord(const ty__resize_attrs *a, const ty__resize_geom *g, int d, int64_t j) {
  double s = g->scale[d], L = (double)g->in[d], M = s * L, x = (double)j;
  switch (a->coord) {
  case TY__RESIZE_HALF_PIXEL_SYMMETRIC: {
    double adj = (double)g->out[d] / M, center = L / 2;
    return center * (1 - adj) + (x + 0.5) / s - 0.5;
  }
  case TY__RESIZE_PYTORCH_HALF_PIXEL:
    return g->out[d] > 1 ? (x + 0.5) / s - 0.5 : 0;
  case TY__RESIZE_ALIGN_CORNERS:
    return M == 1 ? 0 : x * (L - 1) / (M - 1);
  case TY__RESIZE_ASYMMETRIC:
    return x / s;
  case TY__RESIZE_TF_HALF_PIXEL_FOR_NN:
    return (x + 0.5) / s;
  case TY__RESIZE_TF_CROP_AND_RESIZE: {
    double lo = g->roi_lo[d], hi = g->roi_hi[d];
    double c = M == 1 ? (hi - lo) * (L - 1) / 2 : x * (hi - lo) * (L - 1) / (M - 1);
    return c + lo * (L - 1);
  }
  default:
    return (x + 0.5) / s - 0.5;
  }
}

static int64_t nearest_index(int rule, double x) {
  double f = floor(x), r = x - f;
  if (r == 0) return (int64_t)f;
  switch (rule) {
  case TY__RESIZE_FLOOR:
    return (int64_t)f;
  case TY__RESIZE_CEIL:
    return (int64_t)f + 1;
  case TY__RESIZE_ROUND_PREFER_CEIL:
    return (int64_t)f + (r >= 0.5);
  default:
    return (int64_t)f + (r > 0.5);
  }
}

static void cubic_coeffs(double r, double A, double *c) {
  double r1 = r + 1, q = 1 - r, q1 = q + 1;
  c[0] = ((A * r1 - 5 * A) * r1 + 8 * A) * r1 - 4 * A;
  c[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
  c[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
  c[3] = ((A * q1 - 5 * A) * q1 + 8 * A) * q1 - 4 * A;
}

static int64_t clamp_index(int64_t i, int64_t len) {
  return i < 0 ? 0 : i >= len ? len - 1 : i;
}

/* Taps of output index j: taps t at source i0 + first + t, where
 * i0 = ceil(x) - 1 and the ratio r = x - i0 lies in (0, 1] (the reference
 * prefers the left neighbour). */
static void axis_taps(const ty__resize_attrs *a, ty__resize_axis *ax, int64_t j, double x) {
  int64_t *idx = ax->idx + j * ax->taps;
  float *w = ax->w + j * ax->taps;
  if (a->mode == TY__RESIZE_NEAREST) {
    idx[0] = clamp_index(nearest_index(a->nearest, x), ax->in);
    w[0] = 1;
    return;
  }
  int64_t i0 = (int64_t)ceil(x) - 1;
  double r = x - (double)i0, c[4] = {1 - r, r};
  int first = 0;
  if (a->mode == TY__RESIZE_CUBIC) {
    cubic_coeffs(r, a->cubic_a, c);
    first = -1;
  }
  double sum = 0;
  for (int t = 0; t < ax->taps; t++) {
    int64_t i = i0 + first + t;
    if (a->exclude_outside && (i < 0 || i >= ax->in)) c[t] = 0;
    sum += c[t];
  }
  for (int t = 0; t < ax->taps; t++) {
    idx[t] = clamp_index(i0 + first + t, ax->in);
    w[t] = (float)(a->exclude_outside ? c[t] / sum : c[t]);
  }
}

static void axis_make(const ty__resize_attrs *a, const ty__resize_geom *g, int d,
                      ty__resize_axis *ax) {
  ax->in = g->in[d];
  ax->out = g->out[d];
  ax->taps = a->mode == TY__RESIZE_NEAREST ? 1 : a->mode == TY__RESIZE_LINEAR ? 2 : 4;
  ax->idx = ty_xmalloc((size_t)(ax->out * ax->taps) * sizeof *ax->idx);
  ax->w = ty_xmalloc((size_t)(ax->out * ax->taps) * sizeof *ax->w);
  ax->outside = NULL;
  bool crop = a->coord == TY__RESIZE_TF_CROP_AND_RESIZE;
  if (crop) ax->outside = ty_xcalloc((size_t)ax->out, 1);
  for (int64_t j = 0; j < ax->out; j++) {
    double x = source_coord(a, g, d, j);
    if (crop && (x < 0 || x > (double)(ax->in - 1))) ax->outside[j] = 1;
    axis_taps(a, ax, j, x);
  }
}

/* Whether axis d changes nothing: same length and the identity transform
 * (every mode but tf_crop_and_resize maps j to j when scale is 1). */
static bool axis_identity(const ty__resize_attrs *a, const ty__resize_geom *g, int d) {
  return g->in[d] == g->out[d] && g->scale[d] == 1 && a->coord != TY__RESIZE_TF_CROP_AND_RESIZE;
}

static int read_doubles(const ty_tensor *t, double *out, int max) {
  if (!t) return 0;
  int64_t n = ty_tensor_numel(t);
  if (n > max) return -1;
  for (int64_t i = 0; i < n; i++)
    out[i] = ty__getf(t->dtype, t->data, i);
  return (int)n;
}

static int read_ints(const ty_tensor *t, int64_t *out, int max) {
  if (!t) return 0;
  int64_t n = ty_tensor_numel(t);
  if (n > max) return -1;
  for (int64_t i = 0; i < n; i++)
    out[i] = ty__geti(t->dtype, t->data, i);
  return (int)n;
}

/* Upsample-7's attribute scales; -1 when it is not a float list that fits. */
static int attr_scales(const ty_graph_node *n, double *out) {
  const ty_graph_attr *at = ty_graph_node_attr(n, "scales");
  if (!at) return 0;
  if (at->type != TY_ATTR_FLOATS || at->n > TY_MAX_RANK) return -1;
  for (size_t i = 0; i < at->n; i++)
    out[i] = at->floats[i];
  return (int)at->n;
}

static const ty_tensor *slot(const ty_tensor *const *in, int n_in, int i) {
  return i >= 0 && i < n_in ? in[i] : NULL;
}

int ty__resize_plan_make(const ty_graph_node *n, const ty_tensor *const *in, int n_in,
                         ty__resize_plan *p, char *err, size_t len) {
  memset(p, 0, sizeof *p);
  int rc = ty__resize_read_attrs(n, &p->attrs, err, len);
  if (rc != 0) return rc;
  const ty__resize_attrs *a = &p->attrs;
  double roi[2 * TY_MAX_RANK], sc[TY_MAX_RANK];
  int64_t sizes[TY_MAX_RANK];
  int nr = read_doubles(slot(in, n_in, a->roi_in), roi, 2 * TY_MAX_RANK);
  int ns = a->scales_in < 0 ? 0 : read_doubles(slot(in, n_in, a->scales_in), sc, TY_MAX_RANK);
  int nz = read_ints(slot(in, n_in, a->sizes_in), sizes, TY_MAX_RANK);
  if (a->scales_in < 0) ns = attr_scales(n, sc);
  if (nr < 0 || ns < 0 || nz < 0)
    return ty__node_err(err, len, n, TY_EINVAL, "roi, scales or sizes has too many values");
  const ty_shape *xs = &in[0]->shape;
  rc = ty__resize_geom_make(n, a, xs->rank, xs->dims, roi, nr, sc, ns, sizes, nz, &p->geom, err,
                            len);
  if (rc != 0) return rc;
  for (int d = 0; d < xs->rank; d++) {
    if (axis_identity(a, &p->geom, d)) continue;
    if (p->geom.in[d] < 1)
      return ty__node_err(err, len, n, TY_EINVAL, "cannot resize dim %d of length 0", d);
    axis_make(a, &p->geom, d, &p->ax[d]);
    p->active[d] = true;
  }
  return 0;
}

void ty__resize_plan_free(ty__resize_plan *p) {
  for (int d = 0; d < TY_MAX_RANK; d++) {
    free(p->ax[d].idx);
    free(p->ax[d].w);
    free(p->ax[d].outside);
  }
  memset(p, 0, sizeof *p);
}

/* ---- the forward pass ---------------------------------------------------- */

typedef struct pass {
  const ty__resize_axis *ax;
  int64_t inner;
  ty_dtype dt; /* float for linear and cubic */
  size_t es;
  bool copy; /* nearest: move elements of any dtype */
  float fill;
  const char *src;
  char *dst;
} pass;

static void pass_rows(void *arg, int64_t begin, int64_t end, int slot_) {
  (void)slot_;
  const pass *p = arg;
  const ty__resize_axis *ax = p->ax;
  int64_t inner = p->inner;
  for (int64_t o = begin; o < end; o++)
    for (int64_t j = 0; j < ax->out; j++) {
      char *yr = p->dst + (size_t)((o * ax->out + j) * inner) * p->es;
      const int64_t *idx = ax->idx + j * ax->taps;
      const float *w = ax->w + j * ax->taps;
      if (ax->outside && ax->outside[j]) {
        for (int64_t i = 0; i < inner; i++)
          ty__putf(p->dt, yr, i, p->fill);
      } else if (p->copy) {
        memcpy(yr, p->src + (size_t)((o * ax->in + idx[0]) * inner) * p->es, (size_t)inner * p->es);
      } else {
        float *y = (float *)yr;
        const float *x0 = (const float *)p->src + (o * ax->in + idx[0]) * inner;
        for (int64_t i = 0; i < inner; i++)
          y[i] = w[0] * x0[i];
        for (int t = 1; t < ax->taps; t++) {
          const float *xt = (const float *)p->src + (o * ax->in + idx[t]) * inner;
          for (int64_t i = 0; i < inner; i++)
            y[i] += w[t] * xt[i];
        }
      }
    }
}

static int64_t prod(const int64_t *dims, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; d++)
    n *= dims[d];
  return n;
}

static int64_t grain_of(int64_t row) {
  return row >= TY__PAR_GRAIN ? 1 : TY__PAR_GRAIN / (row > 0 ? row : 1);
}

void ty__resize_forward(const ty__resize_plan *p, const ty_tensor *x, ty_tensor *y, ty_workers *w) {
  int r = p->geom.rank, last = -1;
  size_t es = ty_dtype_size(x->dtype);
  for (int d = 0; d < r; d++)
    if (p->active[d] && last < 0) last = d; /* the last pass is the outermost axis */
  if (last < 0) {
    memcpy(y->data, x->data, (size_t)ty_tensor_numel(x) * es);
    return;
  }
  int64_t dims[TY_MAX_RANK];
  memcpy(dims, p->geom.in, (size_t)r * sizeof *dims);
  const char *src = x->data;
  char *tmp = NULL;
  for (int d = r - 1; d >= 0; d--) {
    if (!p->active[d]) continue;
    int64_t outer = prod(dims, 0, d), inner = prod(dims, d + 1, r);
    dims[d] = p->geom.out[d];
    char *dst = d == last ? y->data : ty_xmalloc((size_t)prod(dims, 0, r) * es);
    pass ps = {.ax = &p->ax[d],
               .inner = inner,
               .dt = x->dtype,
               .es = es,
               .copy = p->attrs.mode == TY__RESIZE_NEAREST,
               .fill = p->attrs.extrapolation,
               .src = src,
               .dst = dst};
    ty__parallel_for(w, outer, grain_of(dims[d] * inner), pass_rows, &ps);
    free(tmp);
    tmp = dst == y->data ? NULL : dst;
    src = dst;
  }
}

int ty__k_resize(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  if (!out[0]) return 0;
  ty__resize_plan p;
  char err[160];
  int rc = ty__resize_plan_make(n, in, n->n_inputs, &p, err, sizeof err);
  if (rc != 0) return rc;
  ty__resize_forward(&p, in[0], out[0], ctx ? ctx->workers : NULL);
  ty__resize_plan_free(&p);
  return 0;
}
