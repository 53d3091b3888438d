/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image folders (ops/data/imgdir.c, image.c): ImageFolder's order (sorted
 * classes, sorted files, other files skipped), PIL's convert() of gray,
 * low bit depths, palette, RGBA and JPEGs to 1 or 3 channels, a test
 * folder numbered by its training folder's classes, and every refusal
 * naming the folder or file: no image, an empty file, truncated PNG and
 * JPEG, a size over the pixel limit, 16-bit PNG,
 * CMYK JPEG, empty class, no classes, missing folder, a folder the user
 * may not list (in a child that drops root), nested folder,
 * another image format, another size, an unknown test class. The opt-in
 * resize and center crop against bytes PIL's resize(BILINEAR) and
 * torchvision's CenterCrop offsets gave (computed once with PIL 9, stored
 * here), and their refusals.
 */
#include <criterion/criterion.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/base/base.h"
#include "ops/data/data.h"
#include "tests/support/tree.h"
#include "tests/unit/ops/data/image_file.h"

static char dir[TY_TEST_DIR_LEN];

static void make_dir(void) {
  cr_assert_eq(ty_test_make_dir(dir, "imgdir"), 0);
}

static void remove_dir(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(imgdir, .init = make_dir, .fini = remove_dir);

/* DIR/REL (one of 4 buffers used in turn), making the folders above it. */
static const char *at(const char *fmt, ...) {
  static char bufs[4][512];
  static int next;
  char *p = bufs[next++ % 4], rel[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rel, sizeof rel, fmt, ap);
  va_end(ap);
  snprintf(p, 512, "%s/%s", dir, rel);
  for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
    *s = 0;
    mkdir(p, 0700);
    *s = '/';
  }
  return p;
}

/* 2x2 images: R, G, B, white as RGBA (alpha varies), the same as a
 * palette, and gray 0..3 at 2 bits. */
static const uint8_t rgba[] = {255, 0, 0, 0, 0, 255, 0, 9, 0, 0, 255, 99, 255, 255, 255, 255};
static const uint8_t pal[] = {0, 0, 255, 255, 0, 0, 255, 255, 255, 0, 255, 0};
static const uint8_t pal_rows[] = {1, 3, 0, 2};   /* 8 bits: R, G, B, white */
static const uint8_t gray2_rows[] = {0x10, 0xb0}; /* 2 bits: 0 1 / 2 3 */

static void write_classes(void) {
  png_file(at("set/dog/b.png"), 2, 2, PNG_COLOR_TYPE_PALETTE, 8, pal_rows, pal, 4);
  png_file(at("set/dog/a.PNG"), 2, 2, PNG_COLOR_TYPE_RGBA, 8, rgba, NULL, 0);
  png_file(at("set/cat/z.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 2, gray2_rows, NULL, 0);
  FILE *f = fopen(at("set/cat/notes.txt"), "w"); /* skipped, as ImageFolder skips it */
  cr_assert(f);
  fclose(f);
  f = fopen(at("set/README"), "w"); /* a file beside the classes: not a class */
  cr_assert(f);
  fclose(f);
}

static void open_ok(const char *root, const ty_data_imgdir_opts *o, ty_data_array *a) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_imgdir_open(root, o, a, err, sizeof err), 0, "%s", err);
}

Test(imgdir, lists_in_imagefolder_order_and_converts_like_pil) {
  write_classes();
  ty_data_array a;
  open_ok(at("set"), &(ty_data_imgdir_opts){.labels = true}, &a);
  cr_assert_eq(a.type, TY_DATA_I64);
  cr_assert_eq(a.ndims, 1);
  cr_assert_eq(a.dims[0], 3);
  int64_t want_ids[] = {0, 1, 1}; /* cat/z.png, dog/a.PNG, dog/b.png */
  cr_assert_eq(memcmp(a.data, want_ids, sizeof want_ids), 0);
  cr_assert_eq(a.n_categories, 2);
  cr_assert_str_eq(a.categories[0], "cat");
  cr_assert_str_eq(a.categories[1], "dog");
  ty_data_array_close(&a);

  open_ok(at("set"), &(ty_data_imgdir_opts){.want = {.channels = 3}}, &a);
  cr_assert_eq(a.type, TY_DATA_U8);
  cr_assert_eq(a.ndims, 4);
  cr_assert(a.dims[0] == 3 && a.dims[1] == 3 && a.dims[2] == 2 && a.dims[3] == 2);
  const uint8_t rgb[] = {
      0,   85, 170, 255, 0, 85,  170, 255, 0, 85, 170, 255, /* gray 2-bit, repeated */
      255, 0,  0,   255, 0, 255, 0,   255, 0, 0,  255, 255, /* RGBA: alpha dropped */
      255, 0,  0,   255, 0, 255, 0,   255, 0, 0,  255, 255, /* palette: the same */
  };
  cr_assert_eq(a.nbytes, sizeof rgb);
  cr_assert_eq(memcmp(a.data, rgb, sizeof rgb), 0);
  ty_data_array_close(&a);

  /* convert("L"): PIL's luma of pure red, green, blue is 76, 150, 29. */
  open_ok(at("set"), &(ty_data_imgdir_opts){.want = {.channels = 1, .height = 2, .width = 2}}, &a);
  const uint8_t l[] = {0, 85, 170, 255, 76, 150, 29, 255, 76, 150, 29, 255};
  cr_assert_eq(a.nbytes, sizeof l);
  cr_assert_eq(memcmp(a.data, l, sizeof l), 0);
  ty_data_array_close(&a);
}

