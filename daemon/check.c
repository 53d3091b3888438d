/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model checks out of the controller's process (issue 13): every graph job
 * is imported, checked against its training config and planned by a child,
 * trainyard-graphcheck (daemon/graphcheck/main.c, which limits its own CPU
 * time and address space first), so a model that crashes the importer,
 * loops or eats memory ends that child, not traind. The loop never blocks
 * on it: uv_spawn with three pipes and a deadline timer. Its environment
 * is a fixed one and its stderr goes to traind's log under a prefix
 * naming the asker (check_child.c): it runs as the submitter, who may
 * ptrace it.
 *
 *   spawn ──> stdin: GraphCheckRequest ──> stdout: answer 1 (the check,
 *   the plan's cache key) ──> cached? 'C' and the cached plan : 'P' ──>
 *   stdout: answer 2 (the plan) ──> the caller's callback, then the child's
 *   exit closes the handles.
 *
 * The callback runs as soon as the outcome is known (an answer, or the
 * child's death without one: a signal, an exit code, the deadline), once,
 * on the loop. Outcomes that are the model's fault (a crash, a limit, the
 * deadline, a refusal) are TY_EINVAL with a message that starts with
 * "job.graph"; a helper that cannot be started is TY_EINTERNAL.
 *
 * At most cfg.check_jobs children run at once; later checks wait in a FIFO
 * (bounded: beyond it a submit is refused with a request to retry). The
 * cost model's CPU rate, when traind is not told one, is measured by the
 * first check that needs it (in the child, with the job's thread count)
 * and kept in the state directory (cpu-flops-<threads>, keyed by the CPU
 * model too), so a restarted controller plans a job as before instead of
 * flipping between plans on a new measurement's noise.
 *
 * Whose rights: the child reads model_path. When traind runs as root and
 * run_as() vouches for the request's uid and gid, the child takes them
 * (libuv's setgid/setuid, supplementary groups dropped), so it reads each
 * model with its submitter's rights (its supplementary groups are not
 * given: a model readable only through one is refused), a uid this host
 * has no passwd entry for included; otherwise (--auth none, or traind not
 * root) it runs as traind. For the same reason the plan cache serves a
 * plan only to checks running as the uid whose check put it (daemon.h):
 * the cache key is the child's answer, which its user can forge.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "ops/plan/plan.h"
#include "proto/convert.h"

#define MAX_WAITING 1024 /* checks queued behind the running ones */
/* One user's checks queued or running: the places are every user's, and a
 * user's slow models (up to --check-cpu-s each) once filled the queue, so
 * everyone else's graph submits waited behind them or were refused. */
#define MAX_USER_CHECKS 8
#define MAX_RATES 16 /* measured CPU rates remembered (by thread count) */
#define CACHE_PLANS 64
#define CACHE_BYTES (64u << 20)

typedef struct check check;

struct ty__checks {
  check *running; /* children alive (or their handles closing) */
  check *waiting, *waiting_tail;
  size_t n_waiting, n_running;
  struct {
    uint32_t threads;
    double flops;
  } rates[MAX_RATES];
  size_t n_rates;
  ty_plan_cache *cache;
  char **env; /* the children's environment */
};

struct check {
  ty_controller *ctl;
  uv_process_t proc;
  uv_pipe_t in, out, err;
  uv_timer_t timer;
  uv_write_t wr_req, wr_go;
  int open; /* handles not closed yet */
  bool exited, eof, err_eof, timed_out, done;
  int64_t exit_status;
  int term_signal;
  ty_buf req; /* the framed request */
  uint8_t go; /* 'C' or 'P' */
  ty_frame_reader rd;
  uint32_t answers;
  bool want_plan;
  uint32_t threads;
  bool as_user; /* run_as() */
  uid_t uid;
  gid_t gid;
  uint32_t asker;          /* the request's uid, whoever the check runs as: MAX_USER_CHECKS */
  ty__check_stderr errlog; /* its stderr, to traind's log */
  ty__check_result res;
  ty__check_cb cb;
  void *ud;
  check *next; /* the waiting queue, then the running list */
};

/* The one place that says whose rights a model check has: true with the
 * uid and gid the request's credential proved (auth.c: MUNGE, or the local
 * socket's peer), false to run it as traind: only under --auth none. A uid
 * without a passwd entry here (a user of a login node this host does not
 * list) is proven all the same and checks as that uid: the child needs no
 * name or groups to take it, and checking as traind would read, as root,
 * any file such a user names. */
static bool run_as(const ty_reply *r, uid_t *out_uid, gid_t *out_gid) {
  bool proven = r->who.authenticated;
  *out_uid = proven ? (uid_t)r->who.uid : getuid();
  *out_gid = proven ? (gid_t)r->who.gid : getgid();
  return proven;
}

static ty__checks *reg(ty_controller *ctl) {
  if (!ctl->checks) {
    ctl->checks = ty_xcalloc(1, sizeof *ctl->checks);
    ctl->checks->cache = ty_plan_cache_create(CACHE_PLANS, CACHE_BYTES);
    ctl->checks->env = ty__check_child_env();
  }
  return ctl->checks;
}

static void rate_path(const ty_controller *ctl, uint32_t threads, char *buf, size_t len) {
  snprintf(buf, len, "%s/cpu-flops-%u", ctl->cfg.state_dir, threads);
}

static double known_rate(ty_controller *ctl, uint32_t threads) {
  ty__checks *g = ctl->checks;
  for (size_t i = 0; i < g->n_rates; i++)
    if (g->rates[i].threads == threads) return g->rates[i].flops;
  char path[4096];
  double flops;
  rate_path(ctl, threads, path, sizeof path);
  if (g->n_rates == MAX_RATES || ty_plan_cpu_flops_load(path, (int)threads, &flops) != 0) return 0;
  g->rates[g->n_rates].threads = threads;
  g->rates[g->n_rates++].flops = flops;
  return flops;
}

static void remember_rate(ty_controller *ctl, uint32_t threads, double flops) {
  ty__checks *g = ctl->checks;
  if (flops <= 0 || known_rate(ctl, threads) > 0 || g->n_rates == MAX_RATES) return;
  g->rates[g->n_rates].threads = threads;
  g->rates[g->n_rates++].flops = flops;
  char path[4096];
  rate_path(ctl, threads, path, sizeof path);
  ty_plan_cpu_flops_store(path, (int)threads, flops);
  ty_info("cost model: a CPU rank with %u threads runs %.3g FLOP/s (measured once, kept in %s)",
          threads, flops, path);
}

/* ---- outcome ------------------------------------------------------------------------ */

static void count(ty_controller *ctl, const char *result) {
  const char *labels[] = {result};
  ty_metric_inc(ctl->m.checks, labels, 1);
}

/* Decides the outcome (once) and calls back. */
static void finish(check *k, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(check *k, int status, const char *fmt, ...) {
  if (k->done) return;
  k->done = true;
  k->res.status = status;
  if (status != 0 && fmt) {
    va_list ap;
    va_start(ap, fmt);
    ty_verrf(k->res.message, sizeof k->res.message, status, fmt, ap);
    va_end(ap);
  }
  count(k->ctl, status == 0 ? "ok" : status == TY_EINVAL ? "refused" : "error");
  k->cb(k->ctl, &k->res, k->ud);
  free(k->res.plan);
  k->res.plan = NULL;
}

/* The child died before answering: why, in the user's words. */
static void finish_dead(check *k) {
  const ty_controller_config *c = &k->ctl->cfg;
  int sig = k->term_signal;
  const char *name = sig ? sigabbrev_np(sig) : NULL;
  if (k->ctl->stopping)
    finish(k, TY_ECLOSED, "the controller is shutting down");
  else if (k->timed_out)
    finish(k, TY_EINVAL, "job.graph: model check timed out after %u s (traind --check-timeout-s)",
           c->check_timeout_s);
  else if (sig == SIGXCPU)
    finish(k, TY_EINVAL,
           "job.graph: model check used more than %u s of CPU time (traind --check-cpu-s)",
           c->check_cpu_s);
  else if (sig)
    finish(k, TY_EINVAL, "job.graph: model check crashed (signal %d, SIG%s)", sig,
           name ? name : "?");
  else
    finish(k, TY_EINVAL, "job.graph: model check ended (exit code %lld) without an answer",
           (long long)k->exit_status);
}

/* ---- handles ------------------------------------------------------------------------ */

static void start_next(ty_controller *ctl);

static void on_closed(uv_handle_t *h) {
  check *k = h->data;
  if (--k->open > 0) return;
  ty__checks *g = k->ctl->checks;
  check **at = &g->running;
  while (*at != k)
    at = &(*at)->next;
  *at = k->next;
  g->n_running--;
  ty_controller *ctl = k->ctl;
  ty_frame_reader_close(&k->rd);
  ty_buf_close(&k->req);
  free(k);
  start_next(ctl);
}

static void close_all(check *k) {
  uv_handle_t *hs[] = {(uv_handle_t *)&k->proc, (uv_handle_t *)&k->in, (uv_handle_t *)&k->out,
                       (uv_handle_t *)&k->err, (uv_handle_t *)&k->timer};
  ty__check_stderr_end(&k->errlog);
  for (size_t i = 0; i < TY_ARRAY_LEN(hs); i++)
    if (hs[i]->data == k && !uv_is_closing(hs[i])) uv_close(hs[i], on_closed);
}

/* The child is gone and its output read: decide if nothing was, and close. */
static void maybe_close(check *k) {
  if (!k->exited || !k->eof || !k->err_eof) return;
  finish_dead(k);
  close_all(k);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  check *k = p->data;
  k->exited = true;
  k->exit_status = status;
  k->term_signal = sig;
  maybe_close(k);
}

static void on_deadline(uv_timer_t *t) {
  check *k = t->data;
  if (k->exited) { /* it died but something still holds its stdout: stop reading */
    k->eof = k->err_eof = true;
    maybe_close(k);
    return;
  }
  k->timed_out = true;
  uv_process_kill(&k->proc, SIGKILL);
}

static void on_written(uv_write_t *w, int status) {
  check *k = w->data;
  if (status != 0 && !k->exited)
    ty_debug("model check: writing to the child: %s", ty_strerror(status));
  if (w == &k->wr_go && !uv_is_closing((uv_handle_t *)&k->in))
    uv_close((uv_handle_t *)&k->in, on_closed);
}

static void send_go(check *k, uint8_t go) {
  k->go = go;
  uv_buf_t b = uv_buf_init((char *)&k->go, 1);
  k->wr_go.data = k;
  if (uv_write(&k->wr_go, (uv_stream_t *)&k->in, &b, 1, on_written) != 0)
    uv_close((uv_handle_t *)&k->in, on_closed);
}

/* ---- answers ------------------------------------------------------------------------ */

static void refused(check *k, const ty_graph_check_answer *a) {
  const ty_controller_config *c = &k->ctl->cfg;
  const char *m = a->message && a->message[0] ? a->message : ty_strerror(a->status);
  char limit[32];
  if (c->check_mem_bytes >= (1ull << 30))
    snprintf(limit, sizeof limit, "%.1f GiB", (double)c->check_mem_bytes / (1ull << 30));
  else
    snprintf(limit, sizeof limit, "%.0f MiB", (double)c->check_mem_bytes / (1ull << 20));
  if (a->status == TY_ENOMEM)
    finish(k, TY_EINVAL,
           "job.graph: model check ran out of memory (limit %s, traind --check-mem): %s", limit, m);
  else
    finish(k, a->status == TY_EINTERNAL ? TY_EINTERNAL : TY_EINVAL, "%s", m);
}

/* Whose plans the child's answer may read and write in the cache: the uid
 * it runs as, who could have changed its answer (daemon.h). */
static uint32_t cache_owner(const check *k) {
  return k->as_user ? (uint32_t)k->uid : (uint32_t)geteuid();
}

/* Answer 1: the check; a plan comes from the cache or from answer 2. */
static void on_checked(check *k, ty_graph_check_answer *a) {
  ty__checks *g = k->ctl->checks;
  if (a->status == 0 && a->wants_plan) k->want_plan = true; /* a data job with pipeline stages */
  if (a->status != 0 || !k->want_plan) {
    if (a->status != 0)
      refused(k, a);
    else
      finish(k, 0, NULL);
    return;
  }
  remember_rate(k->ctl, k->threads, a->device_flops);
  k->res.cache_key = a->cache_key;
  int rc =
      ty_plan_cache_get(g->cache, cache_owner(k), a->cache_key, &k->res.plan, &k->res.plan_len);
  const char *labels[] = {rc == 0 ? "hit" : "miss"};
  ty_metric_inc(k->ctl->m.plan_cache, labels, 1);
  send_go(k, rc == 0 ? 'C' : 'P');
  if (rc != 0) return;
  k->res.cached = true;
  finish(k, 0, NULL);
}

static void on_planned(check *k, ty_graph_check_answer *a) {
  if (a->status != 0 || a->plan_len == 0) {
    if (a->status == 0) a->status = TY_EINTERNAL;
    refused(k, a);
    return;
  }
  ty_plan_cache_put(k->ctl->checks->cache, cache_owner(k), k->res.cache_key, a->plan, a->plan_len);
  k->res.plan = a->plan;
  k->res.plan_len = a->plan_len;
  a->plan = NULL;
  finish(k, 0, NULL);
}

static void on_frame(check *k, const uint8_t *body, size_t len) {
  ty_graph_check_answer a;
  if (k->done) return;
  if (ty_proto_unpack_check_answer(body, len, &a) != 0 || a.stage != ++k->answers ||
      (a.stage == 2 && k->go != 'P')) {
    finish(k, TY_EINVAL, "job.graph: the model check answered something that is not its answer");
    uv_process_kill(&k->proc, SIGKILL);
    return;
  }
  if (a.stage == 1)
    on_checked(k, &a);
  else
    on_planned(k, &a);
  ty_graph_check_answer_close(&a);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *b) {
  check *k = h->data;
  uint8_t *p = NULL;
  size_t n = 0;
  if (ty_frame_reader_space(&k->rd, want, &p, &n) != 0) n = 0;
  *b = uv_buf_init((char *)p, (unsigned)n);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  check *k = s->data;
  if (n > 0) {
    ty_frame_reader_commit(&k->rd, (size_t)n);
    const uint8_t *body;
    size_t len;
    int got;
    while ((got = ty_frame_reader_next(&k->rd, &body, &len)) == 1)
      on_frame(k, body, len);
    if (got < 0 && !k->done) {
      finish(k, TY_EINVAL, "job.graph: the model check's answer is malformed or above %zu bytes",
             k->ctl->cfg.max_frame);
      uv_process_kill(&k->proc, SIGKILL);
    }
    return;
  }
  if (n == 0) return;
  uv_read_stop(s);
  k->eof = true;
  maybe_close(k);
}

/* ---- stderr ------------------------------------------------------------------------- */

static void on_err_alloc(uv_handle_t *h, size_t want, uv_buf_t *b) {
  (void)want;
  check *k = h->data;
  *b = uv_buf_init(k->errlog.chunk, sizeof k->errlog.chunk);
}

static void on_err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  check *k = s->data;
  if (n > 0) ty__check_stderr_feed(&k->errlog, b->base, (size_t)n);
  if (n >= 0) return;
  uv_read_stop(s);
  k->err_eof = true;
  maybe_close(k);
}

/* ---- starting ----------------------------------------------------------------------- */

static int spawn(check *k) {
  ty_controller *ctl = k->ctl;
  uv_loop_t *loop = ctl->loop;
  char cpu[32], mem[32], max[32];
  snprintf(cpu, sizeof cpu, "%u", ctl->cfg.check_cpu_s);
  snprintf(mem, sizeof mem, "%llu", (unsigned long long)ctl->cfg.check_mem_bytes);
  snprintf(max, sizeof max, "%zu", ctl->cfg.max_frame);
  char *args[] = {
      (char *)ctl->cfg.graphcheck, "--cpu-s", cpu, "--mem", mem, "--max-input", max, NULL};
  uv_stdio_container_t io[3] = {
      {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&k->in},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&k->out},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&k->err}};
  uv_process_options_t o = {.file = ctl->cfg.graphcheck,
                            .args = args,
                            .env = ctl->checks->env,
                            .stdio = io,
                            .stdio_count = 3,
                            .exit_cb = on_exit_cb,
                            .uid = k->uid,
                            .gid = k->gid};
  if (k->as_user) o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
  uv_pipe_init(loop, &k->in, 0);
  uv_pipe_init(loop, &k->out, 0);
  uv_pipe_init(loop, &k->err, 0);
  uv_timer_init(loop, &k->timer);
  k->in.data = k->out.data = k->err.data = k->timer.data = k->proc.data = k;
  k->open = 5; /* a process handle needs closing even when the spawn failed */
  int rc = uv_spawn(loop, &k->proc, &o);
  if (rc != 0) return rc;
  uv_timer_start(&k->timer, on_deadline, (uint64_t)ctl->cfg.check_timeout_s * 1000, 0);
  uv_buf_t b = uv_buf_init((char *)k->req.data, (unsigned)k->req.len);
  k->wr_req.data = k;
  if ((rc = uv_write(&k->wr_req, (uv_stream_t *)&k->in, &b, 1, on_written)) == 0)
    rc = uv_read_start((uv_stream_t *)&k->out, on_alloc, on_read);
  if (rc == 0) rc = uv_read_start((uv_stream_t *)&k->err, on_err_alloc, on_err_read);
  if (rc != 0) uv_process_kill(&k->proc, SIGKILL); /* its exit decides (a crash) */
  return 0;
}

