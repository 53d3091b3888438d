/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train semantics (the suite of test_semantics.c), checkpoint files:
 * a checkpoint path that cannot be written or holds no checkpoint of ours
 * is refused before training; checkpoints by step, the newest kept, a
 * damaged one moved aside and skipped (every one damaged: training from
 * step 0), a resume under another optimizer config or of a file that
 * cannot be opened refused without moving anything; the run's length
 * across resumes (--steps, epochs, nothing left to train); checkpoint and
 * evaluation cadences; a resume on another rank count.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <linux/capability.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- checkpoint path ---------------------------------------------------------- */
Test(semantics, unwritable_checkpoint_path_is_refused_before_training, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  const char *dir = synth_path("");
  char nodir[300], proc[] = "/proc/ty_ckpt.onnx";
  snprintf(nodir, sizeof nodir, "%s/no/such/dir/ck.onnx", dir);
  const char *paths[] = {nodir, dir, proc};
  const char *want[] = {"checkpoint_path: ", "is a directory", "cannot be written"};
  for (int i = 0; i < 3; i++) {
    ty_train_config c;
    synth_config(&c, 4, false);
    c.checkpoint_path = ty_strdup(paths[i]);
    ty_train *t = NULL;
    char err[TY_ERR_LEN] = "";
    FILE *log = tmpfile();
    cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
                 TY_EINVAL, "%s", paths[i]);
    cr_assert(strstr(err, paths[i]) && strstr(err, want[i]), "%s", err);
    if (i == 0) /* one missing level is made (below); two are not */
      cr_assert(strstr(err, "cannot create the directory") && strstr(err, "No such file"), "%s",
                err);
    /* Only rank 0 writes checkpoints; the others do not check. */
    ty_train_opts r1 = {.log = log, .rank = 1, .world_size = 2, .allreduce = NULL};
    c.batch_size = 32;
    cr_assert_eq(ty_train_create(g, &c, &r1, &t, err, sizeof err), 0, "%s", err);
    ty_train_destroy(t);
    fclose(log);
    ty_train_config_close(&c);
  }
  struct stat st;
  cr_assert_neq(stat(nodir, &st), 0, "nothing was created");
  ty_graph_destroy(g);
}

/* The checkpoint's missing directory is made 0700 by rank 0 (as the job's
 * user: docs/security.md); one another user owns, or a link of theirs, in
 * a world-writable directory is refused before training. */
static int create_with_ckpt(ty_graph *g, const char *path, char *err, size_t len) {
  ty_train_config c;
  synth_config(&c, 4, false);
  c.checkpoint_path = ty_strdup(path);
  ty_train *t = NULL;
  FILE *log = tmpfile();
  int rc = ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, len);
  if (rc == 0) ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  return rc;
}

Test(semantics, the_checkpoint_directory_is_made_private_and_a_planted_one_refused, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  char made[300], path[340], err[TY_ERR_LEN] = "";
  snprintf(made, sizeof made, "%s/made-%d", synth_path(""), (int)getpid());
  snprintf(path, sizeof path, "%s/ck.onnx", made);
  cr_assert_eq(create_with_ckpt(g, path, err, sizeof err), 0, "%s", err);
  struct stat st;
  cr_assert_eq(stat(made, &st), 0, "%s was not made", made);
  cr_expect(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700, "mode %o", st.st_mode);
  cr_expect_eq(st.st_uid, geteuid());
  rmdir(made);
  if (geteuid() != 0) cr_skip_test("planting another user's directory needs root");
  char shared[300], planted[340], link[340];
  snprintf(shared, sizeof shared, "%s/shared-%d", synth_path(""), (int)getpid());
  cr_assert_eq(mkdir(shared, 0700), 0);
  cr_assert_eq(chmod(shared, 01777), 0);
  snprintf(planted, sizeof planted, "%s/ck", shared);
  cr_assert_eq(mkdir(planted, 0777), 0);
  cr_assert_eq(chown(planted, 65534, 65534), 0);
  snprintf(link, sizeof link, "%s/link", shared);
  cr_assert_eq(symlink("/tmp", link), 0);
  cr_assert_eq(lchown(link, 65534, 65534), 0);
  const char *dirs[] = {planted, link};
  for (int i = 0; i < 2; i++) {
    char p[400], e[TY_ERR_LEN] = "";
    snprintf(p, sizeof p, "%s/ck.onnx", dirs[i]);
    cr_expect_eq(create_with_ckpt(g, p, e, sizeof e), TY_EPERM, "%s: %s", p, e);
    cr_expect(strstr(e, "belongs to uid 65534, not to this job's user (uid 0)"), "%s", e);
    if (i == 1) cr_expect(strstr(e, "(a symbolic link)"), "%s", e);
  }
  unlink(link);
  rmdir(planted);
  rmdir(shared);
  ty_graph_destroy(g);
}

