/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train on columns of CSV files (ops/data/csv.c through feed.c): the
 * same blobs as test_feed's .npy files, written as CSV, train to exactly
 * the same weights; string labels are mapped and logged; a bad label and a
 * missing column are refused naming the config field, file and line; the
 * features and labels of one file are read in one pass (one open).
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/helpers.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

TestSuite(feed_csv, .fini = synth_cleanup);

/* DIR/name: synth_blob_files("", n, 1)'s blobs as a CSV file with a
 * header, an unused quoted id column first, the 8 features as %.9g (which
 * reads back as the same float32) and the labels as "class<k>" strings, or
 * as integers with bad_row's label set to 9. */
static void blobs_csv(const char *name, uint32_t n, bool strings, int bad_row) {
  float *x = malloc(sizeof(float) * 8 * n);
  int64_t *y = malloc(sizeof(int64_t) * n);
  synth_blobs(n, 8, 4, 1, x, y);
  FILE *f = fopen(synth_path(name), "w");
  cr_assert(f);
  fprintf(f, "id,f0,f1,f2,f3,f4,f5,f6,f7,label\r\n");
  for (uint32_t i = 0; i < n; i++) {
    fprintf(f, "\"row, %u\"", i);
    for (int j = 0; j < 8; j++)
      fprintf(f, ",%.9g", (double)x[i * 8 + j]);
    if (strings)
      fprintf(f, ",class%lld\r\n", (long long)y[i]);
    else
      fprintf(f, ",%lld\r\n", (long long)((int)i == bad_row ? 9 : y[i]));
  }
  fclose(f);
  free(x);
  free(y);
}

/* Columns of a CSV file train exactly as the .npy files of the same values;
 * string labels become the ids of their sorted order (logged); a label out
 * of range is refused at its line. */
Test(feed_csv, trains_as_the_same_npy, .timeout = 60) {
  synth_blob_files("", 512, 1);
  blobs_csv("blobs.csv", 512, true, -1);
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3}; /* test_feed's */
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c, z;
  synth_config(&c, 40, false);
  synth_config(&z, 40, false);
  /* Normalisation applies to a CSV column as to any array. */
  c.train_arrays[0].mean = z.train_arrays[0].mean = 0.5f;
  c.train_arrays[0].std = z.train_arrays[0].std = 2.0f;
  for (int i = 0; i < 2; i++) {
    ty_train_array *a = &z.train_arrays[i];
    free(a->path);
    a->path = ty_strdup(synth_path("blobs.csv"));
    a->csv = (ty_train_csv){
        .set = true, .header = true, .delimiter = ',', .n_columns = 1, .categories = i == 1};
    a->csv.columns = calloc(1, sizeof(char *));
    a->csv.columns[0] = ty_strdup(i == 0 ? "1..8" : "label");
  }
  FILE *log = tmpfile();
  ty_train *a = synth_trainer(g, &c, &(ty_train_opts){0});
  ty_train *b = synth_trainer(g, &z, &(ty_train_opts){.log = log});
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "blobs.csv: csv.categories for \"labels\": 0=\"class0\" 1=\"class1\" "
                         "2=\"class2\" 3=\"class3\""),
            "%s", text);
  free(text);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(a, 40, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(b, 40, err, sizeof err), 0, "%s", err);
  synth_assert_same_params(a, b);
  ty_train_destroy(a);
  ty_train_destroy(b);
  /* The test split maps its strings with the training file's categories. */
  synth_add_array(&z, true, synth_path("t.csv"), "x");
  synth_add_array(&z, true, synth_path("t.csv"), "labels");
  for (int i = 0; i < 2; i++)
    z.test_arrays[i].csv =
        (ty_train_csv){.set = true, .header = true, .delimiter = ';', .categories = i == 1};
  FILE *f = fopen(synth_path("t.csv"), "w");
  cr_assert(f);
  fputs("x;label\n1;class3\n2;class0\n3;class7\n", f);
  fclose(f);
  z.test_arrays[0].csv.columns = calloc(1, sizeof(char *));
  z.test_arrays[0].csv.columns[0] = ty_strdup("x");
  z.test_arrays[0].csv.n_columns = 1;
  z.test_arrays[1].csv.columns = calloc(1, sizeof(char *));
  z.test_arrays[1].csv.columns[0] = ty_strdup("label");
  z.test_arrays[1].csv.n_columns = 1;
  ty_train *t = NULL;
  cr_assert_neq(ty_train_create(g, &z, &(ty_train_opts){.log = log}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "config.dataset.test[1].path: ") &&
                strstr(err, "t.csv:4: column 1 (\"label\"): \"class7\" is not a category of "
                            "the training file"),
            "%s", err);
  for (int i = 0; i < 2; i++) {
    free(z.test_arrays[i].path);
    free(z.test_arrays[i].input);
    free(z.test_arrays[i].csv.columns[0]);
    free(z.test_arrays[i].csv.columns);
  }
  free(z.test_arrays);
  z.test_arrays = NULL;
  z.n_test_arrays = 0;
  fclose(log);
  blobs_csv("bad.csv", 64, false, 5);
  for (int i = 0; i < 2; i++) {
    free(z.train_arrays[i].path);
    z.train_arrays[i].path = ty_strdup(synth_path("bad.csv"));
  }
  z.train_arrays[1].csv.categories = false;
  cr_assert_neq(ty_train_create(g, &z, &(ty_train_opts){0}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "config.label_input (the logits \"logits\" have 4 classes): ") &&
                strstr(err, "bad.csv:7: value 9 (sample 5) is outside [0, 4) for \"labels\""),
            "%s", err);
  free(z.train_arrays[1].csv.columns[0]);
  z.train_arrays[1].csv.columns[0] = ty_strdup("lbl");
  cr_assert_neq(ty_train_create(g, &z, &(ty_train_opts){0}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "config.dataset.train[1].path: ") &&
                strstr(err, "bad.csv:1: no column named \"lbl\" (the header has: id, f0,"),
            "%s", err);
  ty_train_config_close(&c);
  ty_train_config_close(&z);
  ty_graph_destroy(g);
}

