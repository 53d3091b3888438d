/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data to model inputs. Opens the dataset the config names (Fashion-MNIST,
 * arrays, or a token stream) with each column typed for the value it feeds,
 * checks every column of both splits against that value before the first
 * step, and copies each batch into the tensors bound to the executor.
 *
 * Feed k is column k of train_ds and of test_ds (test arrays are opened in
 * the train arrays' order), so a batch maps onto the feeds by index.
 *
 * Shapes: a sample fits a model input [N, d1, ...] when the dims d1... are
 * all fixed and hold as many values as the sample (it is reshaped, e.g. a
 * 28x28 image into [N, 784]), or when the ranks agree and every fixed dim
 * matches (free dims, such as a sequence length, take the data's). The
 * batch dim must be free, or fixed to the per-rank batch.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool builtin(const ty_train *t) {
  return t->cfg->logits_output != NULL;
}

/* Prepends "PREFIX: " to the message already in err. */
static int prefixed(int rc, char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int prefixed(int rc, char *err, size_t err_len, const char *fmt, ...) {
  if (!err || !err_len) return rc;
  char inner[TY_ERR_LEN], pre[TY_ERR_LEN];
  snprintf(inner, sizeof inner, "%s", err);
  va_list ap;
  va_start(ap, fmt);
  ty_verrf(pre, sizeof pre, rc, fmt, ap);
  va_end(ap);
  return ty_errf(err, err_len, rc, "%s: %s", pre, inner[0] ? inner : ty_strerror(rc));
}

/* The model input called name (graph inputs exclude initializers), or NULL. */
static const ty_graph_value *model_input(const ty_graph *m, const char *name) {
  int id = name ? ty_graph_find_value(m, name) : TY_NO_VALUE;
  const ty_graph_value *v = id == TY_NO_VALUE ? NULL : ty_graph_value_at(m, id);
  return v && v->is_input ? v : NULL;
}

void ty__train_name_list(const ty_graph *m, bool outputs, char *buf, size_t len) {
  size_t at = 0, n = outputs ? ty_graph_n_outputs(m) : ty_graph_n_inputs(m);
  buf[0] = 0;
  for (size_t i = 0; i < n && at < len; i++) {
    int v = outputs ? ty_graph_output(m, i) : ty_graph_input(m, i);
    at +=
        (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", ty_graph_value_at(m, v)->name);
  }
}

static int not_an_input(const ty_train *t, const char *where, const char *name, char *err,
                        size_t err_len) {
  char list[256];
  ty__train_name_list(t->model, false, list, sizeof list);
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: \"%s\" is not an input of the model (its inputs: %s)", where, name, list);
}

/* The type data must have to feed name: the model input's, or int64 for
 * the builtin loss's labels. */
static int feed_type(const ty_train *t, const char *name, const char *where, ty_data_type *out,
                     char *err, size_t err_len) {
  const ty_graph_value *v = model_input(t->model, name);
  if (!v && builtin(t) && strcmp(name, t->cfg->label_input) == 0) {
    *out = TY_DATA_I64;
    return 0;
  }
  if (!v) return not_an_input(t, where, name, err, err_len);
  *out = ty_data_type_from_onnx(v->dtype);
  if (*out == TY_DATA_INVALID)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: model input \"%s\" is %s, which no data file can feed", where, name,
                   ty_dtype_name(v->dtype));
  return 0;
}

/* dir/path for a relative path when dir is set. */
static int resolve(const char *dir, const char *path, char *out, size_t len, char *err,
                   size_t err_len) {
  int n = dir && *dir && path[0] != '/' ? snprintf(out, len, "%s/%s", dir, path)
                                        : snprintf(out, len, "%s", path);
  return n < 0 || (size_t)n >= len ? ty_errf(err, err_len, TY_EINVAL, "%s: path too long", path)
                                   : 0;
}

/* data_input, or the model's first input. */
static const char *data_input(const ty_train *t) {
  if (t->cfg->data_input) return t->cfg->data_input;
  return ty_graph_n_inputs(t->model)
             ? ty_graph_value_at(t->model, ty_graph_input(t->model, 0))->name
             : "";
}

static int set_names(ty_train *t, const char *const *names, size_t n) {
  for (size_t k = 0; k < n; k++)
    if (!(t->names[k] = strdup(names[k]))) return TY_ENOMEM;
  return 0;
}

static const char *const token_labels[] = {"NEXT", "SAME", "NONE"};

/* A token stream's feeds by TokenStream.labels: data_input, and
 * label_input but under NONE. Only NEXT's shifted labels suit the builtin
 * loss; a model with its own loss takes label_input as an input. */
static int token_feeds(ty_train *t, const char *din, char *err, size_t err_len) {
  unsigned form = (unsigned)t->cfg->tokens.labels; /* the decoder checked it; C callers not */
  if (form >= TY_ARRAY_LEN(token_labels))
    return ty_errf(err, err_len, TY_EINVAL, "config.dataset.tokens.labels: unknown value %u", form);
  const char *lab = t->cfg->label_input, *how = token_labels[form];
  bool has = model_input(t->model, lab) != NULL;
  char list[256];
  ty__train_name_list(t->model, false, list, sizeof list);
  if (t->cfg->tokens.labels != TY_TRAIN_TOKENS_NEXT && builtin(t))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.tokens.labels: %s feeds the window unshifted, but the builtin "
                   "softmax_cross_entropy needs the next tokens as labels: use NEXT, or set "
                   "loss_output to the loss of a model that shifts the window itself",
                   how);
  if (t->cfg->tokens.labels == TY_TRAIN_TOKENS_NONE && has)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.tokens.labels: NONE feeds no labels, but the model has the "
                   "input \"%s\" (config.label_input): use SAME to feed it the window, or NEXT "
                   "for the next tokens",
                   lab);
  if (t->cfg->tokens.labels == TY_TRAIN_TOKENS_SAME && !has)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.label_input: \"%s\" is not an input of the model (its inputs: %s); "
                   "config.dataset.tokens.labels SAME feeds the window to it: name the model's "
                   "labels input there, or use NONE for a loss that reads data_input alone",
                   lab, list);
  if (t->cfg->tokens.labels == TY_TRAIN_TOKENS_NEXT && !builtin(t) && !has)
    /* A model computing its own loss from the inputs alone (shifting idx
     * itself) has nowhere to take the next tokens: say what to change. */
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.label_input: \"%s\" is not an input of the model (its inputs: %s); a "
                   "token stream feeds each window's next tokens (window[1:]) to "
                   "config.label_input: give a model that computes its own loss an input for "
                   "them, forward(idx, targets) as nanoGPT's, and name it there, or set "
                   "config.dataset.tokens.labels: NONE for one that shifts idx itself",
                   lab, list);
  t->n_feeds = t->cfg->tokens.labels == TY_TRAIN_TOKENS_NONE ? 1 : 2;
  return set_names(t, (const char *[]){din, lab}, t->n_feeds);
}

