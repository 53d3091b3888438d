/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's lifecycle, loading, tick and node loss; its tables and
 * lookups are state.c's, its metrics metrics.c's.
 *
 * Start-up: open the store (creating STATE_DIR), load queues, nodes and the
 * live jobs -- never a finished one (RUNNING jobs get their slots and rank
 * results back from the `alloc` column and charge their nodes again), and
 * the elements still in pending arrays' records (store.c) --
 * then listen. Every node loaded from
 * the store starts without a connection and with its heartbeat clock set to
 * now: a worker that re-registers within --node-timeout-ms keeps its jobs
 * RUNNING; one that does not goes DOWN and its jobs are requeued.
 *
 * Workload: thousands of live jobs in memory (history stays in the store),
 * tens to thousands of nodes, bursts of hundreds of submits per second.
 */
#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "daemon/web_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scheduler/scheduler.h"

#define TICK_MS 1000

/* ---- node loss ------------------------------------------------------------------- */

static bool has_ranks_on(const ty_job *j, const ty_cluster_node *n) {
  for (uint32_t r = 0; r < j->n_ranks; r++)
    if (j->ranks[r].state != RANK_ENDED && j->slots[j->ranks[r].slot].node == n) return true;
  return false;
}

/* A DOWN node's reason: the loss, and for a drained node its operator's
 * drain after it ("...; drained by alice: bad disk", as sinfo -R keeps
 * an administrator's reason), which it gets back alone when it registers
 * again (rpc_worker.c). */
static char *down_reason(const ty_cluster_node *n, const char *reason) {
  const char *drain = n->drain && n->reason ? strstr(n->reason, "drained by ") : NULL;
  if (!drain) return ty_strdup(reason);
  size_t len = strlen(reason) + strlen(drain) + 3;
  char *s = ty_xmalloc(len);
  snprintf(s, len, "%s; %s", reason, drain);
  return s;
}

static void node_down(ty_controller *ctl, ty_cluster_node *n, const char *reason) {
  ty_warn("node %s is DOWN: %s", n->name, reason);
  ty_txn *nt = ty_txn_create();
  ty__node_event(n, n->state, TY_NODE_DOWN, "down", reason, "controller", nt);
  n->state = TY_NODE_DOWN;
  n->running_tasks = 0;
  char *why_down = down_reason(n, reason);
  free(n->reason);
  n->reason = why_down;
  ty__node_save(n, nt);
  ty__commit(ctl, nt, NULL, NULL);
  if (n->conn) {
    ty_rpc_conn *c = n->conn;
    n->conn = NULL;
    ty_rpc_close(c);
  }
  char why[TY_ERR_LEN];
  snprintf(why, sizeof(why), "node %.128s DOWN: %.256s", n->name, reason);
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (j->live_ranks == 0 || !has_ranks_on(j, n)) continue;
    ty_txn *t = ty_txn_create();
    for (uint32_t r = 0; r < j->n_ranks; r++)
      if (j->slots[j->ranks[r].slot].node == n) ty__rank_lost(j, r, why, t);
    if (j->state == TY_JOB_RUNNING)
      ty__job_requeue(ctl, j, why, t);
    else
      ty__job_save(ctl, j, t);
    ty__commit(ctl, t, NULL, NULL);
  }
  ty__sched_request(ctl);
}

/* ---- scheduling ------------------------------------------------------------------ */

/* ty__sched_request (state.c) wakes this: one pass for every request made
 * since the last one. */
/* A group commit made these txns durable: count them, and let watchers
 * see the changes they carried. */
static void on_batch(size_t commits, size_t txns, void *ud) {
  ty_controller *ctl = ud;
  ty__metrics_on_batch(commits, txns, ud);
  ctl->txn_done += txns;
  ty__watch_flush(ctl);
  ty__web_events_flush(ctl);
}

static void on_sched_async(uv_async_t *h) {
  ty_controller *ctl = container_of(h, ty_controller, sched_async);
  ctl->sched_wanted = false;
  if (!ctl->stopping) ty__sched_on_request(ctl);
}

