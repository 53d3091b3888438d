/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Datasets: columns over arrays (one slice along dim 0 per sample) or over
 * a token stream (one window per sample), the conversion of a sample to
 * its model input type, the IDX pair loaders (Fashion-MNIST), and the
 * deterministic epoch order.
 *
 * Invariants: a ty_dataset is immutable after creation, so any number of
 * loaders and threads may read it. Sample i of column k starts at
 * base + i * step bytes and holds elems values of the column's file type;
 * every such range lies inside its array (checked at creation), so
 * gathering needs no checks; a float array's values are finite (checked
 * at creation too, as the CSV reader checks its cells). uint8 to float32 goes through a 256-entry
 * table computed once, exactly (v / 255.0f - mean) / std in float32 like torchvision's ToTensor +
 * Normalize; other types compute the same expression per value. Per-channel statistics (Normalize
 * with a list per channel) convert a sample channel by channel, each block of values with its
 * channel's mean and std (and, for uint8, its own table), so the arithmetic per value is the same
 * expression with other constants.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct column {
  ty_data_column info; /* name owned; path borrowed from the array */
  const uint8_t *base;
  size_t step;         /* bytes between two samples */
  size_t esize;        /* bytes per file value */
  const uint8_t *scan; /* the values ty_dataset_check_range reads */
  size_t scan_n;
  size_t scan_per;       /* values per sample in scan (for messages) */
  const uint32_t *lines; /* a CSV file's line per sample (for messages), or NULL */
  float divisor, mean, std;
  float pad;      /* an augmented sample's padding: the normalised 0 */
  bool copy;      /* file type == target type, no normalisation */
  float lut[256]; /* uint8 -> float32 */
  /* Per-channel statistics: n_ch > 0 channels (a sample's dims[0]) of
   * ch_len values each. ch holds n_ch means, n_ch stds, n_ch pads (the
   * normalised 0 of each channel) and, for uint8 files, n_ch tables of
   * 256; owned. */
  size_t n_ch, ch_len;
  float *ch;
} column;

/* The constants one run of values is converted with. */
typedef struct stats {
  float divisor, mean, std;
  const float *lut; /* uint8 files: the 256 results */
} stats;

struct ty_dataset {
  uint32_t n;
  size_t n_cols, n_arrays;
  column cols[TY_DATA_MAX_COLUMNS];
  ty_data_array arrays[TY_DATA_MAX_COLUMNS];
  uint32_t num_classes;
};

/* ---- conversion ------------------------------------------------------------ */

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | man << 13; /* inf, nan */
  } else if (exp != 0) {
    bits = sign | (exp + 112) << 23 | man << 13;
  } else if (man == 0) {
    bits = sign;
  } else { /* subnormal: normalise */
    int e = -1;
    do {
      e++;
      man <<= 1;
    } while (!(man & 0x400));
    bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3ff) << 13;
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static float norm(const stats *c, float v) {
  return (v / c->divisor - c->mean) / c->std;
}

/* One loop per file type; values are copied out with memcpy because mapped
 * files give no alignment guarantee. */
#define EACH(T, EXPR)                                                                              \
  for (size_t j = 0; j < n; j++) {                                                                 \
    T v;                                                                                           \
    memcpy(&v, src + j * sizeof v, sizeof v);                                                      \
    o[j] = (EXPR);                                                                                 \
  }                                                                                                \
  break;

static void to_f32(ty_data_type from, const stats *c, const uint8_t *src, size_t n, float *o) {
  switch (from) {
  case TY_DATA_BOOL:
    EACH(uint8_t, norm(c, v != 0))
  case TY_DATA_U8:
    EACH(uint8_t, c->lut[v])
  case TY_DATA_I8:
    EACH(int8_t, norm(c, (float)v))
  case TY_DATA_U16:
    EACH(uint16_t, norm(c, (float)v))
  case TY_DATA_I16:
    EACH(int16_t, norm(c, (float)v))
  case TY_DATA_U32:
    EACH(uint32_t, norm(c, (float)v))
  case TY_DATA_I32:
    EACH(int32_t, norm(c, (float)v))
  case TY_DATA_U64:
    EACH(uint64_t, norm(c, (float)v))
  case TY_DATA_I64:
    EACH(int64_t, norm(c, (float)v))
  case TY_DATA_F16:
    EACH(uint16_t, norm(c, half_to_float(v)))
  case TY_DATA_F32:
    EACH(float, norm(c, v))
  case TY_DATA_F64:
    EACH(double, norm(c, (float)v))
  default:
    break;
  }
}

