/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/data's .npy reader: files written here byte by byte
 * (every header variant numpy and hand-written files use, and every
 * rejection, each with its message), files written by numpy itself when
 * Debian's python3-numpy is installed, and opening arrays by content.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "ops/data/data.h"
#include "tests/support/tree.h"
#include "tests/unit/ops/data/npy_file.h"

static char dir[TY_TEST_DIR_LEN];

static void make_dir(void) {
  cr_assert_eq(ty_test_make_dir(dir, "npy"), 0);
}

static void remove_dir(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(npy, .init = make_dir, .fini = remove_dir);

static const char *path_of(const char *name) {
  static char p[4][256];
  static unsigned next;
  char *s = p[next++ % 4];
  snprintf(s, 256, "%s/%s", dir, name);
  return s;
}

static int parse(const uint8_t *b, size_t n, ty_npy_info *info, char *err) {
  return ty_data_npy_parse(b, n, "t.npy", info, err, TY_ERR_LEN);
}

/* Expects header h with data to be refused with code and a message containing want. */
static void refused(int major, const char *h, size_t nbytes, int code, const char *want) {
  static uint8_t buf[1 << 16], data[4096];
  size_t n = npy_image(buf, major, h, data, nbytes);
  ty_npy_info info;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse(buf, n, &info, err), code, "header %s: got \"%s\"", h, err);
  cr_assert(strstr(err, want) != NULL, "header %s: \"%s\" lacks \"%s\"", h, err, want);
  cr_assert(strncmp(err, "t.npy: ", 7) == 0, "message does not name the file: %s", err);
}

Test(npy, parses_versions_and_variants) {
  float v[12];
  for (int i = 0; i < 12; i++)
    v[i] = (float)i * 0.5f;
  static uint8_t buf[4096];
  const struct {
    int major;
    const char *h;
  } ok[] = {
      {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"},
      {2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"},
      {3, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"},
      {1, "{\"shape\":(3,4),\"fortran_order\":False,\"descr\":\"<f4\"}"},
      {1, "{ 'descr' : '=f4' , 'fortran_order' : False , 'shape' : ( 3L , 4L ) }"},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(ok); i++) {
    size_t n = npy_image(buf, ok[i].major, ok[i].h, v, sizeof v);
    ty_npy_info info;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(parse(buf, n, &info, err), 0, "%s: %s", ok[i].h, err);
    cr_assert_eq(info.type, TY_DATA_F32);
    cr_assert_eq(info.ndims, 2u);
    cr_assert_eq(info.dims[0], 3u);
    cr_assert_eq(info.dims[1], 4u);
    cr_assert_eq(info.data_offset % 64, 0u);
    cr_assert_eq(info.data_bytes, sizeof v);
    cr_assert_eq(memcmp(buf + info.data_offset, v, sizeof v), 0);
  }
}

Test(npy, types_scalars_and_fortran_vectors) {
  static uint8_t buf[4096], zero[64];
  const struct {
    const char *descr;
    ty_data_type t;
  } types[] = {{"|b1", TY_DATA_BOOL}, {"|u1", TY_DATA_U8},  {"|i1", TY_DATA_I8},
               {"<u2", TY_DATA_U16},  {"<i2", TY_DATA_I16}, {"<u4", TY_DATA_U32},
               {"<i4", TY_DATA_I32},  {"<u8", TY_DATA_U64}, {"<i8", TY_DATA_I64},
               {"<f2", TY_DATA_F16},  {"<f8", TY_DATA_F64}, {">u1", TY_DATA_U8}};
  for (size_t i = 0; i < TY_ARRAY_LEN(types); i++) {
    char h[128];
    snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (2,), }",
             types[i].descr);
    size_t n = npy_image(buf, 1, h, zero, 2 * ty_data_type_size(types[i].t));
    ty_npy_info info;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(parse(buf, n, &info, err), 0, "%s: %s", h, err);
    cr_assert_eq(info.type, types[i].t, "%s", types[i].descr);
  }
  ty_npy_info info;
  char err[TY_ERR_LEN] = "";
  size_t n = npy_image(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", zero, 8);
  cr_assert_eq(parse(buf, n, &info, err), 0, "%s", err);
  cr_assert_eq(info.ndims, 0u);
  /* Fortran order changes nothing for a vector or a [1, n] matrix. */
  n = npy_image(buf, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 5), }", zero, 20);
  cr_assert_eq(parse(buf, n, &info, err), 0, "%s", err);
}

Test(npy, rejects_malformed_headers) {
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 20, TY_EPROTO,
          "truncated: shape (3, 4) of float32 needs 48 data bytes, the file holds 20");
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 12, TY_EPROTO,
          "4 bytes of trailing data after the 8 data bytes of shape (2,) of float32");
  refused(1, "'descr': '<f4'", 0, TY_EPROTO, "expected '{' opening the header dict at offset 0");
  refused(1, "{'descr' '<f4'}", 0, TY_EPROTO, "expected ':' after a key");
  refused(1, "{'descr': '<f4", 0, TY_EPROTO, "expected the end of a string");
  refused(1, "{'descr': '<f\\4'}", 0, TY_EPROTO, "without backslash escapes");
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'extra': 1}", 0, TY_EPROTO,
          "unknown key 'extra'");
  refused(1, "{'descr': '<f4', 'descr': '<f4'}", 0, TY_EPROTO, "key 'descr' appears twice");
  refused(1, "{'descr': '<f4', 'fortran_order': False}", 0, TY_EPROTO, "header lacks 'shape'");
  refused(1, "{'descr': '<f4', 'fortran_order': maybe, 'shape': ()}", 0, TY_EPROTO,
          "expected True or False");
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 0, TY_EPROTO,
          "expected a non-negative integer");
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [3]}", 0, TY_EPROTO,
          "expected a shape tuple");
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3 4)}", 0, TY_EPROTO,
          "',' or ')' in the shape");
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()} x", 0, TY_EPROTO,
          "only spaces after the header dict");
  refused(1, "{'descr': '<f4' 'shape': ()}", 0, TY_EPROTO, "',' or '}' in the header dict");
}

