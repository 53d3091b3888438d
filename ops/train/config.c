/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TrainConfig decoding: protobuf bytes -> ty_train_config, with every
 * documented default applied and every bad field named ("config.<field>").
 * This is the only file of ops/train that sees generated protobuf types.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "lib/wire/wire.h"
#include "proto/train_config.pb-c.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Copies s into *out: NULL for a missing or empty string when optional,
 * "" kept otherwise. TY_ENOMEM instead of aborting (ops/ never aborts). */
static int copy_str(const char *s, bool optional, char **out) {
  *out = NULL;
  if (!s || (optional && !*s)) return 0;
  *out = strdup(s);
  return *out ? 0 : TY_ENOMEM;
}

#define MAX_BATCH (1u << 20)
#define MAX_EPOCHS 1000000u
#define MAX_STEPS ((uint64_t)1 << 40)
#define MAX_KEEP 10000u
#define MAX_EVAL_BATCH 65536u
#define MAX_PIPELINE 4096

static int decode_sgd(const Trainyard__Sgd *s, ty_train_config *c, char *err, size_t err_len) {
  if (!(s->lr > 0) || !isfinite(s->lr))
    return ty_errf(err, err_len, TY_EINVAL, "config.sgd.lr: must be finite and > 0 (got %g)",
                   s->lr);
  if (!(s->momentum >= 0 && s->momentum < 1))
    return ty_errf(err, err_len, TY_EINVAL, "config.sgd.momentum: must be in [0, 1) (got %g)",
                   s->momentum);
  if (!(s->weight_decay >= 0) || !isfinite(s->weight_decay))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.sgd.weight_decay: must be finite and >= 0 (got %g)", s->weight_decay);
  if (s->nesterov && s->momentum == 0)
    return ty_errf(err, err_len, TY_EINVAL, "config.sgd.nesterov: needs momentum > 0");
  ty_optim_opts_default(TY_OPTIM_SGD, &c->optim);
  c->optim.momentum = s->momentum;
  c->optim.weight_decay = s->weight_decay;
  c->optim.nesterov = s->nesterov;
  c->schedule.base_lr = s->lr;
  return 0;
}

static int decode_adam(const Trainyard__Adam *a, ty_train_config *c, char *err, size_t err_len) {
  ty_optim_opts_default(a->decoupled_weight_decay ? TY_OPTIM_ADAMW : TY_OPTIM_ADAM, &c->optim);
  if (!(a->lr >= 0) || !isfinite(a->lr)) /* 0: torch's default */
    return ty_errf(err, err_len, TY_EINVAL, "config.adam.lr: must be finite and > 0 (got %g)",
                   a->lr);
  if (!(a->beta1 >= 0 && a->beta1 < 1))
    return ty_errf(err, err_len, TY_EINVAL, "config.adam.beta1: must be in [0, 1) (got %g)",
                   a->beta1);
  if (!(a->beta2 >= 0 && a->beta2 < 1))
    return ty_errf(err, err_len, TY_EINVAL, "config.adam.beta2: must be in [0, 1) (got %g)",
                   a->beta2);
  if (a->eps_given_case == TRAINYARD__ADAM__EPS_GIVEN_EPS && (!(a->eps > 0) || !isfinite(a->eps)))
    return ty_errf(err, err_len, TY_EINVAL, "config.adam.eps: must be finite and > 0 (got %g)",
                   a->eps);
  if (a->weight_decay_given_case == TRAINYARD__ADAM__WEIGHT_DECAY_GIVEN_WEIGHT_DECAY &&
      (!(a->weight_decay >= 0) || !isfinite(a->weight_decay)))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.adam.weight_decay: must be finite and >= 0 (got %g)", a->weight_decay);
  if (a->beta1_given_case == TRAINYARD__ADAM__BETA1_GIVEN_BETA1)
    c->optim.beta1 = a->beta1; /* an explicit 0 is betas=(0, beta2) */
  if (a->beta2_given_case == TRAINYARD__ADAM__BETA2_GIVEN_BETA2) c->optim.beta2 = a->beta2;
  if (a->eps_given_case == TRAINYARD__ADAM__EPS_GIVEN_EPS) c->optim.eps = a->eps;
  if (a->weight_decay_given_case == TRAINYARD__ADAM__WEIGHT_DECAY_GIVEN_WEIGHT_DECAY)
    c->optim.weight_decay = a->weight_decay; /* unset: 0.01 for AdamW, 0 for Adam */
  c->schedule.base_lr = a->lr > 0 ? a->lr : 0.001;
  return 0;
}

