/* SPDX-License-Identifier: Apache-2.0 */
/*
 * .npz archives (ops/data/npz.c), written here with libzip as numpy.savez
 * (stored members) and savez_compressed (deflated) lay them out: the named
 * array reads as its .npy would, and every refusal names the file and what
 * is wrong: a missing key (listing the arrays), an archive opened without
 * a key, a damaged member, a file that is no archive.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "lib/base/base.h"
#include "ops/data/data.h"
#include "tests/support/tree.h"
#include "tests/unit/ops/data/npy_file.h"

static char dir[TY_TEST_DIR_LEN];

static void make_dir(void) {
  cr_assert_eq(ty_test_make_dir(dir, "npz"), 0);
}

static void remove_dir(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(npz, .init = make_dir, .fini = remove_dir);

static float x[6][4];
static int64_t y[6];

/* An archive at dir/name of x.npy and y.npy, compressed with method. */
static const char *archive(const char *name, zip_int32_t method) {
  static char path[TY_TEST_DIR_LEN + 64];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  for (int i = 0; i < 6; i++) {
    y[i] = 5 - i;
    for (int j = 0; j < 4; j++)
      x[i][j] = (float)(i * 4 + j) / 8;
  }
  static uint8_t bx[1024], by[1024];
  size_t nx =
      npy_image(bx, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 4), }", x, sizeof x);
  size_t ny =
      npy_image(by, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }", y, sizeof y);
  int e = 0;
  zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &e);
  cr_assert(z, "zip_open %s: %d", path, e);
  const struct {
    const char *n;
    uint8_t *b;
    size_t len;
  } m[] = {{"x.npy", bx, nx}, {"y.npy", by, ny}};
  for (int i = 0; i < 2; i++) {
    zip_source_t *s = zip_source_buffer(z, m[i].b, m[i].len, 0);
    zip_int64_t at = zip_file_add(z, m[i].n, s, ZIP_FL_OVERWRITE);
    cr_assert(at >= 0, "%s", zip_strerror(z));
    cr_assert_eq(zip_set_file_compression(z, (zip_uint64_t)at, method, 0), 0);
  }
  cr_assert_eq(zip_close(z), 0);
  return path;
}

static void reads_both(const char *path) {
  ty_data_array a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_npz_open(path, "x", &a, err, sizeof err), 0, "%s", err);
  cr_assert(a.type == TY_DATA_F32 && a.ndims == 2 && a.dims[0] == 6 && a.dims[1] == 4);
  cr_assert_eq(memcmp(a.data, x, sizeof x), 0);
  cr_assert(strstr(a.path, ":x"), "%s", a.path);
  ty_data_array_close(&a);
  cr_assert_eq(ty_data_npz_open(path, "y", &a, err, sizeof err), 0, "%s", err);
  cr_assert(a.type == TY_DATA_I64 && a.ndims == 1 && a.dims[0] == 6);
  cr_assert_eq(memcmp(a.data, y, sizeof y), 0);
  ty_data_array_close(&a);
}

Test(npz, stored_and_deflated_members_read_as_their_npy) {
  reads_both(archive("savez.npz", ZIP_CM_STORE));
  reads_both(archive("compressed.npz", ZIP_CM_DEFLATE));
}

Test(npz, refusals_name_the_file_and_what_is_wrong) {
  const char *path = archive("d.npz", ZIP_CM_DEFLATE);
  ty_data_array a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_npz_open(path, "labels", &a, err, sizeof err), TY_ENOTFOUND);
  cr_assert(strstr(err, "no array \"labels\" in the archive (it holds: x, y)"), "%s", err);
  ty_data_array_close(&a);
  cr_assert_eq(ty_data_array_open(path, &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, path) && strstr(err, "name the one to read (DataArray.key: one of x, y)"),
            "%s", err);
  ty_data_array_close(&a);
  /* A flipped byte in the deflated x.npy: libzip's inflate or CRC fails. */
  FILE *f = fopen(path, "r+b");
  cr_assert(f);
  cr_assert_eq(fseek(f, 60, SEEK_SET), 0);
  int c = fgetc(f);
  cr_assert_eq(fseek(f, 60, SEEK_SET), 0);
  fputc(c ^ 0x5a, f);
  fclose(f);
  cr_assert_neq(ty_data_npz_open(path, "x", &a, err, sizeof err), 0);
  cr_assert(strstr(err, ":x: corrupt") || strstr(err, ":x: cannot open"), "%s", err);
  ty_data_array_close(&a);
  char npy[TY_TEST_DIR_LEN + 16];
  snprintf(npy, sizeof npy, "%s/x.npy", dir);
  npy_write(npy, "<f4", "(6, 4)", x, sizeof x);
  cr_assert_eq(ty_data_npz_open(npy, "x", &a, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, "not a readable .npz (zip) archive"), "%s", err);
  ty_data_array_close(&a);
  snprintf(npy, sizeof npy, "%s/none.npz", dir);
  cr_assert_eq(ty_data_npz_open(npy, "x", &a, err, sizeof err), TY_ENOTFOUND);
  cr_assert(strstr(err, "none.npz: missing"), "%s", err);
  ty_data_array_close(&a);
}