/* Feed k's name from the config alone (no file is opened): data_input and
 * label_input, or one per train array, each checked against the model. */
static int feed_names(ty_train *t, char *err, size_t err_len) {
  const ty_train_config *c = t->cfg;
  if (c->data_kind == TY_TRAIN_DATA_ARRAYS) {
    const char *names[TY_DATA_MAX_COLUMNS];
    ty_data_type to;
    int rc = 0;
    for (size_t k = 0; k < c->n_train_arrays && rc == 0; k++) {
      char where[64];
      snprintf(where, sizeof where, "config.dataset.train[%zu]", k);
      names[k] = c->train_arrays[k].input;
      rc = feed_type(t, names[k], where, &to, err, err_len);
    }
    t->n_feeds = c->n_train_arrays;
    /* Each array names its input; a data_input set beside them must still
     * be one (a typo would otherwise pass unnoticed). */
    if (rc == 0 && c->data_input && !model_input(t->model, c->data_input))
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.data_input: \"%s\" is not an input of the model (the arrays of "
                     "config.dataset.train feed the inputs they name; leave data_input unset)",
                     c->data_input);
    return rc ? rc : set_names(t, names, c->n_train_arrays);
  }
  const char *din = data_input(t);
  if (!model_input(t->model, din)) {
    if (c->data_kind == TY_TRAIN_DATA_TOKENS)
      return not_an_input(t, "config.data_input", din, err, err_len);
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.data_input: \"%s\" is not an input of the model", din);
  }
  if (c->data_kind == TY_TRAIN_DATA_TOKENS) return token_feeds(t, din, err, err_len);
  t->n_feeds = 2;
  return set_names(t, (const char *[]){din, c->label_input}, 2);
}

static int open_fashion(ty_train *t, char *err, size_t err_len) {
  const ty_train_config *c = t->cfg;
  ty_data_opts d = {.dir = c->data_dir, .mean = c->mean, .std = c->std};
  int rc = ty_data_load_fashion_mnist(&d, TY_DATA_TRAIN, &t->train_ds, err, err_len);
  if (rc == 0) rc = ty_data_load_fashion_mnist(&d, TY_DATA_TEST, &t->test_ds, err, err_len);
  return rc;
}

/* Writes "PATH: WHAT for "FEED": 0="a" 1="b"" to the job log: ids are
 * ranks of sorted names, and the user needs to know which is which. */
static void log_categories(const ty_train *t, const char *path, const char *what,
                           const ty_data_feed *f, const ty_data_array *a) {
  FILE *log = t->opts.log ? t->opts.log : stdout;
  fprintf(log, "%s: %s for \"%s\":", path, what, f->name);
  for (size_t i = 0; i < a->n_categories; i++)
    fprintf(log, " %zu=\"%s\"", i, a->categories[i]);
  fprintf(log, "\n");
}