static int decode_schedule(const Trainyard__LrSchedule *s, ty_train_config *c, char *err,
                           size_t err_len) {
  c->schedule.kind = TY_LR_CONSTANT;
  if (!s) return 0;
  c->schedule.warmup_steps = s->warmup_steps;
  if (s->kind_case == TRAINYARD__LR_SCHEDULE__KIND_STEP) {
    if (s->step->step_size == 0)
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.lr_schedule.step.step_size: must be > 0 (got 0)");
    if (!(s->step->gamma >= 0 && s->step->gamma <= 1)) /* NaN too */
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.lr_schedule.step.gamma: must be in (0, 1] (got %g)", s->step->gamma);
    c->schedule.kind = TY_LR_STEP;
    c->schedule.step_size = s->step->step_size;
    c->schedule.gamma = s->step->gamma > 0 ? s->step->gamma : 0.1;
  } else if (s->kind_case == TRAINYARD__LR_SCHEDULE__KIND_COSINE) {
    if (!(s->cosine->min_lr >= 0) || !isfinite(s->cosine->min_lr))
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.lr_schedule.cosine.min_lr: must be finite and >= 0 (got %g)",
                     s->cosine->min_lr);
    if (s->cosine->min_lr > c->schedule.base_lr) /* the optimizer's lr, decoded before */
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.lr_schedule.cosine.min_lr: %g is above the learning rate %g (%s); "
                     "it must be in [0, lr]",
                     s->cosine->min_lr, c->schedule.base_lr,
                     c->optim.kind == TY_OPTIM_SGD ? "config.sgd.lr"
                                                   : "config.adam.lr, 0 meaning 0.001");
    c->schedule.kind = TY_LR_COSINE;
    c->schedule.total_steps = s->cosine->total_steps; /* 0: resolved to the run's length */
    c->schedule.min_lr = s->cosine->min_lr;
  }
  return 0;
}

/* A DataArray's csv: one delimiter byte that is not a quote, space or
 * line break (libcsv's quoting would read those differently), no empty
 * column entry. */
static int decode_csv(const Trainyard__CsvColumns *m, const char *split, size_t i, bool has_key,
                      ty_train_csv *out, char *err, size_t err_len) {
  if (has_key)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu]: key names an array of an .npz archive; a CSV file "
                   "(csv) has none",
                   split, i);
  const char *d = m->delimiter && *m->delimiter ? m->delimiter : ",";
  if (strlen(d) != 1 || strchr("\" \r\n", d[0]) || (unsigned char)d[0] >= 0x80)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu].csv.delimiter: \"%s\" is not one ASCII character "
                   "other than a quote, a space or a line break",
                   split, i, d);
  for (size_t j = 0; j < m->n_columns; j++)
    if (!m->columns[j] || !*m->columns[j])
      return ty_errf(err, err_len, TY_EINVAL, "config.dataset.%s[%zu].csv.columns[%zu]: empty",
                     split, i, j);
  *out = (ty_train_csv){
      .set = true, .header = m->header, .categories = m->categories, .delimiter = d[0]};
  if (m->n_columns && !(out->columns = calloc(m->n_columns, sizeof *out->columns)))
    return TY_ENOMEM;
  for (size_t j = 0; j < m->n_columns; j++, out->n_columns++)
    if (!(out->columns[j] = strdup(m->columns[j]))) return TY_ENOMEM;
  return 0;
}

/* A DataArray's image_folder: a folder, not a file, so neither key nor
 * csv; its labels feed another input than its images. */
static int decode_image_folder(const Trainyard__DataArray *a, const char *split, size_t i,
                               ty_train_array *out, char *err, size_t err_len) {
  const char *labels = a->image_folder->labels;
  if ((a->key && *a->key) || a->csv)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu]: image_folder reads a folder of images; key and csv "
                   "name arrays of files",
                   split, i);
  if (!labels || !*labels)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu].image_folder.labels: empty (name the input the class "
                   "ids feed, e.g. the label_input)",
                   split, i);
  if (strcmp(labels, a->input) == 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu].image_folder.labels: \"%s\" is also the images' input",
                   split, i, labels);
  bool has_resize = a->image_folder->resize_set_case == TRAINYARD__IMAGE_FOLDER__RESIZE_SET_RESIZE;
  if (has_resize &&
      (a->image_folder->resize == 0 || a->image_folder->resize > TY_DATA_IMAGE_MAX_SIDE))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu].image_folder.resize: %u; the shorter side's pixels, 1 "
                   "to %u (leave it unset for no resize)",
                   split, i, a->image_folder->resize, TY_DATA_IMAGE_MAX_SIDE);
  out->image = TY_TRAIN_IMAGE_PIXELS;
  out->resize = has_resize ? a->image_folder->resize : 0;
  out->center_crop = a->image_folder->center_crop;
  return 0;
}