/* ---- the tick ------------------------------------------------------------------------ */

/*
 * The controller's one periodic tick, every TICK_MS (1 s). Its duties:
 *   1. Node liveness: a node not DOWN whose last heartbeat (or, for nodes
 *      loaded at start, the start itself) is older than --node-timeout-ms
 *      goes DOWN; its RUNNING jobs go NODE_FAIL and are requeued.
 *   2. Scheduling pass: places pending jobs, preempts, backfills (also run
 *      on submit, task end and node changes; the tick catches anything
 *      those missed), then the scheduler's duties (sched_pass.c): charge
 *      fair-share usage of running jobs, DRAINING nodes with nothing left
 *      running become DRAINED.
 *   3. Metrics refresh: recomputes the jobs/nodes gauges (also done just
 *      before each scrape).
 *   4. The sweep: ended jobs leave the live set, once their end is
 *      durable (the store's readers see it), for the finished cache,
 *      which is trimmed to --job-cache jobs used within --min-job-age
 *      (state.c); then, with --purge-after, one bounded batch of history
 *      older than that is deleted from the store (prune below).
 *   5. A pending rlaunch job whose rlaunch went away and did not come
 *      back in time is cancelled (watch.c).
 * Every duty walks the live set or the nodes, never history.
 */
static void on_pruned(int status, void *ud) {
  ty_controller *ctl = ud;
  ctl->prune_running = false;
  if (status == 0 && ctl->prune_deleted)
    ty_info("pruned %u jobs that ended more than %u s ago", ctl->prune_deleted,
            ctl->cfg.purge_after_s);
}

/* One batch of PRUNE_BATCH jobs at a time, one commit each: a backlog is
 * worked off a batch per tick, and quiet history is checked once a minute. */
#define PRUNE_BATCH 500
static void prune(ty_controller *ctl) {
  if (!ctl->cfg.purge_after_s || ctl->prune_running) return;
  int64_t now = ty_mono_ms();
  bool backlog = ctl->prune_deleted == PRUNE_BATCH;
  if (!backlog && ctl->prune_mono && now - ctl->prune_mono < 60000) return;
  ctl->prune_mono = now;
  ctl->prune_running = true;
  ctl->prune_deleted = 0;
  ty_txn *t = ty_txn_create();
  ty_txn_prune(t, ty_now_ms() - (int64_t)ctl->cfg.purge_after_s * 1000, PRUNE_BATCH,
               &ctl->prune_deleted, ctl->cfg.checkpoint_dir);
  ty__commit(ctl, t, on_pruned, ctl);
}

static void on_tick(uv_timer_t *t) {
  ty_controller *ctl = container_of(t, ty_controller, tick);
  int64_t now = ty_mono_ms();
  for (size_t i = 0; i < ctl->n_nodes; i++) {
    ty_cluster_node *n = ctl->nodes[i];
    if (n->state == TY_NODE_DOWN) continue;
    int64_t silent = now - n->last_seen_mono;
    if (silent <= (int64_t)ctl->cfg.node_timeout_ms) continue;
    char why[TY_ERR_LEN];
    if (!n->conn && n->refused[0])
      snprintf(why, sizeof(why), "registration refused: %s", n->refused);
    else
      snprintf(why, sizeof(why), "%s for %lld ms", n->conn ? "no heartbeat" : "not connected",
               (long long)silent);
    node_down(ctl, n, why);
  }
  ty__watch_cancel_abandoned(ctl);
  ty__sched_run(ctl);
  ty__sched_tick(ctl);
  ty__metrics_refresh(ctl);
  ty__jobs_sweep(ctl);
  ty__store_resync(ctl);
  prune(ctl);
  ty__web_events_flush(ctl); /* progress reports and node changes are not committed */
}

/* ---- loading ------------------------------------------------------------------------- */

