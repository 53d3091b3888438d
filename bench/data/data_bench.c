/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/data: times ops/data's readers through the entry points trainrun
 * uses (ops/train/feed.c): ty_data_csv_open_many for the arrays of a
 * config that read one file (the features and the labels in one pass, as
 * a config with a features array and a labels array makes trainrun do) and
 * ty_data_imgdir_open for an image folder's images and its class ids.
 * A third mode times ty_data_image_decode alone over files already in
 * memory, with and without the resize, to split decode from resampling.
 *
 * Not a test: bench/data/run.py runs it beside numpy and torchvision and
 * prints the ratios. It prints one line per measure,
 *   time NAME ITEMS SECONDS...
 *   cpu NAME ITEMS SECONDS...
 * (wall and CPU seconds of each run, in-process, after one untimed warm-up
 * run), and
 * with DUMP writes the arrays of the last run as raw bytes so that run.py
 * can check that both sides produced the same values. csv prints the pass
 * for both arrays ("csv") and the features' read alone ("csv_features").
 *
 *   data_bench csv FILE RUNS FEATURES LABEL [DUMP]
 *   data_bench images DIR RUNS RESIZE CROP [DUMP]
 *   data_bench decode DIR RUNS RESIZE
 */
#include "ops/data/data.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS 50

/* Wall and CPU seconds: on a shared machine the process' CPU time is the
 * steadier of the two (another process on the same core stretches the wall
 * time, not the CPU time), so run.py takes its ratios from it. */
typedef struct span {
  double wall, cpu;
} span;

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static span now(void) {
  return (span){clock_s(CLOCK_MONOTONIC), clock_s(CLOCK_PROCESS_CPUTIME_ID)};
}

static span since(span t0) {
  span t = now();
  return (span){t.wall - t0.wall, t.cpu - t0.cpu};
}

static void print_times(const char *name, size_t items, const span *t, int runs) {
  printf("time %s %zu", name, items);
  for (int i = 0; i < runs; i++)
    printf(" %.6f", t[i].wall);
  printf("\ncpu %s %zu", name, items);
  for (int i = 0; i < runs; i++)
    printf(" %.6f", t[i].cpu);
  printf("\n");
}

/* Writes a's bytes to path (overwriting it). */
static int dump(const char *path, const ty_data_array *a) {
  FILE *f = fopen(path, "wb");
  int rc = f && fwrite(a->data, 1, a->nbytes, f) == a->nbytes ? 0 : -1;
  if (f && fclose(f) != 0) rc = -1;
  if (rc != 0) fprintf(stderr, "data_bench: cannot write %s\n", path);
  return rc;
}

/* Features as float32 [N, F] and labels as int64 [N] in one pass over the
 * file, as trainrun opens the arrays of a config that read one file; then
 * the features alone, for the share of the float columns. */
static int bench_csv(const char *file, int runs, const char *features, const char *label,
                     const char *dump_dir) {
  const char *fcols[] = {features}, *lcols[] = {label};
  const ty_data_csv_opts o[2] = {
      {.header = true, .columns = fcols, .n_columns = 1, .to = TY_DATA_F32},
      {.header = true, .columns = lcols, .n_columns = 1, .to = TY_DATA_I64}};
  span t[MAX_RUNS], tf[MAX_RUNS];
  char err[512];
  size_t rows = 0;
  for (int r = -1; r < runs; r++) {
    ty_data_array xy[2] = {{0}}, alone = {0};
    ty_data_array *x = &xy[0], *y = &xy[1];
    span t0 = now();
    int rc = ty_data_csv_open_many(file, o, 2, xy, NULL, err, sizeof err);
    span t1 = since(t0);
    if (rc == 0) rc = ty_data_csv_open(file, &o[0], &alone, err, sizeof err);
    if (r >= 0) {
      t[r] = t1;
      tf[r] = since(t0);
      tf[r].wall -= t1.wall;
      tf[r].cpu -= t1.cpu;
    }
    ty_data_array_close(&alone);
    if (rc != 0) fprintf(stderr, "data_bench: %s\n", err);
    rows = x->ndims ? (size_t)x->dims[0] : 0;
    if (rc == 0 && r == runs - 1 && dump_dir) {
      char p[4096];
      snprintf(p, sizeof p, "%s/features.f32", dump_dir);
      if (dump(p, x) != 0) rc = -1;
      snprintf(p, sizeof p, "%s/labels.i64", dump_dir);
      if (rc == 0 && dump(p, y) != 0) rc = -1;
    }
    ty_data_array_close(x);
    ty_data_array_close(y);
    if (rc != 0) return 1;
  }
  print_times("csv", rows, t, runs);
  print_times("csv_features", rows, tf, runs);
  return 0;
}

/* An image folder's images (RGB; with CROP, resized to RESIZE and cropped
 * to RESIZE x RESIZE) and its class ids, as trainrun feeds both. */