static void run(check *k) {
  ty__checks *g = k->ctl->checks;
  g->n_running++;
  k->next = g->running;
  g->running = k;
  int rc = spawn(k);
  if (rc == 0) return;
  ty_error("cannot start the model check %s: %s", k->ctl->cfg.graphcheck, ty_strerror(rc));
  finish(k, TY_EINTERNAL, "job.graph: the controller cannot start its model check (%s): %s",
         k->ctl->cfg.graphcheck, ty_strerror(rc));
  k->exited = k->eof = k->err_eof = true;
  close_all(k);
}

static void start_next(ty_controller *ctl) {
  ty__checks *g = ctl->checks;
  uint32_t max = ctl->cfg.check_jobs ? ctl->cfg.check_jobs : 1;
  while (g->waiting && g->n_running < max && !ctl->stopping) {
    check *k = g->waiting;
    g->waiting = k->next;
    if (!g->waiting) g->waiting_tail = NULL;
    g->n_waiting--;
    run(k);
  }
}

/* The request the child gets: the job, the mode and the cluster. */
static int build_request(ty_controller *ctl, check *k, const ty_job_spec *s, bool want_plan) {
  ty_graph_check gc = {
      .job = *s, .want_plan = want_plan, .mode = s->parallelism, .cluster = ctl->cfg.plan_rates};
  ty_check_cluster *c = &gc.cluster;
  c->nodes = s->nodes;
  c->devices_per_node = s->tasks_per_node ? s->tasks_per_node : 1;
  c->threads = s->cpus_per_task ? s->cpus_per_task : 1;
  if (c->device_flops <= 0 && s->gpus_per_node) c->device_flops = 100e9; /* ops/plan's default */
  if (c->device_flops <= 0) c->device_flops = known_rate(ctl, c->threads);
  /* The job's memory per rank: the child plans for it less the reserve
   * (and refuses a job whose ranks would have nothing left for a model). */
  if (c->device_mem_bytes == 0 && s->mem_per_node)
    c->rank_mem_bytes = s->mem_per_node / c->devices_per_node;
  else if (c->device_mem_bytes == 0)
    c->device_mem_bytes = 16ull << 30; /* ops/plan's default */
  k->want_plan = gc.want_plan;
  k->threads = c->threads;
  uint8_t h[4] = {0};
  int rc = ty_buf_append(&k->req, h, 4);
  if (rc == 0) rc = ty_proto_pack_check(&gc, &k->req);
  if (rc == 0) ty_frame_put_header(k->req.data, (uint32_t)(k->req.len - 4));
  return rc;
}