static int load_queue(const ty_queue_row *r, void *ud) {
  ty_controller *ctl = ud;
  ctl->queues = ty_xrealloc(ctl->queues, (ctl->n_queues + 1) * sizeof(*ctl->queues));
  int state = ty_queue_state_parse(r->state);
  ctl->queues[ctl->n_queues++] = (ty_queue_info){.name = ty_strdup(r->name),
                                                 .tier = r->priority_tier,
                                                 .state = state ? state : TY_QUEUE_OPEN,
                                                 .share = r->share,
                                                 .max_running = r->max_running,
                                                 .max_gpus = r->max_gpus,
                                                 .max_gpus_per_user = r->max_gpus_per_user,
                                                 .preemptible = r->preemptible,
                                                 .default_time_s = r->default_time_s,
                                                 .max_time_s = r->max_time_s,
                                                 .default_mem = r->default_mem,
                                                 .max_mem = r->max_mem};
  ty_queue_info *q = &ctl->queues[ctl->n_queues - 1];
  snprintf(q->allow_groups, sizeof q->allow_groups, "%s", r->allow_groups ? r->allow_groups : "");
  snprintf(q->allow_users, sizeof q->allow_users, "%s", r->allow_users ? r->allow_users : "");
  char err[TY_ERR_LEN];
  if (ty_queue_access_resolve(q, err, sizeof err) != 0)
    ty_warn("queue %s: %s; it allows no one by that name until it is updated", q->name, err);
  return 0;
}

static int load_node(const ty_node_row *r, void *ud) {
  ty_controller *ctl = ud;
  ty_cluster_node *n = ty_xcalloc(1, sizeof(*n));
  n->name = ty_strdup(r->name);
  n->state = r->state;
  n->cpus = r->cpus;
  n->memory = r->memory;
  if (r->gpus && r->gpus_len) {
    n->info = ty_xmalloc(r->gpus_len);
    memcpy(n->info, r->gpus, r->gpus_len);
    n->info_len = r->gpus_len;
  }
  n->n_gpus = ty__conv_info_gpus(n->info, n->info_len);
  n->io_addr = ty_strdup(r->io_addr);
  n->host = ty__host_of(r->io_addr);
  n->reason = ty_strdup(r->reason);
  n->last_seen_ms = r->last_seen_ms;
  n->last_seen_mono = ctl->start_mono; /* grace_from_now counts it again after the load */
  n->drain = r->drain;
  /* What the store says it was is not what it is now: until its worker
   * registers again, the node is UNKNOWN (then DOWN after the timeout).
   * Its stored last_seen_ms is its last registration or state change, not
   * its last heartbeat (heartbeats are not written): its age is unknown,
   * shown as none and counted from the start (last_seen_mono) until the
   * worker is heard from. A DOWN node's was stored when it went DOWN. */
  if (n->state != TY_NODE_DOWN) {
    n->state = TY_NODE_UNKNOWN;
    n->last_seen_ms = 0;
    if (!n->drain) { /* a drain keeps its reason: it outlives the restart */
      free(n->reason);
      n->reason = ty_strdup("not registered since the controller started");
    }
  }
  ty__node_topology(ctl, n);
  ty__node_add(ctl, n);
  return 0;
}

/* A running job killed before the restart: its workers hold the grace and
 * its SIGKILL deadline; the KillTask each gets again when it registers
 * (ty__job_kill_node) reaches one that missed the kill and does not signal
 * the others' ranks twice. When its ranks end it is requeued or preempted
 * as the kill meant. */
static void restore_kill(ty_job *j, const ty_job_row *r) {
  j->kill_sent = r->kill_sent;
  j->requeue_asked = r->requeue_asked;
  j->preempt_for = (uint64_t)r->preempt_for;
}

/* A live job from its row: RUNNING ones get their slots and rank results
 * back, elements their array's record, waiting ones their dependencies. */
