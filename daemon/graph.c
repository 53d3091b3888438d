/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Graph jobs on the controller: checkpoint paths, the rendezvous store,
 * progress and PlanJob (see daemon_internal.h). Models are checked and
 * planned in a child process (check.c), never here.
 *
 * The per-job records live in one array searched linearly: a controller
 * runs tens of graph jobs at a time, and every lookup is one RPC. A record
 * goes when its job leaves the controller's memory (ty__graph_forget). Its
 * last progress and checkpoints are kept in the job's row too (column
 * graph_progress), written when the checkpoints change and at each
 * transition (never at every report), and come back with the job when it
 * is read from the store again: after the sweep, or at a restart.
 */
#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/token/token.h"
#include "ops/train/train.h"

typedef struct kv {
  char *key;
  uint8_t *value;
  size_t len;
} kv;

typedef struct graph_job {
  uint64_t id;
  kv *keys;
  size_t n_keys;
  ty_train_progress progress;
  bool has_progress;
  ty_checkpoint_info ckpts[TY_GRAPH_MAX_CKPTS];
  size_t n_ckpts;
  char *ckpt_path;
  ty__progress_point *hist; /* the curve so far, for the web console's charts */
  size_t n_hist, cap_hist;  /* grows by doubling up to TY_GRAPH_MAX_POINTS */
} graph_job;

struct ty__graph_reg {
  graph_job *jobs;
  size_t n, cap;
};

static graph_job *find(ty_controller *ctl, uint64_t id, bool create) {
  ty__graph_reg *g = ctl->graph;
  if (!g) {
    if (!create) return NULL;
    g = ctl->graph = ty_xcalloc(1, sizeof *g);
  }
  for (size_t i = 0; i < g->n; i++)
    if (g->jobs[i].id == id) return &g->jobs[i];
  if (!create) return NULL;
  if (g->n == g->cap) {
    g->cap = g->cap ? g->cap * 2 : 16;
    g->jobs = ty_xrealloc(g->jobs, g->cap * sizeof *g->jobs);
  }
  graph_job *j = &g->jobs[g->n++];
  memset(j, 0, sizeof *j);
  j->id = id;
  j->progress.test_accuracy = -1;
  return j;
}

static void clear_keys(graph_job *j) {
  for (size_t i = 0; i < j->n_keys; i++) {
    free(j->keys[i].key);
    free(j->keys[i].value);
  }
  free(j->keys);
  j->keys = NULL;
  j->n_keys = 0;
}

static void job_close(graph_job *j) {
  clear_keys(j);
  free(j->progress.checkpoint_path);
  for (size_t k = 0; k < j->n_ckpts; k++)
    free(j->ckpts[k].path);
  free(j->ckpt_path);
  free(j->hist);
}

void ty__graph_forget(ty_controller *ctl, uint64_t id) {
  graph_job *j = find(ctl, id, false);
  if (!j) return;
  job_close(j);
  *j = ctl->graph->jobs[--ctl->graph->n]; /* the last record takes its place */
}

void ty__graph_destroy(ty_controller *ctl) {
  ty__graph_reg *g = ctl->graph;
  if (!g) return;
  for (size_t i = 0; i < g->n; i++)
    job_close(&g->jobs[i]);
  free(g->jobs);
  free(g);
  ctl->graph = NULL;
}

/* ---- configs ---------------------------------------------------------------------- */

/* The config was checked at submit, in the model check's child (check.c);
 * this only reads its checkpoint path back. */
char *ty__graph_config_checkpoint(const uint8_t *cfg, size_t len) {
  ty_train_config c;
  char inner[TY_ERR_LEN];
  if (ty_train_config_decode(cfg, len, &c, inner, sizeof inner) != 0) return NULL;
  char *path = c.checkpoint_path ? ty_strdup(c.checkpoint_path) : NULL;
  ty_train_config_close(&c);
  return path;
}