/* The class ids of image folder arrs[i]: a second array of the same folder,
 * without normalisation or augmentation (ids are integers). */
static int add_image_labels(const Trainyard__DataArray *m, const ty_train_array *arrs,
                            const ty_train_array *img, ty_train_array *out) {
  *out = (ty_train_array){.image = TY_TRAIN_IMAGE_LABELS, .at = (size_t)(img - arrs)};
  int rc = copy_str(img->path, false, &out->path);
  return rc ? rc : copy_str(m->image_folder->labels, false, &out->input);
}

/* Copies n floats into *out (NULL for none). */
static int copy_floats(const float *v, size_t n, float **out) {
  *out = NULL;
  if (n == 0) return 0;
  if ((*out = malloc(sizeof(float) * n)) == NULL) return TY_ENOMEM;
  memcpy(*out, v, sizeof(float) * n);
  return 0;
}

/* A DataArray's channel_mean and channel_std: as long as each other, in
 * place of mean and std, finite, the stds > 0. Whether their length is
 * the array's channel count is known when the file is opened (ops/data). */
static int decode_channels(const Trainyard__DataArray *a, const char *split, size_t i,
                           ty_train_array *out, char *err, size_t err_len) {
  size_t n = a->n_channel_mean;
  if (n == 0 && a->n_channel_std == 0) return 0;
  char ms[160], ss[160];
  ty_format_floats(a->channel_mean, n, ms, sizeof ms);
  ty_format_floats(a->channel_std, a->n_channel_std, ss, sizeof ss);
  if (n != a->n_channel_std)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu]: channel_mean has %zu values [%s] but channel_std %zu "
                   "[%s]; give one of each per channel",
                   split, i, n, ms, a->n_channel_std, ss);
  if (a->mean != 0 || a->std != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu]: mean %g and std %g (one for every channel) are set "
                   "besides channel_mean [%s] and channel_std [%s]; set one or the other",
                   split, i, (double)a->mean, (double)a->std, ms, ss);
  for (size_t k = 0; k < n; k++) {
    if (!isfinite(a->channel_mean[k]))
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.dataset.%s[%zu].channel_mean[%zu]: %g; must be finite "
                     "(channel_mean [%s])",
                     split, i, k, (double)a->channel_mean[k], ms);
    if (!isfinite(a->channel_std[k]) || !(a->channel_std[k] > 0))
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.dataset.%s[%zu].channel_std[%zu]: %g; must be finite and > 0 "
                     "(channel_std [%s])",
                     split, i, k, (double)a->channel_std[k], ss);
  }
  int rc = copy_floats(a->channel_mean, n, &out->channel_mean);
  if (rc == 0) rc = copy_floats(a->channel_std, n, &out->channel_std);
  if (rc == 0) out->n_channels = n;
  return rc;
}

/* One DataArray of config.dataset.<split>[i]. */
static int decode_array(const Trainyard__DataArray *a, const char *split, size_t i,
                        ty_train_array *out, char *err, size_t err_len) {
  if (!a->path || !*a->path)
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.%s[%zu].path: empty", split, i);
  if (!a->input || !*a->input)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu].input: empty (name the model input it feeds)", split, i);
  if (!(a->divisor >= 0) || !(a->std >= 0) || !isfinite(a->mean) || !isfinite(a->divisor) ||
      !isfinite(a->std))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu]: divisor and std must be finite and >= 0, mean finite",
                   split, i);
  if ((a->random_crop_padding || a->random_horizontal_flip) && strcmp(split, "train") != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s[%zu]: random_crop_padding and random_horizontal_flip "
                   "augment training arrays only; evaluation reads the images as they are",
                   split, i);
  int rc = copy_str(a->path, false, &out->path);
  if (rc == 0) rc = copy_str(a->input, false, &out->input);
  if (rc == 0) rc = copy_str(a->key, true, &out->key);
  if (rc == 0 && a->csv) rc = decode_csv(a->csv, split, i, out->key, &out->csv, err, err_len);
  if (rc == 0 && a->image_folder) rc = decode_image_folder(a, split, i, out, err, err_len);
  if (rc == 0) rc = decode_channels(a, split, i, out, err, err_len);
  if (rc != 0) return rc;
  out->divisor = a->divisor;
  out->mean = a->mean;
  out->std = a->std;
  out->augment = (ty_data_augment){a->random_crop_padding, a->random_horizontal_flip};
  return 0;
}