static int load_job(const ty_job_row *r, void *ud) {
  ty_controller *ctl = ud;
  ty_job *j = ty__job_from_row(ctl, r);
  if (!j) return 0; /* logged: its spec does not decode */
  char err[TY_ERR_LEN];
  /* A model moved to its file is no longer in the spec, which is right. */
  if (!j->model_file && ty_job_spec_validate(&j->spec, err, sizeof(err)) != 0)
    ty_warn("store: job %llu: %s", (unsigned long long)r->id, err);
  free(j->nodes_csv);
  j->nodes_csv = NULL;
  ty__job_add(ctl, j);
  ty__graph_restore(ctl, j);
  if (j->state == TY_JOB_RUNNING && ty__job_restore_alloc(ctl, j, r->nodes, r->alloc) != 0)
    ty_error("store: job %llu: cannot restore its allocation \"%s\"", (unsigned long long)j->id,
             r->alloc);
  if (j->state == TY_JOB_RUNNING) restore_kill(j, r);
  j->acct_run = j->requeue_count + 1;
  if (j->array_id) ty__array_note(ctl, j->array_id, &j->spec.array, 0);
  /* A pending element but the first holds its command only in its stored
   * spec, as submit.c's element_new makes it, whether still in the
   * array's record or split off into a row of its own (held, changed). */
  if (j->array_id && j->id != j->array_id && j->state == TY_JOB_PENDING) ty__job_trim(j);
  return 0;
}

/* Element k of the array whose first element's row is `first`, into memory
 * as one still in the record. */
static void load_unsplit(ty_controller *ctl, const ty_job_row *first, uint32_t k, uint32_t task) {
  ty_job_row r = *first;
  r.id = first->id + k;
  r.array_task = task;
  if (k) r.request_id = "", r.request_hash = 0;
  load_job(&r, ctl);
  ty_job *j = ty__job_find(ctl, r.id);
  if (j) j->unsplit = true;
}

/* The elements still in a pending array's record: those of its ids with
 * no row of their own. */
static int load_array(const ty_job_row *first, uint32_t elements, void *ud) {
  ty_controller *ctl = ud;
  ty__ids split = {0}; /* the ids of its elements that have their own row, sorted */
  ty_job_spec spec;
  uint32_t *tasks = NULL;
  size_t nt = 0;
  if (ty__conv_spec(first->spec, first->spec_len, &spec) != 0) {
    ty_error("store: array %llu has an undecodable spec", (unsigned long long)first->id);
    return 0;
  }
  int rc = ty_array_tasks(&spec.array, &tasks, &nt) != 0 ? TY_ENOMEM : 0;
  ty_job_spec_close(&spec);
  if (rc == 0 && nt != elements)
    ty_error("store: array %llu: its record says %u elements, its spec %zu; using the fewer",
             (unsigned long long)first->id, elements, nt);
  if (rc == 0) rc = ty_store_array_rows(ctl->store, first->id, ty__ids_add, &split);
  uint32_t left = 0;
  size_t s = 0;
  for (uint32_t k = 0; rc == 0 && k < elements && k < nt; k++) {
    while (s < split.n && split.v[s] < first->id + k)
      s++;
    if (s < split.n && split.v[s] == first->id + k) continue;
    load_unsplit(ctl, first, k, tasks[k]);
    left++;
  }
  ty__array *a = rc == 0 && left ? ty__array_get(ctl, first->id) : NULL;
  if (a) a->unsplit = left; /* load_job noted the array */
  free(tasks);
  free(split.v);
  return rc;
}

/* Dependencies once every live job is in memory (targets may be any of them). */
static void load_deps(ty_controller *ctl) {
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (j->state == TY_JOB_PENDING && j->spec.n_deps) ty__deps_pending_again(ctl, j);
  }
}

static int load_usage(const ty_usage_row *r, void *ud) {
  ty_usage *u = ty__usage_get(ud, r->user, r->queue);
  u->gpu_s = r->gpu_s;
  u->cpu_s = r->cpu_s;
  u->stored_ms = r->updated_ms;
  return 0;
}