/* ---- checkpoint retention (issue 14) ----------------------------------------------- */
static bool exists(const char *name) {
  return access(synth_path(name), F_OK) == 0;
}

Test(semantics, checkpoints_by_step_keep_the_newest_and_resume_skips_a_broken_one, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 10, false);
  c.checkpoint_path = ty_strdup(synth_path("ck.onnx"));
  c.keep_checkpoints = 2;
  FILE *log = tmpfile();
  char err[TY_ERR_LEN] = "";
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  for (int s = 0; s < 4; s++) {
    cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  }
  ty_train_destroy(t);
  /* Steps 3 and 4 stay, each a model and its state; 1 and 2 are gone. */
  cr_assert(exists("ck.step-000003.onnx") && exists("ck.step-000003.onnx.state"));
  cr_assert(exists("ck.step-000004.onnx") && exists("ck.step-000004.onnx.state"));
  cr_assert(!exists("ck.step-000001.onnx") && !exists("ck.step-000001.onnx.state"));
  cr_assert(!exists("ck.step-000002.onnx") && !exists("ck.step-000002.onnx.state"));
  /* The configured path is the newest, as a link (no second copy). */
  struct stat a, b;
  cr_assert_eq(stat(synth_path("ck.onnx"), &a), 0);
  cr_assert_eq(stat(synth_path("ck.step-000004.onnx"), &b), 0);
  cr_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
  cr_assert_eq(stat(synth_path("ck.onnx.state"), &a), 0);
  cr_assert_eq(stat(synth_path("ck.step-000004.onnx.state"), &b), 0);
  cr_assert(a.st_ino == b.st_ino);
  /* A run resumes from the newest complete pair. */
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .resume = true});
  cr_assert_eq(ty_train_step(t), 4);
  ty_train_destroy(t);
  /* Step 4's state half-written (a crash): step 3 serves, and the log says why. */
  cr_assert_eq(truncate(synth_path("ck.step-000004.onnx.state"), 20), 0);
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .resume = true});
  cr_assert_eq(ty_train_step(t), 3);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "ck.step-000004.onnx skipped: ") && strstr(text, "resumed from ") &&
                strstr(text, "ck.step-000003.onnx at step 3"),
            "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Files in synth_path's directory whose names start with prefix. */
static int files_like(const char *prefix) {
  glob_t gl;
  char pattern[400];
  snprintf(pattern, sizeof pattern, "%s*", synth_path(prefix));
  int n = glob(pattern, 0, NULL, &gl) == 0 ? (int)gl.gl_pathc : 0;
  globfree(&gl);
  return n;
}

/* Whether synth_path's a and b are one file (hard links). */
static bool same_file(const char *a, const char *b) {
  struct stat x, y;
  return stat(synth_path(a), &x) == 0 && stat(synth_path(b), &y) == 0 && x.st_ino == y.st_ino &&
         x.st_dev == y.st_dev;
}

/* A pair a resume skips (here its model damaged after the save) is moved
 * aside (NAME.corrupt-TIME), so keep_checkpoints no longer counts it:
 * before, the next save kept the damaged pair and pruned good ones, the
 * one just written among them. The log blames the model, not its state.
 * The checkpoint path links the newest pair that loads at once. */
