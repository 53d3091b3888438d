/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/cuda without a GPU: every CUDA kernel the backend would run compiles
 * with NVRTC to PTX for compute_90 and that PTX assembles for sm_90 with
 * ptxas, so a kernel that does not build fails here, not on the first
 * machine with a GPU. Covered: the fused regions ops/fusion builds for the
 * example models' training graphs (forward, loss and backward) and for the
 * ONNX node tests, every optimizer update variant and the hand-written
 * kernels. The NVRTC cache is checked too: a second compile of a source is
 * a disk hit, in this process and a new one, and a corrupt file is
 * recompiled, never used.
 *
 * Paths come from the environment meson sets: TY_PTXAS, TY_MODELS_DIR
 * (the generated example models and configs), TY_ONNX_NODE_DIR.
 */
#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/cuda/cuda.h"
#include "ops/fusion/fusion.h"
#include "ops/graph.h"
#include "ops/train/train.h"
#include "tests/unit/ops/cuda/helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char root[256];

static void make_root(void) {
  snprintf(root, sizeof root, "/tmp/ty_cuda_rtc_test.XXXXXX");
  cr_assert_not_null(mkdtemp(root));
}

static int drop_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* Each test's cache directory goes when the test ends (Criterion's fini). */
static void drop_root(void) {
  if (root[0]) nftw(root, drop_entry, 16, FTW_DEPTH | FTW_PHYS);
  root[0] = '\0';
}

static ty_cuda_rtc *rtc_in(const char *dir) {
  ty_cuda_rtc *r = NULL;
  char err[512] = "";
  ty_cuda_rtc_opts o = {.arch = 90, .ptx = true, .cache_dir = dir};
  cr_assert_eq(ty_cuda_rtc_create(&o, &r, err, sizeof err), 0, "%s", err);
  return r;
}

/* Assembles ptx for sm_90; the exit status of ptxas. */
static int ptxas(const char *ptx, size_t len) {
  char path[300];
  snprintf(path, sizeof path, "%s/k.ptx", root);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(ptx, 1, len, f), len);
  fclose(f);
  const char *bin = getenv("TY_PTXAS");
  char *argv[] = {(char *)(bin ? bin : "ptxas"), "-arch=sm_90", path, "-o", "/dev/null", NULL};
  pid_t pid;
  cr_assert_eq(posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ), 0, "cannot run %s", argv[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Compiles src to PTX and assembles it; fails naming what. */
static void build(ty_cuda_rtc *r, const char *src, const char *what) {
  void *img = NULL;
  size_t len = 0;
  char err[512] = "";
  cr_assert_eq(ty_cuda_rtc_compile(r, src, what, &img, &len, err, sizeof err), 0, "%s\n%s", err,
               src);
  cr_assert_eq(ptxas(img, len - 1), 0, "ptxas -arch=sm_90 rejected %s:\n%s", what, src);
  free(img);
}

static void build_all(ty_cuda_rtc *r, ty_fused_src *s, size_t n, const char *model) {
  char what[512];
  for (size_t i = 0; i < n; i++) {
    snprintf(what, sizeof what, "%s region %zu (%s)", model, i, s[i].name);
    cr_assert(strstr(s[i].src, s[i].name), "%s: entry not in the source", what);
    build(r, s[i].src, what);
  }
}

Test(cuda_rtc, hand_written_kernels_assemble_for_sm90, .fini = drop_root) {
  make_root();
  ty_cuda_rtc *r = rtc_in(root);
  size_t n = 0;
  const ty_cuda_source *k = ty_cuda_kernel_sources(&n);
  cr_assert_geq(n, 4);
  const char *want[] = {
      "ty_softmax",      "ty_softmax_bwd", "ty_layer_norm",       "ty_layer_norm_bwd",
      "ty_xent",         "ty_xent_bwd",    "ty_embedding_gather", "ty_embedding_scatter_add",
      "ty_strided_copy", "ty_fill_zero",   "ty_reduce_sum"};
  for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
    bool found = false;
    char entry[64];
    snprintf(entry, sizeof entry, "void %s(", want[w]);
    for (size_t i = 0; i < n; i++)
      found |= strstr(k[i].src, entry) != NULL;
    cr_assert(found, "no kernel %s", want[w]);
  }
  for (size_t i = 0; i < n; i++)
    build(r, k[i].src, k[i].name);
  ty_cuda_rtc_destroy(r);
}