Test(npy, rejects_unsupported_arrays) {
  refused(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}", 0, TY_EUNSUPPORTED,
          "big-endian dtype '>f4' is not supported");
  refused(1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,)}", 0, TY_EUNSUPPORTED,
          "object arrays");
  refused(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,)}", 0, TY_EUNSUPPORTED,
          "string arrays");
  refused(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}", 0, TY_EUNSUPPORTED,
          "complex");
  refused(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", 0, TY_EUNSUPPORTED,
          "structured dtype");
  refused(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}", 24, TY_EUNSUPPORTED,
          "Fortran-order arrays are not supported");
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", 4,
          TY_EUNSUPPORTED, "more than 8 dims");
}

Test(npy, rejects_overflowing_sizes) {
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 0,
          TY_ETOOBIG, "dimension at offset");
  refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", 0,
          TY_ETOOBIG, "shape (4294967296, 4294967296) of float32 overflows");
  refused(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,)}", 0,
          TY_ETOOBIG, "overflows");
}

Test(npy, rejects_truncated_preambles) {
  static uint8_t buf[256];
  ty_npy_info info;
  char err[TY_ERR_LEN];
  size_t n = npy_image(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0,)}", NULL, 0);
  cr_assert_eq(parse(buf, 5, &info, err), TY_EPROTO);
  cr_assert(strstr(err, "not a .npy file") != NULL, "%s", err);
  cr_assert_eq(parse(buf, 7, &info, err), TY_EPROTO);
  cr_assert(strstr(err, "ends inside the .npy version") != NULL, "%s", err);
  cr_assert_eq(parse(buf, 9, &info, err), TY_EPROTO);
  cr_assert(strstr(err, "ends inside the .npy header length") != NULL, "%s", err);
  char want[96];
  snprintf(want, sizeof want, "truncated: the header announces %zu bytes, the file holds %zu",
           n - 10, n - 20);
  cr_assert_eq(parse(buf, n - 10, &info, err), TY_EPROTO);
  cr_assert(strstr(err, want) != NULL, "%s", err);
  buf[6] = 4;
  cr_assert_eq(parse(buf, n, &info, err), TY_EUNSUPPORTED);
  cr_assert(strstr(err, "format version 4.0 is not supported") != NULL, "%s", err);
  buf[6] = 2; /* now the 2-byte length plus two header bytes read as a 4-byte length */
  buf[8] = 0xff, buf[9] = 0xff, buf[10] = 0xff, buf[11] = 0x7f;
  cr_assert_eq(parse(buf, n, &info, err), TY_ETOOBIG);
  cr_assert(strstr(err, "longer than the 65536 accepted") != NULL, "%s", err);
}

