/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train: a run that holds its weights whole (one process, a
 * data-parallel rank) keeps one copy of them: ty_train_drop_model_data
 * frees the model's and the training graph's, and training, evaluation,
 * saves and resumes give what they give without the drop. Checkpoints are
 * written and read as streams (checkpoint.c, resume.c): the ONNX file is
 * written as the export makes it, so a write that fails half way (here the
 * file size limit, RLIMIT_FSIZE, as a full disk would) must still fail the
 * save with the file and the reason, leave no part of the pair behind and
 * keep the previous checkpoint the one a run resumes; a state that cannot
 * be written after its model takes the model with it. A resume walks the
 * model's encoding instead of importing it, and refuses a trained tensor
 * the checkpoint lacks as the import did.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void setup(void) {
  synth_blob_files("", 256, 1);
}

TestSuite(whole_run, .init = setup, .fini = synth_cleanup);

/* Files in synth_path's directory whose names start with prefix. */
static int files_like(const char *prefix) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", synth_path("."));
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s", dir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

static void file_limit(rlim_t bytes) {
  struct rlimit r;
  cr_assert_eq(getrlimit(RLIMIT_FSIZE, &r), 0);
  r.rlim_cur = bytes;
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &r), 0);
}

/* One whole run's trainer and what it borrows. */
typedef struct whole {
  ty_train_config c;
  FILE *log;
  ty_train *t;
  size_t freed; /* by ty_train_drop_model_data */
} whole;

/* A trainer of g checkpointing to DIR/ckpt (with the test split when
 * test), with drop after freeing the model's weights, trained `steps`
 * and saved. */
static void start(whole *w, ty_graph *g, const char *ckpt, bool test, bool drop, uint64_t steps) {
  synth_config(&w->c, 0, test);
  w->c.checkpoint_path = ty_strdup(synth_path(ckpt));
  w->log = tmpfile();
  w->t = synth_trainer(g, &w->c, &(ty_train_opts){.log = w->log});
  char err[TY_ERR_LEN] = "";
  w->freed = 0;
  if (drop) cr_assert_eq(ty_train_drop_model_data(w->t, g, &w->freed), 0);
  cr_assert_eq(ty_train_steps(w->t, steps, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(w->t, err, sizeof err), 0, "%s", err);
}

static void finish(whole *w) {
  ty_train_destroy(w->t);
  fclose(w->log);
  ty_train_config_close(&w->c);
}

Test(whole_run, a_write_failing_half_way_leaves_the_previous_checkpoint, .timeout = 60) {
  signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
  /* 8 x 4096 + 4096 x 4 weights: a 200 KB model, 64 KB allowed. */
  synth_mlp o = {.in = 8, .hidden = 4096, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  whole w;
  start(&w, g, "big.onnx", false, true, 2);
  cr_assert_eq(files_like("big."), 5, "the pair, its two links and the run's lock");
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(w.t, 1, err, sizeof err), 0, "%s", err);
  file_limit(64 * 1024);
  cr_assert_eq(ty_train_checkpoint(w.t, err, sizeof err), TY_EIO);
  file_limit(RLIM_INFINITY);
  cr_assert(strstr(err, "big.step-000003.onnx") && strstr(err, "write failed (File too large)"),
            "%s", err);
  cr_assert_eq(files_like("big."), 5, "nothing of step 3's pair stays");
  ty_train_destroy(w.t);
  ty_graph *again = synth_mlp_build(&o);
  w.t = synth_trainer(again, &w.c, &(ty_train_opts){.log = w.log});
  cr_assert_eq(ty_train_step(w.t), 2, "resumed from the last complete checkpoint");
  finish(&w);
  ty_graph_destroy(again);
  ty_graph_destroy(g);
}

/* A save whose model was written but whose state could not be (a full
 * disk after the model; here the state's temporary file cannot be made)
 * fails naming the state file and leaves no model of that step: once a
 * 0.9 MB model without its state stayed on the full disk, listed as a
 * step. */
Test(whole_run, a_state_write_failing_leaves_no_model_of_its_step, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  whole w;
  start(&w, g, "half.onnx", false, false, 2);
  cr_assert_eq(files_like("half."), 5, "the pair, its two links and the run's lock");
  char err[TY_ERR_LEN] = "", blocker[4200];
  cr_assert_eq(ty_train_steps(w.t, 1, err, sizeof err), 0, "%s", err);
  snprintf(blocker, sizeof blocker, "%s.state.tmp.%ld", synth_path("half.step-000003.onnx"),
           (long)getpid());
  cr_assert_eq(mkdir(blocker, 0700), 0, "%s", blocker);
  cr_assert_eq(ty_train_checkpoint(w.t, err, sizeof err), TY_EIO);
  cr_assert_eq(rmdir(blocker), 0);
  cr_assert(strstr(err, "half.step-000003.onnx.state") && strstr(err, "cannot create"), "%s", err);
  cr_assert_eq(files_like("half."), 5, "a part of step 3's pair stays");
  ty_train_destroy(w.t);
  ty_graph *again = synth_mlp_build(&o);
  w.t = synth_trainer(again, &w.c, &(ty_train_opts){.log = w.log});
  cr_assert_eq(ty_train_step(w.t), 2, "resumed from the last complete checkpoint");
  finish(&w);
  ty_graph_destroy(again);
  ty_graph_destroy(g);
}

Test(whole_run, a_resume_refuses_a_checkpoint_lacking_a_trained_tensor, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  whole w;
  start(&w, g, "renamed.onnx", false, false, 2);
  synth_rename_init(synth_path("renamed.step-000002.onnx"), "fc1.weight");
  ty_train_destroy(w.t); /* its run ends: the path is free for the next */
  w.t = NULL;
  synth_refused(g, &w.c, &(ty_train_opts){.log = w.log}, TY_EINVAL,
                (const char *const[]){"renamed.step-000002.onnx: initializer \"fc1.weight\" is "
                                      "missing or has another shape",
                                      NULL});
  finish(&w);
  ty_graph_destroy(g);
}

/* Two runs never write one checkpoint (each would resume from the
 * other's state): rank 0 locks checkpoint_path for its run; another run
 * waits for the lock (opts.checkpoint_lock_wait_s: a cancelled run's last
 * save), then is refused naming the path; once the first run ends, it may. */
Test(whole_run, two_runs_never_write_one_checkpoint, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  whole w;
  start(&w, g, "shared.onnx", false, false, 2);
  FILE *log = tmpfile();
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &w.c, &(ty_train_opts){.log = log, .checkpoint_lock_wait_s = 1},
                               &t, err, sizeof err),
               TY_ESTATE);
  cr_assert_null(t);
  cr_assert(strstr(err, "shared.onnx: another run writes it (it holds ") &&
                strstr(err, "shared.lock, waited for 1 s)"),
            "%s", err);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "shared.lock is locked by another run: waiting up to 1 s"), "%s", text);
  free(text);
  /* "shared", without ".onnx", names the same step files: the same lock. */
  ty_train_config bare = w.c;
  bare.checkpoint_path = ty_strdup(synth_path("shared"));
  cr_assert_eq(ty_train_create(g, &bare, &(ty_train_opts){.log = log}, &t, err, sizeof err),
               TY_ESTATE);
  cr_assert(strstr(err, "shared: another run writes it (it holds ") &&
                strstr(err, "shared.lock, waited for 0 s)"),
            "%s", err);
  free(bare.checkpoint_path);
  fclose(log);
  ty_train_destroy(w.t); /* the first run ends: its lock goes */
  w.t = synth_trainer(g, &w.c, &(ty_train_opts){.log = w.log});
  finish(&w);
  ty_graph_destroy(g);
}