static const ty_train_array *find_input(const ty_train_array *a, size_t n, const char *input,
                                        size_t *out_i) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(a[i].input, input) == 0) {
      if (out_i) *out_i = i;
      return &a[i];
    }
  return NULL;
}

/* Array i's input is fed by no earlier array; what names its field. */
static int fed_once(const ty_train_array *a, size_t i, const char *split, const char *what,
                    char *err, size_t err_len) {
  size_t j;
  if (!find_input(a, i, a[i].input, &j)) return 0;
  return ty_errf(err, err_len, TY_EINVAL,
                 "config.dataset.%s[%zu].%s: \"%s\" is already fed by %s[%zu]%s", split,
                 ty_train_array_at(a, i), what, a[i].input, split, ty_train_array_at(a, j),
                 a[j].image == TY_TRAIN_IMAGE_LABELS ? ".image_folder.labels" : "");
}

static int decode_arrays(Trainyard__DataArray **msgs, size_t n, const char *split,
                         ty_train_array **out, size_t *out_n, char *err, size_t err_len) {
  size_t all = n; /* an image folder's labels are one more array */
  for (size_t i = 0; i < n; i++)
    all += msgs[i]->image_folder != NULL;
  if (all > TY_DATA_MAX_COLUMNS)
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.%s: %zu arrays%s; at most %d", split,
                   all, all > n ? " (an image_folder's labels count as one)" : "",
                   TY_DATA_MAX_COLUMNS);
  if (n == 0) return 0;
  *out = calloc(all, sizeof **out);
  if (!*out) return TY_ENOMEM;
  /* An image folder's labels go after the configured arrays, in their
   * order, so that index i < n is still config.dataset.<split>[i]. */
  size_t k = n;
  for (size_t i = 0; i < n; i++) {
    int rc = decode_array(msgs[i], split, i, &(*out)[i], err, err_len);
    (*out_n)++; /* counted even when refused: its partly copied strings are freed */
    if (rc == 0) rc = fed_once(*out, i, split, "input", err, err_len);
    if (rc != 0) return rc;
  }
  for (size_t i = 0; i < n; i++) {
    if (!msgs[i]->image_folder) continue;
    int rc = add_image_labels(msgs[i], *out, &(*out)[i], &(*out)[k]);
    (*out_n)++;
    if (rc == 0) rc = fed_once(*out, k, split, "image_folder.labels", err, err_len);
    if (rc != 0) return rc;
    k++;
  }
  return 0;
}

/* Test arrays feed exactly the train arrays' inputs; unset normalisation
 * is the train array's: the divisor, and either its mean and std or its
 * channel lists, whichever it has, unless the test array sets its own
 * (then the two never mix: each array is refused if it had both). */
static int match_test(ty_train_config *c, char *err, size_t err_len) {
  if (c->n_test_arrays == 0) return 0;
  for (size_t i = 0; i < c->n_test_arrays; i++) {
    ty_train_array *t = &c->test_arrays[i];
    const ty_train_array *tr = find_input(c->train_arrays, c->n_train_arrays, t->input, NULL);
    if (!tr)
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.dataset.test[%zu].%s: \"%s\" is fed by no train array",
                     ty_train_array_at(c->test_arrays, i),
                     t->image == TY_TRAIN_IMAGE_LABELS ? "image_folder.labels" : "input", t->input);
    if (t->divisor == 0) t->divisor = tr->divisor;
    if (t->n_channels == 0 && t->mean == 0 && t->std == 0 && tr->n_channels) {
      int rc = copy_floats(tr->channel_mean, tr->n_channels, &t->channel_mean);
      if (rc == 0) rc = copy_floats(tr->channel_std, tr->n_channels, &t->channel_std);
      if (rc != 0) return rc;
      t->n_channels = tr->n_channels;
    }
    if (t->n_channels) continue;
    if (t->mean == 0) t->mean = tr->mean;
    if (t->std == 0) t->std = tr->std;
  }
  for (size_t i = 0; i < c->n_train_arrays; i++)
    if (!find_input(c->test_arrays, c->n_test_arrays, c->train_arrays[i].input, NULL))
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.dataset.test: no array feeds \"%s\" (train[%zu] does)",
                     c->train_arrays[i].input, ty_train_array_at(c->train_arrays, i));
  return 0;
}