/* An image folder's images (the model input's C, H and W: it must be
 * [N, C, H, W] with C 1 or 3; a free H or W takes the first image's) or
 * its class ids, numbered as the training folder's (train) for a test
 * folder. */
static int open_images(const ty_train *t, const ty_train_array *arr, const char *path,
                       const ty_data_feed *f, const ty_data_column *train, ty_data_array *out,
                       char *err, size_t err_len) {
  ty_data_imgdir_opts o = {.labels = arr->image == TY_TRAIN_IMAGE_LABELS};
  if (train && train->categories) {
    o.known = train->categories;
    o.n_known = train->n_categories;
  }
  const ty_graph_value *v = model_input(t->model, f->name);
  if (!o.labels) {
    const ty_shape *m = v ? &v->shape : NULL;
    if (!m || m->rank != 4 || (m->dims[1] != 1 && m->dims[1] != 3)) {
      char ms[96] = "the labels";
      if (m) ty_shape_format(m, ms, sizeof ms);
      memset(out, 0, sizeof *out);
      return ty_errf(err, err_len, TY_EINVAL,
                     "image_folder: model input \"%s\" is %s; images feed [N, C, H, W] with C 1 "
                     "(grayscale) or 3 (RGB)",
                     f->name, ms);
    }
    o.want = (ty_data_image_want){(uint32_t)m->dims[1], m->dims[2] > 0 ? (uint32_t)m->dims[2] : 0,
                                  m->dims[3] > 0 ? (uint32_t)m->dims[3] : 0, arr->resize,
                                  arr->center_crop};
  }
  int rc = ty_data_imgdir_open(path, &o, out, err, err_len);
  if (rc == 0 && o.labels && !train) log_categories(t, path, "image_folder classes", f, out);
  return rc;
}

/* The options of a CSV array feeding f; train is the training column of
 * the same feed when arr is a test array: its categories give the test
 * file's ids, so that an id is one class in both. */
static ty_data_csv_opts csv_opts(const ty_train_array *arr, const ty_data_feed *f,
                                 const ty_data_column *train) {
  ty_data_csv_opts o = {.header = arr->csv.header,
                        .delimiter = arr->csv.delimiter,
                        .columns = (const char *const *)arr->csv.columns,
                        .n_columns = arr->csv.n_columns,
                        .to = f->to,
                        .categories = arr->csv.categories};
  if (train && train->categories) {
    o.known = train->categories;
    o.n_known = train->n_categories;
  }
  return o;
}

/* Opens array arr (at the resolved path) typed for feed f: an image
 * folder, an .npz archive's array or a .npy / IDX file (CSV files are
 * open_csv's). train as for csv_opts. */
static int open_one(const ty_train *t, const ty_train_array *arr, const char *path,
                    const ty_data_feed *f, const ty_data_column *train, ty_data_array *out,
                    char *err, size_t err_len) {
  if (arr->image) return open_images(t, arr, path, f, train, out, err, err_len);
  return arr->key ? ty_data_npz_open(path, arr->key, out, err, err_len)
                  : ty_data_array_open(path, out, err, err_len);
}

/* Feed k of a split: the array feeding it, its config entry, its feed and
 * its resolved path. */
typedef struct slot {
  size_t i; /* in the split's arrays */
  char where[64];
  char path[PATH_MAX];
  int rc;    /* what preparing it gave; its message is made again when reported */
  bool open; /* a CSV pass opened for an earlier feed filled it */
} slot;

/* A refusal of a shared CSV pass that belongs to a later feed: it is
 * reported when open_arrays reaches that feed, so that the arrays before
 * it are opened (and refused) in the order they always were. */
typedef struct pending {
  size_t k; /* SIZE_MAX: none */
  int rc;
  char msg[TY_ERR_LEN];
} pending;

static int prepare(const ty_train *t, const ty_train_array *arrs, size_t n, const char *split,
                   size_t k, slot *s, ty_data_feed *f, char *err, size_t err_len) {
  size_t i = 0;
  while (i + 1 < n && strcmp(arrs[i].input, t->names[k]) != 0)
    i++;
  s->i = i;
  snprintf(s->where, sizeof s->where, "config.dataset.%s[%zu]", split, ty_train_array_at(arrs, i));
  *f = (ty_data_feed){.name = arrs[i].input,
                      .where = s->where,
                      .divisor = arrs[i].divisor,
                      .mean = arrs[i].mean,
                      .std = arrs[i].std,
                      .channel_mean = arrs[i].channel_mean,
                      .channel_std = arrs[i].channel_std,
                      .n_channels = arrs[i].n_channels,
                      .augment = arrs[i].augment};
  int rc = feed_type(t, arrs[i].input, s->where, &f->to, err, err_len);
  return rc ? rc : resolve(t->cfg->data_dir, arrs[i].path, s->path, sizeof s->path, err, err_len);
}

/* Whether b's file is read in the pass that reads a's: the same CSV file
 * (by its resolved path) with the same header and delimiter. */