/* ---- model files -------------------------------------------------------------------- */

int ty__model_write(ty_controller *ctl, uint64_t id, const uint8_t *bytes, size_t len,
                    char **out_path, char *err, size_t err_len) {
  char dir[PATH_MAX], tmp[PATH_MAX + 64], path[PATH_MAX + 64];
  snprintf(dir, sizeof dir, "%s/models", ctl->cfg.state_dir);
  snprintf(path, sizeof path, "%s/%llu.onnx", dir, (unsigned long long)id);
  snprintf(tmp, sizeof tmp, "%s/%llu.onnx.tmp", dir, (unsigned long long)id);
  int rc = ty_mkdir_p(dir);
  int fd = rc == 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
  if (fd < 0) rc = rc ? rc : -errno;
  for (size_t off = 0; fd >= 0 && rc == 0 && off < len;) {
    ssize_t w = write(fd, bytes + off, len - off);
    if (w < 0 && errno != EINTR)
      rc = -errno;
    else if (w > 0)
      off += (size_t)w;
  }
  if (fd >= 0 && rc == 0 && fsync(fd) != 0) rc = -errno;
  if (fd >= 0 && close(fd) != 0 && rc == 0) rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
  int dfd = rc == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) fsync(dfd), close(dfd); /* the rename survives a crash */
  if (rc != 0) {
    unlink(tmp);
    return ty_errf(err, err_len, TY_ESTORE, "job.graph.model_bytes: cannot keep them in %s: %s",
                   path, ty_strerror(rc));
  }
  *out_path = ty_strdup(path);
  return 0;
}

int ty__model_read(const char *path, ty_buf *out, char *err, size_t err_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int rc = fd < 0 ? -errno : 0;
  uint8_t chunk[65536];
  for (ssize_t n = 1; rc == 0 && n > 0;) {
    n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno != EINTR)
      rc = -errno;
    else if (n > 0)
      rc = ty_buf_append(out, chunk, (size_t)n);
  }
  if (fd >= 0) close(fd);
  if (rc != 0)
    return ty_errf(err, err_len, rc, "the job's model %s cannot be read: %s", path,
                   ty_strerror(rc));
  return 0;
}

void ty__model_remove(const char *path) {
  if (path && unlink(path) != 0 && errno != ENOENT)
    ty_warn("cannot remove the model %s: %s", path, strerror(errno));
}

/* ---- checkpoints ------------------------------------------------------------------ */

static char *choose_ckpt(ty_controller *ctl, const ty_job *j) {
  const char *base = "checkpoint.onnx";
  char *cfg = ty__graph_config_checkpoint(j->spec.train_config, j->spec.train_config_len),
       *path = NULL;
  if (cfg && cfg[0] == '/') path = ty_strdup(cfg);
  if (cfg && !path && cfg[0]) {
    const char *slash = strrchr(cfg, '/');
    base = slash ? slash + 1 : cfg;
  }
  if (!path) {
    /* Rank 0's worker makes the job's directory, owned by the job's user
     * (ty__graph_checkpoint_root). */
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/%llu", ctl->cfg.checkpoint_dir, (unsigned long long)j->id);
    size_t n = strlen(dir) + strlen(base) + 2;
    path = ty_xmalloc(n);
    snprintf(path, n, "%s/%s", dir, base);
  }
  free(cfg);
  return path;
}

const char *ty__graph_checkpoint_path(ty_controller *ctl, const ty_job *j) {
  graph_job *g = find(ctl, j->id, true);
  if (!g->ckpt_path) g->ckpt_path = choose_ckpt(ctl, j);
  return g->ckpt_path;
}

const char *ty__graph_checkpoint_root(ty_controller *ctl, const ty_job *j) {
  const char *path = ty__graph_checkpoint_path(ctl, j), *root = ctl->cfg.checkpoint_dir;
  char dir[PATH_MAX + 64];
  snprintf(dir, sizeof dir, "%s/%llu/", root ? root : "", (unsigned long long)j->id);
  return root && root[0] && path && strncmp(path, dir, strlen(dir)) == 0 ? root : "";
}