Test(semantics, a_damaged_checkpoint_is_moved_aside_and_not_kept, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 10, false);
  c.checkpoint_path = ty_strdup(synth_path("aside.onnx"));
  c.keep_checkpoints = 2;
  FILE *log = tmpfile();
  char err[TY_ERR_LEN] = "";
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  for (int s = 0; s < 4; s++) {
    cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  }
  ty_train_destroy(t);
  cr_assert_eq(truncate(synth_path("aside.step-000004.onnx"), 100), 0);
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .resume = true});
  cr_assert_eq(ty_train_step(t), 3);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "aside.step-000004.onnx skipped: ") &&
                strstr(text, "aside.step-000004.onnx: the model file differs from the one its "
                             "state recorded (changed or damaged after the save); moved aside "
                             "as ") &&
                strstr(text, "aside.step-000004.onnx.corrupt-"),
            "%s", text);
  free(text);
  cr_assert(!exists("aside.step-000004.onnx") && !exists("aside.step-000004.onnx.state"));
  cr_assert_eq(files_like("aside.step-000004.onnx.corrupt-"), 1);
  cr_assert_eq(files_like("aside.step-000004.onnx.state.corrupt-"), 1);
  /* The path and its .state, which linked the damaged pair, link step 3's
   * before anything saves (a run that trains nothing saves nothing). */
  cr_assert(same_file("aside.onnx", "aside.step-000003.onnx"), "aside.onnx is not step 3's");
  cr_assert(same_file("aside.onnx.state", "aside.step-000003.onnx.state"),
            "aside.onnx.state is not step 3's");
  /* Keeping one, the save of step 3 keeps step 3, not the damaged 4. */
  c.keep_checkpoints = 1;
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  cr_assert(exists("aside.step-000003.onnx") && exists("aside.step-000003.onnx.state"));
  ty_train_destroy(t);
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .resume = true});
  cr_assert_eq(ty_train_step(t), 3);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Every step pair damaged: each is moved aside, and the configured path
 * (a link to the newest, as damaged) is not read as a checkpoint from
 * before step names: the run trains from step 0 and says why; --resume,
 * which needs a checkpoint, fails naming the count. Before, the fallback
 * read the damaged link and failed the run either way. */
Test(semantics, every_checkpoint_damaged_trains_from_step_0, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 10, false);
  c.checkpoint_path = ty_strdup(synth_path("alldamaged.onnx"));
  FILE *log = tmpfile();
  char err[TY_ERR_LEN] = "";
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  for (int s = 0; s < 2; s++) {
    cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  }
  ty_train_destroy(t);
  cr_assert_eq(truncate(synth_path("alldamaged.step-000001.onnx.state"), 20), 0);
  cr_assert_eq(truncate(synth_path("alldamaged.step-000002.onnx.state"), 20), 0);
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_step(t), 0);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "no usable checkpoint at ") &&
                strstr(text, "alldamaged.onnx: all 2 were damaged (moved aside): training from "
                             "step 0"),
            "%s", text);
  free(text);
  cr_assert_eq(files_like("alldamaged.step-000002.onnx.corrupt-"), 1);
  /* Its first save replaces the damaged link, and a resume takes it. */
  cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .resume = true});
  cr_assert_eq(ty_train_step(t), 1);
  ty_train_destroy(t);
  /* Damaged again, --resume has nothing to continue: it says so. */
  cr_assert_eq(truncate(synth_path("alldamaged.step-000001.onnx.state"), 20), 0);
  ty_train_opts ro = {.log = log, .resume = true};
  cr_assert_eq(ty_train_create(g, &c, &ro, &t, err, sizeof err), TY_ENOTFOUND);
  cr_assert(strstr(err, "--resume: no usable checkpoint at ") &&
                strstr(err, "alldamaged.onnx: all 1 were damaged (moved aside)"),
            "%s", err);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A resume under another optimizer config (here SGD's momentum set to 0
 * after a run with it) is refused, naming the field, and leaves every
 * checkpoint where it is: each pair used to be taken for damaged and
 * moved aside as NAME.corrupt-TIME, all of them, so that no run (the
 * right config again included) resumed them. */