Test(cuda_rtc, optimizer_updates_assemble_for_sm90, .fini = drop_root) {
  make_root();
  ty_cuda_rtc *r = rtc_in(root);
  char *src = NULL, what[64];
  for (unsigned fl = 0; fl < 16; fl++) {
    cr_assert_eq(ty_fusion_cuda_sgd_src(fl & 1, fl & 2, fl & 4, fl & 8, &src), 0);
    snprintf(what, sizeof what, "sgd variant %u", fl);
    build(r, src, what);
    free(src);
  }
  for (unsigned fl = 0; fl < 3; fl++) {
    cr_assert_eq(ty_fusion_cuda_adam_src(fl == 2, fl == 1, &src), 0);
    snprintf(what, sizeof what, "adam variant %u", fl);
    build(r, src, what);
    free(src);
  }
  ty_cuda_rtc_destroy(r);
}

Test(cuda_rtc, example_models_fused_regions_assemble_for_sm90, .timeout = 600, .fini = drop_root) {
  const char *dir = getenv("TY_MODELS_DIR");
  if (!dir) cr_skip_test("TY_MODELS_DIR not set");
  make_root();
  ty_cuda_rtc *r = rtc_in(root);
  const char *names[] = {"mlp", "cnn", "resnet", "gpt"};
  size_t total = 0, found = 0;
  for (size_t m = 0; m < sizeof names / sizeof *names; m++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, names[m]);
    if (access(path, R_OK) != 0) continue; /* gpt.onnx needs python3-torch at build time */
    found++;
    ty_graph *g = training_graph(dir, names[m]);
    /* float32, and bf16 / f16 storage for mixed precision */
    const ty_dtype st[3] = {TY_DTYPE_F32, TY_DTYPE_BF16, TY_DTYPE_F16};
    for (int d = 0; d < 3; d++) {
      ty_fused_src *s = NULL;
      size_t n = 0;
      cr_assert_eq(ty_fusion_cuda_sources(g, NULL, 0, st[d], &s, &n), 0);
      build_all(r, s, n, names[m]);
      total += n;
      ty_fused_srcs_free(s, n);
    }
    ty_graph_destroy(g);
  }
  if (!found) cr_skip_test("no example models in %s (python3-onnx at build time)", dir);
  cr_assert_gt(total, 0, "no fused region in the example models");
  cr_log_info("example models: %zu fused kernels assembled for sm_90", total);
  ty_cuda_rtc_destroy(r);
}

Test(cuda_rtc, onnx_node_tests_fused_regions_assemble_for_sm90, .timeout = 600, .fini = drop_root) {
  const char *dir = getenv("TY_ONNX_NODE_DIR");
  DIR *d = dir ? opendir(dir) : NULL;
  if (!d) cr_skip_test("no ONNX node tests (TY_ONNX_NODE_DIR)");
  make_root();
  ty_cuda_rtc *r = rtc_in(root);
  size_t total = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/%s/model.onnx", dir, e->d_name);
    ty_graph *g = NULL;
    if (e->d_name[0] == '.' || ty_graph_load_file(path, err, sizeof err, &g) != 0)
      continue; /* ops the CPU runtime lacks: the conformance runner lists them */
    ty_fused_src *s = NULL;
    size_t n = 0;
    cr_assert_eq(ty_fusion_cuda_sources(g, NULL, 0, TY_DTYPE_F32, &s, &n), 0, "%s", e->d_name);
    build_all(r, s, n, e->d_name);
    total += n;
    ty_fused_srcs_free(s, n);
    ty_graph_destroy(g);
  }
  closedir(d);
  cr_assert_gt(total, 0, "no node test fuses");
  cr_log_info("ONNX node tests: %zu fused kernels assembled for sm_90", total);
  ty_cuda_rtc_destroy(r);
}

