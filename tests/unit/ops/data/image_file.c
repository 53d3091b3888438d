/* SPDX-License-Identifier: Apache-2.0 */
/* PNG and JPEG files written by the tests (image_file.h). */
#include "tests/unit/ops/data/image_file.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>

#include <criterion/criterion.h>
#include <jpeglib.h>
#include <png.h>

size_t png_file(const char *path, uint32_t w, uint32_t h, int color_type, int depth,
                const uint8_t *rows, const uint8_t *palette, int n_palette) {
  FILE *f = fopen(path, "wb");
  cr_assert(f, "%s", path);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  cr_assert(png && info);
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (palette) {
    png_color pal[256];
    for (int i = 0; i < n_palette; i++)
      pal[i] = (png_color){palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]};
    png_set_PLTE(png, info, pal, n_palette);
  }
  png_write_info(png, info);
  size_t stride = png_get_rowbytes(png, info);
  for (uint32_t y = 0; y < h; y++)
    png_write_row(png, rows + y * stride);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  long size = ftell(f);
  fclose(f);
  return (size_t)size;
}

size_t jpeg_file(const char *path, uint32_t w, uint32_t h, int components, const uint8_t *px) {
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr jerr;
  FILE *f = fopen(path, "wb");
  cr_assert(f, "%s", path);
  ci.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&ci);
  jpeg_stdio_dest(&ci, f);
  ci.image_width = w;
  ci.image_height = h;
  ci.input_components = components;
  ci.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, 95, TRUE);
  jpeg_start_compress(&ci, TRUE);
  while (ci.next_scanline < h) {
    JSAMPROW row = (JSAMPROW)px + (size_t)ci.next_scanline * w * components;
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  long size = ftell(f);
  fclose(f);
  return (size_t)size;
}

void cut_file(const char *src, const char *dst, size_t n) {
  FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
  cr_assert(in && out);
  for (int c; n-- > 0 && (c = fgetc(in)) != EOF;)
    fputc(c, out);
  fclose(in);
  fclose(out);
}