Test(semantics, a_resume_under_another_optimizer_config_moves_nothing_aside, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 10, false);
  c.checkpoint_path = ty_strdup(synth_path("mom.onnx"));
  FILE *log = tmpfile();
  char err[TY_ERR_LEN] = "";
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  for (int s = 0; s < 2; s++) {
    cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  }
  ty_train_destroy(t);
  c.optim.momentum = 0;
  t = NULL;
  cr_assert_eq(
      ty_train_create(g, &c, &(ty_train_opts){.log = log, .resume = true}, &t, err, sizeof err),
      TY_EINVAL, "%s", err);
  ty_train_destroy(t);
  cr_assert(strstr(err, "(config.sgd.momentum 0)"), "%s", err);
  cr_assert_eq(files_like("mom.step-000002.onnx"), 2, "step 2's pair, as it was");
  cr_assert_eq(files_like("mom.step-000001.onnx"), 2, "step 1's pair, as it was");
  c.optim.momentum = 0.9f;
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .resume = true});
  cr_assert_eq(ty_train_step(t), 2);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Drops the capabilities that let root read any file, so that a mode of
 * 000 refuses this process too: false when it cannot. */
static bool drop_read_override(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) != 0) return false;
  d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
  return syscall(SYS_capset, &h, d) == 0;
}

/* In a child that cannot read path (exit 77 when it can after all): the
 * resume's code, its error written to fd. */
static void resume_unreadable(const ty_graph *g, const ty_train_config *c, const char *path,
                              int fd) {
  int probe = drop_read_override() ? open(path, O_RDONLY) : 0;
  if (probe >= 0 || errno != EACCES) _exit(77);
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  FILE *log = tmpfile();
  int rc = ty_train_create(g, c, &(ty_train_opts){.log = log, .resume = true}, &t, err, sizeof err);
  if (write(fd, err, strlen(err)) < 0) _exit(2);
  _exit(rc == TY_EPERM ? 0 : 1);
}

/* A checkpoint file that cannot be opened for a reason that passes (here
 * permission denied) is not damaged: the resume fails naming the file
 * and the reason, and every pair stays where it is. It used to be taken
 * for a half-written pair and renamed NAME.corrupt-TIME, so that no run
 * resumed it once the file could be read again. */
Test(semantics, a_checkpoint_that_cannot_be_opened_is_left_in_place, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 10, false);
  c.checkpoint_path = ty_strdup(synth_path("unread.onnx"));
  FILE *log = tmpfile();
  char err[TY_ERR_LEN] = "";
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  for (int s = 0; s < 2; s++) {
    cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  }
  ty_train_destroy(t);
  const char *model = synth_path("unread.step-000002.onnx");
  cr_assert_eq(chmod(model, 0), 0);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) resume_unreadable(g, &c, model, fds[1]);
  close(fds[1]);
  ssize_t n = read(fds[0], err, sizeof err - 1);
  err[n > 0 ? n : 0] = '\0';
  close(fds[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  chmod(model, 0644);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
    cr_skip_test("cannot make a file unreadable to this process");
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "not TY_EPERM: %s", err);
  cr_assert(strstr(err, "unread.step-000002.onnx: cannot be opened: Permission denied") &&
                strstr(err, "the checkpoint is left where it is"),
            "%s", err);
  cr_assert_eq(files_like("unread.step-000002.onnx"), 2, "step 2's pair, as it was");
  cr_assert_eq(files_like("unread.step-000001.onnx"), 2, "step 1's pair, as it was");
  cr_assert(same_file("unread.onnx", "unread.step-000002.onnx"));
  /* Readable again, it resumes. */
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .resume = true});
  cr_assert_eq(ty_train_step(t), 2);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A file at checkpoint_path that is no checkpoint of this trainer's (no
 * PATH.state beside it: a user's file, the model the run trains among
 * them) is refused before training and left as it was: a save would
 * rename the newest checkpoint over it. A checkpoint of ours resumes,
 * also when it (or one of its step files) is the model the run trains. */
