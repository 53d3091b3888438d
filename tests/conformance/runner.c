/* SPDX-License-Identifier: Apache-2.0 */
/*
 * onnx_conformance: runs ONNX backend node tests (Debian's
 * libonnx-testdata) against the ops/ CPU kernels.
 *
 *   onnx_conformance [--skip FILE] DIR...
 *
 * Each DIR is a test (it holds model.onnx) or a folder of tests. A test
 * whose model uses an op we do not implement is skipped automatically, with
 * the importer's message as the reason. Tests whose ops we implement but
 * that we still skip (a dtype we do not compute in, say) are listed in the
 * skip file, one "test_name  # reason" per line, so every such exception is
 * visible in review. Everything else must pass: outputs are compared as
 * onnx/backend/test/runner does (rtol=1e-3, atol=1e-7 for every float
 * dtype; NaN equals NaN; integers and bools exactly). Exit status 1 if any
 * test failed.
 */
#include "lib/base/base.h"
#include "ops/ops.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RTOL 1e-3
#define ATOL 1e-7
#define MAX_IO 32

typedef struct skip_entry {
  char *name;
  char *reason;
} skip_entry;

typedef struct runner {
  skip_entry *skips;
  size_t n_skips;
  int passed, failed, skipped;
} runner;

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
  return s;
}

static int load_skips(runner *r, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "%s: cannot open skip file\n", path);
    return -1;
  }
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char *hash = strchr(line, '#');
    char *reason = hash ? trim(hash + 1) : (char *)"listed in skip file";
    if (hash) *hash = '\0';
    char *name = trim(line);
    if (!*name) continue;
    r->skips = ty_xrealloc(r->skips, (r->n_skips + 1) * sizeof *r->skips);
    r->skips[r->n_skips].name = ty_strdup(name);
    r->skips[r->n_skips].reason = ty_strdup(reason);
    r->n_skips++;
  }
  fclose(f);
  return 0;
}

static const char *skip_reason(const runner *r, const char *name) {
  for (size_t i = 0; i < r->n_skips; i++)
    if (strcmp(r->skips[i].name, name) == 0) return r->skips[i].reason;
  return NULL;
}

static int read_file(const char *path, ty_buf *b) {
  FILE *f = fopen(path, "rb");
  if (!f) return TY_EIO;
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    ty_buf_append(b, chunk, n);
  fclose(f);
  return 0;
}

static int load_pb(const char *dir, const char *kind, int i, ty_tensor **out, char *err,
                   size_t err_len) {
  char path[4096], what[64];
  snprintf(path, sizeof path, "%s/%s_%d.pb", dir, kind, i);
  snprintf(what, sizeof what, "%s_%d.pb", kind, i);
  ty_buf b;
  ty_buf_init(&b);
  int rc = read_file(path, &b);
  if (rc != 0)
    rc = TY_ENOTFOUND;
  else
    rc = ty_onnx_tensor_load(b.data ? b.data : (uint8_t *)"", b.len, what, err, err_len, out);
  ty_buf_close(&b);
  return rc;
}

static bool close_enough(const ty_tensor *got, const ty_tensor *want, char *err, size_t err_len) {
  char gs[128], ws[128];
  ty_shape_format(&got->shape, gs, sizeof gs);
  ty_shape_format(&want->shape, ws, sizeof ws);
  if (got->dtype != want->dtype || !ty_shape_equal(&got->shape, &want->shape)) {
    if (snprintf(err, err_len, "got %s %s, expected %s %s", ty_dtype_name(got->dtype), gs,
                 ty_dtype_name(want->dtype), ws) < 0)
      err[0] = '\0';
    return false;
  }
  int64_t n = ty_tensor_numel(got);
  bool is_float = got->dtype == TY_DTYPE_F32 || got->dtype == TY_DTYPE_F64 ||
                  got->dtype == TY_DTYPE_F16 || got->dtype == TY_DTYPE_BF16;
  for (int64_t i = 0; i < n; i++) {
    if (!is_float) {
      size_t es = ty_dtype_size(got->dtype);
      if (memcmp((char *)got->data + i * (int64_t)es, (char *)want->data + i * (int64_t)es, es) !=
          0) {
        snprintf(err, err_len, "element %lld differs", (long long)i);
        return false;
      }
      continue;
    }
    double g = ty_tensor_get_f64(got, i), w = ty_tensor_get_f64(want, i);
    if (isnan(g) && isnan(w)) continue;
    if (isinf(w) && g == w) continue;
    if (!(fabs(g - w) <= ATOL + RTOL * fabs(w))) {
      snprintf(err, err_len, "element %lld: got %.9g, expected %.9g", (long long)i, g, w);
      return false;
    }
  }
  return true;
}

/* ONNX 1.12's test data stores BFLOAT16 tensors as UINT16 (numpy has no
 * bfloat16): the same bits under another name, relabelled here. */
static void bf16_bits(ty_tensor *t, ty_dtype want) {
  if (want == TY_DTYPE_BF16 && t->dtype == TY_DTYPE_U16) t->dtype = TY_DTYPE_BF16;
}