static void to_i64(ty_data_type from, const uint8_t *src, size_t n, int64_t *o) {
  switch (from) {
  case TY_DATA_BOOL:
    EACH(uint8_t, v != 0)
  case TY_DATA_U8:
    EACH(uint8_t, v)
  case TY_DATA_I8:
    EACH(int8_t, v)
  case TY_DATA_U16:
    EACH(uint16_t, v)
  case TY_DATA_I16:
    EACH(int16_t, v)
  case TY_DATA_U32:
    EACH(uint32_t, v)
  case TY_DATA_I32:
    EACH(int32_t, v)
  case TY_DATA_U64:
    EACH(uint64_t, v > INT64_MAX ? INT64_MAX : (int64_t)v)
  case TY_DATA_I64:
    EACH(int64_t, v)
  default:
    break;
  }
}
#undef EACH

/* Channel k's constants (n_ch > 0). */
static stats channel(const column *c, size_t k) {
  const float *lut = c->info.from == TY_DATA_U8 ? c->ch + 3 * c->n_ch + k * 256 : NULL;
  return (stats){c->divisor, c->ch[k], c->ch[c->n_ch + k], lut};
}

static void convert(const column *c, const uint8_t *src, size_t n, void *out) {
  if (c->copy) {
    memcpy(out, src, n * c->esize);
  } else if (c->info.to == TY_DATA_F32 && c->n_ch) {
    for (size_t k = 0; k < c->n_ch; k++) {
      stats s = channel(c, k);
      to_f32(c->info.from, &s, src + k * c->ch_len * c->esize, c->ch_len,
             (float *)out + k * c->ch_len);
    }
  } else if (c->info.to == TY_DATA_F32) {
    stats s = {c->divisor, c->mean, c->std, c->lut};
    to_f32(c->info.from, &s, src, n, out);
  } else {
    to_i64(c->info.from, src, n, out);
  }
}

void ty_dataset_gather(const ty_dataset *ds, size_t k, size_t i, void *out) {
  const column *c = &ds->cols[k];
  convert(c, c->base + i * c->step, c->info.elems, out);
}

bool ty_dataset_augments(const ty_dataset *ds, size_t k) {
  const ty_data_augment *a = &ds->cols[k].info.augment;
  return a->crop_padding > 0 || a->hflip;
}

void ty_dataset_augment(const ty_dataset *ds, size_t k, uint64_t key, float *sample) {
  const column *c = &ds->cols[k];
  const float *pads = c->n_ch ? c->ch + 2 * c->n_ch : &c->pad;
  ty__data_augment(&c->info.augment, c->info.dims, c->info.ndims, pads, c->n_ch ? c->n_ch : 1, key,
                   sample);
}

/* ---- construction ------------------------------------------------------------ */

/* A feed's augmentation, checked against the column's type and shape. */
static int set_augment(column *c, const ty_data_augment *a, char *err, size_t err_len) {
  if (!a->crop_padding && !a->hflip) return 0;
  const char *p = c->info.path, *nm = c->info.name;
  uint32_t nd = c->info.ndims;
  if (c->info.to != TY_DATA_F32 || nd < 2)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: random_crop_padding and random_horizontal_flip apply to float32 images "
                   "(samples [C, H, W] or [H, W]); \"%s\" takes %s samples of %u dim%s",
                   p, nm, ty_data_type_name(c->info.to), nd, nd == 1 ? "" : "s");
  uint64_t h = c->info.dims[nd - 2], w = c->info.dims[nd - 1];
  if (c->n_ch && a->crop_padding && nd < 3)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: random_crop_padding with channel_mean and channel_std needs samples "
                   "[C, H, W]; \"%s\" takes samples of 2 dims (the channels would be H)",
                   p, nm);
  if (a->crop_padding > h || a->crop_padding > w)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: random_crop_padding %u is larger than the image (H %llu, W %llu)", p,
                   a->crop_padding, (unsigned long long)h, (unsigned long long)w);
  c->info.augment = *a;
  return 0;
}

