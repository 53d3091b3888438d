/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train: TrainConfig's dataset fields (arrays, token streams, image
 * channel statistics) decoded from the wire, and each bad one refused
 * naming the field. The data behind them is test_feed.c's.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "proto/train_config.pb-c.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct msg {
  Trainyard__TrainConfig m;
  Trainyard__SoftmaxCrossEntropy sce;
  Trainyard__Sgd sgd;
  Trainyard__Dataset ds;
  Trainyard__DataArray a[3], t[3];
  Trainyard__DataArray *ap[3], *tp[3];
  Trainyard__TokenStream tok;
  char *pats[2];
} msg;

static void msg_init(msg *s) {
  memset(s, 0, sizeof *s);
  s->m = (Trainyard__TrainConfig)TRAINYARD__TRAIN_CONFIG__INIT;
  s->sce = (Trainyard__SoftmaxCrossEntropy)TRAINYARD__SOFTMAX_CROSS_ENTROPY__INIT;
  s->sgd = (Trainyard__Sgd)TRAINYARD__SGD__INIT;
  s->ds = (Trainyard__Dataset)TRAINYARD__DATASET__INIT;
  s->sce.logits_output = "logits";
  s->m.loss_case = TRAINYARD__TRAIN_CONFIG__LOSS_SOFTMAX_CROSS_ENTROPY;
  s->m.softmax_cross_entropy = &s->sce;
  s->sgd.lr = 0.1f;
  s->m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER_SGD;
  s->m.sgd = &s->sgd;
  s->m.epochs = 1;
  s->m.dataset = &s->ds;
  const char *in[] = {"x", "labels", "mask"};
  for (int i = 0; i < 3; i++) {
    s->a[i] = (Trainyard__DataArray)TRAINYARD__DATA_ARRAY__INIT;
    s->t[i] = (Trainyard__DataArray)TRAINYARD__DATA_ARRAY__INIT;
    s->a[i].path = "train.npy";
    s->t[i].path = "test.npy";
    s->a[i].input = s->t[i].input = (char *)in[i];
    s->ap[i] = &s->a[i];
    s->tp[i] = &s->t[i];
  }
  s->ds.train = s->ap;
  s->ds.n_train = 2;
  s->tok = (Trainyard__TokenStream)TRAINYARD__TOKEN_STREAM__INIT;
  s->tok.train_path = "t.bin";
  s->tok.dtype = TRAINYARD__TOKEN_STREAM__DTYPE__UINT16;
  s->tok.context = 8;
}

static int decode(msg *s, ty_train_config *c, char *err) {
  size_t len = trainyard__train_config__get_packed_size(&s->m);
  uint8_t *buf = malloc(len + 1);
  trainyard__train_config__pack(&s->m, buf);
  int rc = ty_train_config_decode(buf, len, c, err, TY_ERR_LEN);
  free(buf);
  return rc;
}