/* 9x5 RGB and RGBA images: 45 pixels are one whole block of convert's
 * vectorised loops and a remainder, each pixel checked against PIL's
 * planes and luma. */
Test(imgdir, converts_blocks_and_remainder) {
  enum { W = 9, H = 5, PX = W * H };
  uint8_t rgb[PX * 3], rgba[PX * 4];
  for (int i = 0; i < PX; i++)
    for (int c = 0; c < 4; c++) {
      uint8_t v = (uint8_t)(i * 37 + c * 91 + 11);
      if (c < 3) rgb[3 * i + c] = v;
      rgba[4 * i + c] = v;
    }
  png_file(at("blk/a/rgb.png"), W, H, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0);
  png_file(at("blk/a/rgba.png"), W, H, PNG_COLOR_TYPE_RGBA, 8, rgba, NULL, 0);
  ty_data_array a, l;
  open_ok(at("blk"), &(ty_data_imgdir_opts){.want = {.channels = 3}}, &a);
  open_ok(at("blk"), &(ty_data_imgdir_opts){.want = {.channels = 1}}, &l);
  cr_assert(a.nbytes == 2 * 3 * PX && l.nbytes == 2 * PX);
  for (int f = 0; f < 2; f++)
    for (int i = 0; i < PX; i++) {
      const uint8_t *p = f ? rgba + 4 * i : rgb + 3 * i;
      for (int c = 0; c < 3; c++)
        cr_assert_eq(a.data[(f * 3 + c) * PX + i], p[c], "file %d pixel %d channel %d", f, i, c);
      unsigned want = (p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16;
      cr_assert_eq(l.data[f * PX + i], want, "file %d pixel %d luma", f, i);
    }
  ty_data_array_close(&a);
  ty_data_array_close(&l);
}

Test(imgdir, decodes_jpegs) {
  uint8_t gray[64], rgb[64 * 3];
  for (int i = 0; i < 64; i++) {
    gray[i] = 128;
    rgb[3 * i] = 200, rgb[3 * i + 1] = 100, rgb[3 * i + 2] = 50;
  }
  jpeg_file(at("j/gray/g.jpg"), 8, 8, 1, gray);
  jpeg_file(at("j/rgb/c.jpeg"), 8, 8, 3, rgb);
  ty_data_array a;
  open_ok(at("j"), &(ty_data_imgdir_opts){.want = {.channels = 3}}, &a);
  cr_assert_eq(a.dims[2], 8);
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < 64; i++) {
      cr_assert_eq(a.data[c * 64 + i], 128); /* a flat gray block decodes exactly */
      int want = rgb[c], got = a.data[192 + c * 64 + i];
      cr_assert(abs(got - want) <= 3, "channel %d: %d, want about %d", c, got, want);
    }
  ty_data_array_close(&a);
  /* Stray bytes before the first quantisation table's marker (a warning
   * to libjpeg) lose no pixel: read as PIL reads them. */
  size_t len = jpeg_file(at("full.jpg"), 8, 8, 3, rgb);
  FILE *in = fopen(at("full.jpg"), "rb"), *out = fopen(at("j/rgb/stray.jpg"), "wb");
  cr_assert(in && out);
  for (int c, prev = 0, stray = 1; len-- > 0 && (c = fgetc(in)) != EOF; prev = c) {
    if (prev == 0xff && c == 0xdb && stray--) fwrite("\0\0\xff", 1, 3, out);
    fputc(c, out);
  }
  fclose(in);
  fclose(out);
  open_ok(at("j"), &(ty_data_imgdir_opts){.want = {.channels = 3}}, &a);
  cr_assert_eq(a.dims[0], 3);
  cr_assert_eq(memcmp(a.data + 2 * 192, a.data + 192, 192), 0); /* the same pixels as c.jpeg */
  ty_data_array_close(&a);
}