/* A feed's per-channel statistics: checked against the column's type and
 * shape (the channels are a sample's dims[0]), copied, and turned into
 * per-channel pads and, for uint8 files, tables. c->divisor is set. */
static int set_channels(column *c, const ty_data_feed *f, char *err, size_t err_len) {
  const char *p = c->info.path, *nm = c->info.name;
  size_t n = f->n_channels;
  char ms[160], ss[160];
  ty_format_floats(f->channel_mean, n, ms, sizeof ms);
  ty_format_floats(f->channel_std, n, ss, sizeof ss);
  if (c->info.to != TY_DATA_F32)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: channel_mean [%s] and channel_std [%s] apply to float32 inputs; \"%s\" "
                   "takes %s",
                   p, ms, ss, nm, ty_data_type_name(c->info.to));
  if (f->mean != 0 || f->std != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: mean %g and std %g (one for every channel) are set besides channel_mean "
                   "[%s] and channel_std [%s]; set one or the other",
                   p, (double)f->mean, (double)f->std, ms, ss);
  if (c->info.ndims == 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: channel_mean [%s] and channel_std [%s] need a channel dim (dim 1); the "
                   "array is 1-D, one value per sample",
                   p, ms, ss);
  if (n != c->info.dims[0]) {
    char shape[128];
    ty__data_shape_str(c->info.dims, c->info.ndims, shape, sizeof shape);
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: channel_mean [%s] and channel_std [%s] have %zu values, but the array has "
                   "%llu channel%s (dim 1; samples are %s)",
                   p, ms, ss, n, (unsigned long long)c->info.dims[0],
                   c->info.dims[0] == 1 ? "" : "s", shape);
  }
  for (size_t k = 0; k < n; k++)
    if (!isfinite(f->channel_mean[k]) || !isfinite(f->channel_std[k]) || !(f->channel_std[k] > 0))
      return ty_errf(err, err_len, TY_EINVAL,
                     "%s: channel %zu has mean %g and std %g; every channel_mean must be finite "
                     "and every channel_std finite and > 0 (channel_mean [%s], channel_std [%s])",
                     p, k, (double)f->channel_mean[k], (double)f->channel_std[k], ms, ss);
  size_t tables = c->info.from == TY_DATA_U8 ? 256 : 0;
  if ((c->ch = malloc(sizeof(float) * n * (3 + tables))) == NULL) return TY_ENOMEM;
  c->n_ch = n;
  c->ch_len = c->info.elems / n;
  memcpy(c->ch, f->channel_mean, sizeof(float) * n);
  memcpy(c->ch + n, f->channel_std, sizeof(float) * n);
  for (size_t k = 0; k < n; k++) {
    stats s = channel(c, k);
    c->ch[2 * n + k] = norm(&s, 0.0f);
    for (size_t v = 0; v < tables; v++)
      c->ch[3 * n + k * 256 + v] = norm(&s, (float)v);
  }
  return 0;
}

/* Fills a column's conversion from its feed; checks that it applies. */
static int set_feed(column *c, const ty_data_feed *f, char *err, size_t err_len) {
  c->info.to = f->to != TY_DATA_INVALID ? f->to : c->info.from;
  if ((c->info.name = strdup(f->name ? f->name : "")) == NULL) return TY_ENOMEM;
  const char *p = c->info.path, *nm = c->info.name;
  if (!ty_data_convertible(c->info.from, c->info.to))
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s values cannot feed %s input \"%s\"%s", p,
                   ty_data_type_name(c->info.from), ty_data_type_name(c->info.to), nm,
                   c->info.to == TY_DATA_I64 ? " (labels and ids must be integers)" : "");
  bool normalises = f->divisor != 0 || f->mean != 0 || f->std != 0;
  if (normalises && c->info.to != TY_DATA_F32)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: divisor, mean and std apply to float32 inputs; \"%s\" takes %s", p, nm,
                   ty_data_type_name(c->info.to));
  if (f->divisor < 0 || f->std < 0)
    return ty_errf(err, err_len, TY_EINVAL, "%s: divisor and std must be >= 0 (0 is the default)",
                   p);
  c->divisor = f->divisor != 0 ? f->divisor : c->info.from == TY_DATA_U8 ? 255.0f : 1.0f;
  c->mean = f->mean;
  c->std = f->std != 0 ? f->std : 1.0f;
  int rc = f->n_channels ? set_channels(c, f, err, err_len) : 0;
  if (rc != 0) return rc;
  c->copy = c->info.from == c->info.to && c->n_ch == 0 &&
            (c->info.to != TY_DATA_F32 || (c->divisor == 1 && c->mean == 0 && c->std == 1));
  for (int v = 0; v < 256; v++)
    c->lut[v] = ((float)v / c->divisor - c->mean) / c->std;
  c->pad = c->lut[0];
  return set_augment(c, &f->augment, err, err_len);
}