/* Runs one test_data_set directory; 0 on pass, -1 with err filled. */
static int run_set(const ty_graph *g, const char *set, char *err, size_t err_len) {
  ty_tensor *ins[MAX_IO] = {NULL};
  ty_exec *e = NULL;
  int rc = -1, n_in = (int)ty_graph_n_inputs(g);
  if (n_in > MAX_IO || ty_exec_create(g, NULL, &e) != 0) {
    snprintf(err, err_len, "cannot create the executor");
    goto done;
  }
  for (int i = 0; i < n_in; i++) {
    if (load_pb(set, "input", i, &ins[i], err, err_len) != 0) goto done;
    bf16_bits(ins[i], ty_graph_value_at(g, ty_graph_input(g, i))->dtype);
    if (ty_exec_bind_id(e, ty_graph_input(g, i), ins[i], err, err_len) != 0) goto done;
  }
  if (ty_exec_run(e, err, err_len) != 0) goto done;
  for (size_t i = 0; i < ty_graph_n_outputs(g); i++) {
    ty_tensor *want = NULL;
    if (load_pb(set, "output", (int)i, &want, err, err_len) != 0) goto done;
    const ty_tensor *got = ty_exec_value(e, ty_graph_output(g, i));
    if (got) bf16_bits(want, got->dtype);
    char why[256];
    bool ok = got && close_enough(got, want, why, sizeof why);
    if (!ok) snprintf(err, err_len, "output %zu: %s", i, got ? why : "not computed");
    ty_tensor_destroy(want);
    if (!ok) goto done;
  }
  rc = 0;
done:
  ty_exec_destroy(e);
  for (int i = 0; i < MAX_IO; i++)
    ty_tensor_destroy(ins[i]);
  return rc;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the entries of dir that start with prefix. */
static size_t list_dir(const char *dir, const char *prefix, char ***out) {
  DIR *d = opendir(dir);
  size_t n = 0;
  *out = NULL;
  if (!d) return 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, strlen(prefix)) != 0) continue;
    *out = ty_xrealloc(*out, (n + 1) * sizeof **out);
    (*out)[n++] = ty_strdup(de->d_name);
  }
  closedir(d);
  if (n) qsort(*out, n, sizeof **out, cmp_names);
  return n;
}

static void free_list(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

static void run_test(runner *r, const char *dir, const char *name) {
  char path[4096], err[1024] = "";
  const char *reason = skip_reason(r, name);
  if (reason) {
    printf("SKIP %s: %s\n", name, reason);
    r->skipped++;
    return;
  }
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  ty_graph *g = NULL;
  int rc = ty_graph_load_file(path, err, sizeof err, &g);
  if (rc == TY_EUNSUPPORTED && strstr(err, "op is not supported")) {
    printf("SKIP %s: %s\n", name, err);
    r->skipped++;
    return;
  }
  bool ok = rc == 0;
  char **sets = NULL;
  size_t n_sets = ok ? list_dir(dir, "test_data_set_", &sets) : 0;
  for (size_t i = 0; ok && i < n_sets; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, sets[i]);
    char why[900];
    if (run_set(g, path, why, sizeof why) != 0) {
      if (snprintf(err, sizeof err, "%s: %s", sets[i], why) < 0) err[0] = '\0';
      ok = false;
    }
  }
  free_list(sets, n_sets);
  ty_graph_destroy(g);
  if (ok) {
    r->passed++;
    printf("PASS %s\n", name);
  } else {
    r->failed++;
    printf("FAIL %s: %s\n", name, err);
  }
}

static void run_path(runner *r, const char *dir) {
  char model[4096];
  struct stat st;
  snprintf(model, sizeof model, "%s/model.onnx", dir);
  if (stat(model, &st) == 0) {
    const char *base = strrchr(dir, '/');
    run_test(r, dir, base ? base + 1 : dir);
    return;
  }
  char **names;
  size_t n = list_dir(dir, "", &names);
  if (n == 0) fprintf(stderr, "%s: no tests found\n", dir);
  for (size_t i = 0; i < n; i++) {
    char sub[4096];
    if (snprintf(sub, sizeof sub, "%s/%s", dir, names[i]) >= (int)sizeof sub ||
        snprintf(model, sizeof model, "%s/model.onnx", sub) >= (int)sizeof model)
      continue;
    if (stat(model, &st) == 0) run_test(r, sub, names[i]);
  }
  free_list(names, n);
}

int main(int argc, char **argv) {
  runner r = {0};
  setvbuf(stdout, NULL, _IOLBF, 0);
  int n_dirs = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--skip") == 0 && i + 1 < argc) {
      if (load_skips(&r, argv[++i]) != 0) return 2;
    } else {
      argv[1 + n_dirs++] = argv[i];
    }
  }
  if (n_dirs == 0) {
    fprintf(stderr, "usage: onnx_conformance [--skip FILE] DIR...\n");
    return 2;
  }
  int per[64][3], n_sets = n_dirs < 64 ? n_dirs : 64;
  for (int i = 0; i < n_dirs; i++) {
    int before[3] = {r.passed, r.failed, r.skipped};
    run_path(&r, argv[1 + i]);
    if (i < n_sets) {
      per[i][0] = r.passed - before[0];
      per[i][1] = r.failed - before[1];
      per[i][2] = r.skipped - before[2];
    }
  }
  for (int i = 0; n_dirs > 1 && i < n_sets; i++) { /* per set: node, pytorch-converted, ... */
    const char *base = strrchr(argv[1 + i], '/');
    printf("set %s: %d passed, %d failed, %d skipped\n", base ? base + 1 : argv[1 + i], per[i][0],
           per[i][1], per[i][2]);
  }
  printf("%d passed, %d failed, %d skipped\n", r.passed, r.failed, r.skipped);
  for (size_t i = 0; i < r.n_skips; i++) {
    free(r.skips[i].name);
    free(r.skips[i].reason);
  }
  free(r.skips);
  return r.failed ? 1 : 0;
}