Test(semantics, a_file_at_checkpoint_path_that_is_no_checkpoint_is_refused, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  FILE *f = fopen(synth_path("notes.onnx"), "w");
  cr_assert_not_null(f);
  fputs("my notes\n", f);
  fclose(f);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(create_with_ckpt(g, synth_path("notes.onnx"), err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "notes.onnx exists and is not a trainyard checkpoint (no ") &&
                strstr(err, "notes.onnx.state beside it); a save would replace it"),
            "%s", err);
  FILE *kept = fopen(synth_path("notes.onnx"), "r");
  cr_assert_not_null(kept);
  fseek(kept, 0, SEEK_END);
  char *text = synth_log_text(kept);
  fclose(kept);
  cr_assert_str_eq(text, "my notes\n", "the file was changed");
  free(text);
  /* A checkpoint of this trainer's, given as the model to train. */
  ty_train_config c;
  synth_config(&c, 4, false);
  c.checkpoint_path = ty_strdup(synth_path("own.onnx"));
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_steps(t, 2, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  t = NULL;
  const char *models[] = {"own.step-000002.onnx", "own.onnx", "x.onnx"};
  for (int k = 0; k < 3; k++) { /* a save links new files: the model's stays */
    char model[512];
    snprintf(model, sizeof model, "%s", synth_path(models[k]));
    t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .model_path = model});
    cr_assert_eq(ty_train_step(t), 2, "--model %s: an own checkpoint resumes", models[k]);
    ty_train_destroy(t);
  }
  /* A foreign file, given as the model to train: named as such. */
  ty_train_config n;
  synth_config(&n, 4, false);
  n.checkpoint_path = ty_strdup(synth_path("notes.onnx"));
  const char *model = synth_path("notes.onnx");
  cr_assert_eq(ty_train_create(g, &n, &(ty_train_opts){.log = log, .model_path = model}, &t, err,
                               sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "notes.onnx is the model file this run trains (--model ") &&
                strstr(err, "a save would replace it"),
            "%s", err);
  ty_train_config_close(&n);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A run that resumes at or past its end (the same config run again, a
 * step limit below the checkpoint's step) trains nothing and says so,
 * naming the limit; a run with steps left does not. */
Test(semantics, a_run_resumed_at_its_end_says_there_is_nothing_to_train, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 4, false);
  c.checkpoint_path = ty_strdup(synth_path("done.onnx"));
  char err[TY_ERR_LEN] = "";
  bool stopped;
  const uint64_t limits[] = {0, 0, 2, 6}; /* --steps of each run: 0 is the config's 4 */
  const char *want[] = {NULL, "(config.max_steps)", "(--steps)", NULL};
  for (int k = 0; k < 4; k++) {
    FILE *log = tmpfile();
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .max_steps = limits[k]});
    cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
    char *text = synth_log_text(log);
    if (want[k])
      cr_assert(strstr(text, "nothing to train: the checkpoint is at step 4 and this run ends at "
                             "step ") &&
                    strstr(text, want[k]) && strstr(text, "done.onnx"),
                "run %d: %s", k, text);
    else
      cr_assert_null(strstr(text, "nothing to train"), "run %d: %s", k, text);
    free(text);
    ty_train_destroy(t);
    fclose(log);
  }
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* --steps is a step budget that replaces the config's length, past its
 * epochs too (docs/training.md: "stops earlier (or later)"); a run resumed
 * at its end names the limit that ended it: --steps, or config.epochs. */
