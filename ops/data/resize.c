/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The opt-in resize and center crop of decoded images, as torchvision's
 * Resize(S) and CenterCrop((H, W)) do them on a PIL image, so that a model
 * trained here sees the bytes a torchvision pipeline would have fed it:
 *   - Resize(S): the shorter side becomes S, the longer one
 *     int(S * long / short) (Python's truncation), aspect kept;
 *   - the resampling is PIL's ImagingResample with the bilinear filter: a
 *     triangle whose support grows with the downscale factor (so a
 *     downscale averages, antialiased), separable, horizontal pass first
 *     into uint8, then vertical; weights normalised per output pixel and
 *     turned into 22-bit fixed point, sums rounded and clipped as PIL's
 *     8-bit path does; an unchanged axis is not resampled;
 *   - CenterCrop: offsets int(round((size - crop) / 2.0)) with Python's
 *     round (half to even); a crop larger than the image is refused here
 *     (torchvision would pad with zeros, which is rarely what a user
 *     meant).
 * Planes are resampled one at a time ([C, H, W] in and out), after the
 * colour conversion, as PIL resizes the converted image. Tuned for
 * Resize(S) of photos a few hundred pixels wide: the sums are 32-bit as
 * PIL's (exact: see clip8), the horizontal pass does four rows per weight
 * load and the vertical one adds whole rows at a time (contiguous bytes,
 * not a column walk); bench/data measures it against PIL.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2) /* PIL's, for 8-bit images */

/* One axis' resampling: for output pixel i, inputs [lo[i], lo[i] + n[i])
 * weighted by k[i * ksize ...], in fixed point. */
typedef struct axis {
  uint32_t *lo, *n;
  int32_t *k;
  uint32_t ksize;
} axis;

static void axis_free(axis *a) {
  free(a->lo);
  free(a->n);
  free(a->k);
}

