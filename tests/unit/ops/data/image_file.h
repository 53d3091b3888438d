/* SPDX-License-Identifier: Apache-2.0 */
/* PNG and JPEG files written by the tests (ops/data and ops/train) with
 * libpng and libjpeg, the libraries the reader decodes them with. */
#ifndef TY_TESTS_OPS_DATA_IMAGE_FILE_H
#define TY_TESTS_OPS_DATA_IMAGE_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Writes a w x h PNG of libpng's color type (PNG_COLOR_TYPE_*) and bit
 * depth: rows are packed as the PNG holds them (interleaved channels, depths
 * below 8 packed high bits first, 16-bit big-endian). A palette image takes
 * n_palette RGB entries. Returns the file's size. */
size_t png_file(const char *path, uint32_t w, uint32_t h, int color_type, int depth,
                const uint8_t *rows, const uint8_t *palette, int n_palette);
/* Writes a w x h JPEG of components 1 (grayscale), 3 (RGB, stored as
 * YCbCr) or 4 (CMYK, stored as Adobe CMYK) at quality 95. Returns the
 * file's size. */
size_t jpeg_file(const char *path, uint32_t w, uint32_t h, int components, const uint8_t *px);
/* Writes the first n bytes of src to dst (a truncated copy). */
void cut_file(const char *src, const char *dst, size_t n);

#endif
