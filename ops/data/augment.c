/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image augmentation of training samples (data.h, ty_data_augment): a
 * random crop of the zero-padded sample and a random horizontal flip, in
 * place on the float32 values a batch slot already holds. One sample is
 * [..., H, W]: every leading index (channels) is one H x W plane, and all
 * planes of a sample take the same offset and flip, as torchvision's
 * transforms do on a [C, H, W] image. The padding is the normalised 0 of
 * the plane's channel: RandomCrop pads the picture with 0 before Normalize
 * subtracts a per-channel mean.
 *
 * The draws come from one 64-bit key (ty_mix64 of it: the vertical and
 * horizontal offsets in 0..2P and the flip bit), so a sample's augmentation
 * is a function of its key alone; the loader keys by (seed, epoch, sample).
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <string.h>

/* Shifts one h x w plane by (oy, ox): out[y][x] = in[y + oy][x + ox],
 * pad outside. In place: rows and columns are visited away from the
 * direction they are read from, so each value is read before it is
 * overwritten. */
static void shift_plane(float *p, int64_t h, int64_t w, int64_t oy, int64_t ox, float pad) {
  for (int64_t i = 0; i < h; i++) {
    int64_t y = oy >= 0 ? i : h - 1 - i, sy = y + oy;
    float *row = p + y * w;
    for (int64_t j = 0; j < w; j++) {
      int64_t x = ox >= 0 ? j : w - 1 - j, sx = x + ox;
      row[x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? p[sy * w + sx] : pad;
    }
  }
}

static void flip_plane(float *p, int64_t h, int64_t w) {
  for (int64_t y = 0; y < h; y++)
    for (int64_t x = 0, r = w - 1; x < r; x++, r--) {
      float t = p[y * w + x];
      p[y * w + x] = p[y * w + r];
      p[y * w + r] = t;
    }
}

void ty__data_augment(const ty_data_augment *a, const uint64_t *dims, uint32_t ndims,
                      const float *pads, size_t n_pads, uint64_t key, float *sample) {
  if (ndims < 2) return; /* refused when the dataset was made */
  int64_t h = (int64_t)dims[ndims - 2], w = (int64_t)dims[ndims - 1], planes = 1;
  for (uint32_t d = 0; d + 2 < ndims; d++)
    planes *= (int64_t)dims[d];
  uint64_t r = ty_mix64(key), span = 2 * (uint64_t)a->crop_padding + 1;
  int64_t oy = (int64_t)(r % span) - a->crop_padding;
  int64_t ox = (int64_t)((r >> 21) % span) - a->crop_padding;
  bool flip = a->hflip && (r >> 63);
  int64_t per_pad = planes / (int64_t)(n_pads ? n_pads : 1); /* planes of one channel */
  for (int64_t c = 0; c < planes; c++) {
    float *p = sample + c * h * w;
    if (oy || ox) shift_plane(p, h, w, oy, ox, pads[c / per_pad]);
    if (flip) flip_plane(p, h, w);
  }
}