static bool same_pass(const ty_train_array *a, const slot *sa, const ty_train_array *b,
                      const slot *sb) {
  return b->csv.set && !b->image && strcmp(sa->path, sb->path) == 0 &&
         a->csv.header == b->csv.header && a->csv.delimiter == b->csv.delimiter;
}

/* Feed k's CSV file, in one pass with every later feed of the split that
 * reads the same file (up to the first feed that could not be prepared,
 * which is refused first). A refusal belonging to a later feed waits in
 * pend. train: the training dataset when these are test arrays. */
static int open_csv(const ty_train_array *arrs, slot *s, const ty_data_feed *f, ty_data_array *a,
                    size_t n, size_t k, const ty_dataset *train, pending *pend, char *err,
                    size_t err_len) {
  size_t m[TY_DATA_MAX_COLUMNS], nm = 0;
  ty_data_csv_opts o[TY_DATA_MAX_COLUMNS];
  ty_data_array got[TY_DATA_MAX_COLUMNS];
  for (size_t q = k; q < n && s[q].rc == 0; q++)
    if (!s[q].open && same_pass(&arrs[s[k].i], &s[k], &arrs[s[q].i], &s[q])) {
      o[nm] = csv_opts(&arrs[s[q].i], &f[q], train ? ty_dataset_column(train, q) : NULL);
      m[nm++] = q;
    }
  size_t bad = 0;
  int rc = ty_data_csv_open_many(s[k].path, o, nm, got, &bad, err, err_len);
  for (size_t q = 0; q < nm; q++) {
    a[m[q]] = got[q];
    s[m[q]].open = true;
  }
  if (rc == 0 || m[bad] == k) return rc;
  pend->k = m[bad];
  pend->rc = rc;
  snprintf(pend->msg, sizeof pend->msg, "%s", err);
  return 0;
}

/* One split's arrays, in the order of the train arrays' inputs. Arrays of
 * one CSV file share a pass; every refusal is still the one opening the
 * arrays one by one would give first. */
static int open_arrays(ty_train *t, const ty_train_array *arrs, size_t n, const char *split,
                       ty_dataset **out, char *err, size_t err_len) {
  ty_data_array a[TY_DATA_MAX_COLUMNS];
  ty_data_feed f[TY_DATA_MAX_COLUMNS];
  slot *s = calloc(TY_DATA_MAX_COLUMNS, sizeof *s);
  if (!s) return ty_errf(err, err_len, TY_ENOMEM, "config.dataset.%s: no memory", split);
  memset(a, 0, sizeof a);
  memset(f, 0, sizeof f);
  const ty_dataset *train = out == &t->test_ds ? t->train_ds : NULL;
  char scratch[TY_ERR_LEN];
  for (size_t k = 0; k < n; k++)
    s[k].rc = prepare(t, arrs, n, split, k, &s[k], &f[k], scratch, sizeof scratch);
  pending pend = {.k = SIZE_MAX};
  int rc = 0;
  for (size_t k = 0; k < n && rc == 0; k++) {
    const ty_train_array *arr = &arrs[s[k].i];
    if (s[k].rc != 0) { /* its message, in its turn */
      rc = prepare(t, arrs, n, split, k, &s[k], &f[k], err, err_len);
      break;
    }
    if (k == pend.k) {
      rc = pend.rc;
      snprintf(err, err_len, "%s", pend.msg);
    } else if (!s[k].open && arr->csv.set && !arr->image) {
      rc = open_csv(arrs, s, f, a, n, k, train, &pend, err, err_len);
    } else if (!s[k].open) {
      rc = open_one(t, arr, s[k].path, &f[k], train ? ty_dataset_column(train, k) : NULL, &a[k],
                    err, err_len);
    }
    if (rc == 0 && arr->csv.set && a[k].n_categories)
      log_categories(t, s[k].path, "csv.categories", &f[k], &a[k]);
    if (rc != 0)
      prefixed(rc, err, err_len, "%s.%s", s[k].where,
               rc == TY_ENOTFOUND && arr->key ? "key" : "path");
  }
  /* Its refusals name the array: f[k].where. */
  if (rc == 0) rc = ty_dataset_from_arrays(a, f, n, out, err, err_len);
  for (size_t k = 0; k < n; k++)
    ty_data_array_close(&a[k]);
  free(s);
  return rc;
}

