/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CSV files (ops/data/csv.c): columns picked by header name, index and
 * range, RFC 4180 quoting (libcsv's), the three target types, string
 * labels mapped to ids, and every refusal naming the file, the line and
 * the column: ragged rows, cells that are no number or no integer, empty
 * cells, bad quoting, missing columns, empty files, labels out of range.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "ops/data/data.h"
#include "tests/support/tree.h"

static char dir[TY_TEST_DIR_LEN];

static void make_dir(void) {
  cr_assert_eq(ty_test_make_dir(dir, "csv"), 0);
}

static void remove_dir(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(csv, .init = make_dir, .fini = remove_dir);

/* Parses text's first len bytes as "t.csv" with o; the array is the
 * caller's to close. */
static int parse_n(const char *text, size_t len, const ty_data_csv_opts *o, ty_data_array *a,
                   char *err) {
  memset(a, 0, sizeof *a);
  err[0] = '\0';
  return ty_data_csv_parse((const uint8_t *)text, len, "t.csv", o, a, err, TY_ERR_LEN);
}

static int parse(const char *text, const ty_data_csv_opts *o, ty_data_array *a, char *err) {
  return parse_n(text, strlen(text), o, a, err);
}

/* text's first len bytes (NULs among them) are refused with code rc and
 * a message holding want. */
static void refused_n(const char *text, size_t len, const ty_data_csv_opts *o, int rc,
                      const char *want) {
  ty_data_array a;
  char err[TY_ERR_LEN];
  int got = parse_n(text, len, o, &a, err);
  cr_assert_eq(got, rc, "%s: rc %d, want %d (%s)", text, got, rc, err);
  cr_assert(strstr(err, want), "got \"%s\", want \"%s\"", err, want);
  ty_data_array_close(&a);
}

static void refused(const char *text, const ty_data_csv_opts *o, int rc, const char *want) {
  refused_n(text, strlen(text), o, rc, want);
}

static const char *const feats[] = {"a", "c"};
static const char *const label[] = {"y"};

Test(csv, picks_columns_by_name_index_and_range) {
  /* A quoted cell with the delimiter, a line break and a doubled quote in
   * an unselected column; CRLF rows; spaces around an unquoted number. */
  const char *text = "a,b,\"c\",y\r\n"
                     "1.5,\"x, \"\"y\"\"\nz\", 2 ,3\r\n"
                     "\n"
                     "-4,q,6e-1,1\r\n";
  ty_data_csv_opts o = {.header = true, .columns = feats, .n_columns = 2, .to = TY_DATA_F32};
  ty_data_array a;
  char err[TY_ERR_LEN];
  cr_assert_eq(parse(text, &o, &a, err), 0, "%s", err);
  cr_assert(a.type == TY_DATA_F32 && a.ndims == 2 && a.dims[0] == 2 && a.dims[1] == 2);
  const float want[] = {1.5f, 2, -4, 0.6f};
  cr_assert_eq(memcmp(a.data, want, sizeof want), 0);
  cr_assert(a.lines[0] == 2 && a.lines[1] == 5, "lines %u %u", a.lines[0], a.lines[1]);
  ty_data_array_close(&a);
  o.columns = label;
  o.n_columns = 1;
  o.to = TY_DATA_I64;
  cr_assert_eq(parse(text, &o, &a, err), 0, "%s", err);
  cr_assert(a.type == TY_DATA_I64 && a.ndims == 1 && a.dims[0] == 2);
  cr_assert(((const int64_t *)a.data)[0] == 3 && ((const int64_t *)a.data)[1] == 1);
  ty_data_array_close(&a);
  /* No header, tabs: "2..", "0" (order as listed), float64. */
  const char *const cols[] = {"2..", "0"};
  ty_data_csv_opts t = {.delimiter = '\t', .columns = cols, .n_columns = 2, .to = TY_DATA_F64};
  cr_assert_eq(parse("1\t2\t3\t4\n5\t6\t7\t8.25", &t, &a, err), 0, "%s", err);
  cr_assert(a.type == TY_DATA_F64 && a.dims[0] == 2 && a.dims[1] == 3);
  const double wd[] = {3, 4, 1, 7, 8.25, 5};
  cr_assert_eq(memcmp(a.data, wd, sizeof wd), 0);
  ty_data_array_close(&a);
  /* No selection: every column; integers written as floats (pandas). */
  ty_data_csv_opts all = {.to = TY_DATA_I64};
  cr_assert_eq(parse("1,2.0\n-3,4\n", &all, &a, err), 0, "%s", err);
  const int64_t wi[] = {1, 2, -3, 4};
  cr_assert(a.dims[0] == 2 && a.dims[1] == 2 && memcmp(a.data, wi, sizeof wi) == 0);
  ty_data_array_close(&a);
}

Test(csv, string_labels_become_sorted_ids) {
  ty_data_csv_opts o = {
      .header = true, .columns = label, .n_columns = 1, .to = TY_DATA_I64, .categories = true};
  ty_data_array a;
  char err[TY_ERR_LEN];
  cr_assert_eq(parse("x,y\n1,virginica\n2,setosa\n3,\"versicolor\"\n4,setosa\n", &o, &a, err), 0,
               "%s", err);
  const int64_t want[] = {2, 0, 1, 0};
  cr_assert(a.dims[0] == 4 && memcmp(a.data, want, sizeof want) == 0);
  cr_assert_eq(a.n_categories, 3);
  cr_assert_str_eq(a.categories[0], "setosa");
  cr_assert_str_eq(a.categories[2], "virginica");
  ty_data_array_close(&a);
  /* A test file takes its training file's ids; a string that file lacks is refused. */
  static const char *const known[] = {"a", "b", "c"};
  o.known = known;
  o.n_known = 3;
  cr_assert_eq(parse("x,y\n1,c\n2,b\n", &o, &a, err), 0, "%s", err);
  cr_assert(((const int64_t *)a.data)[0] == 2 && ((const int64_t *)a.data)[1] == 1);
  cr_assert_eq(a.n_categories, 0);
  ty_data_array_close(&a);
  refused("x,y\n1,c\n\n2,d\n", &o, TY_EINVAL,
          "t.csv:4: column 1 (\"y\"): \"d\" is not a category of the training file");
  refused("x,y\n1,a\n", &(ty_data_csv_opts){.header = true, .to = TY_DATA_I64, .categories = true},
          TY_EINVAL, "t.csv: csv.categories maps one label column to ids; 2 columns are selected");
  refused("x\na\n", &(ty_data_csv_opts){.header = true, .to = TY_DATA_F32, .categories = true},
          TY_EINVAL, "csv.categories makes int64 class ids; the input takes float32");
}

Test(csv, refusals_name_the_file_line_and_column) {
  ty_data_csv_opts h = {.header = true, .to = TY_DATA_F32};
  ty_data_csv_opts n = {.to = TY_DATA_F32};
  ty_data_csv_opts hi = {.header = true, .to = TY_DATA_I64};
  refused("a,b,c\n1,2,3\n4,5\n", &h, TY_EPROTO,
          "t.csv:3: ragged row: 2 cells, the first row has 3");
  refused("1,2\n3,4,5\n", &n, TY_EPROTO, "t.csv:2: ragged row: more than the 2 cells");
  refused("a,b\n1,2\n3,abc\n", &h, TY_EPROTO, "t.csv:3: column 1 (\"b\"): not a number: \"abc\"");
  refused("1,2\n3,nan\n", &n, TY_EPROTO, "t.csv:2: column 1: \"nan\" is not finite in float32");
  refused("1,2\n3,1e39\n", &n, TY_EPROTO, "\"1e39\" is not finite in float32");
  refused("a,b\n1,\n", &h, TY_EPROTO, "t.csv:2: column 1 (\"b\"): empty cell");
  refused("a,b\n1,2.5\n", &hi, TY_EPROTO, "t.csv:2: column 1 (\"b\"): not an integer: \"2.5\"");
  refused("a,b\n1,\"2\"x\n", &h, TY_EPROTO, "t.csv:2: bad quoting");
  refused("a,b\n1,2\n3,\"4\n5\n", &h, TY_EPROTO,
          "a quoted cell is never closed (its row starts after line 2)");
  /* A NUL byte in a plain cell, and in a quoted cell begun a line before. */
  static const char nul[] = "a,b\n1,2\0003\n", nulq[] = "a,b\n1,\"2\n\0\"\n";
  refused_n(nul, sizeof nul - 1, &h, TY_EPROTO, "t.csv:2: cell 1 holds a NUL byte");
  refused_n(nulq, sizeof nulq - 1, &h, TY_EPROTO, "t.csv:3: cell 1 holds a NUL byte");
  refused("", &n, TY_EPROTO, "t.csv: empty: no rows");
  refused("\n\n", &h, TY_EPROTO, "t.csv: empty: no rows");
  refused("a,b\n", &h, TY_EPROTO, "t.csv: a header row and no data rows");
  const char *const zz[] = {"zz"}, *const far[] = {"1..5"}, *const twice[] = {"b", "0..1"};
  h.columns = zz;
  h.n_columns = 1;
  refused("a,b\n1,2\n", &h, TY_EINVAL, "t.csv:1: no column named \"zz\" (the header has: a, b)");
  n.columns = zz;
  n.n_columns = 1;
  refused("1,2\n", &n, TY_EINVAL, "csv.columns \"zz\": not a 0-based index or range A..B");
  n.columns = far;
  refused("1,2\n", &n, TY_EINVAL, "csv.columns \"1..5\": the rows have 2 columns (0..1)");
  const char *const reversed[] = {"3..0"};
  n.columns = reversed;
  refused("1,2,3,4,5\n", &n, TY_EINVAL,
          "csv.columns \"3..0\": the range is reversed (3 > 0); write it as \"0..3\"");
  h.columns = twice;
  h.n_columns = 2;
  refused("a,b\n1,2\n", &h, TY_EINVAL, "column 1 (\"b\") is selected twice (csv.columns \"0..1\")");
  refused("a\n1\n", &(ty_data_csv_opts){.to = TY_DATA_U8}, TY_EINVAL,
          "feeds float32, float64 or int64 inputs, not uint8");
  refused("a\n1\n", &(ty_data_csv_opts){.to = TY_DATA_F32, .delimiter = '"'}, TY_EINVAL,
          "csv.delimiter cannot be a quote");
  char path[TY_TEST_DIR_LEN + 16];
  snprintf(path, sizeof path, "%s/none.csv", dir);
  ty_data_array a;
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_data_csv_open(path, &n, &a, err, sizeof err), TY_ENOTFOUND);
  cr_assert(strstr(err, "none.csv: missing"), "%s", err);
  ty_data_array_close(&a);
}

/* Rows ended by a bare CR (classic Mac OS, Excel's "CSV (Macintosh)")
 * are lines as LF and CRLF rows are: a refusal names the line of the
 * cell, and lines and values are those of the LF file. */
Test(csv, cr_rows_are_counted_as_lines) {
  ty_data_csv_opts h = {.header = true, .to = TY_DATA_F32};
  refused("a,b,c\r1,2,3\r4,5,6\r7,x,9\r", &h, TY_EPROTO,
          "t.csv:4: column 1 (\"b\"): not a number: \"x\"");
  refused("a,b,c\r1,2,3\r4,5,6\r7,9\r", &h, TY_EPROTO,
          "t.csv:4: ragged row: 2 cells, the first row has 3");
  refused("a,b\r\n1,2\r\r\n3,x\r\n", &h, TY_EPROTO, "t.csv:4: column 1 (\"b\"): not a number");
  /* Mixed: CR rows before and after an LF row (the LF found ahead is kept
   * for the CR rows before it, and none is searched for after it). */
  refused("a,b\r1,2\r3,4\n5,6\r7,x\r8,9", &h, TY_EPROTO, "t.csv:5: column 1 (\"b\"): not a number");
  ty_data_array a;
  char err[TY_ERR_LEN];
  cr_assert_eq(parse("a,b\r1,\"2\r\"\r3,4",
                     &(ty_data_csv_opts){
                         .header = true, .to = TY_DATA_F32, .columns = feats, .n_columns = 1},
                     &a, err),
               0, "%s", err);
  cr_assert_eq(a.dims[0], 2u);
  cr_assert_eq(a.lines[0], 2u);
  cr_assert_eq(a.lines[1], 4u); /* the quoted CR is a line of the file too */
  cr_assert(((const float *)a.data)[0] == 1 && ((const float *)a.data)[1] == 3);
  ty_data_array_close(&a);
}

/* Cells are decimal numbers, as numpy.loadtxt reads them: strtod's
 * hexadecimal is refused (float and int64 alike), inf and nan are
 * refused as not finite, and a control character of a cell (a line break
 * in a quoted one) is escaped in the message. */
Test(csv, only_decimal_cells_are_numbers) {
  ty_data_csv_opts h = {.header = true, .to = TY_DATA_F32};
  ty_data_csv_opts hi = {.header = true, .to = TY_DATA_I64};
  refused("a,b,c\n0x10,0x1p3,3\n", &h, TY_EPROTO,
          "t.csv:2: column 0 (\"a\"): not a number: \"0x10\"");
  refused("a,b,c\n16,0x1p3,3\n", &h, TY_EPROTO,
          "t.csv:2: column 1 (\"b\"): not a number: \"0x1p3\"");
  refused("a\n0x2\n", &hi, TY_EPROTO, "t.csv:2: column 0 (\"a\"): not an integer: \"0x2\"");
  refused("a\n0x1p1\n", &hi, TY_EPROTO, "not an integer: \"0x1p1\"");
  refused("a\n-Infinity\n", &h, TY_EPROTO, "\"-Infinity\" is not finite in float32");
  refused("a\nNaN\n", &h, TY_EPROTO, "\"NaN\" is not finite in float32");
  refused("a,b\n1,\"2\nx\"\n", &h, TY_EPROTO, "t.csv:3: column 1 (\"b\"): not a number: \"2\\nx\"");
  refused("a,b\n1,\"2\tx\x01\"\n", &h, TY_EPROTO, "not a number: \"2\\tx\\x01\"");
  refused("a\n\"x\ny\"\n", &hi, TY_EPROTO, "not an integer: \"x\\ny\"");
  ty_data_array a;
  char err[TY_ERR_LEN];
  cr_assert_eq(parse("a,b,c,d\n1e-3,+.5,-2E+2,\" 7\"\n", &h, &a, err), 0, "%s", err);
  const float *v = (const float *)a.data;
  cr_assert(v[0] == 1e-3f && v[1] == 0.5f && v[2] == -200.0f && v[3] == 7.0f, "%g %g %g %g", v[0],
            v[1], v[2], v[3]);
  ty_data_array_close(&a);
  cr_assert_eq(parse("a\n3.0\n-4\n", &hi, &a, err), 0, "%s", err);
  cr_assert(((const int64_t *)a.data)[0] == 3 && ((const int64_t *)a.data)[1] == -4);
  ty_data_array_close(&a);
}

/* A UTF-8 byte order mark (Excel's "CSV UTF-8") is skipped as pandas
 * skips it: the first header name and the first cell read as without. */
Test(csv, a_utf8_byte_order_mark_is_skipped) {
  const char *const first[] = {"a"};
  ty_data_csv_opts h = {.header = true, .columns = first, .n_columns = 1, .to = TY_DATA_F32};
  ty_data_csv_opts n = {.to = TY_DATA_F32};
  ty_data_array a;
  char err[TY_ERR_LEN];
  cr_assert_eq(parse("\xef\xbb\xbf"
                     "a,b\n0.125,2\n",
                     &h, &a, err),
               0, "%s", err);
  cr_assert(a.dims[0] == 1 && ((const float *)a.data)[0] == 0.125f);
  cr_assert_eq(a.lines[0], 2u);
  ty_data_array_close(&a);
  cr_assert_eq(parse("\xef\xbb\xbf"
                     "0.125,2\n",
                     &n, &a, err),
               0, "%s", err);
  cr_assert(a.dims[0] == 1 && a.dims[1] == 2 && ((const float *)a.data)[0] == 0.125f);
  ty_data_array_close(&a);
  refused("\xef\xbb\xbf", &n, TY_EPROTO, "t.csv: empty: no rows");
}

/* A label out of range is reported at its file line, not its row index. */
Test(csv, label_range_names_the_line) {
  char path[TY_TEST_DIR_LEN + 16];
  snprintf(path, sizeof path, "%s/y.csv", dir);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs("x,y\n0.5,1\n\n0.25,\"3\"\n1,7\n", f);
  fclose(f);
  ty_data_csv_opts o = {.header = true, .columns = label, .n_columns = 1, .to = TY_DATA_I64};
  ty_data_array a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_csv_open(path, &o, &a, err, sizeof err), 0, "%s", err);
  ty_dataset *ds = NULL;
  ty_data_feed fd = {.name = "labels", .to = TY_DATA_I64};
  cr_assert_eq(ty_dataset_from_arrays(&a, &fd, 1, &ds, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_dataset_check_range(ds, 0, 0, 4, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "y.csv:5: value 7 (sample 2) is outside [0, 4) for \"labels\""), "%s", err);
  ty_dataset_destroy(ds);
}

/* text parsed in one pass for opts[0..n): each array byte-identical to its
 * own parse; returns the pass' code, its message in err and the failed
 * index in *failed. The arrays are closed. */
static int one_pass(const char *text, const ty_data_csv_opts *opts, size_t n, size_t *failed,
                    char *err) {
  ty_data_array many[4], one;
  memset(many, 0, sizeof many);
  err[0] = '\0';
  int rc = ty_data_csv_parse_many((const uint8_t *)text, strlen(text), "t.csv", opts, n, many,
                                  failed, err, TY_ERR_LEN);
  for (size_t j = 0; j < n; j++) {
    char e1[TY_ERR_LEN];
    int r1 = parse(text, &opts[j], &one, e1);
    bool whole = rc == 0 || j < *failed; /* the arrays before a refused one are whole */
    if (whole) {
      cr_assert_eq(r1, 0, "array %zu: %s", j, e1);
      cr_assert(many[j].type == one.type && many[j].ndims == one.ndims &&
                    memcmp(many[j].dims, one.dims, sizeof one.dims) == 0 &&
                    many[j].nbytes == one.nbytes &&
                    memcmp(many[j].data, one.data, one.nbytes) == 0 &&
                    memcmp(many[j].lines, one.lines, sizeof *one.lines * one.dims[0]) == 0 &&
                    many[j].n_categories == one.n_categories,
                "array %zu differs from its own parse", j);
      for (size_t c = 0; c < one.n_categories; c++)
        cr_assert_str_eq(many[j].categories[c], one.categories[c]);
    } else if (j == *failed) { /* refused as its own parse refuses it */
      cr_assert(r1 == rc && strcmp(e1, err) == 0, "array %zu: \"%s\" alone, \"%s\" in the pass", j,
                e1, err);
    }
    ty_data_array_close(&one);
    ty_data_array_close(&many[j]);
  }
  return rc;
}

static const char *const all_feats[] = {"0..1"};

/* Features and labels of one file in one pass are the arrays two parses
 * give, and a refusal is the one the arrays opened one by one would give
 * first: the first array's (in order) even when a later array's cell
 * comes earlier in the file, and the file's own (a ragged row) before a
 * later array's. */
Test(csv, one_pass_feeds_several_arrays) {
  const char *text = "a,b,y\n1.5,2,setosa\n\n-3,\"4e-1\",virginica\n7,8,setosa\n";
  ty_data_csv_opts o[3] = {
      {.header = true, .columns = all_feats, .n_columns = 1, .to = TY_DATA_F32},
      {.header = true, .columns = label, .n_columns = 1, .to = TY_DATA_I64, .categories = true},
      {.header = true, .columns = feats, .n_columns = 1, .to = TY_DATA_F64}};
  char err[TY_ERR_LEN];
  size_t failed = 99;
  cr_assert_eq(one_pass(text, o, 3, &failed, err), 0, "%s", err);
  /* Array 1's bad cell (line 2) comes before array 0's (line 3): array 0's is reported. */
  const char *bad = "a,b,y\n1,2,x\n3,q,4\n";
  o[1].categories = false;
  cr_assert_eq(one_pass(bad, o, 2, &failed, err), TY_EPROTO);
  cr_assert(failed == 0 && strstr(err, "t.csv:3: column 1 (\"b\"): not a number: \"q\""), "%s",
            err);
  /* Array 0 whole, array 1 refused at its own cell. */
  cr_assert_eq(one_pass("a,b,y\n1,2,x\n3,4,5\n", o, 2, &failed, err), TY_EPROTO);
  cr_assert(failed == 1 && strstr(err, "t.csv:2: column 2 (\"y\"): not an integer: \"x\""), "%s",
            err);
  /* A ragged row after array 1's bad cell refuses the file: array 0. */
  cr_assert_eq(one_pass("a,b,y\n1,2,x\n3,4\n", o, 2, &failed, err), TY_EPROTO);
  cr_assert(failed == 0 && strstr(err, "t.csv:3: ragged row: 2 cells, the first row has 3"), "%s",
            err);
  /* Array 1's options and selection are refused as its own open refuses them. */
  o[1].to = TY_DATA_U8;
  cr_assert_eq(one_pass(text, o, 2, &failed, err), TY_EINVAL);
  cr_assert(failed == 1 && strstr(err, "not uint8"), "%s", err);
  const char *const zz[] = {"zz"};
  o[1] = (ty_data_csv_opts){.header = true, .columns = zz, .n_columns = 1, .to = TY_DATA_I64};
  cr_assert_eq(one_pass(text, o, 2, &failed, err), TY_EINVAL);
  cr_assert(failed == 1 && strstr(err, "t.csv:1: no column named \"zz\""), "%s", err);
  /* One pass has one header and one delimiter. */
  o[1] = (ty_data_csv_opts){.columns = label, .n_columns = 1, .to = TY_DATA_I64};
  ty_data_array two[2] = {{0}};
  cr_assert_eq(ty_data_csv_parse_many((const uint8_t *)text, strlen(text), "t.csv", o, 2, two,
                                      &failed, err, sizeof err),
               TY_EINVAL);
  cr_assert(failed == 1 && strstr(err, "t.csv: the arrays read in one pass need one csv.header "
                                       "and csv.delimiter"),
            "%s", err);
  ty_data_array_close(&two[0]);
  ty_data_array_close(&two[1]);
}

/* A float32 cell rounds as numpy's loadtxt(dtype=float32) does: to double,
 * then to float32. This decimal lies just off a float32 midpoint that is a
 * double: strtof (one rounding) gives the float below, numpy and this
 * reader the float above (the tie goes to even). */
Test(csv, float32_cells_round_twice_as_numpy) {
  const char *s = "5.0367200374603271";
  ty_data_csv_opts o = {.to = TY_DATA_F32};
  ty_data_array a;
  char err[TY_ERR_LEN];
  cr_assert_eq(parse(s, &o, &a, err), 0, "%s", err);
  float want = (float)strtod(s, NULL), once = strtof(s, NULL), got;
  memcpy(&got, a.data, sizeof got);
  cr_assert(want != once, "not a double-rounding case");
  cr_assert(got == want && got == 5.03672028f, "%.9g", (double)got);
  ty_data_array_close(&a);
}