static int decode_tokens(const Trainyard__TokenStream *t, ty_train_config *c, char *err,
                         size_t err_len) {
  if (!t->train_path || !*t->train_path)
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.tokens.train_path: empty");
  if (t->context == 0)
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.tokens.context: must be > 0");
  if (t->context > (1u << 20))
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.tokens.context: %u is over 1048576",
                   t->context);
  if (t->dtype != TRAINYARD__TOKEN_STREAM__DTYPE__DTYPE_UNSPECIFIED &&
      t->dtype != TRAINYARD__TOKEN_STREAM__DTYPE__UINT16 &&
      t->dtype != TRAINYARD__TOKEN_STREAM__DTYPE__INT32)
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.tokens.dtype: unknown value %d",
                   (int)t->dtype);
  if (t->labels != TRAINYARD__TOKEN_STREAM__LABELS__NEXT &&
      t->labels != TRAINYARD__TOKEN_STREAM__LABELS__SAME &&
      t->labels != TRAINYARD__TOKEN_STREAM__LABELS__NONE)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.tokens.labels: unknown value %d (NEXT, SAME or NONE)",
                   (int)t->labels);
  c->data_kind = TY_TRAIN_DATA_TOKENS;
  int rc = copy_str(t->train_path, false, &c->tokens.train_path);
  if (rc == 0) rc = copy_str(t->test_path, true, &c->tokens.test_path);
  if (rc != 0) return rc;
  c->tokens.type = t->dtype == TRAINYARD__TOKEN_STREAM__DTYPE__UINT16  ? TY_DATA_U16
                   : t->dtype == TRAINYARD__TOKEN_STREAM__DTYPE__INT32 ? TY_DATA_I32
                                                                       : TY_DATA_INVALID;
  c->tokens.context = t->context;
  c->tokens.stride = t->stride;
  c->tokens.vocab_size = t->vocab_size;
  c->tokens.labels = t->labels == TRAINYARD__TOKEN_STREAM__LABELS__SAME   ? TY_TRAIN_TOKENS_SAME
                     : t->labels == TRAINYARD__TOKEN_STREAM__LABELS__NONE ? TY_TRAIN_TOKENS_NONE
                                                                          : TY_TRAIN_TOKENS_NEXT;
  return 0;
}

/* Which source the dataset names; only one may be set. */
static int dataset_kind(const Trainyard__Dataset *d, char *err, size_t err_len) {
  bool named = d->name && *d->name, arrays = d->n_train > 0, tokens = d->tokens != NULL;
  if (named && strcmp(d->name, "fashion-mnist") != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.name: \"%s\" is not a builtin dataset (only \"fashion-mnist\"; "
                   "name your own files "
                   "in config.dataset.train or config.dataset.tokens)",
                   d->name);
  if (named + arrays + tokens > 1)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset: %s and %s are both set (choose one source)",
                   named ? "name" : "train", tokens ? "tokens" : "train");
  if (d->n_test > 0 && !arrays)
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.test: needs config.dataset.train");
  if ((arrays || tokens) && (d->mean != 0 || d->std != 0))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.%s: applies to fashion-mnist only (set DataArray.mean and .std)",
                   d->mean != 0 ? "mean" : "std");
  return 0;
}

static int decode_dataset(const Trainyard__Dataset *d, ty_train_config *c, char *err,
                          size_t err_len) {
  c->shuffle = true;
  if (!d) return 0;
  int rc = dataset_kind(d, err, err_len);
  if (rc != 0) return rc;
  if (d->std < 0)
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.std: must be >= 0 (got %g)", d->std);
  if ((rc = copy_str(d->dir, true, &c->data_dir)) != 0) return rc;
  c->mean = d->mean;
  c->std = d->std;
  c->shuffle = d->shuffle != TRAINYARD__TOGGLE__TOGGLE_OFF;
  if (d->tokens) return decode_tokens(d->tokens, c, err, err_len);
  if (d->n_train == 0) return 0;
  c->data_kind = TY_TRAIN_DATA_ARRAYS;
  rc = decode_arrays(d->train, d->n_train, "train", &c->train_arrays, &c->n_train_arrays, err,
                     err_len);
  if (rc == 0)
    rc =
        decode_arrays(d->test, d->n_test, "test", &c->test_arrays, &c->n_test_arrays, err, err_len);
  return rc == 0 ? match_test(c, err, err_len) : rc;
}