static int open_tokens(ty_train *t, const char *file, ty_dataset **out, char *err, size_t err_len) {
  const ty_train_tokens *tk = &t->cfg->tokens;
  ty_data_feed in = {.name = t->names[0]}, lab = {.name = t->names[1] ? t->names[1] : ""};
  ty_data_array a;
  char path[PATH_MAX];
  bool labels = t->n_feeds == 2; /* token_feeds: none under NONE */
  int rc = feed_type(t, in.name, "config.data_input", &in.to, err, err_len);
  if (rc == 0 && labels) rc = feed_type(t, lab.name, "config.label_input", &lab.to, err, err_len);
  if (rc == 0) rc = resolve(t->cfg->data_dir, file, path, sizeof path, err, err_len);
  if (rc != 0) return rc;
  if ((rc = ty_data_tokens_open(path, tk->type, &a, err, err_len)) != 0) {
    ty_data_array_close(&a);
    return prefixed(rc, err, err_len, "config.dataset.tokens");
  }
  ty_data_windows w = {
      .context = tk->context, .stride = tk->stride, .shift = tk->labels == TY_TRAIN_TOKENS_NEXT};
  rc = ty_dataset_from_windows(&a, &w, &in, labels ? &lab : NULL, out, err, err_len);
  if (rc == 0 && tk->vocab_size)
    rc = ty_dataset_check_range(*out, 0, 0, tk->vocab_size, err, err_len);
  return rc ? prefixed(rc, err, err_len, "config.dataset.tokens") : 0;
}

static int open_source(ty_train *t, char *err, size_t err_len) {
  const ty_train_config *c = t->cfg;
  int rc = feed_names(t, err, err_len);
  if (rc != 0) return rc;
  if (c->data_kind == TY_TRAIN_DATA_FASHION_MNIST) return open_fashion(t, err, err_len);
  if (c->data_kind == TY_TRAIN_DATA_TOKENS) {
    rc = open_tokens(t, c->tokens.train_path, &t->train_ds, err, err_len);
    if (rc == 0 && c->tokens.test_path)
      rc = open_tokens(t, c->tokens.test_path, &t->test_ds, err, err_len);
    return rc;
  }
  rc = open_arrays(t, c->train_arrays, c->n_train_arrays, "train", &t->train_ds, err, err_len);
  if (rc == 0 && c->n_test_arrays)
    rc = open_arrays(t, c->test_arrays, c->n_test_arrays, "test", &t->test_ds, err, err_len);
  return rc;
}

/* Every model input fed, and the labels when the builtin loss needs them
 * (feed_names set the feeds; a dataset has one column per feed). */
static int check_coverage(ty_train *t, char *err, size_t err_len) {
  t->label_feed = -1;
  for (size_t k = 0; k < t->n_feeds; k++)
    if (strcmp(t->names[k], t->cfg->label_input) == 0) t->label_feed = (int)k;
  for (size_t i = 0; i < ty_graph_n_inputs(t->model); i++) {
    const char *name = ty_graph_value_at(t->model, ty_graph_input(t->model, i))->name;
    size_t k = 0;
    while (k < t->n_feeds && strcmp(t->names[k], name) != 0)
      k++;
    if (k == t->n_feeds)
      return ty_errf(err, err_len, TY_EINVAL, "model input \"%s\" is fed by no data (%s)", name,
                     t->cfg->data_kind == TY_TRAIN_DATA_ARRAYS
                         ? "add a config.dataset.train array for it"
                         : "this dataset feeds data_input and label_input only");
    const ty_shape *s = &ty_graph_value_at(t->model, ty_graph_input(t->model, i))->shape;
    uint32_t eb = t->cfg->eval_batch_size;
    if (eb && s->rank > 0 && s->dims[0] >= 0 && s->dims[0] != (int64_t)eb)
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.eval_batch_size: %u, but model input \"%s\" has its batch dim fixed "
                     "at %lld (leave it 0, or export with a dynamic batch dim)",
                     eb, name, (long long)s->dims[0]);
  }
  if (builtin(t) && t->label_feed < 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.dataset.train: no array feeds the labels \"%s\" (config.label_input)",
                   t->cfg->label_input);
  return 0;
}

int ty__train_data_open(ty_train *t, char *err, size_t err_len) {
  int rc = open_source(t, err, err_len);
  return rc ? rc : check_coverage(t, err, err_len);
}

int ty__train_feeds_check(ty_train *t, char *err, size_t err_len) {
  int rc = feed_names(t, err, err_len);
  return rc ? rc : check_coverage(t, err, err_len);
}

/* ---- binding ------------------------------------------------------------------ */

/* "config.dataset.test[1] (y.npy)": the config entry of feed k in split s. */
static void feed_where(const ty_train *t, size_t k, int s, const ty_data_column *col, char *buf,
                       size_t len) {
  const ty_train_config *c = t->cfg;
  if (c->data_kind != TY_TRAIN_DATA_ARRAYS) {
    snprintf(buf, len, "config.dataset%s (%s)",
             c->data_kind == TY_TRAIN_DATA_TOKENS ? ".tokens" : "", col->path);
    return;
  }
  const ty_train_array *a = s ? c->test_arrays : c->train_arrays;
  size_t n = s ? c->n_test_arrays : c->n_train_arrays, i = 0;
  while (i + 1 < n && strcmp(a[i].input, t->names[k]) != 0)
    i++;
  snprintf(buf, len, "config.dataset.%s[%zu]%s (%s)", s ? "test" : "train", ty_train_array_at(a, i),
           a[i].image == TY_TRAIN_IMAGE_LABELS ? ".image_folder.labels" : "", col->path);
}