void ty__topology_copy(const ty_sched_topology *from, ty_sched_topology *to) {
  memset(to, 0, sizeof(*to));
  if (!from) return;
  to->n_switches = from->n_switches;
  to->switches = ty_xcalloc(to->n_switches ? to->n_switches : 1, sizeof(*to->switches));
  for (size_t i = 0; i < to->n_switches; i++) {
    const ty_sched_switch *f = &from->switches[i];
    ty_sched_switch *t = &to->switches[i];
    t->name = ty_strdup(f->name);
    t->n_nodes = f->n_nodes;
    t->nodes = ty_xcalloc(f->n_nodes ? f->n_nodes : 1, sizeof(*t->nodes));
    for (size_t k = 0; k < f->n_nodes; k++)
      t->nodes[k] = ty_strdup(f->nodes[k]);
  }
}

/* Copies the scheduler's settings and topology (--config) into ctl. */
static void copy_sched(ty_controller *ctl, const ty_controller_config *cfg) {
  if (cfg->sched)
    ctl->sched = *cfg->sched;
  else
    ty_sched_config_default(&ctl->sched);
  ctl->cfg.sched = NULL;
  ctl->cfg.topo = NULL;
  if (cfg->topo) ty__topology_copy(cfg->topo, &ctl->topo);
}

/* Queues, nodes, usage and the live jobs; finished jobs stay in the store
 * (only the largest id is read, since ids are never reused). */
/* TRAINYARD_TEST_LOAD_HOLD_MS (tests only): the load takes that much
 * longer, as a store of a few hundred thousand live jobs takes. */
static void test_load_hold(void) {
  const char *hold = getenv("TRAINYARD_TEST_LOAD_HOLD_MS");
  if (hold) usleep((useconds_t)strtoul(hold, NULL, 10) * 1000);
}

/* Grace, counted from when the controller can hear anyone (after the
 * load, which takes seconds for a large store): each node loaded from the
 * store has --node-timeout-ms to register, and each pending rlaunch job
 * its rlaunch's grace to come back (ty__watch_loaded), from now. Counted
 * from before the load, a load longer than the timeout had every node
 * DOWN at the first tick, its running jobs NODE_FAIL and requeued. */
static void grace_from_now(ty_controller *ctl) {
  ctl->start_mono = ty_mono_ms();
  for (size_t i = 0; i < ctl->n_nodes; i++)
    ctl->nodes[i]->last_seen_mono = ctl->start_mono;
  for (size_t i = 0; i < ctl->n_jobs; i++)
    ty__watch_loaded(ctl, ctl->jobs[i]);
}

static int load_state(ty_controller *ctl, char *err, size_t len) {
  uint64_t max_id = 0;
  int rc = ty_store_load_queues(ctl->store, load_queue, ctl);
  if (rc == 0) rc = ty_store_load_nodes(ctl->store, load_node, ctl);
  if (rc == 0) rc = ty_store_max_job_id(ctl->store, &max_id);
  ctl->next_id = max_id + 1;
  if (rc == 0) rc = ty_store_load_live_jobs(ctl->store, load_job, ctl);
  if (rc == 0) rc = ty_store_load_arrays(ctl->store, load_array, ctl);
  if (rc == 0) rc = ty_store_load_usage(ctl->store, load_usage, ctl);
  if (rc != 0) return ty_errf(err, len, rc, "cannot load state: %s", ty_store_errmsg(ctl->store));
  test_load_hold();
  load_deps(ctl);
  ty__usage_loaded(ctl);
  size_t running = 0;
  for (size_t i = 0; i < ctl->n_jobs; i++)
    running += ctl->jobs[i]->state == TY_JOB_RUNNING;
  ty_info("loaded %zu live jobs (%zu running), %zu nodes, %zu queues; next job id %llu",
          ctl->n_jobs, running, ctl->n_nodes, ctl->n_queues, (unsigned long long)ctl->next_id);
  return rc;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

/* The state dir holds job environments and the token secret: only traind's
 * user may enter it (0700), and its database files are 0600 even when an
 * older traind created them with the default umask. */
static int make_private(const char *dir, char *err, size_t len) {
  if (chmod(dir, 0700) != 0)
    return ty_errf(err, len, TY_EIO, "cannot make the state directory %s private (0700): %s", dir,
                   strerror(errno));
  static const char *const files[] = {"traind.db", "traind.db-wal", "traind.db-shm"};
  for (size_t i = 0; i < TY_ARRAY_LEN(files); i++) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
    if (chmod(path, 0600) != 0 && errno != ENOENT)
      return ty_errf(err, len, TY_EIO, "cannot make %s private (0600): %s", path, strerror(errno));
  }
  return 0;
}