const ty_train_progress *ty__graph_progress(ty_controller *ctl, uint64_t id) {
  const graph_job *g = find(ctl, id, false);
  return g && g->has_progress ? &g->progress : NULL;
}

void ty__graph_job_started(ty_controller *ctl, const ty_job *j) {
  graph_job *g = find(ctl, j->id, false);
  if (g) clear_keys(g);
}

int ty__graph_append_job(ty_controller *ctl, const ty_job *j, bool full, ty_buf *out) {
  graph_job *g = find(ctl, j->id, false);
  if (!g || (!g->has_progress && g->n_ckpts == 0)) return 0;
  return ty__conv_graph_job_extra(g->has_progress ? &g->progress : NULL, g->ckpts, g->n_ckpts, full,
                                  out);
}

/* ---- handlers -------------------------------------------------------------------- */

/* The rendezvous credential is any rank's token for the job (signed by the
 * worker with the job's key, lib/token): 0, or TY_EPERM with the answer sent. */
static int check_token(ty_controller *ctl, ty_reply *r, uint64_t job) {
  const uint8_t *t = r->credential;
  int rc = TY_EPERM;
  char why[TY_ERR_LEN] = "";
  if (t && r->credential_len == TY_TOKEN_LEN) {
    uint32_t rank = (uint32_t)t[12] << 24 | (uint32_t)t[13] << 16 | (uint32_t)t[14] << 8 | t[15];
    uint8_t key[TY_TOKEN_KEY_LEN];
    ty__token_job_key(ctl, job, key);
    rc = ty_token_verify(key, t, r->credential_len, job, rank, ty_now_ms(), why, sizeof why);
    memset(key, 0, sizeof key);
  }
  if (rc != 0) {
    if (why[0]) ty_debug("rendezvous for job %llu: %s", (unsigned long long)job, why);
    r->refusal = "bad_token";
    ty__reply_finishf(r, TY_EPERM, "rendezvous for job %llu: missing or invalid token",
                      (unsigned long long)job);
  }
  return rc;
}

/* Only a running graph job's ranks rendezvous (they alone get a token in
 * their environment). The owner of any job holds its tokens, for its logs,
 * and every job once took 16 MiB of keys here, ended or a command job. An
 * id the controller never gave out (next_id or above) has tokens only from
 * whoever holds its key, for ranks started by hand (the tests): taken. */
static bool may_rendezvous(ty_controller *ctl, uint64_t id) {
  if (id >= ctl->next_id) return true;
  const ty_job *j = ty__job_find(ctl, id);
  return j && j->spec.kind == TY_JOB_KIND_GRAPH && j->state == TY_JOB_RUNNING;
}

void ty__h_rendezvous_put(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  uint64_t job;
  char *key = NULL;
  uint8_t *value = NULL;
  size_t len = 0;
  int decoded = ty__conv_rdv_put_req(p, n, &job, &key, &value, &len);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a RendezvousPutRequest");
    return;
  }
  if (check_token(ctl, r, job) != 0) {
    free(key);
    free(value);
    return;
  }
  int rc = 0;
  graph_job *g = NULL;
  if (!may_rendezvous(ctl, job))
    rc = TY_ESTATE;
  else if (!key[0] || strlen(key) > 200)
    rc = TY_EINVAL;
  else if (len > TY_GRAPH_MAX_VALUE)
    rc = TY_ETOOBIG;
  else
    g = find(ctl, job, true);
  for (size_t i = 0; g && i < g->n_keys; i++) {
    if (strcmp(g->keys[i].key, key) != 0) continue;
    free(g->keys[i].value);
    g->keys[i].value = value, g->keys[i].len = len;
    value = NULL;
    g = NULL;
  }
  if (g && g->n_keys >= TY_GRAPH_MAX_KEYS)
    rc = TY_ETOOBIG;
  else if (g) {
    g->keys = ty_xrealloc(g->keys, (g->n_keys + 1) * sizeof *g->keys);
    g->keys[g->n_keys++] = (kv){key, value, len};
    key = NULL, value = NULL;
  }
  if (rc == TY_ESTATE)
    ty__reply_finishf(r, rc, "rendezvous for job %llu: only a running graph job's ranks rendezvous",
                      (unsigned long long)job);
  else if (rc == TY_EINVAL)
    ty__reply_finishf(r, rc, "key: must be 1..200 bytes");
  else if (rc != 0)
    ty__reply_finishf(r, rc, "job %llu: value above %d bytes or more than %d keys",
                      (unsigned long long)job, TY_GRAPH_MAX_VALUE, TY_GRAPH_MAX_KEYS);
  else
    ty__reply_finish(r, 0, NULL);
  free(key);
  free(value);
}