/* numpy's name of a model dtype ("float32"), as the data's is printed. */
static const char *type_name(ty_dtype dt) {
  ty_data_type t = ty_data_type_from_onnx(dt);
  return t != TY_DATA_INVALID ? ty_data_type_name(t) : ty_dtype_name(dt);
}

/* The file's type, and what it is read as when that differs ("float64
 * read as float32"): the user knows the first. */
static int mismatch(const ty__feed *f, const ty_data_column *col, const ty_graph_value *v,
                    const char *why, char *err, size_t err_len) {
  char ds[160] = "(", ms[96], ts[64];
  if (col->from == col->to)
    snprintf(ts, sizeof ts, "%s", ty_data_type_name(col->to));
  else
    snprintf(ts, sizeof ts, "%s read as %s", ty_data_type_name(col->from),
             ty_data_type_name(col->to));
  for (uint32_t i = 0; i < col->ndims; i++)
    snprintf(ds + strlen(ds), sizeof ds - strlen(ds), "%s%llu", i ? ", " : "",
             (unsigned long long)col->dims[i]);
  snprintf(ds + strlen(ds), sizeof ds - strlen(ds), col->ndims == 1 ? ",)" : ")");
  ty_shape_format(&v->shape, ms, sizeof ms);
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: samples are %s %s (%zu values) but %s \"%s\" takes %s %s%s", f->where, ts, ds,
                 col->elems, f->model_input ? "model input" : "the labels", v->name,
                 type_name(v->dtype), ms, why);
}

/* Fits one sample's shape to value v (dim 0 the batch); fills f->shape. */
static int fit(ty_train *t, ty__feed *f, const ty_data_column *col, const ty_graph_value *v,
               uint32_t per, char *err, size_t err_len) {
  const ty_shape *m = &v->shape;
  if (ty_data_type_from_onnx(v->dtype) != col->to) return mismatch(f, col, v, "", err, err_len);
  if (m->rank == 0) return mismatch(f, col, v, " (a scalar has no batch dim)", err, err_len);
  if (m->rank > 0 && m->dims[0] >= 0 && m->dims[0] != per) {
    char why[160];
    snprintf(why, sizeof why,
             " (a fixed batch dim; each rank's batch is %u: export with a dynamic batch dim)", per);
    return mismatch(f, col, v, why, err, err_len);
  }
  if (m->rank > 0 && m->dims[0] >= 0) t->fixed_batch = per;
  bool fixed = m->rank > 0;
  for (int d = 1; d < m->rank; d++)
    fixed = fixed && m->dims[d] >= 0;
  if (fixed) {
    if (ty_shape_span(m, 1, m->rank) != (int64_t)col->elems)
      return mismatch(f, col, v, "", err, err_len);
    f->shape = *m;
  } else {
    if (col->ndims + 1 > TY_MAX_RANK || (m->rank >= 0 && m->rank != (int)col->ndims + 1))
      return mismatch(f, col, v, "", err, err_len);
    f->shape.rank = (int)col->ndims + 1;
    for (uint32_t d = 0; d < col->ndims; d++) {
      int64_t want = m->rank >= 0 ? m->dims[d + 1] : -1;
      if (want >= 0 && (uint64_t)want != col->dims[d]) return mismatch(f, col, v, "", err, err_len);
      f->shape.dims[d + 1] = (int64_t)col->dims[d];
    }
  }
  f->shape.dims[0] = TY_DIM_BATCH;
  f->dtype = v->dtype;
  return 0;
}

/* Feed k against its value in g, for both splits; creates its batch tensor. */
static int bind_feed(ty_train *t, size_t k, uint32_t per, char *err, size_t err_len) {
  ty__feed *f = &t->feeds[k];
  f->id = ty_graph_find_value(t->g, t->names[k]);
  if (f->id == TY_NO_VALUE)
    return ty_errf(err, err_len, TY_EINTERNAL, "feed \"%s\" has no value in the training graph",
                   t->names[k]);
  const ty_graph_value *v = ty_graph_value_at(t->g, f->id);
  f->model_input = model_input(t->model, t->names[k]) != NULL;
  const ty_dataset *sets[2] = {t->train_ds, t->test_ds};
  for (int s = 0; s < 2; s++) {
    if (!sets[s]) continue;
    const ty_data_column *col = ty_dataset_column(sets[s], k);
    feed_where(t, k, s, col, f->where, sizeof f->where);
    int rc = fit(t, f, col, v, per, err, err_len);
    if (rc != 0) return rc;
  }
  feed_where(t, k, 0, ty_dataset_column(t->train_ds, k), f->where, sizeof f->where);
  ty_shape bs = ty_shape_with_batch(&f->shape, per);
  int rc = ty_tensor_create(f->dtype, &bs, &f->t);
  return rc ? ty_errf(err, err_len, rc, "%s: cannot create a %s batch for \"%s\"", f->where,
                      ty_dtype_name(f->dtype), t->names[k])
            : 0;
}

