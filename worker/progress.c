/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Progress of graph jobs: the worker reads what rank 0 wrote (see
 * worker_internal.h) and forwards it with ReportProgress. Runs on the loop
 * thread at each heartbeat; reading the last 16 KiB of a log and 16 bytes
 * of a state file is cheap next to a 2 s heartbeat.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "proto/methods.h"
#include "worker/worker_internal.h"

#define TAIL_BYTES 16384
#define CALL_TIMEOUT_MS 10000u
#define MAX_LISTED 1024 /* checkpoints listed per report (trainrun keeps 3 by default) */

void ty__watch_close(ty__watch *w) {
  free(w->log_path);
  free(w->ckpt_path);
}

void ty__graph_watch(ty__graph_worker *gw, const ty_task_spec *spec, const char *checkpoint_path) {
  char log[4096];
  if (ty_tasks_log_path(gw->tasks, spec->job_id, spec->rank, log, sizeof log) != 0) return;
  for (size_t i = 0; i < gw->n; i++) {
    if (gw->watches[i].job_id != spec->job_id) continue;
    ty__watch_close(&gw->watches[i]); /* relaunched after a requeue */
    gw->watches[i] = gw->watches[--gw->n];
    break;
  }
  gw->watches = ty_xrealloc(gw->watches, (gw->n + 1) * sizeof *gw->watches);
  ty__watch *w = &gw->watches[gw->n++];
  memset(w, 0, sizeof *w);
  w->job_id = spec->job_id;
  w->log_path = ty_strdup(log);
  w->ckpt_path = ty_strdup(checkpoint_path ? checkpoint_path : "");
  w->owned_only = geteuid() == 0 && spec->has_uid;
  w->uid = (uid_t)spec->uid;
  w->last.test_accuracy = -1;
}

/* The step of "resumed from PATH at step S (epoch E, batch B)" (PATH may
 * hold " at step ": the last one counts); false for any other line. */
static bool resumed_step(const char *line, unsigned long long *out) {
  static const char prefix[] = "resumed from ", at[] = " at step ";
  if (strncmp(line, prefix, sizeof prefix - 1) != 0) return false;
  const char *last = NULL;
  for (const char *q = line; (q = strstr(q, at)) != NULL; q++)
    last = q;
  return last && sscanf(last + sizeof at - 1, "%llu (epoch", out) == 1;
}

/* One line: "step S/T loss L lr X samples/s N", "epoch E test_accuracy A
 * ...", "eval at step S test_accuracy A ...", "final test_accuracy A ...",
 * and the run's start: "resumed from PATH at step S ..." or "no checkpoint
 * at PATH yet: training from step 0" (ops/train's progress lines). */
static void parse_line(const char *line, ty_train_progress *p) {
  unsigned long long s, t;
  double loss, lr, sps, acc;
  unsigned e;
  if (resumed_step(line, &s)) {
    p->start_step = s;
  } else if (strncmp(line, "no checkpoint at ", 17) == 0 &&
             strstr(line, " yet: training from step 0")) {
    p->start_step = 0;
  } else if (sscanf(line, "step %llu/%llu loss %lf lr %lf samples/s %lf", &s, &t, &loss, &lr,
                    &sps) == 5) {
    p->step = s, p->total_steps = t, p->loss = loss, p->samples_per_s = sps;
  } else if (sscanf(line, "epoch %u test_accuracy %lf", &e, &acc) == 2) {
    p->epoch = e, p->test_accuracy = acc;
  } else if (sscanf(line, "eval at step %llu test_accuracy %lf", &s, &acc) == 2) {
    p->test_accuracy = acc;
  } else if (sscanf(line, "final test_accuracy %lf", &acc) == 1) {
    p->test_accuracy = acc;
  } else if (sscanf(line, "stopped at step %llu of %llu", &s, &t) == 2) {
    p->step = s, p->total_steps = t; /* a stop between two logged steps */
  }
}

void ty_worker_progress_parse(const char *text, size_t len, ty_train_progress *p) {
  char line[512];
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && text[i] != '\n') continue;
    size_t n = i - start < sizeof line - 1 ? i - start : sizeof line - 1;
    memcpy(line, text + start, n);
    line[n] = 0;
    parse_line(line, p);
    start = i + 1;
  }
}

/* Whether the line [p, p + n) is a run's marker (TY_LOG_RUN_MARK ...
 * TY_LOG_RUN_MARK_END), which begins each run after the first. */
