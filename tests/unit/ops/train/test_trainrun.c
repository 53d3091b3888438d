/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainrun, the binary: usage errors, clear messages for missing files,
 * FIFOs and directories given as files, and bad config fields, and SIGTERM -> checkpoint -> exit 0.
 * The binary's path comes from $TRAINRUN (set by meson).
 */
#include "lib/base/base.h"
#include "ops/graph.h"
#include "ops/plan/plan.h"
#include "tests/unit/ops/train/helpers.h"
#include "tests/support/tree.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* This test's folder (synth_path's), removed after it. */
static const char *tmpdir(void) {
  return synth_path("");
}

TestSuite(trainrun, .fini = synth_cleanup);

/* Spawns trainrun with argv (NULL-terminated, argv[0] excluded), its
 * stdout+stderr on a pipe. */
static pid_t spawn(const char *const *argv, int *out_fd) {
  const char *bin = getenv("TRAINRUN");
  cr_assert_not_null(bin, "TRAINRUN is not set");
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(p[1], 1);
    dup2(p[1], 2);
    close(p[0]);
    const char *av[16] = {bin};
    for (int i = 0; argv[i] && i < 14; i++)
      av[i + 1] = argv[i];
    execv(bin, (char *const *)av);
    _exit(127);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

/* Runs to completion; returns the exit code, output in out. */
static int run(const char *const *argv, char *out, size_t len) {
  int fd;
  pid_t pid = spawn(argv, &fd);
  size_t at = 0;
  ssize_t n;
  while (at + 1 < len && (n = read(fd, out + at, len - at - 1)) > 0)
    at += (size_t)n;
  out[at] = 0;
  close(fd);
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fwrite(data, 1, len, f);
  fclose(f);
}

static void write_model(const char *path) {
  ty_graph *g = make_mlp(16, 9);
  char err[256];
  cr_assert_eq(ty_graph_save_onnx(g, NULL, 0, path, err, sizeof err), 0, "%s", err);
  ty_graph_destroy(g);
}

Test(trainrun, help_and_usage_errors) {
  char out[4096];
  cr_assert_eq(run((const char *[]){"--help", NULL}, out, sizeof out), 0);
  cr_assert(strstr(out, "--model"), "%s", out);
  cr_assert_eq(run((const char *[]){"--version", NULL}, out, sizeof out), 0, "%s", out);
  cr_assert(strncmp(out, "trainrun ", 9) == 0, "%s", out);
  cr_assert_eq(run((const char *[]){"--bogus", NULL}, out, sizeof out), 2);
  cr_assert(strstr(out, "--bogus"), "%s", out);
  cr_assert_eq(run((const char *[]){"--model", "m.onnx", NULL}, out, sizeof out), 2);
  cr_assert(strstr(out, "--config"), "%s", out);
  cr_assert_eq(run((const char *[]){"--model", "m", "--config", "c", "--steps", "-3", NULL}, out,
                   sizeof out),
               2);
  cr_assert(strstr(out, "--steps"), "%s", out);
  cr_assert_eq(
      run((const char *[]){"--model", "m", "--config", "c", "--steps", "0", NULL}, out, sizeof out),
      2, "--steps 0 would train the config's whole length");
  cr_assert(strstr(out, "--steps: 0; the optimizer steps the run ends at in all, 1 or more"), "%s",
            out);
  cr_assert_eq(run((const char *[]){"--model", "m", "--config", "c", "--threads", "0", NULL}, out,
                   sizeof out),
               2);
  cr_assert(strstr(out, "--threads"), "%s", out);
  cr_assert_eq(run((const char *[]){"--model", "m", "--config", "c", "--bucket-kb", "0", NULL}, out,
                   sizeof out),
               2);
  cr_assert(strstr(out, "--bucket-kb: must be"), "%s", out);
  cr_assert_eq(run((const char *[]){"--model", "m", "--config", "c", "--bucket-mb", "5000", NULL},
                   out, sizeof out),
               2);
  cr_assert(strstr(out, "--bucket-mb: must be"), "%s", out);
}

Test(trainrun, missing_files_are_named) {
  char out[4096], cfg[128], model[128];
  snprintf(cfg, sizeof cfg, "%s/ok.pb", tmpdir());
  snprintf(model, sizeof model, "%s/absent.onnx", tmpdir());
  size_t len;
  uint8_t *c = pack_config(5, 0, NULL, &len);
  write_file(cfg, c, len);
  free(c);
  cr_assert_eq(run((const char *[]){"--model", model, "--config", "/nonexistent/c.pb", NULL}, out,
                   sizeof out),
               2);
  cr_assert(strstr(out, "/nonexistent/c.pb"), "%s", out);
  cr_assert_eq(run((const char *[]){"--model", model, "--config", cfg, NULL}, out, sizeof out), 2);
  cr_assert(strstr(out, "absent.onnx"), "%s", out);
  char twice[300];
  snprintf(twice, sizeof twice, "%s: %s:", model, model);
  cr_assert(!strstr(out, twice), "the path named twice: %s", out);
}

/* The test model at model, and at cfg pack_config's config of max_steps
 * steps or epochs, checkpointing to ckpt (NULL: none). */
static void write_model_and_config(const char *model, const char *cfg, uint64_t max_steps,
                                   uint32_t epochs, const char *ckpt) {
  write_model(model);
  size_t len;
  uint8_t *c = pack_config(max_steps, epochs, ckpt, &len);
  write_file(cfg, c, len);
  free(c);
}

/* A FIFO or a directory given as --config or --plan is refused at once,
 * naming the option and the path: a FIFO once held trainrun in fopen for
 * as long as no writer came. */
Test(trainrun, a_fifo_or_directory_as_config_or_plan_is_refused_at_once, .timeout = 30) {
  char out[4096], cfg[128], model[128], fifo[128], dir[128];
  snprintf(cfg, sizeof cfg, "%s/fifo_ok.pb", tmpdir());
  snprintf(model, sizeof model, "%s/fifo_m.onnx", tmpdir());
  snprintf(fifo, sizeof fifo, "%s/in.fifo", tmpdir());
  snprintf(dir, sizeof dir, "%s/adir", tmpdir());
  write_model_and_config(model, cfg, 5, 0, NULL);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(mkdir(dir, 0700), 0);
  const struct {
    const char *config, *plan, *want_fmt, *path;
  } cases[] = {
      {fifo, NULL, "--config %s: not a regular file", fifo},
      {dir, NULL, "--config %s: is a directory", dir},
      {cfg, fifo, "--plan %s: not a regular file", fifo},
      {cfg, dir, "--plan %s: is a directory", dir},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *argv[] = {
        "--model",     model, "--config", cases[i].config, cases[i].plan ? "--plan" : NULL,
        cases[i].plan, NULL};
    char want[300];
    snprintf(want, sizeof want, cases[i].want_fmt, cases[i].path);
    cr_assert_eq(run(argv, out, sizeof out), 2, "case %zu: %s", i, out);
    cr_assert(strstr(out, want), "case %zu: no \"%s\" in: %s", i, want, out);
  }
}

Test(trainrun, bad_config_field_is_named) {
  char out[4096], cfg[128], model[128];
  snprintf(cfg, sizeof cfg, "%s/bad.pb", tmpdir());
  snprintf(model, sizeof model, "%s/m.onnx", tmpdir());
  write_model_and_config(model, cfg, 0, 0, NULL); /* neither epochs nor max_steps */
  cr_assert_eq(run((const char *[]){"--model", model, "--config", cfg, NULL}, out, sizeof out), 2);
  cr_assert(strstr(out, "config.epochs"), "%s", out);
}

/* config.device DEVICE_GPU on a host without a GPU (or a build without
 * CUDA) is refused before any work, saying why; on a GPU host trainrun says
 * which parts use it. A build with CUDA runs it in trainrun-gpu, which
 * trainrun execs; without that program beside it, trainrun says so. Field 21 is appended to the
 * encoded config as a varint (tag 0xa8 0x01, value 2): protobuf merges concatenated fields. */
Test(trainrun, device_gpu_needs_a_gpu, .timeout = 60) {
  char out[4096], cfg[128], model[128];
  snprintf(cfg, sizeof cfg, "%s/gpu.pb", tmpdir());
  snprintf(model, sizeof model, "%s/m.onnx", tmpdir());
  write_model(model);
  size_t len;
  uint8_t *c = pack_config(1, 0, NULL, &len);
  uint8_t *c2 = realloc(c, len + 3);
  cr_assert_not_null(c2);
  memcpy(c2 + len, "\xa8\x01\x02", 3);
  write_file(cfg, c2, len + 3);
  free(c2);
  int rc = run((const char *[]){"--model", model, "--config", cfg, NULL}, out, sizeof out);
  if (strstr(out, "CUDA device(s); collectives through NCCL")) return; /* a GPU host */
  cr_assert_eq(rc, 2, "%s", out);
  cr_assert(strstr(out, "config.device is DEVICE_GPU but"), "%s", out);
  /* A build with CUDA hands the job to trainrun-gpu beside trainrun (the
   * refusal above is that program's); a trainrun without it says so. */
  char gpu[4200], alone[160];
  snprintf(gpu, sizeof gpu, "%s-gpu", getenv("TRAINRUN"));
  if (access(gpu, X_OK) != 0) return; /* a build without CUDA: one program */
  cr_assert(strstr(out, "no CUDA device is visible"), "%s", out);
  snprintf(alone, sizeof alone, "%s/trainrun", tmpdir());
  size_t n;
  uint8_t *bin = ty_test_read_file(getenv("TRAINRUN"), &n);
  write_file(alone, bin, n);
  free(bin);
  cr_assert_eq(chmod(alone, 0755), 0);
  char *was = ty_strdup(getenv("TRAINRUN"));
  setenv("TRAINRUN", alone, 1);
  rc = run((const char *[]){"--model", model, "--config", cfg, NULL}, out, sizeof out);
  setenv("TRAINRUN", was, 1);
  free(was);
  cr_assert_eq(rc, 2, "%s", out);
  cr_assert(strstr(out, "config.device is DEVICE_GPU but ") &&
                strstr(out, "/trainrun-gpu, the build of trainrun with the GPU executor, cannot "
                            "run: No such file or directory"),
            "%s", out);
  unlink(alone);
}

/* Whether pid's main thread blocks SIGTERM (/proc's SigBlk), as trainrun's
 * computing threads must: a SIGTERM handled inside a fused kernel's step
 * corrupted the heap in 2 to 5 runs of 10 (one thread of trainrun's own
 * takes it with sigwait). */
static bool main_thread_blocks_term(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  unsigned long long mask = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "SigBlk: %llx", &mask) == 1) break;
  if (f) fclose(f);
  return mask & (1ull << (SIGTERM - 1));
}