/* Sizes are not in the source: one compile serves every batch size, and
 * the disk cache serves later processes; a corrupt file is recompiled. */
Test(cuda_rtc, disk_cache_hits_and_rejects_corrupt_files, .fini = drop_root) {
  make_root();
  char *src = NULL;
  cr_assert_eq(ty_fusion_cuda_sgd_src(true, true, false, false, &src), 0);
  ty_cuda_rtc *r = rtc_in(root);
  void *img = NULL;
  size_t len = 0;
  char err[512];
  ty_cuda_rtc_stats st;
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(ty_cuda_rtc_compile(r, src, "sgd", &img, &len, err, sizeof err), 0, "%s", err);
    free(img);
  }
  ty_cuda_rtc_get_stats(r, &st);
  cr_assert_eq(st.compiles, 1);
  cr_assert_eq(st.disk_hits, 1);
  ty_cuda_rtc_destroy(r);
  /* Corrupt the one cache file: flip a byte of the image. */
  DIR *d = opendir(root);
  char path[600] = "";
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (strstr(e->d_name, ".ptx") && strlen(e->d_name) < 100)
      snprintf(path, sizeof path, "%s/%s", root, e->d_name);
  closedir(d);
  cr_assert(path[0], "no cache file written");
  int fd = open(path, O_WRONLY);
  cr_assert_eq(pwrite(fd, "X", 1, 40), 1);
  cr_assert_eq(ftruncate(fd, 100), 0);
  close(fd);
  r = rtc_in(root);
  cr_assert_eq(ty_cuda_rtc_compile(r, src, "sgd", &img, &len, err, sizeof err), 0, "%s", err);
  ty_cuda_rtc_get_stats(r, &st);
  cr_assert_eq(st.rejected, 1, "the truncated file was used");
  cr_assert_eq(st.compiles, 1);
  cr_assert(strstr(img, ".entry ty_sgd"), "not the kernel's PTX");
  free(img);
  ty_cuda_rtc_destroy(r);
  r = rtc_in(root);
  cr_assert_eq(ty_cuda_rtc_compile(r, src, "sgd", &img, &len, err, sizeof err), 0, "%s", err);
  ty_cuda_rtc_get_stats(r, &st);
  cr_assert_eq(st.disk_hits, 1, "the rewritten file is served from disk");
  free(img);
  ty_cuda_rtc_destroy(r);
  free(src);
}

Test(cuda_rtc, rejects_bad_arch_and_reports_compile_errors) {
  ty_cuda_rtc *r = NULL;
  char err[512] = "";
  ty_cuda_rtc_opts o = {.arch = 7};
  cr_assert_eq(ty_cuda_rtc_create(&o, &r, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "cuda arch: 7"), "%s", err);
  o = (ty_cuda_rtc_opts){.arch = 90, .ptx = true, .no_cache = true};
  cr_assert_eq(ty_cuda_rtc_create(&o, &r, err, sizeof err), 0, "%s", err);
  cr_assert_null(ty_cuda_rtc_cache_dir(r));
  void *img = NULL;
  size_t len = 0;
  int rc = ty_cuda_rtc_compile(r, "extern \"C\" __global__ void k() { undefined_thing(); }",
                               "broken", &img, &len, err, sizeof err);
  cr_assert_neq(rc, 0);
  cr_assert(strstr(err, "NVRTC: broken") && strstr(err, "undefined_thing"), "%s", err);
  ty_cuda_rtc_destroy(r);
}

