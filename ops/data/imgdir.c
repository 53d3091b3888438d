/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image folders as arrays (torchvision's ImageFolder layout,
 * ROOT/CLASS_NAME/IMAGE.png|jpg): the folder is listed in ImageFolder's order
 * (sorted class folders, each one's sorted file names) and read either as
 * its images, every file decoded once into one uint8 [N, C, H, W] heap
 * array, or as its class ids, int64 [N], without decoding anything. A
 * config feeds both from one folder; the two listings agree because the
 * order is a function of the names only, and the dataset checks that the
 * counts do.
 *
 * Memory: N*C*H*W bytes of pixels (held as uint8 and converted to float32
 * a batch at a time, as a uint8 .npy is) plus, while one file is decoded,
 * its rows and planes (and, with want.resize, the resampled planes: a
 * photo is resized and cropped before it is stored, never held whole). The size is known from the
 * listing and the first image before the array is allocated, and capped at
 * TY_DATA_IMAGES_MAX_BYTES.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct listing {
  char **classes; /* sorted */
  size_t n_classes;
  char **files; /* full paths, in sample order */
  uint32_t *cls;
  size_t n_files, cap;
} listing;

static void listing_free(listing *l) {
  for (size_t i = 0; i < l->n_classes; i++)
    free(l->classes[i]);
  for (size_t i = 0; i < l->n_files; i++)
    free(l->files[i]);
  free(l->classes);
  free(l->files);
  free(l->cls);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Why dir could not be listed (opendir's or readdir's errno e): a folder
 * that is there but not readable by this user is not "missing". */
static int unlisted(const char *dir, int e, char *err, size_t err_len) {
  if (e == ENOENT || e == ENOTDIR)
    return ty_errf(err, err_len, TY_ENOTFOUND, "%s: missing or not a folder", dir);
  return ty_errf(err, err_len, e == EACCES || e == EPERM ? TY_EPERM : TY_EIO, "%s: cannot list: %s",
                 dir, strerror(e));
}

/* The names in dir (not "." or ".."), sorted; *out_names is the caller's. */
static int read_names(const char *dir, char ***out_names, size_t *out_n, char *err,
                      size_t err_len) {
  DIR *d = opendir(dir);
  if (!d) return unlisted(dir, errno, err, err_len);
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  for (struct dirent *e; rc == 0 && (errno = 0, e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (n == cap) {
      char **g = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *g);
      if (!g)
        rc = TY_ENOMEM;
      else
        names = g;
    }
    if (rc == 0 && !(names[n++] = strdup(e->d_name))) rc = TY_ENOMEM, n--;
  }
  if (rc == 0 && errno != 0) rc = unlisted(dir, errno, err, err_len);
  closedir(d);
  if (n) qsort(names, n, sizeof *names, by_name);
  *out_names = names;
  *out_n = n;
  return rc;
}

static bool is_dir(const char *path) {
  struct stat st; /* stat follows links, as ImageFolder's scandir does */
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool has_ext(const char *name, const char *const *exts) {
  const char *dot = strrchr(name, '.');
  for (; dot && *exts; exts++)
    if (strcasecmp(dot + 1, *exts) == 0) return true;
  return false;
}

static const char *const read_exts[] = {"png", "jpg", "jpeg", NULL};
/* What ImageFolder would also read (torchvision's IMG_EXTENSIONS). */
static const char *const other_exts[] = {"bmp", "gif",  "ppm",  "pgm", "pbm",
                                         "tif", "tiff", "webp", NULL};

static int add_file(listing *l, const char *path, uint32_t cls) {
  if (l->n_files == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    char **f = realloc(l->files, cap * sizeof *f);
    if (f) l->files = f;
    uint32_t *c = f ? realloc(l->cls, cap * sizeof *c) : NULL;
    if (!c) return TY_ENOMEM;
    l->cls = c;
    l->cap = cap;
  }
  if (!(l->files[l->n_files] = strdup(path))) return TY_ENOMEM;
  l->cls[l->n_files++] = cls;
  return 0;
}

/* Class folder k's images, in name order. */
static int list_class(listing *l, const char *root, uint32_t k, char *err, size_t err_len) {
  char dir[PATH_MAX], path[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/%s", root, l->classes[k]);
  char **names = NULL;
  size_t n = 0, before = l->n_files;
  int rc = read_names(dir, &names, &n, err, err_len);
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path)
      rc = ty_errf(err, err_len, TY_EINVAL, "%s/%s: path too long", dir, names[i]);
    else if (is_dir(path))
      rc = ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "%s: a folder inside a class folder; images must lie directly in "
                   "ROOT/CLASS_NAME/",
                   path);
    else if (has_ext(names[i], other_exts))
      rc = ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "%s: only PNG and JPEG images are read (convert it, or move it out)", path);
    else if (has_ext(names[i], read_exts))
      rc = add_file(l, path, k);
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  if (rc == 0 && l->n_files == before)
    rc = ty_errf(err, err_len, TY_EINVAL, "%s: class \"%s\" has no .png, .jpg or .jpeg files", dir,
                 l->classes[k]);
  return rc;
}

/* ImageFolder's listing of root. */
static int list_folder(const char *root, listing *l, char *err, size_t err_len) {
  char **names = NULL, path[PATH_MAX];
  size_t n = 0;
  int rc = read_names(root, &names, &n, err, err_len);
  for (size_t i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", root, names[i]);
    if (rc == 0 && is_dir(path))
      names[l->n_classes++] = names[i];
    else
      free(names[i]);
  }
  l->classes = names;
  if (rc == 0 && l->n_classes == 0)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "%s: no class folders (expected ROOT/CLASS_NAME/*.png or *.jpg)", root);
  for (size_t k = 0; k < l->n_classes && rc == 0; k++)
    rc = list_class(l, root, (uint32_t)k, err, err_len);
  if (rc == 0 && l->n_files > UINT32_MAX)
    rc = ty_errf(err, err_len, TY_ETOOBIG, "%s: %zu images; at most %u", root, l->n_files,
                 UINT32_MAX);
  return rc;
}