/* "auto" (as_auto), "" (dflt) or a count 1 .. MAX_PIPELINE. */
static int pipeline_count(const char *v, const char *field, int dflt, int as_auto, char *err,
                          size_t err_len, int *out) {
  if (!v || !*v) return *out = dflt, 0;
  if (strcmp(v, "auto") == 0) return *out = as_auto, 0;
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (*end || errno || n < 1 || n > MAX_PIPELINE || !isdigit((unsigned char)v[0]))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.%s: expected \"auto\" or a count from 1 to %d, got \"%.64s\"", field,
                   MAX_PIPELINE, v);
  return *out = (int)n, 0;
}

/* The planner's pipeline knobs; stages against layers and ranks are the
 * planner's to check (it knows both). Empty stages (0) stay apart from an
 * explicit "1": both plan no pipeline, but only the first lets a model no
 * flat plan fits be pipelined (ty_train_plan_request). */
static int decode_pipeline(const Trainyard__TrainConfig *m, ty_train_config *c, char *err,
                           size_t err_len) {
  int rc = pipeline_count(m->pipeline_stages, "pipeline_stages", 0, TY_TRAIN_AUTO, err, err_len,
                          &c->pipeline_stages);
  if (rc == 0)
    rc = pipeline_count(m->micro_batches, "micro_batches", 0, 0, err, err_len, &c->micro_batches);
  if (rc != 0) return rc;
  if (c->micro_batches > 0 && c->batch_size % (uint32_t)c->micro_batches != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.micro_batches: %d does not divide config.batch_size %u",
                   c->micro_batches, c->batch_size);
  return 0; /* without stages: gradient accumulation (accum.c checks each rank's batch) */
}

/* config.trainable / config.frozen: non-empty patterns, copied. */
static int decode_patterns(char **in, size_t n, const char *field, char ***out, size_t *out_n,
                           char *err, size_t err_len) {
  if (n == 0) return 0;
  *out = calloc(n, sizeof **out);
  if (!*out) return TY_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!in[i] || !*in[i])
      return ty_errf(err, err_len, TY_EINVAL, "config.%s[%zu]: empty pattern", field, i);
    int rc = copy_str(in[i], false, &(*out)[*out_n]);
    if (rc != 0) return rc;
    (*out_n)++;
  }
  return 0;
}