static bool is_run_mark(const char *p, size_t n) {
  size_t mark = strlen(TY_LOG_RUN_MARK), end = strlen(TY_LOG_RUN_MARK_END);
  return n > mark + end && memcmp(p, TY_LOG_RUN_MARK, mark) == 0 &&
         memcmp(p + n - end, TY_LOG_RUN_MARK_END, end) == 0;
}

/* The error line [p, p + n) without its prefix into out, each control
 * byte as '?'. */
static void copy_error(const char *p, size_t n, char *out, size_t out_len) {
  n = n < out_len - 1 ? n : out_len - 1;
  memcpy(out, p, n);
  out[n] = 0;
  /* The line may quote what the user chose (a path): no control byte
   * reaches the job's reason, which every client prints. */
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) out[i] = '?';
}

int ty_worker_trainrun_error(const char *text, size_t len, char *out, size_t out_len) {
  return ty_worker_log_error("trainrun: ", text, len, out, out_len);
}

int ty_worker_log_error(const char *prefix, const char *text, size_t len, char *out,
                        size_t out_len) {
  size_t plen = strlen(prefix);
  bool found = false;
  for (size_t start = 0; start < len;) {
    const char *nl = memchr(text + start, '\n', len - start);
    size_t end = nl ? (size_t)(nl - text) : len;
    if (is_run_mark(text + start, end - start)) {
      found = false; /* an earlier run's error is not this run's */
    } else if (!found && end - start > plen && memcmp(text + start, prefix, plen) == 0) {
      copy_error(text + start + plen, end - start - plen, out, out_len);
      found = true;
    }
    start = end + 1;
  }
  return found ? 0 : TY_ENOTFOUND;
}

int ty__log_exit_reason(const char *log_path, const char *prefix, char *out, size_t out_len) {
  char buf[4096];
  int fd = open(log_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return TY_ENOTFOUND;
  struct stat st;
  ssize_t n = -1;
  size_t skip = 0;
  if (fstat(fd, &st) == 0) {
    off_t from = st.st_size > (off_t)sizeof buf ? st.st_size - (off_t)sizeof buf : 0;
    n = pread(fd, buf, sizeof buf, from);
    if (from > 0) /* a partial first line */
      while (n > 0 && skip < (size_t)n && buf[skip++] != '\n') {
      }
  }
  close(fd);
  return n > 0 ? ty_worker_log_error(prefix, buf + skip, (size_t)n - skip, out, out_len)
               : TY_ENOTFOUND;
}

static void read_tail(const char *path, ty_train_progress *p) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  char *buf = malloc(TAIL_BYTES);
  if (buf && fstat(fd, &st) == 0) {
    off_t from = st.st_size > TAIL_BYTES ? st.st_size - TAIL_BYTES : 0;
    ssize_t n = pread(fd, buf, TAIL_BYTES, from);
    if (n > 0) {
      size_t skip = 0; /* a partial first line */
      if (from > 0)
        while (skip < (size_t)n && buf[skip++] != '\n') {
        }
      ty_worker_progress_parse(buf + skip, (size_t)n - skip, p);
    }
  }
  free(buf);
  close(fd);
}

/* Opens a file in the job's checkpoint directory, which its user controls,
 * on the loop thread: never blocking (a FIFO planted there would hang the
 * worker in open or read), never through a link, only a regular file, and
 * on a root worker only one the job's user owns (trainrun writes them as
 * that user): a path naming someone else's file reads nothing of it. */
