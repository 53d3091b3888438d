/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for ops/data's .npy reader: the pure header parser on
 * the raw bytes (with its invariant: header plus data fill the input
 * exactly), then the same bytes as a file opened as an array, as an .npz
 * archive's array "x" (libzip's reading and our member checks), as a
 * token stream and as a CSV file (libcsv's quoting and our cells, column
 * selection and categories), each pushed through a dataset; the CSV file
 * again in one pass for two arrays, which must be what two passes give. The CSV
 * options are drawn from the input's size so that every seed keeps its
 * meaning for the other readers; one target keeps the CI's fuzz time.
 */
#include "tests/fuzz/fuzz_data_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_array(const ty_data_array *a, const ty_data_array *b) {
  if (a->type != b->type || a->ndims != b->ndims || a->nbytes != b->nbytes ||
      memcmp(a->dims, b->dims, sizeof a->dims) != 0 || memcmp(a->data, b->data, a->nbytes) != 0 ||
      memcmp(a->lines, b->lines, sizeof *a->lines * a->dims[0]) != 0 ||
      a->n_categories != b->n_categories)
    return false;
  for (size_t i = 0; i < a->n_categories; i++)
    if (strcmp(a->categories[i], b->categories[i]) != 0) return false;
  return true;
}

/* The bytes in one pass for two arrays (o's and a label column of the
 * same header and delimiter): each is what its own parse gives, and a
 * refusal is the one the first array refused on its own gets. */
static void fuzz_csv_pass(const uint8_t *data, size_t size, const ty_data_csv_opts *o) {
  static const char *const label[] = {"0"};
  ty_data_csv_opts two[2] = {*o, *o};
  two[1].columns = label;
  two[1].n_columns = 1;
  two[1].to = TY_DATA_I64;
  two[1].categories = size % 5 == 0;
  ty_data_array many[2] = {{0}};
  size_t failed = 0;
  char err[TY_ERR_LEN], e1[TY_ERR_LEN];
  int rc = ty_data_csv_parse_many(data, size, "fuzz.csv", two, 2, many, &failed, err, sizeof err);
  if (rc != 0 && failed > 1) abort();
  for (size_t j = 0; j < 2; j++) {
    ty_data_array one = {0};
    int r1 = ty_data_csv_parse(data, size, "fuzz.csv", &two[j], &one, e1, sizeof e1);
    if ((rc == 0 || j < failed) && (r1 != 0 || !same_array(&one, &many[j]))) abort();
    if (rc != 0 && j == failed && (r1 != rc || strcmp(e1, err) != 0)) abort();
    ty_data_array_close(&one);
    ty_data_array_close(&many[j]);
  }
}

/* The bytes as a CSV file, with header, target type, selection and
 * categories picked by size. */
static void fuzz_csv(const uint8_t *data, size_t size) {
  static const char *const cols[] = {"1..", "0", "a", "2..3"};
  static const ty_data_type types[] = {TY_DATA_F32, TY_DATA_I64, TY_DATA_F64};
  ty_data_csv_opts o = {.header = size & 1,
                        .delimiter = (size & 2) ? ';' : 0,
                        .columns = cols + (size / 4) % 4,
                        .n_columns = (size / 16) % 3 ? 1 : 0,
                        .to = types[size % 3]};
  o.categories = o.to == TY_DATA_I64 && o.n_columns && size % 7 == 0;
  ty_data_array a = {0};
  char err[TY_ERR_LEN];
  if (ty_data_csv_parse(data, size, "fuzz.csv", &o, &a, err, sizeof err) == 0) {
    if (a.ndims < 1 || a.dims[0] == 0 || a.nbytes == 0 || !a.lines) abort();
    fuzz_dataset(&a);
  }
  ty_data_array_close(&a);
  fuzz_csv_pass(data, size, &o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ty_npy_info info;
  char err[TY_ERR_LEN];
  if (ty_data_npy_parse(data, size, "fuzz.npy", &info, err, sizeof err) == 0 &&
      info.data_offset + info.data_bytes != size)
    abort();
  fuzz_csv(data, size);
  char path[64];
  int fd = fuzz_memfd(data, size, path, sizeof path);
  if (fd < 0) return 0;
  ty_data_array a;
  if (ty_data_array_open(path, &a, err, sizeof err) == 0) fuzz_dataset(&a);
  ty_data_array_close(&a);
  if (ty_data_npz_open(path, "x", &a, err, sizeof err) == 0) fuzz_dataset(&a);
  ty_data_array_close(&a);
  if (ty_data_tokens_open(path, TY_DATA_U16, &a, err, sizeof err) == 0) {
    ty_data_feed in = {.name = "idx", .to = TY_DATA_I64},
                 lab = {.name = "labels", .to = TY_DATA_I64};
    ty_dataset *ds = NULL;
    if (ty_dataset_from_tokens(&a, 3, (uint32_t)(size % 5), &in, &lab, &ds, err, sizeof err) == 0)
      fuzz_gather(ds);
    ty_dataset_destroy(ds);
  }
  ty_data_array_close(&a);
  close(fd);
  return 0;
}