/* Refuses the arrays (*out_k: the one at fault) or returns 0. */
static int check_arrays(const ty_data_array *a, size_t n, size_t *out_k, char *err,
                        size_t err_len) {
  if (n == 0 || n > TY_DATA_MAX_COLUMNS)
    return ty_errf(err, err_len, TY_EINVAL, "a dataset takes 1 to %d arrays, not %zu",
                   TY_DATA_MAX_COLUMNS, n);
  for (size_t k = 0; k < n; k++) {
    *out_k = k;
    const char *p = a[k].path ? a[k].path : "array";
    if (a[k].ndims == 0)
      return ty_errf(err, err_len, TY_EINVAL, "%s: a 0-d array has no samples (dim 0 counts them)",
                     p);
    if (a[k].dims[0] == 0)
      return ty_errf(err, err_len, TY_EINVAL, "%s: holds no samples (dim 0 is 0)", p);
    if (a[k].dims[0] != a[0].dims[0])
      return ty_errf(err, err_len, TY_EINVAL, "%s: %llu samples, but %s has %llu", p,
                     (unsigned long long)a[k].dims[0], a[0].path ? a[0].path : "array 0",
                     (unsigned long long)a[0].dims[0]);
    if (a[k].dims[0] > UINT32_MAX)
      return ty_errf(err, err_len, TY_ETOOBIG, "%s: %llu samples; at most %u", p,
                     (unsigned long long)a[k].dims[0], UINT32_MAX);
    if (a[k].nbytes == 0)
      return ty_errf(err, err_len, TY_EINVAL, "%s: samples hold no values (a dim is 0)", p);
  }
  return 0;
}

/* A column over array a: sample i is a's slice i along dim 0. */
static void array_column(column *c, const ty_data_array *a) {
  c->info.path = a->path ? a->path : "";
  c->info.from = a->type;
  c->info.ndims = a->ndims - 1;
  memcpy(c->info.dims, a->dims + 1, sizeof(uint64_t) * c->info.ndims);
  c->esize = ty_data_type_size(a->type);
  c->info.elems = a->nbytes / c->esize / (size_t)a->dims[0];
  c->base = a->data;
  c->step = c->info.elems * c->esize;
  c->scan = a->data;
  c->scan_n = a->nbytes / c->esize;
  c->scan_per = c->info.elems;
  c->lines = a->lines;
  c->info.categories = (const char *const *)a->categories;
  c->info.n_categories = a->n_categories;
}

/* Value j of a float file type as a double (NaN for other types). */
static double float_at(ty_data_type from, const uint8_t *src, size_t j) {
  if (from == TY_DATA_F16) {
    uint16_t h;
    memcpy(&h, src + j * sizeof h, sizeof h);
    return half_to_float(h);
  }
  if (from == TY_DATA_F32) {
    float f;
    memcpy(&f, src + j * sizeof f, sizeof f);
    return f;
  }
  double d;
  memcpy(&d, src + j * sizeof d, sizeof d);
  return d;
}

/* Refuses a float column holding a value that is not finite (or not in
 * its float32 input), as a CSV cell "nan" is refused: every loss would be
 * NaN and the weights with it. Names the file, the sample and the value. */