static bool term_blocked_at_kill;

/* Runs trainrun on model and cfg with slow steps (so that sig lands within
 * a step or two of step 5), sends sig once it logs step 5, reads its output
 * to the end into out and waits: its wait status into *st; whether sig
 * was sent. */
static bool signal_at_step5(const char *model, const char *cfg, int sig, char *out, size_t cap,
                            int *st) {
  setenv("TRAINYARD_STEP_DELAY_MS", "20", 1);
  int fd;
  pid_t pid =
      spawn((const char *[]){"--model", model, "--config", cfg, "--threads", "1", NULL}, &fd);
  size_t at = 0;
  ssize_t n;
  bool sent = false;
  out[0] = 0;
  while (at + 1 < cap && (n = read(fd, out + at, cap - at - 1)) > 0) {
    at += (size_t)n;
    out[at] = 0;
    if (!sent && strstr(out, "step 5/")) { /* training for real */
      term_blocked_at_kill = main_thread_blocks_term(pid);
      kill(pid, sig);
      sent = true;
    }
  }
  close(fd);
  unsetenv("TRAINYARD_STEP_DELAY_MS");
  waitpid(pid, st, 0);
  return sent;
}

/* SIGUSR1, a job's default --signal warning, used to end the rank with
 * nothing saved (its default action): it trains on to its end, saying so. */
