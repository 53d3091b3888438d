/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/data internals shared between file.c (types, file mapping), npy.c,
 * idx.c, dataset.c and loader.c.
 */
#ifndef TY_OPS_DATA_DATA_INTERNAL_H
#define TY_OPS_DATA_DATA_INTERNAL_H

#include "ops/data/data.h"

#include <stddef.h>
#include <stdint.h>

/* Maps the whole file at path read-only into *out_bytes / *out_len (an
 * empty file gives len 0 and no mapping). what names the expected kind in
 * messages ("an IDX file"). TY_ENOTFOUND: "PATH: missing"; TY_EINVAL for a
 * directory; TY_EIO otherwise. The caller frees st. */
int ty__data_map(const char *path, const char *what, const uint8_t **out_bytes, size_t *out_len,
                 ty_data_storage *st, char *err, size_t err_len);
void ty__data_storage_free(ty_data_storage *st);
/* npz.c: true when buf starts with a zip local header ("PK\3\4"). */
bool ty__data_is_zip(const uint8_t *buf, size_t len);
/* npz.c: TY_EINVAL saying path is an .npz whose array must be named, and
 * which it holds (or why it cannot be read). */
int ty__data_npz_refuse(const char *path, char *err, size_t err_len);
/* True when buf starts with the gzip magic 0x1f 0x8b. */
bool ty__data_is_gzip(const uint8_t *buf, size_t len);
/* "(3, 4)" / "(5,)" / "()" as numpy prints shapes. */
void ty__data_shape_str(const uint64_t *dims, uint32_t ndims, char *buf, size_t len);
/* augment.c: sample ([..., H, W] float32 values of a sample of shape
 * dims[0..ndims)) cropped and flipped as a says, with the draws of key;
 * pads[0..n_pads) are the normalised values of a padded 0: one for every
 * plane (n_pads 1) or one per channel, dims[0] (n_pads == dims[0], ndims
 * >= 3). */
void ty__data_augment(const ty_data_augment *a, const uint64_t *dims, uint32_t ndims,
                      const float *pads, size_t n_pads, uint64_t key, float *sample);
/* resize.c: *pixels ([c, *h, *w] uint8, malloc'ed) resampled to oh x ow
 * as PIL's resize(BILINEAR), or cropped to oh x ow at torchvision's
 * CenterCrop offsets (oh <= *h, ow <= *w); *pixels is replaced and *h, *w
 * updated on success, left alone on TY_ENOMEM. */
int ty__data_image_resize(uint8_t **pixels, uint32_t c, uint32_t *h, uint32_t *w, uint32_t oh,
                          uint32_t ow);
int ty__data_image_crop(uint8_t **pixels, uint32_t c, uint32_t *h, uint32_t *w, uint32_t oh,
                        uint32_t ow);
/* The .npy parser's core, also used by the token reader. */
int ty__npy_to_array(const uint8_t *bytes, size_t len, const char *path, ty_data_array *a,
                     char *err, size_t err_len);

#endif