static int check_finite(const column *c, char *err, size_t err_len) {
  if (c->info.from < TY_DATA_F16 || c->info.from > TY_DATA_F64) return 0;
  bool to_f32 = c->info.to == TY_DATA_F32;
  for (size_t pos = 0; pos < c->scan_n; pos++) {
    double v = float_at(c->info.from, c->scan, pos);
    if (isfinite(v) && (!to_f32 || isfinite((float)v))) continue;
    const char *what = isfinite(v) ? " in float32" : "";
    size_t i = pos / c->scan_per, at = pos % c->scan_per;
    if (c->lines)
      return ty_errf(err, err_len, TY_EINVAL,
                     "%s:%u: value %g (sample %zu, value %zu of it) is not finite%s for \"%s\"; "
                     "inputs must be finite numbers",
                     c->info.path, c->lines[i], v, i, at, what, c->info.name);
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: value %g of sample %zu (value %zu of it) is not finite%s for \"%s\"; "
                   "inputs must be finite numbers",
                   c->info.path, v, i, at, what, c->info.name);
  }
  return 0;
}

/* Prefixes err with "WHERE: " (the config entry of the array refused):
 * two arrays of one file have the same path, so the path alone does not
 * say which one is wrong. */
static int with_where(int rc, const char *where, char *err, size_t err_len) {
  if (!where || !err || !err_len) return rc;
  char inner[TY_ERR_LEN];
  snprintf(inner, sizeof inner, "%s", err);
  return ty_errf(err, err_len, rc, "%s: %s", where, inner[0] ? inner : ty_strerror(rc));
}

static ty_dataset *move_in(ty_data_array *arrays, size_t n) {
  ty_dataset *ds = calloc(1, sizeof *ds);
  for (size_t k = 0; k < n && k < TY_DATA_MAX_COLUMNS; k++) {
    if (ds != NULL)
      ds->arrays[ds->n_arrays++] = arrays[k];
    else
      ty_data_array_close(&arrays[k]);
    memset(&arrays[k], 0, sizeof arrays[k]);
  }
  for (size_t k = TY_DATA_MAX_COLUMNS; k < n; k++)
    ty_data_array_close(&arrays[k]);
  return ds;
}

int ty_dataset_from_arrays(ty_data_array *arrays, const ty_data_feed *feeds, size_t n,
                           ty_dataset **out_ds, char *err, size_t err_len) {
  if (arrays == NULL || feeds == NULL || out_ds == NULL) return TY_EINVAL;
  *out_ds = NULL;
  size_t k = SIZE_MAX;
  int rc = check_arrays(arrays, n, &k, err, err_len);
  ty_dataset *ds = move_in(arrays, n);
  if (ds == NULL) return TY_ENOMEM;
  if (rc != 0) goto fail;
  ds->n = (uint32_t)ds->arrays[0].dims[0];
  for (k = 0; k < n; k++) {
    array_column(&ds->cols[k], &ds->arrays[k]);
    ds->n_cols++;
    if ((rc = set_feed(&ds->cols[k], &feeds[k], err, err_len)) != 0 ||
        (rc = check_finite(&ds->cols[k], err, err_len)) != 0)
      goto fail;
  }
  *out_ds = ds;
  return 0;
fail:
  ty_dataset_destroy(ds);
  return k < n ? with_where(rc, feeds[k].where, err, err_len) : rc;
}

static int token_windows(const ty_data_array *t, uint32_t context, uint64_t stride, bool shift,
                         uint32_t *out_n, char *err, size_t err_len) {
  const char *p = t->path ? t->path : "tokens";
  if (t->ndims != 1 || t->type == TY_DATA_BOOL || t->type == TY_DATA_INVALID ||
      t->type >= TY_DATA_F16)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: a token stream is a 1-D array of integer ids, not %u-D %s", p, t->ndims,
                   ty_data_type_name(t->type));
  if (context == 0)
    return ty_errf(err, err_len, TY_EINVAL, "%s: the window's context length must be > 0", p);
  uint64_t len = (uint64_t)context + shift;
  if (t->dims[0] < len)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %llu tokens, fewer than one window of %s = %llu",
                   p, (unsigned long long)t->dims[0], shift ? "context + 1" : "context",
                   (unsigned long long)len);
  uint64_t n = (t->dims[0] - len) / stride + 1;
  if (n > UINT32_MAX)
    return ty_errf(err, err_len, TY_ETOOBIG, "%s: %llu windows; at most %u (raise the stride)", p,
                   (unsigned long long)n, UINT32_MAX);
  *out_n = (uint32_t)n;
  return 0;
}