void ty__h_rendezvous_get(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  uint64_t job;
  char *key = NULL;
  int decoded = ty__conv_rdv_get_req(p, n, &job, &key);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a RendezvousGetRequest");
    return;
  }
  if (check_token(ctl, r, job) != 0) {
    free(key);
    return;
  }
  graph_job *g = find(ctl, job, false);
  for (size_t i = 0; g && i < g->n_keys; i++) {
    if (strcmp(g->keys[i].key, key) != 0) continue;
    int rc = ty__conv_rdv_get_resp(g->keys[i].value, g->keys[i].len, true, &r->out);
    ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
    free(key);
    return;
  }
  /* Absent is the normal answer while peers start: found = false. */
  int rc = ty__conv_rdv_get_resp(NULL, 0, false, &r->out);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
  free(key);
}

static void record_ckpt(graph_job *g, const ty_train_progress *pr) {
  if (pr->checkpoint_step == 0) return;
  if (g->n_ckpts && g->ckpts[g->n_ckpts - 1].step == pr->checkpoint_step) return;
  if (g->n_ckpts == TY_GRAPH_MAX_CKPTS) {
    free(g->ckpts[0].path);
    memmove(g->ckpts, g->ckpts + 1, (TY_GRAPH_MAX_CKPTS - 1) * sizeof *g->ckpts);
    g->n_ckpts--;
  }
  char *path = ty_wire_strdup(pr->checkpoint_path);
  if (path) g->ckpts[g->n_ckpts++] = (ty_checkpoint_info){pr->checkpoint_step, pr->time_ms, path};
}

/* The worker listed the checkpoints that exist: they replace what was
 * reported before (trainrun removed the older ones), the newest 64 kept. */
static void replace_ckpts(graph_job *g, ty_checkpoint_list *l) {
  for (size_t k = 0; k < g->n_ckpts; k++)
    free(g->ckpts[k].path);
  size_t skip = l->n > TY_GRAPH_MAX_CKPTS ? l->n - TY_GRAPH_MAX_CKPTS : 0;
  for (size_t k = 0; k < skip; k++)
    free(l->v[k].path);
  g->n_ckpts = l->n - skip;
  memcpy(g->ckpts, l->v + skip, g->n_ckpts * sizeof *g->ckpts);
  free(l->v); /* the paths moved into g */
  memset(l, 0, sizeof *l);
}

/* ---- what the job's row keeps ------------------------------------------------------ */

void ty__graph_save(ty_controller *ctl, ty_job *j) {
  const graph_job *g = find(ctl, j->id, false);
  if (!g || (!g->has_progress && g->n_ckpts == 0)) return;
  ty_buf b;
  ty_buf_init(&b);
  if (ty__conv_graph_job_extra(g->has_progress ? &g->progress : NULL, g->ckpts, g->n_ckpts, true,
                               &b) != 0) {
    ty_buf_close(&b); /* out of memory: the row keeps what it had */
    return;
  }
  free(j->graph_saved);
  j->graph_saved = b.data;
  j->graph_saved_len = b.len;
}