/* The opens of path the kernel reported to inotify descriptor in since the
 * last call (a real count, not the reader's word for it). */
static int opens(int in) {
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  int n = 0;
  ssize_t got;
  while ((got = read(in, buf, sizeof buf)) > 0)
    for (char *at = buf; at < buf + got;) {
      const struct inotify_event *e = (const struct inotify_event *)at;
      n += (e->mask & IN_OPEN) != 0;
      at += sizeof *e + e->len;
    }
  return n;
}

/* A file feeding the features and the labels is opened once, and gives
 * the trainer the weights two files would (the first test's); a refusal
 * of one of its arrays names that array, not only the file both read. */
Test(feed_csv, features_and_labels_of_one_file_open_it_once, .timeout = 60) {
  synth_blob_files("", 256, 1);
  blobs_csv("one.csv", 256, false, -1);
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c, z;
  synth_config(&c, 8, false);
  synth_config(&z, 8, false);
  for (int i = 0; i < 2; i++) {
    ty_train_array *a = &z.train_arrays[i];
    free(a->path);
    a->path = ty_strdup(synth_path("one.csv"));
    a->csv = (ty_train_csv){.set = true, .header = true, .delimiter = ',', .n_columns = 1};
    a->csv.columns = calloc(1, sizeof(char *));
    a->csv.columns[0] = ty_strdup(i == 0 ? "1..8" : "label");
  }
  int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  cr_assert(in >= 0);
  /* Closes too: the kernel merges an event into an identical one still queued. */
  cr_assert(inotify_add_watch(in, synth_path("one.csv"), IN_OPEN | IN_CLOSE_NOWRITE) >= 0);
  ty_train *a = synth_trainer(g, &c, &(ty_train_opts){0});
  ty_train *b = synth_trainer(g, &z, &(ty_train_opts){0});
  cr_assert_eq(opens(in), 1, "one.csv is read once for both arrays");
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(a, 8, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(b, 8, err, sizeof err), 0, "%s", err);
  synth_assert_same_params(a, b);
  ty_train_destroy(a);
  ty_train_destroy(b);
  /* Normalising the labels is refused naming train[1]: both arrays are one.csv. */
  z.train_arrays[1].mean = 0.5f;
  ty_train *t = NULL;
  cr_assert_neq(ty_train_create(g, &z, &(ty_train_opts){0}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "config.dataset.train[1]: ") &&
                strstr(err, "one.csv: divisor, mean and std apply to float32 inputs; \"labels\" "
                            "takes int64"),
            "%s", err);
  close(in);
  ty_train_config_close(&c);
  ty_train_config_close(&z);
  ty_graph_destroy(g);
}