int ty_dataset_from_tokens(ty_data_array *tokens, uint32_t context, uint32_t stride,
                           const ty_data_feed *inputs, const ty_data_feed *labels,
                           ty_dataset **out_ds, char *err, size_t err_len) {
  if (labels == NULL) return TY_EINVAL;
  ty_data_windows w = {.context = context, .stride = stride, .shift = true};
  return ty_dataset_from_windows(tokens, &w, inputs, labels, out_ds, err, err_len);
}

int ty_dataset_from_windows(ty_data_array *tokens, const ty_data_windows *w,
                            const ty_data_feed *inputs, const ty_data_feed *labels,
                            ty_dataset **out_ds, char *err, size_t err_len) {
  if (tokens == NULL || w == NULL || inputs == NULL || out_ds == NULL) return TY_EINVAL;
  *out_ds = NULL;
  ty_dataset *ds = move_in(tokens, 1);
  if (ds == NULL) return TY_ENOMEM;
  const ty_data_array *t = &ds->arrays[0];
  uint32_t context = w->context, stride = w->stride ? w->stride : w->context;
  int rc = token_windows(t, context, stride, w->shift, &ds->n, err, err_len);
  for (size_t k = 0; rc == 0 && k < (labels ? 2u : 1u); k++) {
    column *c = &ds->cols[ds->n_cols++];
    c->info.path = t->path ? t->path : "";
    c->info.from = t->type;
    c->info.ndims = 1;
    c->info.dims[0] = context;
    c->info.elems = context;
    c->esize = ty_data_type_size(t->type);
    /* Labels of a shifting window: the window moved on by one. */
    c->base = t->data + (w->shift ? k : 0) * c->esize;
    c->step = (size_t)stride * c->esize;
    c->scan = t->data;
    c->scan_n = (size_t)t->dims[0];
    c->scan_per = 0; /* report token positions, not samples */
    rc = set_feed(c, k == 0 ? inputs : labels, err, err_len);
  }
  if (rc != 0) {
    ty_dataset_destroy(ds);
    return rc;
  }
  *out_ds = ds;
  return 0;
}

void ty_dataset_destroy(ty_dataset *ds) {
  if (ds == NULL) return;
  for (size_t k = 0; k < ds->n_cols; k++) {
    free((char *)ds->cols[k].info.name);
    free(ds->cols[k].ch);
  }
  for (size_t k = 0; k < ds->n_arrays; k++)
    ty_data_array_close(&ds->arrays[k]);
  free(ds);
}

/* ---- queries -------------------------------------------------------------------- */

size_t ty_dataset_count(const ty_dataset *ds) {
  return ds->n;
}
size_t ty_dataset_n_columns(const ty_dataset *ds) {
  return ds->n_cols;
}
const ty_data_column *ty_dataset_column(const ty_dataset *ds, size_t k) {
  return &ds->cols[k].info;
}

int ty_dataset_check_range(const ty_dataset *ds, size_t k, int64_t lo, int64_t hi, char *err,
                           size_t err_len) {
  return ty_dataset_check_range_or(ds, k, lo, hi, NULL, err, err_len);
}

/* Value pos of c's scan as written in the file: a uint64 above INT64_MAX
 * as itself, not as the INT64_MAX to_i64 clamps it to. */
static void value_str(const column *c, size_t pos, int64_t v, char *buf, size_t len) {
  uint64_t u;
  if (c->info.from == TY_DATA_U64) {
    memcpy(&u, c->scan + pos * sizeof u, sizeof u);
    snprintf(buf, len, "%llu", (unsigned long long)u);
    return;
  }
  snprintf(buf, len, "%lld", (long long)v);
}