/* Takes STATE_DIR/traind.lock (an exclusive flock, held while ctl lives),
 * before SQLite opens anything: two controllers on one store would give
 * the same ids and overwrite each other's jobs. The holder's pid is in the
 * file, for the message. traind --backup reads a live store without it. */
static int lock_state_dir(ty_controller *ctl, char *err, size_t len) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/traind.lock", ctl->cfg.state_dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ty_errf(err, len, TY_EIO, "cannot open %s: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? strcspn(pid, "\n") : 0] = '\0';
    close(fd);
    if (e == EWOULDBLOCK)
      return ty_errf(err, len, TY_ESTATE, "another traind (pid %s) uses %s", pid[0] ? pid : "?",
                     ctl->cfg.state_dir);
    return ty_errf(err, len, TY_EIO, "cannot lock %s: %s", path, strerror(e));
  }
  char pid[32];
  int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
    ty_warn("cannot write the pid into %s: %s", path, strerror(errno));
  ctl->lock_fd = fd;
  return 0;
}

static int open_store(ty_controller *ctl, char *err, size_t len) {
  int rc = ty_mkdir_p(ctl->cfg.state_dir);
  if (rc != 0)
    return ty_errf(err, len, rc, "cannot create the state directory %s: %s", ctl->cfg.state_dir,
                   ty_strerror(rc));
  if ((rc = make_private(ctl->cfg.state_dir, err, len)) != 0) return rc;
  if ((rc = lock_state_dir(ctl, err, len)) != 0) return rc;
  char path[4096];
  snprintf(path, sizeof(path), "%s/traind.db", ctl->cfg.state_dir);
  rc = ty_store_open(path, &ctl->store, err, len);
  if (rc == 0) rc = ty__token_init(ctl, err, len);
  if (rc == 0) rc = load_state(ctl, err, len);
  if (rc == 0) rc = ty_committer_create(ctl->loop, ctl->store, &ctl->commit);
  if (rc == 0) ty_committer_on_batch(ctl->commit, on_batch, ctl);
  return rc;
}

/* The whole store's quick_check, off the loop: at a million jobs it takes
 * seconds, so a start does not wait for it (ty_store_open checked what the
 * start reads). A damaged file stops the controller, saying why; a stop
 * meanwhile interrupts it (ty_controller_stop fires check_opts.cancel),
 * since the loop, and so SIGTERM, would otherwise wait for the whole check.
 * TRAINYARD_TEST_STORE_CHECK_HOLD_MS (tests only) makes the check hold
 * that long inside SQLite, so that a test can stop traind during one. */
static void check_store(uv_work_t *w) {
  ty_controller *ctl = w->data;
  char path[4096];
  snprintf(path, sizeof(path), "%s/traind.db", ctl->cfg.state_dir);
  ctl->check_rc = ty_store_check(path, &ctl->check_opts, ctl->check_err, sizeof(ctl->check_err));
}

static void on_store_checked(uv_work_t *w, int status) {
  ty_controller *ctl = w->data;
  if (ctl->check_rc == UV_ECANCELED) {
    ty_info("store integrity check interrupted by the shutdown");
    ctl->check_rc = 0; /* no verdict: not a failure */
  }
  if (status != 0 || ctl->check_rc == 0) return;
  ty_error("%s; stopping", ctl->check_err);
  ty_controller_stop(ctl);
}

static void start_store_check(ty_controller *ctl) {
  const char *hold = getenv("TRAINYARD_TEST_STORE_CHECK_HOLD_MS");
  ctl->check_opts = (ty_store_check_opts){.cancel = ty_store_cancel_create(),
                                          .hold_ms = hold ? (uint32_t)strtoul(hold, NULL, 10) : 0};
  ctl->check_work.data = ctl;
  uv_queue_work(ctl->loop, &ctl->check_work, check_store, on_store_checked);
}