/* Builtin loss: every label of both splits below the logits' class count,
 * or its ignore_index. */
static int check_labels(ty_train *t, char *err, size_t err_len) {
  if (!builtin(t) || t->label_feed < 0 || t->logits_id == TY_NO_VALUE) return 0;
  const ty_shape *ls = &ty_graph_value_at(t->g, t->logits_id)->shape;
  int axis = t->class_last ? ls->rank - 1 : 1;
  if (ls->rank < 2 || ls->dims[axis] < 0) return 0; /* unknown: the loss kernel checks each batch */
  const ty_dataset *sets[2] = {t->train_ds, t->test_ds};
  for (int s = 0; s < 2; s++) {
    int rc = sets[s] ? ty_dataset_check_range_or(sets[s], (size_t)t->label_feed, 0, ls->dims[axis],
                                                 &t->ignore, err, err_len)
                     : 0;
    if (rc != 0)
      return prefixed(rc, err, err_len, "config.label_input (the logits \"%s\" have %lld classes)",
                      t->cfg->logits_output, (long long)ls->dims[axis]);
  }
  return 0;
}

/* The loss node of the model that reads the label feed as its labels
 * (input 1, through ops that keep the values: Cast, Reshape and the like),
 * or NULL. */
static const ty_graph_node *own_loss_node(const ty_train *t) {
  int label = ty_graph_find_value(t->model, t->names[t->label_feed]);
  for (size_t i = 0; label != TY_NO_VALUE && i < ty_graph_n_nodes(t->model); i++) {
    const ty_graph_node *n = ty_graph_node_at(t->model, i);
    if ((n->op != TY_OP_SOFTMAX_CE_LOSS && n->op != TY_OP_NLL_LOSS) || n->n_inputs < 2) continue;
    int v = n->inputs[1];
    for (const ty_graph_node *p; v != TY_NO_VALUE && v != label;) {
      int at = ty_graph_value_at(t->model, v)->producer;
      p = at >= 0 ? ty_graph_node_at(t->model, (size_t)at) : NULL;
      bool keeps =
          p && (p->op == TY_OP_CAST || p->op == TY_OP_RESHAPE || p->op == TY_OP_FLATTEN ||
                p->op == TY_OP_SQUEEZE || p->op == TY_OP_UNSQUEEZE || p->op == TY_OP_IDENTITY);
      v = keeps ? p->inputs[0] : TY_NO_VALUE;
    }
    if (v == label) return n;
  }
  return NULL;
}

/* The model's own loss: every label of both splits below its scores'
 * class count (dim 1), or its ignore_index, before the first step (the
 * kernel would refuse a batch mid-run, naming no sample). */
static int check_own_labels(ty_train *t, char *err, size_t err_len) {
  const ty_graph_node *n = t->label_feed >= 0 ? own_loss_node(t) : NULL;
  const ty_shape *s = n ? &ty_graph_value_at(t->model, n->inputs[0])->shape : NULL;
  if (!s || s->rank < 2 || s->dims[1] < 0) return 0; /* unknown: the kernel checks each batch */
  const ty_graph_attr *ig = ty_graph_node_attr(n, "ignore_index");
  int64_t ignore = ty_graph_node_attr_int(n, "ignore_index", 0);
  char also[64] = "";
  if (ig) snprintf(also, sizeof also, ", or its ignore_index %lld", (long long)ignore);
  const ty_dataset *sets[2] = {t->train_ds, t->test_ds};
  for (int k = 0; k < 2; k++) {
    int rc = sets[k] ? ty_dataset_check_range_or(sets[k], (size_t)t->label_feed, 0, s->dims[1],
                                                 ig ? &ignore : NULL, err, err_len)
                     : 0;
    if (rc != 0)
      return prefixed(rc, err, err_len,
                      "config.label_input (node \"%s\" (%s) takes %lld classes%s)", n->name,
                      ty_op_name(n->op), (long long)s->dims[1], also);
  }
  return 0;
}

int ty_train_check_data_split(uint32_t batch, uint32_t world, char *err, size_t err_len) {
  if (world == 0 || batch % world == 0) return 0;
  return ty_errf(err, err_len, TY_EINVAL,
                 "%u is not divisible by the %u ranks, as data parallelism without a "
                 "plan needs (each rank trains an equal share); a plan (parallelism auto) splits "
                 "it unevenly, or make it a multiple of %u",
                 batch, world, world);
}

bool ty_train_data_job_planned(const ty_train_config *c) {
  return c->pipeline_stages > 1 || c->pipeline_stages == TY_TRAIN_AUTO;
}

int ty_train_check_data_job(const ty_train_config *c, uint32_t world, const char **what, char *err,
                            size_t err_len) {
  *what = "batch_size";
  if (ty_train_data_job_planned(c)) return 0; /* its plan splits the batch, as the planner can */
  return ty_train_check_data_split(c->batch_size, world, err, err_len);
}