int ty_dataset_check_range_or(const ty_dataset *ds, size_t k, int64_t lo, int64_t hi,
                              const int64_t *also, char *err, size_t err_len) {
  const column *c = &ds->cols[k];
  if (c->info.from == TY_DATA_BOOL || c->info.from >= TY_DATA_F16)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s values are not integer ids for \"%s\"",
                   c->info.path, ty_data_type_name(c->info.from), c->info.name);
  int64_t chunk[1024];
  for (size_t at = 0; at < c->scan_n; at += TY_ARRAY_LEN(chunk)) {
    size_t m = c->scan_n - at < TY_ARRAY_LEN(chunk) ? c->scan_n - at : TY_ARRAY_LEN(chunk);
    to_i64(c->info.from, c->scan + at * c->esize, m, chunk);
    for (size_t j = 0; j < m; j++) {
      if ((chunk[j] >= lo && chunk[j] < hi) || (also && chunk[j] == *also)) continue;
      size_t pos = at + j;
      char v[24];
      value_str(c, pos, chunk[j], v, sizeof v);
      if (c->scan_per && c->lines)
        return ty_errf(err, err_len, TY_EINVAL,
                       "%s:%u: value %s (sample %zu) is outside [%lld, %lld) for \"%s\"",
                       c->info.path, c->lines[pos / c->scan_per], v, pos / c->scan_per,
                       (long long)lo, (long long)hi, c->info.name);
      if (c->scan_per)
        return ty_errf(err, err_len, TY_EINVAL,
                       "%s: value %s of sample %zu is outside [%lld, %lld) for \"%s\"",
                       c->info.path, v, pos / c->scan_per, (long long)lo, (long long)hi,
                       c->info.name);
      return ty_errf(err, err_len, TY_EINVAL,
                     "%s: token %s at position %zu is outside [%lld, %lld) for \"%s\"",
                     c->info.path, v, pos, (long long)lo, (long long)hi, c->info.name);
    }
  }
  return 0;
}

bool ty_dataset_holds(const ty_dataset *ds, size_t k, int64_t v) {
  const column *c = &ds->cols[k];
  if (c->info.from == TY_DATA_BOOL || c->info.from >= TY_DATA_F16) return false;
  int64_t chunk[1024];
  for (size_t at = 0; at < c->scan_n; at += TY_ARRAY_LEN(chunk)) {
    size_t m = c->scan_n - at < TY_ARRAY_LEN(chunk) ? c->scan_n - at : TY_ARRAY_LEN(chunk);
    to_i64(c->info.from, c->scan + at * c->esize, m, chunk);
    for (size_t j = 0; j < m; j++)
      if (chunk[j] == v) return true;
  }
  return false;
}

size_t ty_dataset_sample_size(const ty_dataset *ds) {
  return ds->cols[0].info.elems;
}
uint32_t ty_dataset_num_classes(const ty_dataset *ds) {
  return ds->num_classes;
}

void ty_dataset_shape(const ty_dataset *ds, uint32_t *out_rows, uint32_t *out_cols) {
  const ty_data_column *c = &ds->cols[0].info;
  *out_rows = c->ndims == 2 ? (uint32_t)c->dims[0] : 1;
  *out_cols = c->ndims == 2 ? (uint32_t)c->dims[1] : (uint32_t)c->elems;
}

const uint8_t *ty_dataset_pixels(const ty_dataset *ds, size_t i) {
  return ds->cols[0].base + i * ds->cols[0].step;
}

uint8_t ty_dataset_label(const ty_dataset *ds, size_t i) {
  const column *c = &ds->cols[ds->n_cols > 1 ? 1 : 0];
  int64_t v = 0;
  to_i64(c->info.from, c->base + i * c->step, 1, &v);
  return (uint8_t)v;
}

void ty_dataset_sample(const ty_dataset *ds, size_t i, float *out) {
  ty_dataset_gather(ds, 0, i, out);
}

/* ---- IDX pairs ------------------------------------------------------------------ */

/* Checks shapes and labels of an image/label pair. */
static int check_pair(const ty_data_array *img, const ty_data_array *lab, uint32_t max_classes,
                      uint32_t *out_classes, char *err, size_t err_len) {
  if (img->ndims != 3)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: expected images [N, rows, cols], header has %u dims", img->path,
                   img->ndims);
  if (lab->ndims != 1)
    return ty_errf(err, err_len, TY_EPROTO, "%s: expected labels [N], header has %u dims",
                   lab->path, lab->ndims);
  if (img->dims[0] != lab->dims[0])
    return ty_errf(err, err_len, TY_EPROTO, "%s: %llu labels for %llu images in %s", lab->path,
                   (unsigned long long)lab->dims[0], (unsigned long long)img->dims[0], img->path);
  uint32_t top = 0;
  for (size_t i = 0; i < lab->nbytes; i++) {
    uint32_t y = lab->data[i];
    if (max_classes && y >= max_classes)
      return ty_errf(err, err_len, TY_EPROTO, "%s: label %u of sample %zu is not below %u",
                     lab->path, y, i, max_classes);
    top = y > top ? y : top;
  }
  *out_classes = max_classes ? max_classes : top + 1;
  return 0;
}