static int bench_images(const char *dir, int runs, unsigned resize, int crop,
                        const char *dump_path) {
  ty_data_imgdir_opts io = {.want = {.channels = 3, .resize = resize}};
  if (crop) {
    io.want.height = io.want.width = resize;
    io.want.center_crop = true;
  }
  ty_data_imgdir_opts lo = {.labels = true};
  span t[MAX_RUNS];
  char err[512];
  size_t n = 0;
  for (int r = -1; r < runs; r++) {
    ty_data_array x = {0}, y = {0};
    span t0 = now();
    int rc = ty_data_imgdir_open(dir, &io, &x, err, sizeof err);
    if (rc == 0) rc = ty_data_imgdir_open(dir, &lo, &y, err, sizeof err);
    if (r >= 0) t[r] = since(t0);
    if (rc != 0) fprintf(stderr, "data_bench: %s\n", err);
    n = x.ndims ? (size_t)x.dims[0] : 0;
    if (rc == 0 && r == runs - 1 && dump_path) {
      char p[4096];
      snprintf(p, sizeof p, "%s.labels", dump_path);
      if (dump(dump_path, &x) != 0 || dump(p, &y) != 0) rc = -1;
    }
    ty_data_array_close(&x);
    ty_data_array_close(&y);
    if (rc != 0) return 1;
  }
  print_times(resize ? "images_resized" : "images", n, t, runs);
  return 0;
}

typedef struct blob {
  char *name;
  uint8_t *buf;
  size_t len;
} blob;

/* Appends every file of dir's sub-folders to *bs (read into memory). */
static int load_files(const char *dir, blob **bs, size_t *n) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  size_t cap = 0;
  int rc = 0;
  for (struct dirent *e; rc == 0 && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    DIR *s = opendir(sub);
    for (struct dirent *f; rc == 0 && s && (f = readdir(s));) {
      if (f->d_name[0] == '.') continue;
      if (*n == cap) {
        cap = cap ? 2 * cap : 1024;
        blob *nb = realloc(*bs, cap * sizeof *nb);
        if (!nb)
          rc = -1;
        else
          *bs = nb;
      }
      char p[8192];
      snprintf(p, sizeof p, "%s/%s", sub, f->d_name);
      FILE *fp = rc == 0 ? fopen(p, "rb") : NULL;
      if (!fp) rc = -1;
      blob b = {strdup(p), NULL, 0};
      if (rc == 0 && fseek(fp, 0, SEEK_END) == 0) b.len = (size_t)ftell(fp);
      if (rc == 0 && (b.buf = malloc(b.len ? b.len : 1)) != NULL) {
        rewind(fp);
        if (fread(b.buf, 1, b.len, fp) != b.len) rc = -1;
      }
      if (fp) fclose(fp);
      if (rc == 0 && b.buf && b.name)
        (*bs)[(*n)++] = b;
      else {
        free(b.name);
        free(b.buf);
        rc = -1;
      }
    }
    if (s) closedir(s);
  }
  closedir(d);
  return rc;
}

/* ty_data_image_decode over files already in memory: the decode alone
 * (RESIZE 0) or with the resize, no listing, no file reads. */
static int bench_decode(const char *dir, int runs, unsigned resize) {
  blob *bs = NULL;
  size_t n = 0;
  int rc = load_files(dir, &bs, &n);
  if (rc != 0) fprintf(stderr, "data_bench: cannot read the files of %s\n", dir);
  ty_data_image_want want = {.channels = 3, .resize = resize};
  span t[MAX_RUNS];
  char err[512];
  for (int r = -1; rc == 0 && r < runs; r++) {
    span t0 = now();
    for (size_t i = 0; rc == 0 && i < n; i++) {
      uint8_t *px = NULL;
      uint32_t h, w;
      rc = ty_data_image_decode(bs[i].buf, bs[i].len, bs[i].name, &want, &px, &h, &w, err,
                                sizeof err);
      if (rc != 0) fprintf(stderr, "data_bench: %s\n", err);
      free(px);
    }
    if (r >= 0) t[r] = since(t0);
  }
  if (rc == 0) print_times(resize ? "decode_resize" : "decode", n, t, runs);
  for (size_t i = 0; i < n; i++) {
    free(bs[i].name);
    free(bs[i].buf);
  }
  free(bs);
  return rc == 0 ? 0 : 1;
}

static int usage(void) {
  fprintf(stderr,
          "usage: data_bench csv FILE RUNS FEATURES LABEL [DUMP_DIR]\n"
          "       data_bench images DIR RUNS RESIZE CROP [DUMP_FILE]\n"
          "       data_bench decode DIR RUNS RESIZE\n"
          "RUNS: 1 to %d timed runs after one warm-up\n",
          MAX_RUNS);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 4) return usage();
  int runs = atoi(argv[3]);
  if (runs < 1 || runs > MAX_RUNS) return usage();
  if (strcmp(argv[1], "csv") == 0 && (argc == 6 || argc == 7))
    return bench_csv(argv[2], runs, argv[4], argv[5], argc == 7 ? argv[6] : NULL);
  if (strcmp(argv[1], "images") == 0 && (argc == 6 || argc == 7))
    return bench_images(argv[2], runs, (unsigned)atoi(argv[4]), atoi(argv[5]),
                        argc == 7 ? argv[6] : NULL);
  if (strcmp(argv[1], "decode") == 0 && argc == 5)
    return bench_decode(argv[2], runs, (unsigned)atoi(argv[4]));
  return usage();
}