#ifdef TY_HAVE_CUBLAS
/* GEMM arguments are checked before cuBLAS sees them, naming the field. */
Test(cuda_blas, gemm_arguments_are_checked) {
  char err[512] = "";
  ty_cuda_gemm_args g = {.m = 4, .n = 3, .k = 5, .batch = 1, .lda = 5, .ldb = 3, .ldc = 3};
  cr_assert_eq(ty_cuda_gemm_check(&g, err, sizeof err), 0, "%s", err);
  g.trans_a = true; /* A stored k x m: rows of m = 4 */
  g.lda = 3;
  cr_assert_eq(ty_cuda_gemm_check(&g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "lda 3 is below the row length 4"), "%s", err);
  g.lda = 4;
  cr_assert_eq(ty_cuda_gemm_check(&g, err, sizeof err), 0, "%s", err);
  g.ldb = 2;
  cr_assert_eq(ty_cuda_gemm_check(&g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "ldb 2 is below the row length 3"), "%s", err);
  g.ldb = 3;
  g.ldc = 1;
  cr_assert_eq(ty_cuda_gemm_check(&g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "ldc 1 is below n 3"), "%s", err);
  g.ldc = 3;
  g.k = -1;
  cr_assert_eq(ty_cuda_gemm_check(&g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "negative"), "%s", err);
  g.k = 5;
  g.batch = 2;
  g.stride_c = 6;
  cr_assert_eq(ty_cuda_gemm_check(&g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "stride_c 6 would overlap"), "%s", err);
  g.m = (int64_t)1 << 32;
  cr_assert_eq(ty_cuda_gemm_check(&g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "2^31-1"), "%s", err);
  /* The bias epilogue takes one matrix; checked before any handle is used. */
  g.m = 4;
  g.stride_c = 12;
  float bias;
  cr_assert_eq(ty_cuda_gemm_bias(NULL, &g, &bias, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "batch 2 (must be 1)"), "%s", err);
}
#endif

/* ---- placement ----------------------------------------------------------------- */

static size_t add_node(ty_graph *g, ty_op op, const int *in, int n_in, int out) {
  int idx;
  cr_assert_eq(ty_graph_add_node(g, op, NULL, in, n_in, &out, 1, &idx), 0);
  return (size_t)idx;
}