static int load_pair(const char *ipath, const char *lpath, const ty_data_opts *opts,
                     uint32_t max_classes, ty_dataset **out_ds, char *err, size_t err_len) {
  if (ipath == NULL || lpath == NULL || out_ds == NULL) return TY_EINVAL;
  *out_ds = NULL;
  ty_data_array a[2];
  memset(a, 0, sizeof a);
  uint32_t classes = 0;
  int rc = ty_data_array_open(ipath, &a[0], err, err_len);
  if (rc == 0) rc = ty_data_array_open(lpath, &a[1], err, err_len);
  if (rc == 0 && (a[0].type != TY_DATA_U8 || a[1].type != TY_DATA_U8))
    rc = ty_errf(err, err_len, TY_EPROTO, "%s: an image/label pair must be uint8",
                 a[0].type != TY_DATA_U8 ? ipath : lpath);
  if (rc == 0) rc = check_pair(&a[0], &a[1], max_classes, &classes, err, err_len);
  if (rc != 0) {
    ty_data_array_close(&a[0]);
    ty_data_array_close(&a[1]);
    return rc;
  }
  ty_data_feed f[2] = {{.name = "images",
                        .to = TY_DATA_F32,
                        .mean = opts ? opts->mean : 0,
                        .std = opts ? opts->std : 0},
                       {.name = "labels", .to = TY_DATA_I64}};
  if ((rc = ty_dataset_from_arrays(a, f, 2, out_ds, err, err_len)) == 0)
    (*out_ds)->num_classes = classes;
  return rc;
}

int ty_data_load_idx(const char *images_path, const char *labels_path, const ty_data_opts *opts,
                     ty_dataset **out_ds, char *err, size_t err_len) {
  return load_pair(images_path, labels_path, opts, 0, out_ds, err, err_len);
}

int ty_data_load_fashion_mnist(const ty_data_opts *opts, ty_data_split split, ty_dataset **out_ds,
                               char *err, size_t err_len) {
  const char *dir = opts && opts->dir && opts->dir[0] ? opts->dir : TY_DATA_FASHION_MNIST_DIR;
  const char *prefix = split == TY_DATA_TEST ? "t10k" : "train";
  char ipath[4096], lpath[4096];
  if (snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, prefix) >=
          (int)sizeof ipath ||
      snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, prefix) >= (int)sizeof lpath)
    return ty_errf(err, err_len, TY_EINVAL, "dataset.dir: path too long");
  int rc = load_pair(ipath, lpath, opts, 10, out_ds, err, err_len);
  if (rc == TY_ENOTFOUND && err != NULL && err_len > 0) {
    size_t used = strlen(err);
    snprintf(err + used, err_len - used, " (install dataset-fashion-mnist)");
  }
  return rc;
}

/* ---- order ------------------------------------------------------------------ */

void ty_data_shuffle(uint64_t seed, uint64_t epoch, uint32_t n, uint32_t *out_order) {
  /* The key separates epochs: the streams for (seed, epoch) and
   * (seed, epoch + 1) are unrelated, and draw j depends on j only. */
  uint64_t key = ty_mix2(seed, epoch);
  for (uint32_t i = 0; i < n; i++)
    out_order[i] = i;
  for (uint32_t i = n; i > 1; i--) {
    uint64_t r = ty_mix64(key + (uint64_t)(n - i + 1) * TY_GOLDEN_GAMMA);
    uint32_t j = (uint32_t)(r % i);
    uint32_t t = out_order[i - 1];
    out_order[i - 1] = out_order[j];
    out_order[j] = t;
  }
}

uint32_t ty_data_shard_len(uint32_t n, uint32_t rank, uint32_t world_size) {
  if (world_size == 0) world_size = 1;
  return n / world_size + (rank < n % world_size ? 1 : 0);
}