/* How many checks uid asked for are queued or running. */
static uint32_t users_checks(const ty__checks *g, uint32_t uid) {
  uint32_t n = 0;
  for (const check *k = g->running; k; k = k->next)
    n += k->asker == uid && !k->done;
  for (const check *k = g->waiting; k; k = k->next)
    n += k->asker == uid;
  return n;
}

void ty__check_start(ty_controller *ctl, const ty_reply *r, const ty_job_spec *spec, bool want_plan,
                     ty__check_cb cb, void *ud) {
  ty__checks *g = reg(ctl);
  check *k = ty_xcalloc(1, sizeof *k);
  k->ctl = ctl;
  k->cb = cb, k->ud = ud;
  ty_buf_init(&k->req);
  ty_frame_reader_init(&k->rd, ctl->cfg.max_frame);
  /* Only root may become another user; anyone else checks as itself. */
  k->as_user = run_as(r, &k->uid, &k->gid) && geteuid() == 0;
  k->asker = r->who.uid;
  ty__check_stderr_init(&k->errlog, r->who.user, r->who.uid);
  int rc = build_request(ctl, k, spec, want_plan);
  uint32_t mine = rc == 0 ? users_checks(g, k->asker) : 0;
  if (rc != 0)
    finish(k, rc, "job.graph: no memory to check this job (%zu checks queued)", g->n_waiting);
  else if (mine >= MAX_USER_CHECKS)
    finish(k, rc = TY_ESTATE,
           "job.graph: %s has %u models being checked already, as many as one user may; retry "
           "once one is answered",
           r->who.user, mine);
  else if (g->n_waiting >= MAX_WAITING)
    finish(k, rc = TY_ESTATE, "job.graph: the controller is checking %zu models already; retry",
           g->n_waiting);
  if (rc != 0) {
    ty_frame_reader_close(&k->rd);
    ty_buf_close(&k->req);
    free(k);
    return;
  }
  if (g->waiting_tail)
    g->waiting_tail->next = k;
  else
    g->waiting = k;
  g->waiting_tail = k;
  g->n_waiting++;
  start_next(ctl);
}

void ty__check_stop(ty_controller *ctl) {
  ty__checks *g = ctl->checks;
  if (!g) return;
  for (check *k = g->waiting, *next; k; k = next) {
    next = k->next;
    finish(k, TY_ECLOSED, "the controller is shutting down");
    ty_frame_reader_close(&k->rd);
    ty_buf_close(&k->req);
    free(k);
  }
  g->waiting = g->waiting_tail = NULL;
  g->n_waiting = 0;
  /* The running ones answer TY_ECLOSED when their child's exit is seen. */
  for (check *k = g->running; k; k = k->next)
    if (!k->exited) uv_process_kill(&k->proc, SIGKILL);
}

void ty__check_destroy(ty_controller *ctl) {
  if (!ctl->checks) return;
  ty_plan_cache_destroy(ctl->checks->cache);
  free(ctl->checks->env);
  free(ctl->checks);
  ctl->checks = NULL;
}