/* Each rule once: kernels where ops/cuda has one, a reason otherwise. */
Test(cuda_place, kernels_or_a_reason_per_node) {
  ty_graph *g = NULL;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {4, 8}, wd[2] = {8, 16}, id4[4] = {1, 1, 6, 6}, kd4[4] = {1, 1, 3, 3};
  int x = add_value(g, "x", TY_DTYPE_F32, 2, xd), w = add_value(g, "w", TY_DTYPE_F32, 2, wd);
  int im = add_value(g, "im", TY_DTYPE_F32, 4, id4), k = add_value(g, "k", TY_DTYPE_F32, 4, kd4);
  int d = add_value(g, "d", TY_DTYPE_F64, 2, xd);
  int ids[] = {x, w, im, k, d};
  for (size_t i = 0; i < 5; i++)
    ty_graph_mark_input(g, ids[i]);
  int m = add_value(g, "m", TY_DTYPE_F32, -1, NULL), r = add_value(g, "r", TY_DTYPE_F32, -1, NULL);
  int s = add_value(g, "s", TY_DTYPE_F32, -1, NULL),
      s0 = add_value(g, "s0", TY_DTYPE_F32, -1, NULL);
  int c = add_value(g, "c", TY_DTYPE_F32, -1, NULL),
      dd = add_value(g, "dd", TY_DTYPE_F64, -1, NULL);
  size_t n_mm = add_node(g, TY_OP_MATMUL, (int[]){x, w}, 2, m);
  size_t n_relu = add_node(g, TY_OP_RELU, &m, 1, r);
  size_t n_sm = add_node(g, TY_OP_SOFTMAX, &r, 1, s);
  size_t n_sm0 = add_node(g, TY_OP_SOFTMAX, &r, 1, s0);
  cr_assert_eq(ty_graph_node_set_int(g, n_sm0, "axis", 0), 0);
  size_t n_conv = add_node(g, TY_OP_CONV, (int[]){im, k}, 2, c);
  size_t n_f64 = add_node(g, TY_OP_ADD, (int[]){d, d}, 2, dd);
  int outs[] = {s, s0, c, dd};
  for (size_t i = 0; i < 4; i++)
    ty_graph_mark_output(g, outs[i]);
  char err[512];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_cuda_place *p = NULL;
  size_t n = 0;
  cr_assert_eq(ty_cuda_placement(g, &p, &n), 0);
  cr_assert_eq(n, 6);
  cr_assert(p[n_mm].gpu && !strcmp(p[n_mm].how, "cuBLAS"));
  cr_assert(p[n_relu].gpu && strstr(p[n_relu].how, "region"), "a lone Relu is a region of one");
  cr_assert(p[n_sm].gpu && !strcmp(p[n_sm].how, "softmax.cu"));
  cr_assert(!p[n_sm0].gpu);
  cr_assert(strstr(p[n_sm0].why, "Softmax over axis 0, not the last"), "%s", p[n_sm0].why);
#ifdef TY_HAVE_CUDNN
  cr_assert(p[n_conv].gpu && !strcmp(p[n_conv].how, "cuDNN"), "%s", p[n_conv].why);
#else
  cr_assert(!p[n_conv].gpu);
  cr_assert(strstr(p[n_conv].why, "Conv: this build has no cuDNN"), "%s", p[n_conv].why);
#endif
  cr_assert(!p[n_f64].gpu);
  cr_assert(strstr(p[n_f64].why, "Add on DOUBLE: only float32 has CUDA kernels"), "%s",
            p[n_f64].why);
  char sum[512];
  cr_assert_eq(ty_cuda_placement_summary(p, n, sum, sizeof sum), 0);
#ifdef TY_HAVE_CUDNN
  cr_assert(strstr(sum, "4 of 6 nodes have CUDA kernels; CPU: 1 x "), "%s", sum);
#else
  cr_assert(strstr(sum, "3 of 6 nodes have CUDA kernels; CPU: 1 x "), "%s", sum);
#endif
  char tiny[40];
  cr_assert_eq(ty_cuda_placement_summary(p, n, tiny, sizeof tiny), 0);
  cr_assert(strlen(tiny) == sizeof tiny - 1 && strstr(tiny, "..."), "%s", tiny);
  free(p);
  ty_graph_destroy(g);
}

/* The GPT example's training graph: its MatMuls, softmaxes, layer norms,
 * embedding and loss (forward and backward) all have kernels. */
Test(cuda_place, gpt_training_graph) {
  const char *dir = getenv("TY_MODELS_DIR");
  char path[512];
  snprintf(path, sizeof path, "%s/gpt.onnx", dir ? dir : ".");
  if (!dir || access(path, R_OK) != 0) cr_skip_test("no gpt.onnx (python3-torch at build time)");
  ty_graph *g = training_graph(dir, "gpt");
  ty_cuda_place *p = NULL;
  size_t n = 0, on = 0;
  cr_assert_eq(ty_cuda_placement(g, &p, &n), 0);
  bool seen[TY_OP_COUNT_] = {0};
  for (size_t i = 0; i < n; i++) {
    const ty_graph_node *nd = ty_graph_node_at(g, i);
    on += p[i].gpu;
    int op = nd->op == TY_OP_GRAD ? ty_autodiff_grad_forward_op(nd) : (int)nd->op;
    if (p[i].gpu && op >= 0) seen[op] = true;
    cr_assert(p[i].gpu || p[i].why[0], "node %zu on the CPU without a reason", i);
  }
  cr_assert(seen[TY_OP_MATMUL] && seen[TY_OP_LAYER_NORM] && seen[TY_OP_SOFTMAX_CE_LOSS] &&
            seen[TY_OP_GATHER]);
  char sum[1024];
  cr_assert_eq(ty_cuda_placement_summary(p, n, sum, sizeof sum), 0);
  cr_log_info("gpt training graph: %s", sum);
  cr_assert_gt(on, n / 2, "%s", sum);
  free(p);
  ty_graph_destroy(g);
}

