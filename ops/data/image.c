/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One PNG or JPEG image, held in memory, decoded into planar 8-bit pixels
 * [C, H, W] with C 1 or 3, as PIL's Image.open(f).convert("L" or "RGB")
 * gives them (what torchvision's ImageFolder loader does before ToTensor).
 * The decoding is libpng's and libjpeg-turbo's, well-kept libraries; this
 * file picks the format by content (not by the file's name, as PIL does),
 * checks sizes before anything is allocated from them and converts colour:
 *   - grayscale, gray + alpha, RGB, RGBA and palette images (PNG), and
 *     grayscale, YCbCr and RGB JPEGs (libjpeg turns YCbCr into RGB);
 *   - alpha is dropped (convert() does not composite);
 *   - to 1 channel, L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16,
 *     PIL's fixed-point ITU-R 601-2 luma, also for palette entries;
 *   - to 3 channels a gray value is repeated;
 *   - PNG bit depths 1, 2 and 4 are scaled to 0..255 (0b11 at 2 bits is
 *     255), as PIL unpacks them; 16-bit PNGs are refused (PIL would read
 *     16-bit gray as 32-bit integers and clip, which is no ToTensor input).
 * CMYK and YCCK JPEGs are refused (PIL's inverted-CMYK conversion is its
 * own). A JPEG that libjpeg can only decode with a warning (a cut file,
 * corrupt entropy data) is refused too: libjpeg would fill it with gray and
 * go on, and PIL stops at a truncated image by default. Extraneous bytes
 * before a marker are the one warning let through: nothing is lost.
 *
 * Asked for, the decoded image is then resized and center-cropped as
 * torchvision's Resize / CenterCrop do it (resize.c), and only then held
 * to the size the caller expects.
 *
 * Untrusted input: the width and height come from the file and are checked
 * against TY_DATA_IMAGE_MAX_PIXELS (and the size the caller expects)
 * before the pixel buffers are allocated. Pure: no I/O, for the fuzzer.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <jerror.h> /* after jpeglib.h: the warning codes */
#include <png.h>
#include <stdlib.h>
#include <string.h>

/* What both decoders fill; heap pointers live here (not in locals) so a
 * longjmp out of the library leaves them for the one cleanup path. */
typedef struct decode {
  const uint8_t *buf;
  size_t len, at;
  const char *name;
  char *err;
  size_t err_len;
  uint32_t channels, want_h, want_w;
  bool transformed; /* resize or center_crop: the size is checked after them */
  uint8_t *rows;    /* h rows of w * src pixels of src channels */
  png_bytep *row_ptrs;
  uint8_t *out; /* [channels, h, w] */
  uint32_t h, w, src;
  jmp_buf jb;
  char lib_msg[JMSG_LENGTH_MAX];
} decode;

/* Checks the image's size before its pixels are allocated. */
static int check_size(decode *d, uint32_t w, uint32_t h) {
  if (w == 0 || h == 0 || (uint64_t)w * h > TY_DATA_IMAGE_MAX_PIXELS)
    return ty_errf(d->err, d->err_len, TY_ETOOBIG, "%s: %ux%u pixels (at most %llu)", d->name, w, h,
                   (unsigned long long)TY_DATA_IMAGE_MAX_PIXELS);
  if (!d->transformed && ((d->want_w && w != d->want_w) || (d->want_h && h != d->want_h)))
    return ty_errf(d->err, d->err_len, TY_EINVAL,
                   "%s: %ux%u (WxH) but the images must be %ux%u: set image_folder.resize and/or "
                   "center_crop (torchvision's Resize / CenterCrop), or resize the folder",
                   d->name, w, h, d->want_w, d->want_h);
  d->w = w;
  d->h = h;
  size_t px = (size_t)w * h;
  d->rows = malloc(px * d->src);
  d->out = malloc(px * d->channels);
  return d->rows && d->out ? 0 : TY_ENOMEM;
}

/* Pixels per block in the loops below: a fixed trip count lets the
 * compiler vectorise a block at -O2 (GCC's cheap cost model will not
 * vectorise a loop that needs a scalar remainder). They return how many
 * pixels they did; convert finishes the rest. */
#define BLOCK 32

/* Interleaved RGB to three planes. */
static size_t rgb_planes(const uint8_t *restrict s, size_t px, uint8_t *restrict r,
                         uint8_t *restrict g, uint8_t *restrict b) {
  size_t i = 0;
  for (; i + BLOCK <= px; i += BLOCK)
    for (size_t j = i; j < i + BLOCK; j++) {
      r[j] = s[3 * j];
      g[j] = s[3 * j + 1];
      b[j] = s[3 * j + 2];
    }
  return i;
}

/* Interleaved RGB (n = 3) or RGBA (n = 4) to PIL's luma. */
static size_t rgb_luma(const uint8_t *restrict s, size_t n, size_t px, uint8_t *restrict l) {
  size_t i = 0;
  for (; i + BLOCK <= px; i += BLOCK)
    for (size_t j = i; j < i + BLOCK; j++)
      l[j] =
          (uint8_t)((s[j * n] * 19595u + s[j * n + 1] * 38470u + s[j * n + 2] * 7471u + 0x8000u) >>
                    16);
  return i;
}

/* rows (src channels interleaved) to out (channels planes), as convert().
 * The common layouts go through the loops above, which have no test
 * inside and vectorise: this transpose was a third of a JPEG decode when
 * the gray and channel tests sat in the pixel loop. */
static void convert(decode *d) {
  size_t px = (size_t)d->w * d->h, n = d->src, i = 0;
  const uint8_t *s = d->rows;
  uint8_t *r = d->out, *g = r + px, *b = g + px;
  if (d->channels == 1 && n >= 3)
    i = rgb_luma(s, n, px, r);
  else if (d->channels == 3 && n == 3)
    i = rgb_planes(s, px, r, g, b);
  for (; i < px; i++) { /* the rest, and the less common layouts */
    const uint8_t *p = s + i * n;
    bool gray = n < 3;
    if (d->channels == 1)
      r[i] =
          gray ? p[0] : (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    else {
      r[i] = p[0];
      g[i] = gray ? p[0] : p[1];
      b[i] = gray ? p[0] : p[2];
    }
  }
}

/* ---- PNG ---------------------------------------------------------------------- */

static void png_on_error(png_structp png, png_const_charp msg) {
  decode *d = png_get_error_ptr(png);
  snprintf(d->lib_msg, sizeof d->lib_msg, "%s", msg);
  longjmp(d->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png; /* ancillary-chunk trouble: PIL ignores it too */
  (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t n) {
  decode *d = png_get_io_ptr(png);
  if (n > d->len - d->at) png_error(png, "truncated: the file ends inside the image");
  memcpy(out, d->buf + d->at, n);
  d->at += n;
}

/* Sets libpng's transforms so rows come out 8-bit gray, GA, RGB or RGBA. */
static int png_setup(decode *d, png_structp png, png_infop info) {
  png_uint_32 w, h;
  int depth, color, interlace;
  png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
  if (depth == 16)
    return ty_errf(d->err, d->err_len, TY_EUNSUPPORTED,
                   "%s: bit depth 16 is not supported (8-bit or less PNGs only)", d->name);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  d->src = png_get_channels(png, info);
  if (d->src < 1 || d->src > 4 || png_get_rowbytes(png, info) != (size_t)w * d->src)
    return ty_errf(d->err, d->err_len, TY_EUNSUPPORTED, "%s: unsupported PNG layout", d->name);
  return check_size(d, w, h);
}

static int decode_png(decode *d) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  int rc = png && info ? 0 : TY_ENOMEM;
  if (rc == 0 && setjmp(d->jb)) {
    rc = ty_errf(d->err, d->err_len, TY_EPROTO, "%s: not a valid PNG image: %s", d->name,
                 d->lib_msg);
    goto fail;
  }
  if (rc != 0) goto fail;
  png_set_read_fn(png, d, png_read_mem);
  png_set_user_limits(png, 1u << 20, 1u << 20);
  png_read_info(png, info);
  if ((rc = png_setup(d, png, info)) != 0) goto fail;
  if (!(d->row_ptrs = malloc(d->h * sizeof *d->row_ptrs))) {
    rc = TY_ENOMEM;
    goto fail;
  }
  for (uint32_t y = 0; y < d->h; y++)
    d->row_ptrs[y] = d->rows + (size_t)y * d->w * d->src;
  png_read_image(png, d->row_ptrs);
  convert(d);
fail:
  png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
  return rc;
}

/* ---- JPEG --------------------------------------------------------------------- */

typedef struct jpeg_err {
  struct jpeg_error_mgr pub; /* first: libjpeg hands back this pointer */
  decode *d;
} jpeg_err;

static void jpeg_on_error(j_common_ptr ci) {
  jpeg_err *e = (jpeg_err *)ci->err;
  (*ci->err->format_message)(ci, e->d->lib_msg);
  longjmp(e->d->jb, 1);
}

/* Warnings (level -1) make the image refused after decoding; trace
 * messages (level >= 0) are dropped. */
static void jpeg_on_message(j_common_ptr ci, int level) {
  jpeg_err *e = (jpeg_err *)ci->err;
  /* Stray bytes before a marker cost no pixel (cameras write them). */
  if (level >= 0 || ci->err->msg_code == JWRN_EXTRANEOUS_DATA) return;
  if (ci->err->num_warnings++ == 0) (*ci->err->format_message)(ci, e->d->lib_msg);
}

static int jpeg_setup(decode *d, struct jpeg_decompress_struct *ci) {
  jpeg_read_header(ci, TRUE);
  if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
    return ty_errf(d->err, d->err_len, TY_EUNSUPPORTED,
                   "%s: a CMYK JPEG is not supported (save it as RGB)", d->name);
  ci->out_color_space = ci->jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  d->src = ci->out_color_space == JCS_GRAYSCALE ? 1 : 3;
  return check_size(d, ci->image_width, ci->image_height);
}

static int decode_jpeg(decode *d) {
  struct jpeg_decompress_struct ci;
  jpeg_err e = {.d = d};
  ci.err = jpeg_std_error(&e.pub);
  e.pub.error_exit = jpeg_on_error;
  e.pub.emit_message = jpeg_on_message;
  int rc = 0;
  jpeg_create_decompress(&ci);
  if (setjmp(d->jb)) {
    rc = ty_errf(d->err, d->err_len, TY_EPROTO, "%s: not a valid JPEG image: %s", d->name,
                 d->lib_msg);
    goto fail;
  }
  jpeg_mem_src(&ci, d->buf, (unsigned long)d->len);
  if ((rc = jpeg_setup(d, &ci)) != 0) goto fail;
  jpeg_start_decompress(&ci);
  while (ci.output_scanline < ci.output_height) {
    JSAMPROW row = d->rows + (size_t)ci.output_scanline * d->w * d->src;
    jpeg_read_scanlines(&ci, &row, 1);
  }
  jpeg_finish_decompress(&ci);
  if (e.pub.num_warnings)
    rc = ty_errf(d->err, d->err_len, TY_EPROTO, "%s: corrupt or truncated JPEG: %s", d->name,
                 d->lib_msg);
  else
    convert(d);
fail:
  jpeg_destroy_decompress(&ci);
  return rc;
}

/* want's Resize(S) then CenterCrop((H, W)) of the decoded d->out, and
 * the size check the decoder left for after them. */
static int transform(decode *d, const ty_data_image_want *want) {
  uint32_t s = want->resize, h = d->h, w = d->w;
  if (s > TY_DATA_IMAGE_MAX_SIDE)
    return ty_errf(d->err, d->err_len, TY_EINVAL, "%s: resize %u; at most %u", d->name, s,
                   TY_DATA_IMAGE_MAX_SIDE);
  if (want->center_crop && (!want->height || !want->width))
    return ty_errf(d->err, d->err_len, TY_EINVAL,
                   "%s: center_crop needs the model input's H and W (they are free)", d->name);
  if (s) { /* torchvision: int(S * long / short), in doubles as Python's */
    uint32_t lo = h < w ? h : w, hi = h < w ? w : h;
    uint64_t l = (uint64_t)((double)s * hi / lo);
    if (l * s > TY_DATA_IMAGE_MAX_PIXELS)
      return ty_errf(d->err, d->err_len, TY_ETOOBIG,
                     "%s: %ux%u (WxH) resized to shorter side %u is %llu pixels long (at most %llu "
                     "pixels)",
                     d->name, w, h, s, (unsigned long long)l,
                     (unsigned long long)TY_DATA_IMAGE_MAX_PIXELS);
    int rc = ty__data_image_resize(&d->out, d->channels, &d->h, &d->w, h <= w ? s : (uint32_t)l,
                                   h <= w ? (uint32_t)l : s);
    if (rc != 0) return rc;
  }
  if (want->center_crop && (want->height > d->h || want->width > d->w))
    return ty_errf(d->err, d->err_len, TY_EINVAL,
                   "%s: %ux%u (WxH)%s is smaller than the center crop %ux%u (raise "
                   "image_folder.resize)",
                   d->name, d->w, d->h, s ? " after the resize" : "", want->width, want->height);
  if (want->center_crop) {
    int rc = ty__data_image_crop(&d->out, d->channels, &d->h, &d->w, want->height, want->width);
    if (rc != 0) return rc;
  }
  if ((want->width && d->w != want->width) || (want->height && d->h != want->height))
    return ty_errf(d->err, d->err_len, TY_EINVAL,
                   "%s: %ux%u (WxH) after resize %u but the images must be %ux%u: set "
                   "image_folder.center_crop, or another resize",
                   d->name, d->w, d->h, s, want->width, want->height);
  return 0;
}

int ty_data_image_decode(const uint8_t *buf, size_t len, const char *name,
                         const ty_data_image_want *want, uint8_t **out_pixels, uint32_t *out_h,
                         uint32_t *out_w, char *err, size_t err_len) {
  *out_pixels = NULL;
  decode d = {.buf = buf,
              .len = len,
              .name = name,
              .err = err,
              .err_len = err_len,
              .channels = want->channels,
              .want_h = want->height,
              .want_w = want->width,
              .transformed = want->resize || want->center_crop};
  int rc;
  if (want->channels != 1 && want->channels != 3)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %u channels asked; images give 1 or 3", name,
                   want->channels);
  if (len >= 8 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0)
    rc = decode_png(&d);
  else if (len >= 3 && memcmp(buf, "\xff\xd8\xff", 3) == 0)
    rc = decode_jpeg(&d);
  else
    rc = ty_errf(err, err_len, TY_EPROTO, "%s: not a PNG or JPEG image (%s)", name,
                 len ? "unknown signature" : "empty file");
  free(d.rows);
  free(d.row_ptrs);
  if (rc == 0 && d.transformed) rc = transform(&d, want);
  if (rc != 0) {
    free(d.out);
    return rc;
  }
  *out_pixels = d.out;
  *out_h = d.h;
  *out_w = d.w;
  return 0;
}