static double triangle(double x) {
  x = fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's precompute_coeffs and normalize_coeffs_8bpc for in -> out. */
static int axis_init(axis *a, uint32_t in, uint32_t out) {
  double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * fscale;
  a->ksize = (uint32_t)ceil(support) * 2 + 1;
  a->lo = malloc(out * sizeof *a->lo);
  a->n = malloc(out * sizeof *a->n);
  a->k = malloc((size_t)out * a->ksize * sizeof *a->k);
  double *w = malloc(a->ksize * sizeof *w);
  if (!a->lo || !a->n || !a->k || !w) {
    free(w);
    return TY_ENOMEM;
  }
  for (uint32_t i = 0; i < out; i++) {
    double center = (i + 0.5) * scale, ww = 0.0;
    int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > (int)in) hi = (int)in;
    uint32_t n = (uint32_t)(hi - lo);
    for (uint32_t x = 0; x < n; x++)
      ww += w[x] = triangle((x + lo - center + 0.5) * (1.0 / fscale));
    for (uint32_t x = 0; x < a->ksize; x++) {
      double v = x < n && ww != 0.0 ? w[x] / ww : 0.0;
      a->k[(size_t)i * a->ksize + x] =
          (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    a->lo[i] = (uint32_t)lo;
    a->n[i] = n;
  }
  free(w);
  return 0;
}

/* The sums fit 32 bits as in PIL: the weights are at least 0 and add up
 * to 1 << PRECISION_BITS give or take half a unit each, so a sum of
 * 8-bit pixels stays near 255 << PRECISION_BITS, far from overflow. */
static uint8_t clip8(int32_t ss) {
  if (ss >= (int32_t)256 << PRECISION_BITS) return 255;
  return ss <= 0 ? 0 : (uint8_t)(ss >> PRECISION_BITS);
}

/* One row of w pixels to ow along ax. */
static void resample_row(const axis *ax, const uint8_t *src, uint32_t ow, uint8_t *dst) {
  for (uint32_t x = 0; x < ow; x++) {
    const int32_t *k = ax->k + (size_t)x * ax->ksize;
    const uint8_t *s = src + ax->lo[x];
    int32_t ss = (int32_t)1 << (PRECISION_BITS - 1);
    for (uint32_t t = 0; t < ax->n[x]; t++)
      ss += s[t] * k[t];
    dst[x] = clip8(ss);
  }
}

/* Four rows of w pixels (src, src + w, ...) to ow along ax (dst, dst +
 * ow, ...): each weight loaded once for four sums, where one row at a
 * time spends a third of a decode + resize on loads and loop control. */
static void resample_row4(const axis *ax, const uint8_t *src, size_t w, uint32_t ow, uint8_t *dst) {
  for (uint32_t x = 0; x < ow; x++) {
    const int32_t *k = ax->k + (size_t)x * ax->ksize;
    const uint8_t *s = src + ax->lo[x];
    int32_t s0 = (int32_t)1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0, s3 = s0;
    for (uint32_t t = 0; t < ax->n[x]; t++) {
      int32_t kt = k[t];
      s0 += s[t] * kt;
      s1 += s[w + t] * kt;
      s2 += s[2 * w + t] * kt;
      s3 += s[3 * w + t] * kt;
    }
    dst[x] = clip8(s0);
    dst[ow + x] = clip8(s1);
    dst[2 * (size_t)ow + x] = clip8(s2);
    dst[3 * (size_t)ow + x] = clip8(s3);
  }
}

/* Rows [y0, y1) of an h x w plane to ow along ax, into dst's same rows. */
static void resample_rows_h(const axis *ax, const uint8_t *src, uint32_t w, uint32_t y0,
                            uint32_t y1, uint32_t ow, uint8_t *dst) {
  uint32_t y = y0;
  for (; y + 4 <= y1; y += 4)
    resample_row4(ax, src + (size_t)y * w, w, ow, dst + (size_t)y * ow);
  for (; y < y1; y++)
    resample_row(ax, src + (size_t)y * w, ow, dst + (size_t)y * ow);
}

/* Rows of ow pixels (src) to oh rows along ay, a whole row of sums at a
 * time: the inner loop runs along contiguous bytes, where one output
 * pixel at a time would walk a column, a cache line per tap. (It stays
 * scalar on x86-64's baseline SSE2, which has no 32-bit multiply.) */
static void resample_rows(const axis *ay, const uint8_t *src, uint32_t ow, uint32_t oh,
                          int32_t *restrict acc, uint8_t *restrict dst) {
  for (uint32_t y = 0; y < oh; y++, dst += ow) {
    const int32_t *k = ay->k + (size_t)y * ay->ksize;
    for (uint32_t x = 0; x < ow; x++)
      acc[x] = (int32_t)1 << (PRECISION_BITS - 1);
    for (uint32_t t = 0; t < ay->n[y]; t++) {
      const uint8_t *restrict row = src + (size_t)(ay->lo[y] + t) * ow;
      int32_t kt = k[t];
      for (uint32_t x = 0; x < ow; x++)
        acc[x] += row[x] * kt;
    }
    for (uint32_t x = 0; x < ow; x++)
      dst[x] = clip8(acc[x]);
  }
}

/* One h x w plane to oh x ow: horizontal pass, then vertical, through
 * tmp (h x ow) when both axes change; an unchanged axis is skipped. The
 * horizontal pass fills only the rows the vertical one reads, as PIL's. */
static void resize_plane(const axis *ax, const axis *ay, const uint8_t *src, uint32_t h, uint32_t w,
                         uint32_t oh, uint32_t ow, uint8_t *tmp, int32_t *acc, uint8_t *dst) {
  if (oh == h) {
    resample_rows_h(ax, src, w, 0, h, ow, dst);
    return;
  }
  if (ow != w && oh > 0) {
    resample_rows_h(ax, src, w, ay->lo[0], ay->lo[oh - 1] + ay->n[oh - 1], ow, tmp);
    src = tmp;
  }
  resample_rows(ay, src, ow, oh, acc, dst);
}

int ty__data_image_resize(uint8_t **pixels, uint32_t c, uint32_t *h, uint32_t *w, uint32_t oh,
                          uint32_t ow) {
  if (oh == *h && ow == *w) return 0;
  axis ax = {0}, ay = {0};
  uint8_t *tmp = malloc((size_t)*h * ow), *out = malloc((size_t)c * oh * ow);
  int32_t *acc = malloc(ow * sizeof *acc);
  int rc = tmp && out && acc ? 0 : TY_ENOMEM;
  if (rc == 0) rc = axis_init(&ax, *w, ow);
  if (rc == 0) rc = axis_init(&ay, *h, oh);
  for (uint32_t p = 0; rc == 0 && p < c; p++)
    resize_plane(&ax, &ay, *pixels + (size_t)p * *h * *w, *h, *w, oh, ow, tmp, acc,
                 out + (size_t)p * oh * ow);
  axis_free(&ax);
  axis_free(&ay);
  free(acc);
  free(tmp);
  if (rc != 0) {
    free(out);
    return rc;
  }
  free(*pixels);
  *pixels = out;
  *h = oh;
  *w = ow;
  return 0;
}

/* Python's int(round(v / 2.0)) for v >= 0: half to even. */
static uint32_t half_round_even(uint32_t v) {
  return v / 2 + ((v & 1) && ((v / 2) & 1));
}

int ty__data_image_crop(uint8_t **pixels, uint32_t c, uint32_t *h, uint32_t *w, uint32_t oh,
                        uint32_t ow) {
  if (oh == *h && ow == *w) return 0;
  uint32_t top = half_round_even(*h - oh), left = half_round_even(*w - ow);
  uint8_t *out = malloc((size_t)c * oh * ow);
  if (!out) return TY_ENOMEM;
  for (uint32_t p = 0; p < c; p++)
    for (uint32_t y = 0; y < oh; y++)
      memcpy(out + ((size_t)p * oh + y) * ow, *pixels + ((size_t)p * *h + top + y) * *w + left, ow);
  free(*pixels);
  *pixels = out;
  *h = oh;
  *w = ow;
  return 0;
}