/* A launch is refused before the device sees it when an input's shape
 * does not fit the class its kernel was generated for. */
Test(cuda_launch, fused_call_checks_classes) {
  char err[512] = "";
  int64_t ld[2] = {4, 6}, rd[1] = {6}, bad[1] = {5};
  ty_shape loop = ty_shape_make(2, ld), row = ty_shape_make(1, rd), one = ty_shape_make(0, NULL);
  ty_shape shapes[3] = {loop, row, one};
  int cls[3] = {TY_FUSE_CUDA_FULL, TY_FUSE_CUDA_STRIDED, TY_FUSE_CUDA_SCALAR};
  ty_cuda_fused_call c = {
      .entry = "ty_fk_fbs", .n_in = 3, .n_out = 1, .cls = cls, .in_shapes = shapes, .loop = &loop};
  cr_assert_eq(ty_cuda_fused_check(&c, err, sizeof err), 0, "%s", err);
  shapes[0] = row; /* full, but not the loop shape */
  cr_assert_eq(ty_cuda_fused_check(&c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "ty_fk_fbs: input 0 (6 elements) does not fit its class full"), "%s", err);
  shapes[0] = loop;
  shapes[1] = ty_shape_make(1, bad); /* 5 does not broadcast to 6 */
  cr_assert_eq(ty_cuda_fused_check(&c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "input 1 (5 elements) does not fit its class broadcast"), "%s", err);
  shapes[1] = row;
  shapes[2] = row; /* scalar with 6 elements */
  cr_assert_eq(ty_cuda_fused_check(&c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "input 2 (6 elements) does not fit its class scalar"), "%s", err);
  c.n_out = 0;
  cr_assert_eq(ty_cuda_fused_check(&c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "0 outputs"), "%s", err);
}

/* Gemm with a [N] bias and beta 1 runs as cuBLASLt's bias epilogue; any
 * other bias falls back, saying why. */
Test(cuda_place, gemm_bias) {
  ty_graph *g = NULL;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t ad[2] = {4, 8}, bd[2] = {8, 16}, cd[1] = {16};
  int a = add_value(g, "a", TY_DTYPE_F32, 2, ad), b = add_value(g, "b", TY_DTYPE_F32, 2, bd);
  int c = add_value(g, "c", TY_DTYPE_F32, 1, cd);
  int y1 = add_value(g, "y1", TY_DTYPE_F32, -1, NULL),
      y2 = add_value(g, "y2", TY_DTYPE_F32, -1, NULL);
  ty_graph_mark_input(g, a);
  ty_graph_mark_input(g, b);
  ty_graph_mark_input(g, c);
  size_t n1 = add_node(g, TY_OP_GEMM, (int[]){a, b, c}, 3, y1);
  size_t n2 = add_node(g, TY_OP_GEMM, (int[]){a, b, c}, 3, y2);
  cr_assert_eq(ty_graph_node_set_float(g, n2, "beta", 0.5f), 0);
  ty_graph_mark_output(g, y1);
  ty_graph_mark_output(g, y2);
  char err[512];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_cuda_place *p = NULL;
  size_t n = 0;
  cr_assert_eq(ty_cuda_placement(g, &p, &n), 0);
  cr_assert(p[n1].gpu && strstr(p[n1].how, "cuBLASLt"), "%s", p[n1].why);
  cr_assert(!p[n2].gpu && strstr(p[n2].why, "Gemm with a bias"), "%s", p[n2].how);
  free(p);
  ty_graph_destroy(g);
}