Test(semantics, a_step_limit_goes_past_the_configured_epochs, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 0, false);
  c.epochs = 1; /* 128 samples, batch 32: 4 steps */
  c.checkpoint_path = ty_strdup(synth_path("past.onnx"));
  char err[TY_ERR_LEN] = "";
  bool stopped;
  const uint64_t limits[] = {10, 10, 0};
  const uint64_t total[] = {10, 10, 4};
  const char *want[] = {NULL, "this run ends at step 10 (--steps)",
                        "this run ends at step 4 (config.epochs)"};
  for (int k = 0; k < 3; k++) {
    FILE *log = tmpfile();
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .max_steps = limits[k]});
    cr_assert_eq(ty_train_total_steps(t), total[k], "run %d", k);
    cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_train_step(t), 10, "run %d", k);
    char *text = synth_log_text(log);
    if (want[k])
      cr_assert(strstr(text, "nothing to train: the checkpoint is at step 10 and ") &&
                    strstr(text, want[k]),
                "run %d: %s", k, text);
    else
      cr_assert_null(strstr(text, "nothing to train"), "run %d: %s", k, text);
    free(text);
    ty_train_destroy(t);
    fclose(log);
  }
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A run resumed from a checkpoint saved at the end of an epoch, with no
 * step left (--steps the checkpoint's), evaluates: that epoch's
 * evaluation was in the run that saved it (docs/training.md: "it resumes,
 * trains nothing and evaluates"). */
Test(semantics, a_run_resumed_at_an_epoch_end_with_nothing_to_train_evaluates, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 0, true);
  c.epochs = 1;
  c.eval_each_epoch = true;
  c.checkpoint_path = ty_strdup(synth_path("epoch.onnx"));
  char err[TY_ERR_LEN] = "";
  bool stopped;
  const char *want[] = {"epoch 1 test_accuracy ", "final test_accuracy "};
  for (int k = 0; k < 2; k++) {
    FILE *log = tmpfile();
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
    cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
    char *text = synth_log_text(log);
    cr_assert(strstr(text, want[k]), "run %d: %s", k, text);
    cr_assert_eq(synth_count(text, "test_accuracy "), 1, "run %d: %s", k, text);
    free(text);
    ty_train_destroy(t);
    fclose(log);
  }
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Each log line's samples/s is the rate of its steps, also for steps of
 * microseconds (a millisecond clock once printed 0 for them). */
Test(semantics, the_logged_rate_of_sub_millisecond_steps_is_not_zero, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 1, false);
  c.log_interval = 1;
  char err[TY_ERR_LEN] = "";
  bool stopped;
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
  char *text = synth_log_text(log);
  int lines = 0;
  for (const char *p = text; (p = strstr(p, "samples/s ")); p += 10, lines++)
    cr_assert_gt(strtod(p + 10, NULL), 0.0, "a rate of 0 in: %s", text);
  cr_assert_gt(lines, 0, "no step lines in: %s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* ---- cadences ------------------------------------------------------------------ */
/* checkpoint_interval replaces the checkpoint at each epoch's end (as
 * Lightning's every_n_train_steps does); the run's end always writes one.
 * 128 samples in batches of 32: 4 steps an epoch, 12 in 3 epochs. */
Test(semantics, checkpoint_interval_replaces_the_epoch_checkpoints, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  const uint64_t every[] = {5, 0};
  const char *names[] = {"iv.onnx", "ep.onnx"};
  const int want[2][13] = {{[5] = 1, [10] = 1, [12] = 1}, {[4] = 1, [8] = 1, [12] = 1}};
  for (int k = 0; k < 2; k++) {
    ty_train_config c;
    synth_config(&c, 0, false);
    c.epochs = 3;
    c.keep_checkpoints = 100;
    c.checkpoint_interval = every[k];
    c.checkpoint_path = ty_strdup(synth_path(names[k]));
    FILE *log = tmpfile();
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
    char err[TY_ERR_LEN] = "";
    bool stopped;
    cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
    for (int s = 1; s <= 12; s++) {
      char name[64];
      snprintf(name, sizeof name, "%s.step-%06d.onnx", k ? "ep" : "iv", s);
      cr_assert_eq(exists(name), want[k][s], "interval %llu: step %d checkpoint %s",
                   (unsigned long long)every[k], s, exists(name) ? "written" : "missing");
    }
    ty_train_destroy(t);
    fclose(log);
    ty_train_config_close(&c);
  }
  ty_graph_destroy(g);
}

static int count_lines(const char *text, const char *what) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
    n++;
  return n;
}

/* eval_interval evaluates every that many steps besides the epochs' ends
 * (not twice at one step, not at the run's end, which has its final
 * evaluation: also when the run ends with an epoch whose evaluation
 * eval_each_epoch turned off); without test data it is refused, naming
 * the field. */
Test(semantics, eval_interval_evaluates_between_epochs, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  char err[TY_ERR_LEN] = "";
  bool stopped;
  for (int each = 0; each < 2; each++) {
    ty_train_config c;
    synth_config(&c, 0, true);
    c.epochs = 2; /* 8 steps */
    c.eval_interval = each ? 4 : 3;
    c.eval_each_epoch = each;
    FILE *log = tmpfile();
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
    cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
    char *text = synth_log_text(log);
    if (each) {
      cr_assert_eq(count_lines(text, "eval at step"), 0, "epochs end at 4 and 8: %s", text);
      cr_assert_eq(count_lines(text, "epoch 1 test_accuracy"), 1, "%s", text);
    } else {
      cr_assert(strstr(text, "eval at step 3 test_accuracy ") &&
                    strstr(text, "eval at step 6 test_accuracy "),
                "%s", text);
      cr_assert_eq(count_lines(text, "eval at step"), 2, "%s", text);
    }
    /* The run's end: the last epoch's evaluation, or a final one. */
    cr_assert_eq(count_lines(text, "final test_accuracy"), !each, "%s", text);
    free(text);
    ty_train_destroy(t);
    fclose(log);
    ty_train_config_close(&c);
  }
  ty_train_config c;
  synth_config(&c, 4, false);
  c.eval_interval = 2;
  FILE *log = tmpfile();
  ty_train *t = NULL;
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "config.eval_interval: 2, but the config names no test data"), "%s", err);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* The other rank of a world of two, as the all-reduce would sum it: its
 * gradient equal to this rank's. */
static int doubled(float *buf, size_t n, uint64_t seq, void *user) {
  (void)seq;
  (void)user;
  for (size_t i = 0; i < n; i++)
    buf[i] *= 2;
  return 0;
}

/* A checkpoint resumes on another data-parallel rank count (one process's
 * on two ranks and back): the global batches are the same samples on any
 * count, and the log says the counts differ; with Dropout it also says
 * that the masks, keyed by the data-parallel rank, are not those a run on
 * the checkpoint's count draws. Seed and batch size still must match. */
static void resume_on_counts(bool dropout, const char *ckpt) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .dropout = dropout};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 12, false);
  c.checkpoint_path = ty_strdup(synth_path(ckpt));
  char err[TY_ERR_LEN] = "";
  const uint32_t worlds[] = {1, 2, 1};
  for (int k = 0; k < 3; k++) {
    FILE *log = tmpfile();
    ty_train_opts opts = {.log = log, .resume = k > 0, .world_size = worlds[k]};
    if (worlds[k] > 1) opts.allreduce = doubled;
    ty_train *t = synth_trainer(g, &c, &opts);
    cr_assert_eq(ty_train_step(t), 4 * (uint64_t)k);
    cr_assert_eq(ty_train_steps(t, 4, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
    char *text = synth_log_text(log);
    if (k)
      cr_assert(strstr(text, worlds[k] == 2 ? "resumed on 2 data-parallel ranks a checkpoint of 1"
                                            : "resumed on 1 data-parallel rank a checkpoint of 2"),
                "%s", text);
    cr_assert_eq(strstr(text, "no checkpoint at ") != NULL, k == 0, "%s", text);
    if (k)
      cr_assert_eq(strstr(text, "Dropout and the random ops draw their masks and noise per "
                                "data-parallel rank") != NULL,
                   dropout, "%s", text);
    free(text);
    ty_train_destroy(t);
    fclose(log);
  }
  c.batch_size = 16; /* another batch: other global batches, refused */
  ty_train *t = NULL;
  FILE *log = tmpfile();
  cr_assert_eq(
      ty_train_create(g, &c, &(ty_train_opts){.log = log, .resume = true}, &t, err, sizeof err),
      TY_EINVAL);
  cr_assert(strstr(err, "batch size 32, this run 16") &&
                strstr(err, "to resume, set config.batch_size back to 32; to train afresh, "
                            "choose another checkpoint_path"),
            "%s", err);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(semantics, a_checkpoint_resumes_on_another_rank_count, .timeout = 60) {
  resume_on_counts(false, "rc.onnx");
  resume_on_counts(true, "rc_drop.onnx");
}

/* Without a checkpoint path nothing keeps the trained weights: rank 0
 * warns at start, and a stop says they are lost. */
Test(semantics, no_checkpoint_path_is_warned, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 8, false);
  for (int with = 0; with < 2; with++) {
    free(c.checkpoint_path);
    c.checkpoint_path = with ? ty_strdup(synth_path("warned.onnx")) : NULL;
    FILE *log = tmpfile();
    volatile sig_atomic_t stop = 1;
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log, .stop = &stop});
    char err[TY_ERR_LEN] = "";
    bool stopped;
    cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
    cr_assert(stopped);
    char *text = synth_log_text(log);
    if (with) {
      cr_assert_null(strstr(text, "checkpoints: none"), "%s", text);
    } else {
      cr_assert(
          strstr(text, "checkpoints: none (no checkpoint_path): the trained weights are not saved"),
          "%s", text);
      cr_assert(strstr(text, "stopped at step 1 of ") &&
                    strstr(text, "; checkpoint none: no checkpoint_path, the weights are lost"),
                "%s", text);
    }
    free(text);
    ty_train_destroy(t);
    fclose(log);
  }
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}