static int decode_msg(const Trainyard__TrainConfig *m, ty_train_config *c, char *err,
                      size_t err_len) {
  int rc = 0;
  if (m->loss_case == TRAINYARD__TRAIN_CONFIG__LOSS_LOSS_OUTPUT) {
    if (!m->loss_output || !*m->loss_output)
      return ty_errf(err, err_len, TY_EINVAL, "config.loss_output: must name a graph output");
    rc = copy_str(m->loss_output, false, &c->loss_output);
  } else if (m->loss_case == TRAINYARD__TRAIN_CONFIG__LOSS_SOFTMAX_CROSS_ENTROPY) {
    const char *lo = m->softmax_cross_entropy->logits_output;
    if (!lo || !*lo)
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.softmax_cross_entropy.logits_output: must name a graph output");
    rc = copy_str(lo, false, &c->logits_output);
    Trainyard__ClassAxis ax = m->softmax_cross_entropy->class_axis;
    if (rc == 0 && ax != TRAINYARD__CLASS_AXIS__CLASS_AXIS_SECOND &&
        ax != TRAINYARD__CLASS_AXIS__CLASS_AXIS_LAST)
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.softmax_cross_entropy.class_axis: %d is not SECOND (0) or LAST (1)",
                     (int)ax);
    c->class_last = ax == TRAINYARD__CLASS_AXIS__CLASS_AXIS_LAST;
    float ls = m->softmax_cross_entropy->label_smoothing;
    if (!(ls >= 0 && ls < 1))
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.softmax_cross_entropy.label_smoothing: %g is not in [0, 1)",
                     (double)ls);
    c->label_smoothing = ls;
    c->ignore_index_set = m->softmax_cross_entropy->ignore_index_given_case ==
                          TRAINYARD__SOFTMAX_CROSS_ENTROPY__IGNORE_INDEX_GIVEN_IGNORE_INDEX;
    c->ignore_index = m->softmax_cross_entropy->ignore_index;
  } else {
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.loss: not set (set loss_output or softmax_cross_entropy)");
  }
  if (rc != 0) return rc;
  if (m->optimizer_case == TRAINYARD__TRAIN_CONFIG__OPTIMIZER_SGD)
    rc = decode_sgd(m->sgd, c, err, err_len);
  else if (m->optimizer_case == TRAINYARD__TRAIN_CONFIG__OPTIMIZER_ADAM)
    rc = decode_adam(m->adam, c, err, err_len);
  else
    return ty_errf(err, err_len, TY_EINVAL, "config.optimizer: not set (set sgd or adam)");
  if (rc == 0) rc = decode_schedule(m->lr_schedule, c, err, err_len);
  if (rc == 0) rc = decode_dataset(m->dataset, c, err, err_len);
  if (rc == 0)
    rc = decode_patterns(m->trainable, m->n_trainable, "trainable", &c->trainable, &c->n_trainable,
                         err, err_len);
  if (rc == 0)
    rc = decode_patterns(m->frozen, m->n_frozen, "frozen", &c->frozen, &c->n_frozen, err, err_len);
  if (rc != 0) return rc;
  if (m->epochs == 0 && m->max_steps == 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.epochs: 0 and config.max_steps: 0 (set at least one)");
  if (m->batch_size > MAX_BATCH)
    return ty_errf(err, err_len, TY_EINVAL, "config.batch_size: %u is above the maximum %u",
                   m->batch_size, MAX_BATCH);
  if (m->epochs > MAX_EPOCHS)
    return ty_errf(err, err_len, TY_EINVAL, "config.epochs: %u is above the maximum %u", m->epochs,
                   MAX_EPOCHS);
  if (m->max_steps > MAX_STEPS)
    return ty_errf(err, err_len, TY_EINVAL, "config.max_steps: %llu is above the maximum %llu",
                   (unsigned long long)m->max_steps, (unsigned long long)MAX_STEPS);
  if (m->device < TRAINYARD__DEVICE__DEVICE_DEFAULT || m->device > TRAINYARD__DEVICE__DEVICE_GPU)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.device: unknown value %d (DEVICE_CPU or DEVICE_GPU)", (int)m->device);
  if (m->drop_last < TRAINYARD__TOGGLE__TOGGLE_DEFAULT ||
      m->drop_last > TRAINYARD__TOGGLE__TOGGLE_OFF)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.drop_last: unknown value %d (TOGGLE_ON or TOGGLE_OFF)",
                   (int)m->drop_last);
  if (!(m->max_grad_norm >= 0) || !isfinite(m->max_grad_norm))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.max_grad_norm: must be finite and >= 0 (got %g; 0 disables clipping)",
                   m->max_grad_norm);
  if (m->eval_batch_size > MAX_EVAL_BATCH)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.eval_batch_size: %u is above the maximum %u (0 lets the trainer "
                   "choose by memory)",
                   m->eval_batch_size, MAX_EVAL_BATCH);
  if (m->keep_checkpoints > MAX_KEEP)
    return ty_errf(err, err_len, TY_EINVAL, "config.keep_checkpoints: %u is above the maximum %u",
                   m->keep_checkpoints, MAX_KEEP);
  /* Only here is a label_input the user wrote told from the default. */
  if (c->data_kind == TY_TRAIN_DATA_TOKENS && c->tokens.labels == TY_TRAIN_TOKENS_NONE &&
      m->label_input && *m->label_input)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.label_input: \"%s\" is set, but config.dataset.tokens.labels NONE "
                   "feeds no labels (the model's loss reads data_input alone): leave it \"\", "
                   "or use SAME to feed it the window too",
                   m->label_input);
  rc = copy_str(m->label_input && *m->label_input ? m->label_input : "labels", false,
                &c->label_input);
  if (rc == 0) rc = copy_str(m->data_input, true, &c->data_input);
  if (rc == 0) rc = copy_str(m->checkpoint_path, true, &c->checkpoint_path);
  if (rc != 0) return rc;
  c->batch_size = m->batch_size ? m->batch_size : 64;
  c->epochs = m->epochs;
  c->max_steps = m->max_steps;
  c->seed = m->seed;
  c->checkpoint_interval = m->checkpoint_interval;
  c->keep_checkpoints = m->keep_checkpoints ? m->keep_checkpoints : TY_CKPT_KEEP_DEFAULT;
  c->log_interval = m->log_interval ? m->log_interval : 100;
  c->fusion = m->fusion != TRAINYARD__TOGGLE__TOGGLE_OFF;
  c->eval_each_epoch = m->eval_each_epoch != TRAINYARD__TOGGLE__TOGGLE_OFF;
  c->drop_last = m->drop_last == TRAINYARD__TOGGLE__TOGGLE_ON;
  c->gpu = m->device == TRAINYARD__DEVICE__DEVICE_GPU;
  c->max_grad_norm = m->max_grad_norm;
  c->eval_interval = m->eval_interval;
  c->eval_batch_size = m->eval_batch_size;
  return decode_pipeline(m, c, err, err_len);
}