const char *ty_controller_failure(const ty_controller *ctl) {
  return ctl->check_rc ? ctl->check_err : NULL;
}

static int start_listening(ty_controller *ctl, char *err, size_t len) {
  ty_rpc_conn_opts opts = {.max_frame = ctl->cfg.max_frame,
                           .on_request = ty__rpc_on_request,
                           .on_close = ty__rpc_on_close,
                           .ud = ctl,
                           .limits = ctl->cfg.limits};
  opts.limits.stats = ty_metrics_conn_stats(ctl->metrics, "rpc");
  int rc = ty_rpc_server_create(ctl->loop, ctl->cfg.listen_host, ctl->cfg.listen_port, &opts, NULL,
                                ctl, &ctl->server);
  if (rc != 0)
    return ty_errf(err, len, rc, "cannot listen on %s:%d: %s", ctl->cfg.listen_host,
                   ctl->cfg.listen_port, ty_strerror(rc));
  if ((rc = ty__local_start(ctl, &opts, err, len)) != 0) return rc;
  rc = ty_http_serve_metrics(ctl->loop, ctl->cfg.metrics_host, ctl->cfg.metrics_port, ctl->metrics,
                             &ctl->http);
  if (rc != 0)
    return ty_errf(err, len, rc, "cannot serve metrics on %s:%d: %s", ctl->cfg.metrics_host,
                   ctl->cfg.metrics_port, ty_strerror(rc));
  if (ctl->cfg.metrics_token)
    snprintf(ctl->metrics_token, sizeof ctl->metrics_token, "%s", ctl->cfg.metrics_token);
  ctl->cfg.metrics_token = NULL; /* the caller's: the copy above is kept */
  rc = ty_http_server_require_token(ctl->http, ctl->metrics_token);
  if (rc != 0) return ty_errf(err, len, rc, "the metrics token: %s", ty_strerror(rc));
  return ty__web_start(ctl, err, len);
}

int ty_controller_create(uv_loop_t *loop, const ty_controller_config *cfg, ty_controller **out_ctl,
                         char *err, size_t len) {
  ty_controller *ctl = ty_xcalloc(1, sizeof(*ctl));
  ctl->loop = loop;
  ctl->lock_fd = -1;
  ctl->cfg = *cfg;
  if (!ctl->cfg.job_cache) ctl->cfg.job_cache = 1000;
  if (!ctl->cfg.max_user_jobs) ctl->cfg.max_user_jobs = TY_USER_JOBS_DEFAULT;
  if (!ctl->cfg.min_job_age_s) ctl->cfg.min_job_age_s = 300;
  if (!ctl->cfg.history_cap) ctl->cfg.history_cap = 100000;
  copy_sched(ctl, cfg);
  if (cfg->policy) ty_policy_copy(cfg->policy, &ctl->policy);
  ctl->cfg.policy = NULL;
  ctl->start_mono = ty_mono_ms();
  ctl->metrics = ty_metrics_create();
  ty__metrics_init(ctl);
  uv_timer_init(loop, &ctl->tick);
  uv_async_init(loop, &ctl->sched_async, on_sched_async);
  ty__gate_init(ctl);
  ctl->handles_open = 3;
  int rc = ty__auth_init(ctl, err, len);
  if (rc == 0) rc = open_store(ctl, err, len);
  if (rc == 0) grace_from_now(ctl);
  if (rc == 0) rc = start_listening(ctl, err, len);
  if (rc != 0) goto fail;
  uv_timer_start(&ctl->tick, on_tick, TICK_MS, TICK_MS);
  ty__metrics_refresh(ctl);
  ty__sched_request(ctl);
  start_store_check(ctl);
  *out_ctl = ctl;
  return 0;
fail:
  ty_controller_stop(ctl);
  uv_run(loop, UV_RUN_DEFAULT);
  ty_controller_destroy(ctl);
  return rc ? rc : TY_EINTERNAL;
}