Test(trainrun, a_warning_signal_is_noted_and_training_goes_on, .timeout = 100) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  char cfg[128], model[128];
  snprintf(cfg, sizeof cfg, "%s/usr1.pb", tmpdir());
  snprintf(model, sizeof model, "%s/usr1_model.onnx", tmpdir());
  /* 250 steps of 20 ms: SIGUSR1 at step 5 lands with ~5 s of training
   * left, even when the test is descheduled between reading step 5 and the
   * kill (12 steps left ~150 ms, and trainrun could end first). */
  write_model_and_config(model, cfg, 250, 0, NULL);
  static char out[1 << 16];
  int st;
  bool sent = signal_at_step5(model, cfg, SIGUSR1, out, sizeof out, &st);
  cr_assert(sent, "trainrun never reached step 5: %s", out);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "trainrun did not train on after SIGUSR1: %s",
            out);
  cr_assert(strstr(out, "the job's --signal warning (SIGUSR1 or SIGUSR2): training goes on") &&
                strstr(out, "step 250/250"),
            "%s", out);
}

Test(trainrun, sigterm_checkpoints_and_exits_zero, .timeout = 100) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  char cfg[128], model[128], ck[128], state[160];
  snprintf(cfg, sizeof cfg, "%s/term.pb", tmpdir());
  snprintf(model, sizeof model, "%s/term_model.onnx", tmpdir());
  snprintf(ck, sizeof ck, "%s/term_ckpt.onnx", tmpdir());
  snprintf(state, sizeof state, "%s.state", ck);
  write_model_and_config(model, cfg, 0, 50, ck); /* far longer than the test waits */
  static char out[1 << 16];
  int st;
  bool sent = signal_at_step5(model, cfg, SIGTERM, out, sizeof out, &st);
  cr_assert(sent, "trainrun never reached step 5: %s", out);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "trainrun did not exit 0 on SIGTERM: %s", out);
  cr_assert(strstr(out, "stopped at step"), "%s", out);
  cr_assert(term_blocked_at_kill, "SIGTERM could land in trainrun's computing main thread");
  cr_assert_eq(access(ck, R_OK), 0, "no checkpoint at %s", ck);
  cr_assert_eq(access(state, R_OK), 0, "no state at %s", state);
  ty_graph *g;
  char err[256];
  cr_assert_eq(ty_graph_load_file(ck, err, sizeof err, &g), 0, "%s", err);
  ty_graph_destroy(g);
  /* And it resumes from there: a few more steps than where it stopped. */
  const char *at_step = strstr(out, "stopped at step ");
  unsigned long stopped = strtoul(at_step + strlen("stopped at step "), NULL, 10);
  char total[32], want[64];
  snprintf(total, sizeof total, "%lu", stopped + 7);
  snprintf(want, sizeof want, "step %lu/%lu", stopped + 7, stopped + 7);
  char out2[1 << 16];
  cr_assert_eq(
      run((const char *[]){"--model", model, "--config", cfg, "--resume", "--steps", total, NULL},
          out2, sizeof out2),
      0, "%s", out2);
  cr_assert(strstr(out2, "resumed from"), "%s", out2);
  cr_assert(strstr(out2, want), "no \"%s\" in: %s", want, out2);
}