/* Repeated fields (data arrays, trainable/frozen patterns) counted on the
 * bytes before protobuf-c allocates from them: a config comes from a job's
 * submitter. */
#define MAX_REPEATED 256

/* Bytes that read as protobuf text format (the examples/models configs):
 * printable ASCII, whitespace or UTF-8, with a ':' or a '{'. Only asked
 * of bytes that failed to decode, so a binary config never matches. */
static bool looks_like_text(const uint8_t *data, size_t len) {
  bool punct = false;
  for (size_t i = 0; i < len; i++) {
    uint8_t b = data[i];
    if (b < 0x20 && b != '\n' && b != '\r' && b != '\t') return false;
    if (b == 0x7f) return false;
    punct |= b == ':' || b == '{';
  }
  return len > 0 && punct;
}

/* A config that does not decode: the text form gets the command that
 * encodes it, anything else the decoder's reason. */
static int undecodable(const uint8_t *data, size_t len, int rc, const char *why, char *err,
                       size_t err_len) {
  if (looks_like_text(data, len))
    return ty_errf(err, err_len, TY_EPROTO,
                   "config: this is protobuf text format; the config must be the binary "
                   "encoding: protoc --encode=trainyard.TrainConfig --proto_path=proto "
                   "proto/train_config.proto < config.txtpb > config.pb");
  if (why) return ty_errf(err, err_len, rc, "config.%s", why);
  return ty_errf(err, err_len, TY_EPROTO, "config: not a trainyard.TrainConfig message");
}

int ty_train_config_decode(const uint8_t *data, size_t len, ty_train_config *out, char *err,
                           size_t err_len) {
  memset(out, 0, sizeof *out);
  char why[TY_ERR_LEN];
  int capped = ty_wire_check_strings(&trainyard__train_config__descriptor, data, len, NULL, 0,
                                     MAX_REPEATED, NULL, 0, why, sizeof why);
  if (capped != 0) return undecodable(data, len, capped, why, err, err_len);
  Trainyard__TrainConfig *m = trainyard__train_config__unpack(NULL, len, data);
  if (!m) return undecodable(data, len, TY_EPROTO, NULL, err, err_len);
  int rc = decode_msg(m, out, err, err_len);
  trainyard__train_config__free_unpacked(m, NULL);
  if (rc != 0) ty_train_config_close(out);
  return rc;
}

/* The file must be a regular one: a FIFO or a directory named as the
 * config is refused at once, never waited on. */
int ty_train_config_load(const char *path, ty_train_config *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  ty_buf b;
  ty_buf_init(&b);
  const char *why;
  int rc = ty_read_regular(path, &b, &why);
  if (rc == TY_EINVAL)
    ty_errf(err, err_len, rc, "%s: %s (a config is a serialised trainyard.TrainConfig)", path, why);
  else if (rc == TY_ENOMEM)
    ty_errf(err, err_len, rc, "%s: cannot hold it in memory", path);
  else if (rc != 0)
    ty_errf(err, err_len, rc, "%s: %s", path, strerror(errno));
  else if (b.len == 0)
    rc = ty_errf(err, err_len, TY_EPROTO,
                 "%s: empty file, not a trainyard.TrainConfig (did protoc --encode fail?)", path);
  else if ((rc = ty_train_config_decode(b.data, b.len, out, err, err_len)) != 0 && err && err_len) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err);
    ty_errf(err, err_len, rc, "%s: %s", path, inner);
  }
  ty_buf_close(&b);
  return rc;
}

static void free_arrays(ty_train_array *a, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(a[i].path);
    free(a[i].input);
    free(a[i].key);
    free(a[i].channel_mean);
    free(a[i].channel_std);
    for (size_t j = 0; j < a[i].csv.n_columns; j++)
      free(a[i].csv.columns[j]);
    free(a[i].csv.columns);
  }
  free(a);
}

static void free_strings(char **s, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(s[i]);
  free(s);
}

void ty_train_config_close(ty_train_config *c) {
  if (!c) return;
  free_arrays(c->train_arrays, c->n_train_arrays);
  free_arrays(c->test_arrays, c->n_test_arrays);
  free(c->tokens.train_path);
  free(c->tokens.test_path);
  free_strings(c->trainable, c->n_trainable);
  free_strings(c->frozen, c->n_frozen);
  free(c->loss_output);
  free(c->logits_output);
  free(c->label_input);
  free(c->data_input);
  free(c->data_dir);
  free(c->checkpoint_path);
  memset(c, 0, sizeof *c);
}