static void rejects(msg *s, const char *want) {
  ty_train_config c;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(decode(s, &c, err), TY_EINVAL, "accepted; wanted \"%s\"", want);
  cr_assert(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
}

Test(feed, config_decodes_arrays_and_tokens) {
  msg s;
  msg_init(&s);
  s.a[0].mean = 0.5f;
  s.a[0].std = 0.25f;
  s.ds.test = s.tp;
  s.ds.n_test = 2;
  s.t[1].input = "x"; /* test arrays may come in another order */
  s.t[0].input = "labels";
  s.ds.dir = "/data";
  char *pats[] = {"fc2.*", "head.?"};
  s.m.trainable = pats;
  s.m.n_trainable = 2;
  s.m.frozen = pats;
  s.m.n_frozen = 1;
  ty_train_config c;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(decode(&s, &c, err), 0, "%s", err);
  cr_assert_eq(c.data_kind, TY_TRAIN_DATA_ARRAYS);
  cr_assert_eq(c.n_train_arrays, 2);
  cr_assert_str_eq(c.train_arrays[0].path, "train.npy");
  cr_assert_str_eq(c.data_dir, "/data");
  cr_assert_eq(c.n_test_arrays, 2);
  cr_assert_str_eq(c.test_arrays[1].input, "x");
  cr_assert_float_eq(c.test_arrays[1].mean, 0.5f, 0,
                     "test arrays inherit the train array's normalisation");
  cr_assert_float_eq(c.test_arrays[1].std, 0.25f, 0);
  cr_assert_eq(c.n_trainable, 2);
  cr_assert_str_eq(c.trainable[1], "head.?");
  cr_assert_eq(c.n_frozen, 1);
  ty_train_config_close(&c);
  msg_init(&s);
  s.ds.n_train = 0;
  s.ds.tokens = &s.tok;
  s.tok.test_path = "v.bin";
  cr_assert_eq(decode(&s, &c, err), 0, "%s", err);
  cr_assert_eq(c.data_kind, TY_TRAIN_DATA_TOKENS);
  cr_assert_eq(c.tokens.type, TY_DATA_U16);
  cr_assert_eq(c.tokens.context, 8);
  cr_assert_str_eq(c.tokens.test_path, "v.bin");
  cr_assert_eq(c.tokens.labels, TY_TRAIN_TOKENS_NEXT);
  ty_train_config_close(&c);
  s.tok.labels = TRAINYARD__TOKEN_STREAM__LABELS__SAME;
  cr_assert_eq(decode(&s, &c, err), 0, "%s", err);
  cr_assert_eq(c.tokens.labels, TY_TRAIN_TOKENS_SAME);
  ty_train_config_close(&c);
  msg_init(&s);
  s.m.dataset = NULL;
  cr_assert_eq(decode(&s, &c, err), 0, "%s", err);
  cr_assert_eq(c.data_kind, TY_TRAIN_DATA_FASHION_MNIST);
  ty_train_config_close(&c);
  msg_init(&s);
  Trainyard__CsvColumns csv = TRAINYARD__CSV_COLUMNS__INIT;
  char *cols[] = {"sepal_length", "2..3"};
  csv.header = true;
  csv.delimiter = ";";
  csv.columns = cols;
  csv.n_columns = 2;
  s.a[0].csv = &csv;
  cr_assert_eq(decode(&s, &c, err), 0, "%s", err);
  const ty_train_csv *tc = &c.train_arrays[0].csv;
  cr_assert(tc->set && tc->header && !tc->categories && tc->delimiter == ';');
  cr_assert(tc->n_columns == 2 && strcmp(tc->columns[1], "2..3") == 0);
  cr_assert(!c.train_arrays[1].csv.set);
  ty_train_config_close(&c);
  /* An image folder feeds two inputs: its labels become a second array
   * after the configured ones, pointing back at its DataArray. */
  msg_init(&s);
  Trainyard__ImageFolder imf = TRAINYARD__IMAGE_FOLDER__INIT;
  imf.labels = "labels";
  s.a[0].image_folder = s.t[0].image_folder = &imf;
  s.a[0].path = "pets/train";
  s.a[0].random_horizontal_flip = true;
  s.ds.n_train = s.ds.n_test = 1;
  s.ds.test = s.tp;
  cr_assert_eq(decode(&s, &c, err), 0, "%s", err);
  const ty_train_array *ta = c.train_arrays;
  cr_assert(c.n_train_arrays == 2 && c.n_test_arrays == 2);
  cr_assert(ta[0].image == TY_TRAIN_IMAGE_PIXELS && ta[0].augment.hflip);
  cr_assert(ta[1].image == TY_TRAIN_IMAGE_LABELS && ta[1].at == 0 && !ta[1].augment.hflip);
  cr_assert_str_eq(ta[1].path, "pets/train");
  cr_assert_str_eq(ta[1].input, "labels");
  cr_assert_eq(c.test_arrays[1].image, TY_TRAIN_IMAGE_LABELS);
  ty_train_config_close(&c);
}

Test(feed, config_refuses_bad_dataset_fields) {
  msg s;
  msg_init(&s);
  Trainyard__CsvColumns csv = TRAINYARD__CSV_COLUMNS__INIT;
  s.a[0].csv = &csv;
  csv.delimiter = "ab";
  rejects(&s, "config.dataset.train[0].csv.delimiter: \"ab\" is not one ASCII character other "
              "than a quote, a space or a line break");
  csv.delimiter = "\t";
  char *cols[] = {"x1", ""};
  csv.columns = cols;
  csv.n_columns = 2;
  rejects(&s, "config.dataset.train[0].csv.columns[1]: empty");
  s.a[0].key = "x";
  rejects(&s, "config.dataset.train[0]: key names an array of an .npz archive; a CSV file (csv) "
              "has none");
  msg_init(&s);
  s.sce.class_axis = (Trainyard__ClassAxis)7;
  rejects(&s, "config.softmax_cross_entropy.class_axis: 7 is not SECOND (0) or LAST (1)");
  float smoothing[] = {1, -0.1f, NAN};
  for (int i = 0; i < 3; i++) {
    msg_init(&s);
    s.sce.label_smoothing = smoothing[i];
    rejects(&s, "config.softmax_cross_entropy.label_smoothing: ");
  }
  msg_init(&s);
  s.a[1].path = "";
  rejects(&s, "config.dataset.train[1].path: empty");
  msg_init(&s);
  s.a[0].input = "";
  rejects(&s, "config.dataset.train[0].input: empty");
  msg_init(&s);
  s.a[1].input = "x";
  rejects(&s, "config.dataset.train[1].input: \"x\" is already fed by train[0]");
  msg_init(&s);
  s.a[0].std = -1;
  rejects(&s, "config.dataset.train[0]: divisor and std must be finite and >= 0");
  msg_init(&s);
  s.a[0].mean = NAN;
  rejects(&s, "config.dataset.train[0]: divisor and std");
  msg_init(&s);
  s.ds.name = "fashion-mnist";
  rejects(&s, "config.dataset: name and train are both set");
  msg_init(&s);
  s.ds.tokens = &s.tok;
  rejects(&s, "config.dataset: train and tokens are both set");
  msg_init(&s);
  s.ds.n_train = 0;
  s.ds.test = s.tp;
  s.ds.n_test = 1;
  rejects(&s, "config.dataset.test: needs config.dataset.train");
  msg_init(&s);
  s.ds.mean = 0.3f;
  rejects(&s, "config.dataset.mean: applies to fashion-mnist only");
  msg_init(&s);
  s.ds.test = s.tp;
  s.ds.n_test = 3;
  rejects(&s, "config.dataset.test[2].input: \"mask\" is fed by no train array");
  msg_init(&s);
  s.ds.test = s.tp;
  s.ds.n_test = 1;
  rejects(&s, "config.dataset.test: no array feeds \"labels\" (train[1] does)");
  msg_init(&s);
  s.ds.test = s.tp;
  s.ds.n_test = 2;
  s.t[0].random_horizontal_flip = true;
  rejects(&s, "config.dataset.test[0]: random_crop_padding and random_horizontal_flip augment "
              "training arrays only");
  msg_init(&s);
  Trainyard__ImageFolder imf = TRAINYARD__IMAGE_FOLDER__INIT;
  s.a[0].image_folder = &imf;
  rejects(&s, "config.dataset.train[0].image_folder.labels: empty (name the input");
  imf.labels = "x";
  rejects(&s, "config.dataset.train[0].image_folder.labels: \"x\" is also the images' input");
  imf.labels = "labels";
  imf.resize_set_case = TRAINYARD__IMAGE_FOLDER__RESIZE_SET_RESIZE; /* resize: 0, set */
  rejects(&s, "config.dataset.train[0].image_folder.resize: 0; the shorter side's pixels, 1 to "
              "16384 (leave it unset");
  imf.resize = 16385;
  rejects(&s, "config.dataset.train[0].image_folder.resize: 16385;");
  imf.resize = 256; /* accepted: the next refusal is the labels' */
  rejects(&s, "config.dataset.train[0].image_folder.labels: \"labels\" is already fed by "
              "train[1]");
  s.ds.n_train = 1;
  s.a[0].key = "x";
  rejects(&s, "config.dataset.train[0]: image_folder reads a folder of images; key and csv");
  msg_init(&s);
  Trainyard__DataArray *eight[8];
  for (int i = 0; i < 8; i++)
    eight[i] = &s.a[i ? 1 : 0]; /* one image folder among 8 */
  s.a[0].image_folder = &imf;
  s.ds.train = eight;
  s.ds.n_train = 8;
  rejects(&s, "config.dataset.train: 9 arrays (an image_folder's labels count as one); at most 8");
  msg_init(&s);
  Trainyard__DataArray *many[9];
  for (int i = 0; i < 9; i++)
    many[i] = &s.a[0];
  s.ds.train = many;
  s.ds.n_train = 9;
  rejects(&s, "config.dataset.train: 9 arrays; at most 8");
  msg_init(&s);
  s.ds.n_train = 0;
  s.ds.tokens = &s.tok;
  s.tok.context = 0;
  rejects(&s, "config.dataset.tokens.context: must be > 0");
  s.tok.context = 4;
  s.tok.train_path = "";
  rejects(&s, "config.dataset.tokens.train_path: empty");
  s.tok.train_path = "t.bin";
  s.tok.dtype = 7;
  rejects(&s, "config.dataset.tokens.dtype: unknown value 7");
  s.tok.dtype = TRAINYARD__TOKEN_STREAM__DTYPE__UINT16;
  s.tok.labels = 5;
  rejects(&s, "config.dataset.tokens.labels: unknown value 5 (NEXT, SAME or NONE)");
  /* NONE feeds no labels: a label_input the user wrote has nothing to take. */
  s.tok.labels = TRAINYARD__TOKEN_STREAM__LABELS__NONE;
  s.m.label_input = "targets";
  rejects(&s, "config.label_input: \"targets\" is set, but config.dataset.tokens.labels NONE "
              "feeds no labels");
  msg_init(&s);
  char *empty[] = {""};
  s.m.frozen = empty;
  s.m.n_frozen = 1;
  rejects(&s, "config.frozen[0]: empty pattern");
}

/* channel_mean / channel_std: copied; a test array that sets no
 * normalisation takes the train array's lists, one that sets its own
 * keeps them; every refusal names the field and the values. */
Test(feed, config_decodes_and_refuses_channel_stats) {
  msg s;
  msg_init(&s);
  float m[] = {0.485f, 0.456f, 0.406f}, sd[] = {0.229f, 0.224f, 0.225f};
  s.a[0].channel_mean = m;
  s.a[0].channel_std = sd;
  s.a[0].n_channel_mean = s.a[0].n_channel_std = 3;
  s.ds.test = s.tp;
  s.ds.n_test = 2;
  ty_train_config c;
  char err[TY_ERR_LEN] = "";
  for (int own = 0; own < 3; own++) {
    s.t[0].mean = own == 1 ? 0.5f : 0; /* 1: the test array's own mean and std */
    s.t[0].std = own == 1 ? 0.25f : 0;
    s.t[0].n_channel_mean = s.t[0].n_channel_std = own == 2 ? 2 : 0; /* 2: its own lists */
    s.t[0].channel_mean = s.t[0].channel_std = sd;
    cr_assert_eq(decode(&s, &c, err), 0, "%s", err);
    const ty_train_array *a = &c.train_arrays[0], *t = &c.test_arrays[0];
    cr_assert(a->n_channels == 3 && a->channel_mean[2] == m[2] && a->channel_std[0] == sd[0]);
    cr_assert_eq(t->n_channels, own == 0 ? 3u : own == 2 ? 2u : 0u, "case %d", own);
    if (own != 1) cr_assert(t->channel_std[1] == sd[1] && t->mean == 0 && t->std == 0);
    if (own == 0) cr_assert(t->channel_mean[2] == m[2] && t->channel_mean != a->channel_mean);
    if (own == 1) cr_assert(t->mean == 0.5f && t->std == 0.25f && !t->channel_mean);
    ty_train_config_close(&c);
  }
  s.ds.n_test = 0;
  s.a[0].n_channel_std = 2;
  rejects(&s, "config.dataset.train[0]: channel_mean has 3 values [0.485, 0.456, 0.406] but "
              "channel_std 2 [0.229, 0.224]; give one of each per channel");
  s.a[0].n_channel_std = 3;
  s.a[0].std = 0.5f;
  rejects(&s, "config.dataset.train[0]: mean 0 and std 0.5 (one for every channel) are set "
              "besides channel_mean [0.485, 0.456, 0.406] and channel_std [0.229, 0.224, 0.225]; "
              "set one or the other");
  s.a[0].std = 0;
  float bad[] = {0.2f, -1, 0.2f}, inf[] = {0.1f, 0.1f, INFINITY};
  s.a[0].channel_std = bad;
  rejects(&s, "config.dataset.train[0].channel_std[1]: -1; must be finite and > 0 (channel_std "
              "[0.2, -1, 0.2])");
  s.a[0].channel_std = inf;
  rejects(&s, "config.dataset.train[0].channel_std[2]: inf; must be finite and > 0");
  s.a[0].channel_std = sd;
  s.a[0].channel_mean = inf;
  rejects(&s, "config.dataset.train[0].channel_mean[2]: inf; must be finite (channel_mean [0.1, "
              "0.1, inf])");
}

/* config.drop_last: unset and OFF pad the epoch's last batch, ON drops it,
 * another value is refused naming the field. */
Test(feed, config_decodes_and_refuses_drop_last) {
  const Trainyard__Toggle v[] = {TRAINYARD__TOGGLE__TOGGLE_DEFAULT, TRAINYARD__TOGGLE__TOGGLE_OFF,
                                 TRAINYARD__TOGGLE__TOGGLE_ON};
  for (int i = 0; i < 3; i++) {
    msg s;
    msg_init(&s);
    s.m.drop_last = v[i];
    ty_train_config c;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(decode(&s, &c, err), 0, "%s", err);
    cr_assert_eq(c.drop_last, v[i] == TRAINYARD__TOGGLE__TOGGLE_ON);
    ty_train_config_close(&c);
  }
  msg s;
  msg_init(&s);
  s.m.drop_last = 3;
  rejects(&s, "config.drop_last: unknown value 3 (TOGGLE_ON or TOGGLE_OFF)");
}