void ty__graph_restore(ty_controller *ctl, const ty_job *j) {
  if (!j->graph_saved_len || find(ctl, j->id, false)) return;
  ty_train_progress pr;
  bool has = false;
  ty_checkpoint_list l;
  if (ty__conv_graph_saved(j->graph_saved, j->graph_saved_len, &pr, &has, &l) != 0) {
    ty_warn("job %llu: its stored progress and checkpoints do not decode; shown without them",
            (unsigned long long)j->id);
    return;
  }
  graph_job *g = find(ctl, j->id, true);
  if (has) g->progress = pr, g->has_progress = true;
  replace_ckpts(g, &l);
}

/* Appends a report to the curve (replacing the points of its attempt at or
 * after its step). A requeued job reports from its checkpoint's step
 * again: its points are a new attempt (the job's requeue count), after the
 * old attempt's, so the curve stays in (attempt, step) order. At TY_GRAPH_MAX_POINTS every other
 * point goes, so the curve keeps its whole length at half the resolution and memory stays bounded
 * (80 KiB) however long the job trains; a short job holds little. */
static void record_point(graph_job *g, const ty_train_progress *pr, uint32_t attempt) {
  ty__progress_point pt = {.attempt = attempt,
                           .step = pr->step,
                           .time_ms = pr->time_ms,
                           .loss = pr->loss,
                           .samples_per_s = pr->samples_per_s,
                           .test_accuracy = pr->test_accuracy};
  if (pr->step == 0) return; /* the report before the first step has no loss yet */
  /* The same step again: a test accuracy may come later. An earlier step:
   * the points after it were a killed run's late reports, counted in the
   * new attempt; the run that reports now is the one that counts. */
  while (g->n_hist && g->hist[g->n_hist - 1].attempt == attempt &&
         g->hist[g->n_hist - 1].step >= pr->step)
    g->n_hist--;
  if (g->n_hist == g->cap_hist && g->cap_hist < TY_GRAPH_MAX_POINTS) {
    size_t cap = g->cap_hist ? g->cap_hist * 2 : 64;
    ty__progress_point *grown = realloc(g->hist, cap * sizeof(*grown));
    if (!grown) return; /* the curve stops growing; progress itself still counts */
    g->hist = grown, g->cap_hist = cap;
  }
  if (g->n_hist == TY_GRAPH_MAX_POINTS) {
    for (size_t i = 1; i < TY_GRAPH_MAX_POINTS / 2; i++)
      g->hist[i] = g->hist[2 * i];
    g->n_hist = TY_GRAPH_MAX_POINTS / 2;
  }
  g->hist[g->n_hist++] = pt;
}

const ty__progress_point *ty__graph_history(ty_controller *ctl, uint64_t id, size_t *out_n) {
  const graph_job *g = find(ctl, id, false);
  *out_n = g ? g->n_hist : 0;
  return g ? g->hist : NULL;
}

/* What tells one list of checkpoints from another: trainrun adds one at a
 * new step, the worker's listing drops the oldest. */
typedef struct ckpt_mark {
  size_t n;
  uint64_t first_step, last_step;
  int64_t last_ms;
} ckpt_mark;

static ckpt_mark mark_of(const graph_job *g) {
  if (!g->n_ckpts) return (ckpt_mark){0};
  const ty_checkpoint_info *last = &g->ckpts[g->n_ckpts - 1];
  return (ckpt_mark){g->n_ckpts, g->ckpts[0].step, last->step, last->time_ms};
}

static bool same_mark(ckpt_mark a, ckpt_mark b) {
  return a.n == b.n && a.first_step == b.first_step && a.last_step == b.last_step &&
         a.last_ms == b.last_ms;
}

/* The checkpoints changed: j's row takes them (and the progress that came
 * with them) now, so neither the sweep nor a restart forgets them. */
