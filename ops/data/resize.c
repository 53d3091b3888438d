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
 * colour conversion, as PIL resizes the converted image.
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

static uint8_t clip8(int64_t ss) {
  if (ss >= (int64_t)256 << PRECISION_BITS) return 255;
  return ss <= 0 ? 0 : (uint8_t)(ss >> PRECISION_BITS);
}

/* Output pixel i of axis a from the inputs at src[0], src[step], ... */
static uint8_t sample(const axis *a, uint32_t i, const uint8_t *src, size_t step) {
  int64_t ss = (int64_t)1 << (PRECISION_BITS - 1);
  const int32_t *k = a->k + (size_t)i * a->ksize;
  src += a->lo[i] * step;
  for (uint32_t x = 0; x < a->n[i]; x++)
    ss += (int64_t)src[x * step] * k[x];
  return clip8(ss);
}

/* One h x w plane to oh x ow: horizontal pass into tmp (h x ow), then
 * vertical; an unchanged axis is copied. */
static void resize_plane(const axis *ax, const axis *ay, const uint8_t *src, uint32_t h, uint32_t w,
                         uint32_t oh, uint32_t ow, uint8_t *tmp, uint8_t *dst) {
  for (uint32_t y = 0; y < h; y++)
    for (uint32_t x = 0; x < ow; x++)
      tmp[(size_t)y * ow + x] =
          ow == w ? src[(size_t)y * w + x] : sample(ax, x, src + (size_t)y * w, 1);
  for (uint32_t y = 0; y < oh; y++)
    for (uint32_t x = 0; x < ow; x++)
      dst[(size_t)y * ow + x] = oh == h ? tmp[(size_t)y * ow + x] : sample(ay, y, tmp + x, ow);
}

int ty__data_image_resize(uint8_t **pixels, uint32_t c, uint32_t *h, uint32_t *w, uint32_t oh,
                          uint32_t ow) {
  if (oh == *h && ow == *w) return 0;
  axis ax = {0}, ay = {0};
  uint8_t *tmp = malloc((size_t)*h * ow), *out = malloc((size_t)c * oh * ow);
  int rc = tmp && out ? 0 : TY_ENOMEM;
  if (rc == 0) rc = axis_init(&ax, *w, ow);
  if (rc == 0) rc = axis_init(&ay, *h, oh);
  for (uint32_t p = 0; rc == 0 && p < c; p++)
    resize_plane(&ax, &ay, *pixels + (size_t)p * *h * *w, *h, *w, oh, ow, tmp,
                 out + (size_t)p * oh * ow);
  axis_free(&ax);
  axis_free(&ay);
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