/* The plan options: each bad value named, a plan file written and refused
 * where it does not fit (the multi-rank cases are in tests/integration). */
Test(trainrun, plan_options_refused_and_plan_files_written, .timeout = 60) {
  char out[1 << 14], cfg[128], model[128], plan[128], junk[128];
  snprintf(cfg, sizeof cfg, "%s/plan.pb", tmpdir());
  snprintf(model, sizeof model, "%s/plan_model.onnx", tmpdir());
  snprintf(plan, sizeof plan, "%s/tp.plan", tmpdir());
  snprintf(junk, sizeof junk, "%s/junk.plan", tmpdir());
  write_model_and_config(model, cfg, 5, 0, NULL);
  write_file(junk, "not a plan at all", 17);
  unsetenv("WORLD_SIZE");
  unsetenv("LOCAL_WORLD_SIZE");
  const struct {
    const char *a, *b, *c, *d, *why;
  } bad[] = {
      {"--parallelism", "fast", NULL, NULL,
       "--parallelism: expected auto, data, tensor or grid, got \"fast\""},
      {"--parallelism", "tensor", "--mesh", "2",
       "--mesh: expected NODESxDEVICES, e.g. 2x4, got \"2\""},
      {"--parallelism", "tensor", "--mesh", "1x3",
       "--mesh 1x3 holds 3 devices, but WORLD_SIZE is 1"},
      {"--parallelism", "data", "--device-mem", "0",
       "--device-mem: expected a positive byte count"},
      {"--parallelism", "data", "--intra-gbps", "fast",
       "--intra-gbps: expected a non-negative number"},
      {"--plan", "/nonexistent.plan", NULL, NULL,
       "--plan /nonexistent.plan: No such file or directory"},
      {"--plan", junk, NULL, NULL, "plan: not a trainyard plan"},
      {"--plan", junk, "--parallelism", "data", "--plan runs a plan as it is"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *argv[] = {"--model", model,    "--config", cfg, bad[i].a,
                          bad[i].b,  bad[i].c, bad[i].d,   NULL};
    cr_assert_eq(run(argv, out, sizeof out), 2, "case %zu: %s", i, out);
    cr_assert(strstr(out, bad[i].why), "case %zu: no \"%s\" in: %s", i, bad[i].why, out);
  }
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  const char *write[] = {"--model",
                         model,
                         "--config",
                         cfg,
                         "--write-plan",
                         plan,
                         "--parallelism",
                         "tensor",
                         "--mesh",
                         "1x2",
                         "--device-flops",
                         "1e11",
                         NULL};
  cr_assert_eq(run(write, out, sizeof out), 0, "%s", out);
  cr_assert(strstr(out, "plan: written to "), "%s", out);
  size_t n = 0;
  uint8_t buf[1 << 14];
  FILE *f = fopen(plan, "rb");
  cr_assert_not_null(f);
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_decode(buf, n, &p, err, sizeof err), 0, "%s", err);
  cr_assert(p->mesh[0] == 1 && p->mesh[1] == 2 && p->nodes == 1 && p->devices_per_node == 2);
  ty_plan_destroy(p);
  cr_assert_eq(run((const char *[]){"--model", model, "--config", cfg, "--plan", plan, NULL}, out,
                   sizeof out),
               2);
  cr_assert(strstr(out, "made for 2 devices (mesh 1x2), but WORLD_SIZE is 1"), "%s", out);
}