static void save_ckpts(ty_controller *ctl, ty_job *j) {
  ty__graph_save(ctl, j);
  ty__job_dirty(ctl, j);
  if (j->unsplit) return; /* never ran: nothing reports for it */
  ty_txn *t = ty_txn_create();
  ty__job_save(ctl, j, t);
  ty__commit(ctl, t, NULL, NULL);
}

void ty__h_report_progress(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  uint64_t job;
  uint32_t rank;
  ty_train_progress pr;
  ty_checkpoint_list existing;
  int decoded = ty__conv_progress_req(p, n, &job, &rank, &pr, &existing);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a ReportProgressRequest");
    return;
  }
  ty_job *j = ty__job_find(ctl, job);
  if (!j || j->spec.kind != TY_JOB_KIND_GRAPH) {
    free(pr.checkpoint_path);
    ty_checkpoint_list_close(&existing);
    ty__reply_finishf(r, TY_ENOTFOUND, "job %llu is not a graph job", (unsigned long long)job);
    return;
  }
  graph_job *g = find(ctl, job, true);
  ckpt_mark before = mark_of(g);
  if (existing.listed)
    replace_ckpts(g, &existing);
  else
    record_ckpt(g, &pr);
  ty_checkpoint_list_close(&existing);
  if (g->n_ckpts) j->last_ckpt_ms = g->ckpts[g->n_ckpts - 1].time_ms;
  free(g->progress.checkpoint_path);
  g->progress = pr;
  g->has_progress = true;
  record_point(g, &pr, j->requeue_count);
  if (!same_mark(before, mark_of(g))) save_ckpts(ctl, j);
  ty__reply_finish(r, 0, NULL);
}

/* ---- PlanJob ---------------------------------------------------------------------- */

typedef struct plan_ctx {
  ty_reply *r;
  ty_job_spec spec;
} plan_ctx;

static void on_planned(ty_controller *ctl, ty__check_result *res, void *ud) {
  (void)ctl;
  plan_ctx *pc = ud;
  int rc = res->status;
  if (rc == 0) rc = ty__conv_plan_job_resp(res->plan, res->plan_len, res->cached, &pc->r->out);
  ty__reply_finish(pc->r, rc, res->status ? res->message : rc ? "cannot encode the answer" : NULL);
  ty_job_spec_close(&pc->spec);
  free(pc);
}

/* The same check and plan as a graph job's submit (check.c), for the
 * resources it asks for; a data-parallel job gets the data-parallel plan. */
void ty__h_plan_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  plan_ctx *pc = ty_xcalloc(1, sizeof *pc);
  pc->r = r;
  char err[TY_ERR_LEN];
  int rc = ty__conv_plan_job_req(p, n, &pc->spec);
  if (rc != 0) {
    free(pc);
    ty__reply_bad_payload(r, rc, "a PlanJobRequest carrying a job");
    return;
  }
  rc = ty_job_spec_validate(&pc->spec, err, sizeof err);
  /* A submit's checks of its queue (unknown, closed, limits), the memory
   * a submit would give it (its queue's default or maximum), which its
   * plan must fit, and the cluster's shape: a job no node set could ever
   * hold is refused with the submit's words, not planned. */
  if (rc == 0) rc = ty__queue_admit(ctl, r, pc->spec.queue, "submit", err, sizeof err);
  if (rc == 0) rc = ty__submit_check_placeable(ctl, &pc->spec, err, sizeof err);
  if (rc == 0 && pc->spec.kind != TY_JOB_KIND_GRAPH)
    rc = ty_errf(err, sizeof err, TY_EINVAL,
                 "job.graph: only graph jobs have plans; this one runs a command");
  if (rc != 0) {
    ty_job_spec_close(&pc->spec);
    free(pc);
    ty__reply_finish(r, rc, err);
    return;
  }
  ty__check_start(ctl, r, &pc->spec, true, on_planned, pc);
}