Test(imgdir, test_folder_takes_the_training_ids) {
  write_classes();
  png_file(at("test/dog/d.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 2, gray2_rows, NULL, 0);
  const char *const known[] = {"cat", "dog"};
  ty_data_array a;
  open_ok(at("test"), &(ty_data_imgdir_opts){.labels = true, .known = known, .n_known = 2}, &a);
  cr_assert_eq(((const int64_t *)a.data)[0], 1); /* dog is 1, as in training, not 0 */
  cr_assert_eq(a.n_categories, 2);
  cr_assert_str_eq(a.categories[0], "cat");
  ty_data_array_close(&a);
  png_file(at("test/bird/e.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 2, gray2_rows, NULL, 0);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_data_imgdir_open(
                   at("test"), &(ty_data_imgdir_opts){.labels = true, .known = known, .n_known = 2},
                   &a, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "test/bird: class \"bird\" is not a class of the training folder"), "%s",
            err);
  ty_data_array_close(&a);
}

/* ROOT (DIR/case) is refused with rc and a message holding want. */
static void refused(const char *root, uint32_t h, int rc, const char *want) {
  ty_data_imgdir_opts o = {.want = {.channels = 3, .height = h, .width = h}};
  ty_data_array a;
  char err[TY_ERR_LEN] = "";
  int got = ty_data_imgdir_open(at("%s", root), &o, &a, err, sizeof err);
  cr_assert_eq(got, rc, "%s: rc %d, want %d (%s)", root, got, rc, err);
  cr_assert(strstr(err, want), "got \"%s\", want \"%s\"", err, want);
  ty_data_array_close(&a);
}

Test(imgdir, refuses_bad_images_naming_the_file) {
  FILE *f = fopen(at("text/c/x.png"), "w");
  cr_assert(f);
  fputs("hello", f);
  fclose(f);
  refused("text", 0, TY_EPROTO, "text/c/x.png: not a PNG or JPEG image");

  uint8_t px[16 * 16 * 4];
  for (size_t i = 0; i < sizeof px; i++)
    px[i] = (uint8_t)(i * 37 + i / 7);
  size_t len = png_file(at("full.png"), 16, 16, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0);
  cut_file(at("full.png"), at("cut/c/x.png"), len / 2);
  refused("cut", 0, TY_EPROTO, "cut/c/x.png: not a valid PNG image: truncated");

  len = jpeg_file(at("full.jpg"), 16, 16, 3, px);
  cut_file(at("full.jpg"), at("cutj/c/x.jpg"), len - 100); /* inside the scan */
  refused("cutj", 0, TY_EPROTO, "cutj/c/x.jpg: corrupt or truncated JPEG");

  f = fopen(at("nil/c/x.jpg"), "w");
  cr_assert(f);
  fclose(f);
  refused("nil", 0, TY_EPROTO, "nil/c/x.jpg: not a PNG or JPEG image (empty file)");

  /* A header of 9000 x 9000 RGB pixels (81M, over 2^26), then an IDAT
   * chunk's start and no pixels: refused before any pixel buffer is
   * allocated (libpng reads up to the IDAT before the size is looked at). */
  uint8_t ihdr[8 + 25 + 8] = {0}; /* signature, IHDR (width, height, 8-bit RGB), IDAT */
  memcpy(ihdr, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x23\x28\0\0\x23\x28\x08\x02", 26);
  memcpy(ihdr + 33, "\0\0\0\0IDAT", 8);
  uint32_t crc = (uint32_t)crc32(0, ihdr + 12, 17);
  for (int i = 0; i < 4; i++)
    ihdr[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
  f = fopen(at("big/c/x.png"), "wb");
  cr_assert(f);
  fwrite(ihdr, 1, sizeof ihdr, f);
  fclose(f);
  refused("big", 0, TY_ETOOBIG, "big/c/x.png: 9000x9000 pixels (at most 67108864)");

  png_file(at("deep/c/x.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 16, px, NULL, 0);
  refused("deep", 0, TY_EUNSUPPORTED, "deep/c/x.png: bit depth 16 is not supported");

  jpeg_file(at("cmyk/c/x.jpg"), 4, 4, 4, px);
  refused("cmyk", 0, TY_EUNSUPPORTED, "cmyk/c/x.jpg: a CMYK JPEG is not supported");

  png_file(at("size/c/x.png"), 2, 2, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0);
  refused("size", 3, TY_EINVAL,
          "size/c/x.png: 2x2 (WxH) but the images must be 3x3: set image_folder.resize and/or "
          "center_crop");
}

/* (i * 37 + 11) % 256: edges everywhere, so every weight shows. */
static void ramp(uint8_t *px, size_t n) {
  for (size_t i = 0; i < n; i++)
    px[i] = (uint8_t)((i * 37 + 11) % 256);
}

/* The images of DIR/root under want equal ref within one grey level. */
static void near_pil(const char *root, ty_data_image_want want, const uint8_t *ref, size_t n) {
  ty_data_array a;
  open_ok(at("%s", root), &(ty_data_imgdir_opts){.want = want}, &a);
  cr_assert(a.dims[1] == want.channels && a.dims[2] == want.height && a.dims[3] == want.width,
            "%s: got %llux%llu", root, (unsigned long long)a.dims[3],
            (unsigned long long)a.dims[2]);
  cr_assert_eq(a.nbytes, n);
  for (size_t i = 0; i < n; i++)
    cr_assert(abs((int)a.data[i] - (int)ref[i]) <= 1, "%s: byte %zu is %u, PIL's %u", root, i,
              a.data[i], ref[i]);
  ty_data_array_close(&a);
}

Test(imgdir, resizes_and_crops_as_torchvision_on_pil) {
  uint8_t px[64];
  ramp(px, sizeof px);
  /* Resize(3) of a 7x5 L image: 4x3, a downscale (antialiased). */
  png_file(at("down/c/x.png"), 7, 5, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0);
  const uint8_t down[] = {31, 89, 157, 215, 36, 94, 162, 220, 41, 99, 167, 225};
  near_pil("down", (ty_data_image_want){1, 3, 4, 3, false}, down, sizeof down);
  /* Resize(5) of a 3x2 RGB image (7x5, an upscale), CenterCrop((4, 5)):
   * top round(0.5) = 0, left 1. */
  png_file(at("up/c/x.png"), 3, 2, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0);
  const uint8_t up[] = {27,  74,  122, 170, 217, 35,  82,  130, 167, 203, 66,  113, 161, 154, 146,
                        96,  143, 191, 140, 89,  64,  111, 159, 97,  35,  72,  119, 167, 105, 43,
                        103, 150, 198, 136, 74,  133, 180, 228, 166, 104, 101, 148, 196, 134, 72,
                        105, 141, 178, 127, 76,  121, 114, 107, 100, 92,  137, 86,  35,  72,  108};
  near_pil("up", (ty_data_image_want){3, 4, 5, 5, true}, up, sizeof up);
  /* Resize(4) of a tall 5x9 image (4x7), CenterCrop(3): top round(2.0). */
  png_file(at("tall/c/x.png"), 5, 9, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0);
  const uint8_t tall[] = {89, 132, 176, 164, 74, 95, 151, 194, 143};
  near_pil("tall", (ty_data_image_want){1, 3, 3, 4, true}, tall, sizeof tall);
  /* A crop alone takes the middle of an image of the size as it is. */
  png_file(at("crop/c/x.png"), 7, 5, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0);
  ty_data_array a;
  open_ok(at("crop"), &(ty_data_imgdir_opts){.want = {1, 2, 2, 0, true}}, &a);
  /* top round(1.5) = 2, left round(2.5) = 2: rows 2-3, columns 2-3 */
  const uint8_t mid[] = {px[16], px[17], px[23], px[24]};
  cr_assert_eq(memcmp(a.data, mid, sizeof mid), 0);
  ty_data_array_close(&a);
}

/* ROOT (DIR/case) under want is refused with TY_EINVAL and a message
 * holding msg. */
static void refused_want(const char *root, ty_data_image_want want, const char *msg) {
  ty_data_array a;
  char err[TY_ERR_LEN] = "";
  int got = ty_data_imgdir_open(at("%s", root), &(ty_data_imgdir_opts){.want = want}, &a, err,
                                sizeof err);
  cr_assert_eq(got, TY_EINVAL, "%s: rc %d (%s)", root, got, err);
  cr_assert(strstr(err, msg), "got \"%s\", want \"%s\"", err, msg);
  ty_data_array_close(&a);
}

Test(imgdir, refuses_resizes_and_crops_that_do_not_fit) {
  uint8_t px[64];
  ramp(px, sizeof px);
  png_file(at("r/c/x.png"), 7, 5, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0);
  refused_want("r", (ty_data_image_want){1, 4, 4, 0, false},
               "r/c/x.png: 7x5 (WxH) but the images must be 4x4: set image_folder.resize");
  refused_want("r", (ty_data_image_want){1, 4, 4, 2, true},
               "r/c/x.png: 2x2 (WxH) after the resize is smaller than the center crop 4x4");
  refused_want("r", (ty_data_image_want){1, 6, 6, 0, true},
               "r/c/x.png: 7x5 (WxH) is smaller than the center crop 6x6");
  refused_want("r", (ty_data_image_want){1, 3, 3, 3, false},
               "r/c/x.png: 4x3 (WxH) after resize 3 but the images must be 3x3: set "
               "image_folder.center_crop");
  refused_want("r", (ty_data_image_want){1, 0, 4, 0, true},
               "r/c/x.png: center_crop needs the model input's H and W");
  refused_want("r", (ty_data_image_want){1, 4, 4, TY_DATA_IMAGE_MAX_SIDE + 1, false},
               "r/c/x.png: resize 16385; at most 16384");
}

/* ty_data_imgdir_open(root) as a user that is not root (root lists any
 * folder: the test drops to nobody in a child when run as root) is
 * refused with rc and a message holding want; false, and the error on
 * stderr, if not. */
static bool refused_unprivileged(const char *root, int rc, const char *want) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    ty_data_imgdir_opts o = {.want = {.channels = 3, .height = 2, .width = 2}};
    ty_data_array a;
    char err[TY_ERR_LEN] = "";
    int got = ty_data_imgdir_open(root, &o, &a, err, sizeof err);
    if (got == rc && strstr(err, want)) _exit(0);
    fprintf(stderr, "%s: rc %d, want %d: \"%s\", want \"%s\"\n", root, got, rc, err, want);
    _exit(1);
  }
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 3, "cannot drop to nobody");
  return WEXITSTATUS(status) == 0;
}

/* A folder that is there but that the user may not list (a class folder
 * of mode 0711, a root of 0311) is named as such, not as missing. */
Test(imgdir, an_unlistable_folder_is_not_missing) {
  png_file(at("perm/a/x.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 2, gray2_rows, NULL, 0);
  png_file(at("perm/b/x.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 2, gray2_rows, NULL, 0);
  const char *const open[] = {"", "/perm", "/perm/a", "/perm/b"};
  char path[TY_TEST_DIR_LEN + 32];
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s%s", dir, open[i]);
    cr_assert_eq(chmod(path, 0755), 0, "%s", path);
  }
  cr_assert_eq(chmod(at("perm/a/x.png"), 0644), 0);
  cr_assert_eq(chmod(at("perm/b/x.png"), 0644), 0);
  cr_assert_eq(chmod(at("perm/b"), 0711), 0);
  char want[TY_TEST_DIR_LEN + 64];
  snprintf(want, sizeof want, "%s/perm/b: cannot list: Permission denied", dir);
  cr_assert(refused_unprivileged(at("perm"), TY_EPERM, want));
  cr_assert_eq(chmod(at("perm/b"), 0755), 0);
  cr_assert_eq(chmod(at("perm"), 0311), 0);
  snprintf(want, sizeof want, "%s/perm: cannot list: Permission denied", dir);
  cr_assert(refused_unprivileged(at("perm"), TY_EPERM, want));
  cr_assert_eq(chmod(at("perm"), 0755), 0);
  snprintf(want, sizeof want, "%s/perm/none: missing or not a folder", dir);
  cr_assert(refused_unprivileged(at("perm/none"), TY_ENOTFOUND, want));
}

Test(imgdir, refuses_bad_folders_naming_them) {
  png_file(at("empty/a/x.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 2, gray2_rows, NULL, 0);
  at("empty/b/");
  FILE *f = fopen(at("empty/b/notes.txt"), "w");
  cr_assert(f);
  fclose(f);
  refused("empty", 0, TY_EINVAL, "empty/b: class \"b\" has no .png, .jpg or .jpeg files");

  f = fopen(at("flat/x.png"), "w"); /* images beside, not in, class folders */
  cr_assert(f);
  fclose(f);
  refused("flat", 0, TY_EINVAL, "flat: no class folders (expected ROOT/CLASS_NAME/");
  refused("nowhere", 0, TY_ENOTFOUND, "nowhere: missing or not a folder");

  png_file(at("nest/a/sub/x.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 2, gray2_rows, NULL, 0);
  refused("nest", 0, TY_EUNSUPPORTED, "nest/a/sub: a folder inside a class folder");

  f = fopen(at("bmp/a/x.bmp"), "w");
  cr_assert(f);
  fclose(f);
  refused("bmp", 0, TY_EUNSUPPORTED, "bmp/a/x.bmp: only PNG and JPEG images are read");
}