static int open_user_file(const ty__watch *w, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
  struct stat st;
  if (fd >= 0 &&
      (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (w->owned_only && st.st_uid != w->uid))) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* The step in PATH.state (ops/train: magic "TYTS", version, u64 step),
 * which links to the newest checkpoint; its own name is the step's. */
static void read_ckpt(ty__watch *w, ty_train_progress *p) {
  if (!w->ckpt_path[0]) return;
  char sp[4200];
  snprintf(sp, sizeof sp, "%s.state", w->ckpt_path);
  int fd = open_user_file(w, sp);
  if (fd < 0) return;
  uint8_t h[16];
  if (pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h && memcmp(h, "TYTS", 4) == 0) {
    uint64_t step = 0;
    for (int i = 7; i >= 0; i--)
      step = step << 8 | h[8 + i];
    p->checkpoint_step = step;
    p->checkpoint_path = w->ckpt_path;
    if (ty_ckpt_step_path(w->ckpt_path, step, w->ckpt_file, sizeof w->ckpt_file) == 0 &&
        access(w->ckpt_file, F_OK) == 0)
      p->checkpoint_path = w->ckpt_file;
  }
  close(fd);
}

static int by_step(const void *a, const void *b) {
  uint64_t x = ((const ty_checkpoint_info *)a)->step, y = ((const ty_checkpoint_info *)b)->step;
  return x < y ? -1 : x > y;
}

/* Adds the step checkpoint called `name` in `dir` when it is complete (its
 * state is there: trainrun writes it second), timed by the state's mtime.
 * The directory is the user's: its size is not ours to trust, so the list
 * stops at MAX_LISTED and at the first failed allocation. */
static void add_existing(ty_checkpoint_list *l, const char *dir, const char *name, uint64_t step) {
  char model[4096 + 264], state[4096 + 272];
  struct stat st;
  snprintf(model, sizeof model, "%s/%s", dir, name);
  snprintf(state, sizeof state, "%s.state", model);
  if (l->n >= MAX_LISTED || stat(state, &st) != 0) return;
  ty_checkpoint_info *v = realloc(l->v, (l->n + 1) * sizeof *l->v);
  char *path = v ? strdup(model) : NULL;
  if (v) l->v = v;
  if (!path) return;
  l->v[l->n++] = (ty_checkpoint_info){.step = step,
                                      .time_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
                                                 st.st_mtim.tv_nsec / 1000000,
                                      .path = path};
}

/* The step checkpoints that exist in the checkpoint's directory, oldest
 * first: what `trainctl checkpoint ls` shows (trainrun removes old ones). */
static void list_existing(const ty__watch *w, ty_checkpoint_list *l) {
  memset(l, 0, sizeof *l);
  if (!w->ckpt_path[0]) return;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", w->ckpt_path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  DIR *d = opendir(slash ? dir : ".");
  if (!d) return;
  l->listed = true;
  uint64_t step;
  for (struct dirent *e; (e = readdir(d));)
    if (ty_ckpt_step_of(w->ckpt_path, e->d_name, &step))
      add_existing(l, slash ? dir : ".", e->d_name, step);
  closedir(d);
  if (l->n) qsort(l->v, l->n, sizeof *l->v, by_step);
}

static uint64_t list_sig(const ty_checkpoint_list *l) {
  uint64_t h = l->listed ? l->n + 1 : 0;
  for (size_t i = 0; i < l->n; i++)
    h = ty_mix2(h, l->v[i].step);
  return h;
}

static bool changed(const ty_train_progress *a, const ty_train_progress *b) {
  return a->step != b->step || a->checkpoint_step != b->checkpoint_step ||
         a->test_accuracy != b->test_accuracy || a->epoch != b->epoch ||
         a->total_steps != b->total_steps || a->start_step != b->start_step;
}

static void on_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final, void *ud) {
  (void)c, (void) final, (void)ud;
  if (status != 0 && status != TY_ECLOSED && status != TY_ENOTFOUND)
    ty_debug("ReportProgress answered %s%s%s", ty_strerror(status),
             msg && msg->message[0] ? ": " : "", msg ? msg->message : "");
}

static void send_one(ty__watch *w, ty_worker_session *s) {
  ty_train_progress p = w->last;
  read_tail(w->log_path, &p);
  read_ckpt(w, &p);
  ty_checkpoint_list existing;
  list_existing(w, &existing);
  uint64_t sig = list_sig(&existing);
  if (w->sent && !changed(&p, &w->last) && sig == w->listed_sig) {
    ty_checkpoint_list_close(&existing);
    return;
  }
  p.time_ms = ty_now_ms();
  ty_buf b;
  ty_buf_init(&b);
  if (ty__encode_progress(w->job_id, 0, &p, &existing, &b) == 0) {
    ty__session_call(s, TY_M_REPORT_PROGRESS, &b, CALL_TIMEOUT_MS, on_answer, NULL);
    w->last = p;
    w->last.checkpoint_path = NULL; /* points into w; re-read each time */
    w->listed_sig = sig;
    w->sent = true;
  }
  ty_buf_close(&b);
  ty_checkpoint_list_close(&existing);
}

void ty__graph_report_now(ty__graph_worker *gw, ty_worker_session *s, uint64_t job_id) {
  for (size_t i = 0; gw && i < gw->n; i++)
    if (gw->watches[i].job_id == job_id) send_one(&gw->watches[i], s);
}

void ty__graph_tick(ty__graph_worker *gw, ty_worker_session *s) {
  for (size_t i = 0; gw && i < gw->n;) {
    ty__watch *w = &gw->watches[i];
    bool running = ty_tasks_is_running(gw->tasks, w->job_id, 0);
    send_one(w, s);
    if (!running) { /* that was the last look */
      ty__watch_close(w);
      gw->watches[i] = gw->watches[--gw->n];
      continue;
    }
    i++;
  }
}