Test(whole_run, freeing_the_model_weights_changes_no_result, .timeout = 60) {
  synth_blob_files("t", 128, 2);
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .bn = true};
  ty_graph *kept = synth_mlp_build(&o), *dropped = synth_mlp_build(&o);
  whole a, b;
  start(&a, kept, "kept.onnx", true, false, 3);
  start(&b, dropped, "dropped.onnx", true, true, 3);
  size_t trained = 0;
  for (size_t i = 0; i < ty_train_n_params(b.t); i++)
    trained += ty_train_param(b.t, i)->nbytes;
  /* the model's and the training graph's copies of every trained tensor,
   * and of BatchNormalization's two running statistics */
  cr_assert_eq(b.freed, 2 * (trained + 2 * 16 * sizeof(float)), "%zu bytes freed", b.freed);
  synth_assert_same_params(a.t, b.t);
  double acc[2], loss[2];
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_evaluate(a.t, &acc[0], &loss[0], err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_evaluate(b.t, &acc[1], &loss[1], err, sizeof err), 0, "%s", err);
  cr_assert(acc[0] == acc[1] && loss[0] == loss[1], "%g %g against %g %g", acc[0], loss[0], acc[1],
            loss[1]);
  size_t na, nb;
  uint8_t *fa = synth_read_all(synth_path("kept.onnx"), &na),
          *fb = synth_read_all(synth_path("dropped.onnx"), &nb);
  cr_assert(na == nb && memcmp(fa, fb, na) == 0, "the checkpoints differ");
  free(fa);
  free(fb);
  finish(&a);
  finish(&b);
  ty_graph_destroy(kept);
  ty_graph_destroy(dropped);
}