/* ---- files ------------------------------------------------------------------ */
static void put(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(b, 1, n, f), n);
  cr_assert_eq(fclose(f), 0);
}

Test(npy, opens_arrays_by_content) {
  static uint8_t buf[4096];
  int64_t v[6] = {1, -2, 3, -4, 5, -6};
  put(path_of("a.bin"), buf,
      npy_image(buf, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3)}", v, sizeof v));
  ty_data_array a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_array_open(path_of("a.bin"), &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.type, TY_DATA_I64);
  cr_assert_eq(a.ndims, 2u);
  cr_assert_eq(a.nbytes, sizeof v);
  cr_assert_eq(memcmp(a.data, v, sizeof v), 0);
  cr_assert_str_eq(a.path, path_of("a.bin"));
  ty_data_array_close(&a);
  ty_data_array_close(&a);
  const uint8_t idx[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
  put(path_of("i"), idx, sizeof idx);
  cr_assert_eq(ty_data_array_open(path_of("i"), &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.type, TY_DATA_U8);
  cr_assert_eq(a.dims[1], 3u);
  cr_assert_eq(a.data[5], 6);
  ty_data_array_close(&a);
  put(path_of("junk"), "GIF89a", 6);
  cr_assert_eq(ty_data_array_open(path_of("junk"), &a, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, "neither a .npy file") != NULL && strstr(err, "starts with 47 49 46 38"),
            "%s", err);
  ty_data_array_close(&a);
  put(path_of("zip"), "PK\3\4zip", 7); /* an .npz's magic, no archive behind it */
  cr_assert_eq(ty_data_array_open(path_of("zip"), &a, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, "not a readable .npz (zip) archive"), "%s", err);
  ty_data_array_close(&a);
  put(path_of("empty"), "", 0); /* no bytes to show */
  cr_assert_eq(ty_data_array_open(path_of("empty"), &a, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, "empty: empty file (0 bytes)") && !strstr(err, "starts with"), "%s", err);
  ty_data_array_close(&a);
  put(path_of("two"), "ab", 2); /* the bytes there are, no made-up zeros */
  cr_assert_eq(ty_data_array_open(path_of("two"), &a, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, "starts with 61 62 (the whole file)"), "%s", err);
  ty_data_array_close(&a);
  cr_assert_eq(ty_data_array_open(path_of("none.npy"), &a, err, sizeof err), TY_ENOTFOUND);
  cr_assert(strstr(err, "none.npy: missing") != NULL, "%s", err);
  ty_data_array_close(&a);
  cr_assert_eq(ty_data_array_open(dir, &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "is a directory") != NULL, "%s", err);
  ty_data_array_close(&a);
  buf[0] = 0x93;
  put(path_of("cut.npy"), buf, 30); /* the NPY magic, then a cut header */
  cr_assert_eq(ty_data_array_open(path_of("cut.npy"), &a, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, "cut.npy: truncated") != NULL, "%s", err);
  ty_data_array_close(&a);
}

/* numpy's own files, in every format version it writes. */
Test(npy, reads_what_numpy_writes) {
  if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
    cr_skip("python3-numpy not installed");
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c \"\n"
           "import numpy as np\n"
           "from numpy.lib import format as F\n"
           "d='%s'\n"
           "np.save(d+'/f32.npy', np.arange(24, dtype=np.float32).reshape(2,3,4) / 8)\n"
           "np.save(d+'/f16.npy', np.array([1.0, -2.5, 65504, 6e-8, -0.0], dtype=np.float16))\n"
           "np.save(d+'/b.npy', np.array([True, False, True]))\n"
           "np.save(d+'/big.npy', np.arange(3, dtype='>i4'))\n"
           "np.save(d+'/fort.npy', np.asfortranarray(np.ones((2,3), np.float32)))\n"
           "for v in (2, 3):\n"
           "    with open(d+'/v%%d.npy' %% v, 'wb') as f: F.write_array(f, np.arange(5, "
           "dtype=np.int64), version=(v, 0))\n"
           "\"",
           dir);
  cr_assert_eq(system(cmd), 0);
  ty_data_array a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_array_open(path_of("f32.npy"), &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.ndims, 3u);
  float x;
  memcpy(&x, a.data + 4 * 23, 4);
  cr_assert_float_eq(x, 23.0f / 8, 0);
  ty_data_array_close(&a);
  for (int v = 2; v <= 3; v++) {
    char name[16];
    snprintf(name, sizeof name, "v%d.npy", v);
    cr_assert_eq(ty_data_array_open(path_of(name), &a, err, sizeof err), 0, "%s", err);
    int64_t last;
    memcpy(&last, a.data + 8 * 4, 8);
    cr_assert_eq(last, 4);
    ty_data_array_close(&a);
  }
  cr_assert_eq(ty_data_array_open(path_of("b.npy"), &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.type, TY_DATA_BOOL);
  ty_data_array_close(&a);
  cr_assert_eq(ty_data_array_open(path_of("big.npy"), &a, err, sizeof err), TY_EUNSUPPORTED);
  cr_assert(strstr(err, "big-endian") != NULL, "%s", err);
  ty_data_array_close(&a);
  cr_assert_eq(ty_data_array_open(path_of("fort.npy"), &a, err, sizeof err), TY_EUNSUPPORTED);
  ty_data_array_close(&a);
  /* float16 through the dataset conversion: exact for these values. */
  cr_assert_eq(ty_data_array_open(path_of("f16.npy"), &a, err, sizeof err), 0, "%s", err);
  ty_data_array col[2] = {a};
  cr_assert_eq(ty_data_array_open(path_of("f16.npy"), &col[1], err, sizeof err), 0, "%s", err);
  ty_data_feed f[2] = {{.name = "x", .to = TY_DATA_F32}, {.name = "y", .to = TY_DATA_F32}};
  ty_dataset *ds = NULL;
  cr_assert_eq(ty_dataset_from_arrays(col, f, 2, &ds, err, sizeof err), 0, "%s", err);
  const float want[] = {1.0f, -2.5f, 65504.0f, 5.9604644775390625e-08f, -0.0f};
  for (size_t i = 0; i < 5; i++) {
    float got;
    ty_dataset_gather(ds, 0, i, &got);
    cr_assert_eq(got, want[i], "f16 value %zu: %g", i, (double)got);
  }
  ty_dataset_destroy(ds);
}

/* Opens path as the one array of a dataset feeding float32 input "x";
 * returns ty_dataset_from_arrays's code, the message in err. */
static int dataset_of(const char *path, char *err) {
  ty_data_array a;
  cr_assert_eq(ty_data_array_open(path, &a, err, TY_ERR_LEN), 0, "%s", err);
  ty_data_feed f = {.name = "x", .to = TY_DATA_F32, .where = "config.dataset.train[0]"};
  ty_dataset *ds = NULL;
  int rc = ty_dataset_from_arrays(&a, &f, 1, &ds, err, TY_ERR_LEN);
  ty_dataset_destroy(ds);
  return rc;
}

/* A float array holding NaN or an infinity (or, feeding float32, a double
 * beyond its range) is refused when the dataset opens, naming the file,
 * the sample and the value, as a CSV cell "nan" is: every loss would be
 * NaN. */
Test(npy, datasets_refuse_values_that_are_not_finite) {
  float f4[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  double f8[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  uint16_t f2[8] = {0};
  char err[TY_ERR_LEN] = "";
  npy_write(path_of("ok.npy"), "<f4", "(4, 2)", f4, sizeof f4);
  cr_assert_eq(dataset_of(path_of("ok.npy"), err), 0, "%s", err);
  const struct {
    const char *name, *descr, *want;
    void *data;
    size_t nbytes;
  } bad[] = {
      {"nan.npy", "<f4", "nan.npy: value nan of sample 2 (value 1 of it) is not finite for \"x\"",
       f4, sizeof f4},
      {"inf.npy", "<f8", "inf.npy: value -inf of sample 3 (value 0 of it) is not finite for", f8,
       sizeof f8},
      {"big.npy", "<f8",
       "big.npy: value 1e+300 of sample 0 (value 1 of it) is not finite in "
       "float32 for \"x\"",
       f8, sizeof f8},
      {"h.npy", "<f2", "h.npy: value inf of sample 1 (value 1 of it) is not finite", f2, sizeof f2},
  };
  f4[5] = NAN;
  f8[6] = -INFINITY;
  f2[3] = 0x7c00; /* float16 +inf */
  for (size_t k = 0; k < TY_ARRAY_LEN(bad); k++) {
    if (k == 2) f8[6] = 6, f8[1] = 1e300;
    npy_write(path_of(bad[k].name), bad[k].descr, "(4, 2)", bad[k].data, bad[k].nbytes);
    cr_assert_eq(dataset_of(path_of(bad[k].name), err), TY_EINVAL, "%s: %s", bad[k].name, err);
    cr_assert(strstr(err, bad[k].want) && strstr(err, "config.dataset.train[0]: "), "%s: %s",
              bad[k].name, err);
  }
}

/* A uint64 label beyond INT64_MAX is reported as written, not as the
 * INT64_MAX it compares as. */
Test(npy, uint64_labels_out_of_range_are_reported_as_written) {
  uint64_t y[3] = {1, (1ull << 63) + 1, 2};
  npy_write(path_of("y.npy"), "<u8", "(3,)", y, sizeof y);
  ty_data_array a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_array_open(path_of("y.npy"), &a, err, sizeof err), 0, "%s", err);
  ty_data_feed f = {.name = "labels", .to = TY_DATA_I64};
  ty_dataset *ds = NULL;
  cr_assert_eq(ty_dataset_from_arrays(&a, &f, 1, &ds, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_dataset_check_range(ds, 0, 0, 3, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "y.npy: value 9223372036854775809 of sample 1 is outside [0, 3)"), "%s",
            err);
  ty_dataset_destroy(ds);
}

/* A FIFO nobody writes would block open() (a SIGTERM restarts it): it is
 * refused at once, as the CSV, IDX and token readers' files are (they open
 * the same way). */
Test(npy, a_fifo_is_refused_not_waited_on, .timeout = 10) {
  cr_assert_eq(mkfifo(path_of("f.npy"), 0600), 0);
  ty_data_array a;
  char err[256] = "";
  cr_assert_eq(ty_data_array_open(path_of("f.npy"), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "f.npy: not a regular file (a .npy or IDX file expected)"), "%s", err);
  ty_data_array_close(&a);
}