int ty_controller_rpc_port(const ty_controller *ctl) {
  return ty_rpc_server_port(ctl->server);
}
int ty_controller_metrics_port(const ty_controller *ctl) {
  return ty_http_server_port(ctl->http);
}
int ty_controller_web_port(const ty_controller *ctl) {
  return ty_http_server_port(ctl->web);
}

static void on_handle_closed(uv_handle_t *h) {
  ty_controller *ctl = h->data;
  ctl->handles_open--;
}

void ty_controller_stop(ty_controller *ctl) {
  if (!ctl || ctl->stopping) return;
  ctl->stopping = true;
  if (ctl->check_opts.cancel) /* the loop would wait for the check */
    ty_store_cancel_fire(ctl->check_opts.cancel);
  ctl->tick.data = ctl;
  ctl->sched_async.data = ctl;
  uv_close((uv_handle_t *)&ctl->tick, on_handle_closed);
  uv_close((uv_handle_t *)&ctl->sched_async, on_handle_closed);
  ty__gate_stop(ctl);
  uv_close((uv_handle_t *)&ctl->gate_kick, on_handle_closed);
  /* Answer everything already queued for commit while connections are open. */
  ty_committer_destroy(ctl->commit);
  ctl->commit = NULL;
  ty__watch_stop_all(ctl);
  ty_rpc_server_destroy(ctl->server);
  ctl->server = NULL;
  ty__local_stop(ctl);
  ty__check_stop(ctl);
  ty_http_server_stop(ctl->http);
  ctl->http = NULL;
  ty_http_server_stop(ctl->web);
  ctl->web = NULL;
  ty__auth_close(ctl);
}

void ty_controller_destroy(ty_controller *ctl) {
  if (!ctl) return;
  ty_store_cancel_destroy(ctl->check_opts.cancel); /* the loop ran the check's end */
  for (ty_reply *r = ctl->replies, *next; r; r = next) {
    next = r->next;
    if (r->sink) r->sink(r, TY_ECLOSED, "the controller stopped");
    ty_buf_close(&r->out);
    free(r);
  }
  for (size_t i = 0; i < ctl->n_jobs; i++)
    ty__job_free(ctl->jobs[i]);
  free(ctl->jobs);
  for (ty_job *j = ctl->lru_head, *next; j; j = next) {
    next = j->lru_next;
    ty__job_free(j);
  }
  ty_idmap_close(&ctl->done);
  ty__user_jobs_close(ctl);
  ty__web_events_free(ctl);
  free(ctl->web_ids);
  ty__deps_destroy(ctl);
  ty_buf_close(&ctl->ls_req);
  ty_buf_close(&ctl->ls_reply);
  free(ctl->req_index);
  free(ctl->sched_new);
  ty__graph_destroy(ctl);
  ty__check_destroy(ctl);
  for (size_t i = 0; i < ctl->n_nodes; i++)
    ty__node_free(ctl->nodes[i]);
  free(ctl->nodes);
  for (size_t i = 0; i < ctl->n_deleted_nodes; i++)
    ty__node_free(ctl->deleted_nodes[i]);
  free(ctl->deleted_nodes);
  for (size_t i = 0; i < ctl->names_cap; i++)
    free(ctl->names[i]);
  free(ctl->names);
  for (size_t i = 0; i < ctl->n_queues; i++)
    ty_queue_info_close(&ctl->queues[i]);
  free(ctl->queues);
  for (size_t i = 0; i < ctl->n_usage; i++) {
    free(ctl->usage[i].user);
    free(ctl->usage[i].queue);
  }
  free(ctl->usage);
  ty_sched_topology_close(&ctl->topo);
  ty__auth_free(ctl);
  ty_store_close(ctl->store);
  if (ctl->lock_fd >= 0) close(ctl->lock_fd); /* after the store: the lock guards it */
  ty_metrics_destroy(ctl->metrics);
  free(ctl);
}