/* The class ids, as the known list's (a test folder) or the listing's. */
static int read_labels(const listing *l, const char *root, const ty_data_imgdir_opts *o,
                       ty_data_array *a, char *err, size_t err_len) {
  /* map: class k's id; on the heap, as the folder decides how many */
  int64_t *map = malloc(l->n_classes * sizeof *map), *ids = NULL;
  if (!map) return TY_ENOMEM;
  for (size_t k = 0; k < l->n_classes; k++) {
    map[k] = (int64_t)k;
    if (!o->known) continue;
    const char *const *hit =
        bsearch(&l->classes[k], o->known, o->n_known, sizeof *o->known, by_name);
    if (!hit) {
      free(map);
      return ty_errf(err, err_len, TY_EINVAL,
                     "%s/%s: class \"%s\" is not a class of the training folder", root,
                     l->classes[k], l->classes[k]);
    }
    map[k] = hit - o->known;
  }
  if ((ids = malloc(l->n_files * sizeof *ids)))
    for (size_t i = 0; i < l->n_files; i++)
      ids[i] = map[l->cls[i]];
  free(map);
  if (!ids) return TY_ENOMEM;
  a->storage.heap = ids;
  a->data = (const uint8_t *)ids;
  a->nbytes = l->n_files * sizeof *ids;
  a->type = TY_DATA_I64;
  a->ndims = 1;
  a->dims[0] = l->n_files;
  return 0;
}

/* Decodes file i into the array, which the first image sizes. */
static int read_image(const listing *l, size_t i, ty_data_image_want *want, ty_data_array *a,
                      char *err, size_t err_len) {
  const uint8_t *bytes;
  size_t len;
  ty_data_storage st = {0};
  uint8_t *px = NULL;
  uint32_t h, w;
  int rc = ty__data_map(l->files[i], "a PNG or JPEG image", &bytes, &len, &st, err, err_len);
  if (rc == 0) rc = ty_data_image_decode(bytes, len, l->files[i], want, &px, &h, &w, err, err_len);
  ty__data_storage_free(&st);
  if (rc != 0) return rc;
  size_t one = (size_t)want->channels * h * w;
  if (!a->storage.heap) {
    if ((uint64_t)one * l->n_files > TY_DATA_IMAGES_MAX_BYTES) {
      free(px);
      return ty_errf(err, err_len, TY_ETOOBIG,
                     "%s: %zu images of %ux%ux%u need %llu bytes decoded; at most %llu",
                     l->files[i], l->n_files, want->channels, h, w,
                     (unsigned long long)one * l->n_files,
                     (unsigned long long)TY_DATA_IMAGES_MAX_BYTES);
    }
    want->height = h;
    want->width = w;
    a->storage.heap = malloc(one * l->n_files);
    if (!a->storage.heap) {
      free(px);
      return TY_ENOMEM;
    }
    a->nbytes = one * l->n_files;
    a->data = a->storage.heap;
  }
  memcpy((uint8_t *)a->storage.heap + i * one, px, one);
  free(px);
  return 0;
}

/* The array's categories: the known list (copied) or the listing's
 * classes (moved over). */
static int keep_classes(listing *l, const ty_data_imgdir_opts *o, ty_data_array *a) {
  if (!o->known) {
    a->categories = l->classes;
    a->n_categories = l->n_classes;
    l->classes = NULL;
    l->n_classes = 0;
    return 0;
  }
  if (!(a->categories = calloc(o->n_known ? o->n_known : 1, sizeof *a->categories)))
    return TY_ENOMEM;
  for (; a->n_categories < o->n_known; a->n_categories++)
    if (!(a->categories[a->n_categories] = strdup(o->known[a->n_categories]))) return TY_ENOMEM;
  return 0;
}

int ty_data_imgdir_open(const char *dir, const ty_data_imgdir_opts *o, ty_data_array *out_array,
                        char *err, size_t err_len) {
  memset(out_array, 0, sizeof *out_array);
  listing l = {0};
  ty_data_image_want want = o->want;
  int rc = (out_array->path = strdup(dir)) ? 0 : TY_ENOMEM;
  if (rc == 0) rc = list_folder(dir, &l, err, err_len);
  if (rc == 0 && o->labels) rc = read_labels(&l, dir, o, out_array, err, err_len);
  for (size_t i = 0; rc == 0 && !o->labels && i < l.n_files; i++)
    rc = read_image(&l, i, &want, out_array, err, err_len);
  if (rc == 0 && !o->labels) {
    out_array->type = TY_DATA_U8;
    out_array->ndims = 4;
    uint64_t dims[4] = {l.n_files, want.channels, want.height, want.width};
    memcpy(out_array->dims, dims, sizeof dims);
  }
  if (rc == 0) rc = keep_classes(&l, o, out_array);
  listing_free(&l);
  return rc;
}