/* A model whose batch dim is fixed and whose own loss is a mean over the
 * batch evaluates whole batches only (eval.c): a shorter test split would
 * never be evaluated. */
static int check_test_rows(const ty_train *t, char *err, size_t err_len) {
  uint64_t count = t->test_ds ? ty_dataset_count(t->test_ds) : 0;
  if (!t->test_ds || !ty__train_eval_drops_last(t) || count >= t->fixed_batch) return 0;
  return ty_errf(err, err_len, TY_EINVAL,
                 "config.dataset.test: %llu rows, fewer than the model's fixed batch of %u, over "
                 "every row of which its own loss \"%s\" is a mean: no test batch could be "
                 "evaluated (add test rows, or export with a dynamic batch dim)",
                 (unsigned long long)count, t->fixed_batch, t->cfg->loss_output);
}

/* What an epoch does with the samples past its last whole global batch
 * (config.drop_last), said once at start when there are any. */
static void say_remainder(const ty_train *t) {
  const ty_train_config *c = t->cfg;
  uint64_t n = ty_dataset_count(t->train_ds), trained = t->bpe * c->batch_size;
  if (trained == n) return;
  FILE *log = ty__train_log(t);
  fprintf(log, "data: %llu samples, batches of %u: each epoch trains %llu batch%s",
          (unsigned long long)n, c->batch_size, (unsigned long long)t->bpe,
          t->bpe == 1 ? "" : "es");
  if (c->drop_last)
    fprintf(log, " and drops the last %llu sample%s of each epoch's order (%s)\n",
            (unsigned long long)(n - trained), n - trained == 1 ? "" : "s",
            c->shuffle ? "shuffled: other ones each epoch; config.drop_last OFF trains them"
                       : "with shuffle off, the same ones every epoch");
  else
    fprintf(log,
            ", the last completed with %llu sample%s from the epoch's start (config.drop_last: "
            "ON drops %s)\n",
            (unsigned long long)(trained - n), trained - n == 1 ? "" : "s",
            trained - n == 1 ? "it" : "them");
}

int ty__train_data_bind(ty_train *t, char *err, size_t err_len) {
  const ty_train_config *c = t->cfg;
  uint32_t world =
      t->opts.parallel ? 1 : t->opts.world_size; /* a plan's ranks read global batches */
  int rc = ty_train_check_data_split(c->batch_size, world, err, err_len);
  if (rc != 0) return prefixed(rc, err, err_len, "config.batch_size");
  uint32_t per = c->batch_size / world;
  for (size_t k = 0; k < t->n_feeds && rc == 0; k++)
    rc = bind_feed(t, k, per, err, err_len);
  if (rc == 0) rc = builtin(t) ? check_labels(t, err, err_len) : check_own_labels(t, err, err_len);
  if (rc == 0) rc = check_test_rows(t, err, err_len);
  ty_loader_opts lo = {.batch_size = per,
                       .seed = c->seed,
                       .shuffle = c->shuffle,
                       .rank = world > 1 ? t->opts.rank : 0,
                       .world_size = world,
                       .drop_last = c->drop_last,
                       .pad_last = !c->drop_last,
                       .prefetch = t->opts.prefetch};
  if (rc == 0) rc = ty_loader_create(t->train_ds, &lo, &t->loader, err, err_len);
  if (rc == 0) t->bpe = ty_loader_batches_per_epoch(t->loader);
  /* Padding an epoch shorter than one batch would repeat its samples
   * within the batch: refused as dropping it all is. */
  if (rc == 0 && (t->bpe == 0 || ty_dataset_count(t->train_ds) < c->batch_size))
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "config.batch_size: %u is larger than the %zu training samples", c->batch_size,
                 ty_dataset_count(t->train_ds));
  if (rc == 0 && t->opts.rank == 0) say_remainder(t);
  return rc;
}

int ty__train_data_load(ty_train *t, const ty_batch *b, char *err, size_t err_len) {
  for (size_t k = 0; k < t->n_feeds; k++) {
    const ty__feed *f = &t->feeds[k];
    size_t bytes = ty_dataset_column(t->train_ds, k)->elems * ty_dtype_size(f->dtype) * b->n;
    if (bytes != f->t->nbytes) return ty_errf(err, err_len, TY_EINTERNAL, "short batch");
    memcpy(f->t->data, b->cols[k], bytes);
  }
  return 0;
}

ty_shape ty__train_feed_shape(const ty_train *t, size_t k, int64_t n) {
  return ty_shape_with_batch(&t->feeds[k].shape, n);
}

void ty__train_data_close(ty_train *t) {
  ty_loader_destroy(t->loader);
  ty_dataset_destroy(t->train_ds);
  ty_dataset_destroy(t->test_ds);
  for (size_t k = 0; k < TY_DATA_MAX_COLUMNS; k++) {
    ty_tensor_destroy(t->feeds[k].t);
    free(t->names[k]);
  }
}
