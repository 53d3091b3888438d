/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Placing a job and launching its ranks on the controller: ty__job_start
 * gives a job its slots and makes it RUNNING; once that record is committed,
 * ty__job_launch sends one LaunchTask per rank still waiting, to the worker
 * of the rank's slot, and the answer moves the rank on (or fails the job
 * through jobs.c, or, when the launch failed for its node's reason,
 * drains the node and requeues the job). A job whose RUNNING record was
 * not stored is never launched: it is PENDING again until the store
 * writes again. A rank whose node has no connection stays RANK_WAIT and
 * is launched when the node registers again (rpc_worker.c).
 *
 * What every rank's LaunchTask shares (the nodes as a hostlist, a graph
 * job's model read back from its file) is made once per ty__job_launch, not
 * once per rank: a launch is O(ranks) encodes and at most one file read. A
 * job holding no decoded argv and env (an array element's first start, a
 * requeued job from the finished cache) decodes them from its stored spec
 * first (ty__job_untrim).
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "lib/token/token.h"
#include "proto/methods.h"

typedef struct launch_ctx {
  ty_controller *ctl;
  uint64_t job_id;
  uint32_t run;
  uint32_t rank;
} launch_ctx;

/* A worker refuses a launch with TY_ESTATE while it shuts down (worker.h),
 * or before its registration's answer reached it: the rank lost its node,
 * as if the node had failed, and the job is requeued (or ends NODE_FAIL
 * when it is never requeued). A node shutting down takes nothing more: its
 * stopping heartbeat may have been lost, or read after this placement. */
static void launch_lost(ty_controller *ctl, ty_job *j, uint32_t rank, const char *m,
                        bool worker_stopping) {
  ty_cluster_node *n = j->slots[j->ranks[rank].slot].node;
  char why[TY_ERR_LEN];
  snprintf(why, sizeof(why), "launch refused on %.64s: %.300s", n->name, m);
  ty_warn("job %llu rank %u: %s", (unsigned long long)j->id, rank, why);
  ty_txn *t = ty_txn_create();
  if (worker_stopping) ty__node_leaving(n, t);
  ty__rank_lost(j, rank, why, t);
  ty__job_requeue(ctl, j, why, t);
  ty__commit(ctl, t, NULL, NULL);
}

/* What a refusal's payload marks: whether the worker stops (a TY_ESTATE
 * refusal: the worker_stopping field, or, from a worker older than that
 * field (no payload), its message's words), and whether the launch failed
 * for the node's reason (node_fault). */
static void read_refusal(const ty_rpc_msg *msg, const char *m, bool *stopping, bool *node_fault) {
  *stopping = *node_fault = false;
  if (msg && msg->payload_len > 0) {
    if (ty__conv_launch_resp(msg->payload, msg->payload_len, stopping, node_fault) != 0)
      ty_warn("a LaunchTask answer's payload is malformed; read as no marker");
    return;
  }
  *stopping = strstr(m, "shutting down") != NULL;
}

static void on_launch_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                             void *ud) {
  (void)c;
  launch_ctx *lc = ud;
  if (!final) return;
  ty_job *j = ty__job_find(lc->ctl, lc->job_id);
  bool current =
      j && j->run == lc->run && lc->rank < j->n_ranks && j->ranks[lc->rank].state == RANK_LAUNCHING;
  if (current && status == 0) {
    j->ranks[lc->rank].state = RANK_RUNNING;
    j->slots[j->ranks[lc->rank].slot].node->running_tasks++; /* until its heartbeat says */
  } else if (current && status != TY_ECLOSED && !lc->ctl->stopping) {
    /* TY_ECLOSED: the worker connection went away; its re-registration or
     * its timeout decides what happened to the rank. */
    const char *m = msg && msg->message && msg->message[0] ? msg->message : ty_strerror(status);
    bool stopping, node_fault;
    read_refusal(msg, m, &stopping, &node_fault);
    if (j->state == TY_JOB_RUNNING && status == TY_ESTATE)
      launch_lost(lc->ctl, j, lc->rank, m, stopping);
    else if (j->state == TY_JOB_RUNNING && node_fault)
      ty__job_launch_node_failed(lc->ctl, j, lc->rank, m);
    else if (j->state == TY_JOB_RUNNING)
      ty__job_launch_failed(lc->ctl, j, lc->rank, m);
  }
  free(lc);
}

/* What every rank's LaunchTask shares, kept by ty__job_launch until the
 * last one is encoded: a graph job's model_bytes read back from its file,
 * and the job's nodes as a hostlist. */
typedef struct launch_shared {
  ty_buf model;
  ty_buf nodelist;
} launch_shared;

uint32_t ty__rank_cpus(const ty_job *j, uint32_t r) {
  const ty_job_spec *s = &j->spec;
  uint32_t tpn = s->tasks_per_node ? s->tasks_per_node : 1;
  if (!s->exclusive) return s->cpus_per_task ? s->cpus_per_task : 1;
  uint32_t cpus = j->slots[j->ranks[r].slot].cpus, local = r % tpn;
  uint32_t share = cpus / tpn + (local < cpus % tpn);
  return share ? share : 1;
}

/* The LaunchTask of rank r: points into j and into gpus (64 entries), key
 * (TY_TOKEN_KEY_LEN bytes) and sh, which the caller keeps until it is
 * encoded. An exclusive job's rank gets its share of the node's CPUs and,
 * as the job's memory limit there, the node's memory. */
static void task_spec(ty_controller *ctl, const ty_job *j, uint32_t r, uint32_t *gpus, uint8_t *key,
                      const launch_shared *sh, ty_task_spec *t) {
  const ty_job_spec *s = &j->spec;
  const ty_slot *sl = &j->slots[j->ranks[r].slot];
  uint32_t tpn = s->tasks_per_node ? s->tasks_per_node : 1;
  size_t ng = 0;
  for (uint32_t i = 0; i < 64; i++)
    if (sl->gpus & (UINT64_C(1) << i)) gpus[ng++] = i;
  *t = (ty_task_spec){.job_id = j->id,
                      .rank = r,
                      .local_rank = r % tpn,
                      .world_size = j->n_ranks,
                      .local_world_size = tpn,
                      .master_addr = j->slots[0].node->host,
                      .master_port = 29500 + (uint32_t)(j->id % 20000),
                      .gpu_indices = gpus,
                      .n_gpus = ng,
                      .cpus = ty__rank_cpus(j, r),
                      .argv = (const char *const *)s->argv,
                      .argc = s->argc,
                      .env = (const char *const *)s->env,
                      .n_env = s->envc,
                      .cwd = s->cwd,
                      .time_limit_s = s->time_limit_s,
                      .kill_grace_s = ctl->cfg.kill_grace_s,
                      .user = s->user,
                      .has_uid = s->has_uid,
                      .uid = s->uid,
                      .gid = s->gid,
                      .mem_per_node = s->exclusive ? sl->mem : s->mem_per_node,
                      .interactive = s->interactive,
                      .warn_signal = s->warn_signal,
                      .warn_before_s = s->warn_before_s,
                      .warn_batch_only = s->warn_batch_only,
                      .job_name = s->name,
                      .queue = s->queue && s->queue[0] ? s->queue : "default",
                      .nodelist = (const char *)sh->nodelist.data,
                      .num_nodes = j->n_slots,
                      .node_index = j->ranks[r].slot,
                      .cpus_on_node = sl->cpus,
                      .restart_count = j->requeue_count,
                      .job_submit_ms = (uint64_t)j->submit_ms,
                      .process = s->process};
  /* The worker verifies task tokens (logs, attach) with the key; graph
   * ranks sign their rendezvous token with it. It travels only on the
   * worker's authenticated connection. */
  ty__token_job_key(ctl, j->id, key);
  t->attach_key = key;
  t->attach_key_len = TY_TOKEN_KEY_LEN;
  if (j->array_id) {
    t->array_job_id = j->array_id;
    t->array_task_id = j->array_task;
    ty__array_span(ctl, j, &t->array_task_count, &t->array_task_min, &t->array_task_max,
                   &t->array_task_step);
  }
  if (s->kind != TY_JOB_KIND_GRAPH) return;
  t->graph = true;
  t->model_path = s->model_path;
  t->model_bytes = s->model_bytes, t->model_len = s->model_len;
  if (j->model_file) t->model_bytes = sh->model.data, t->model_len = sh->model.len;
  t->train_config = s->train_config, t->train_config_len = s->train_config_len;
  t->checkpoint_path = ty__graph_checkpoint_path(ctl, j);
  t->checkpoint_root = ty__graph_checkpoint_root(ctl, j);
  t->plan = j->plan;
  t->plan_len = j->plan_len;
}

static void launch_rank(ty_controller *ctl, ty_job *j, uint32_t r, const launch_shared *sh) {
  ty_slot *s = &j->slots[j->ranks[r].slot];
  uint32_t gpus[64];
  uint8_t key[TY_TOKEN_KEY_LEN];
  ty_task_spec t;
  task_spec(ctl, j, r, gpus, key, sh, &t);
  ty_buf b;
  ty_buf_init(&b);
  launch_ctx *lc = ty_xcalloc(1, sizeof(*lc));
  *lc = (launch_ctx){ctl, j->id, j->run, r};
  int rc = ty__conv_launch_req(&t, &b);
  if (rc == 0)
    ty__node_call(ctl, s->node, TY_M_LAUNCH_TASK, &b, TY__TASK_CALL_TIMEOUT_MS, on_launch_answer,
                  lc);
  ty_buf_close(&b);
  memset(key, 0, sizeof(key));
  if (rc != 0) {
    free(lc);
    ty_warn("job %llu rank %u: cannot send LaunchTask to %s: %s", (unsigned long long)j->id, r,
            s->node->name, ty_strerror(rc));
    return; /* stays RANK_WAIT: retried when the node re-registers */
  }
  j->ranks[r].state = RANK_LAUNCHING;
}

void ty__job_launch(ty_controller *ctl, ty_job *j) {
  if (ctl->stopping || j->state != TY_JOB_RUNNING) return;
  char err[TY_ERR_LEN];
  if (ty__job_untrim(j, err, sizeof err) != 0) { /* argv and env, from its stored spec */
    ty__job_launch_failed(ctl, j, 0, err);
    return;
  }
  launch_shared sh;
  ty_buf_init(&sh.model);
  ty_buf_init(&sh.nodelist);
  const char **names = ty_xcalloc(j->n_slots ? j->n_slots : 1, sizeof *names);
  for (uint32_t s = 0; s < j->n_slots; s++)
    names[s] = j->slots[s].node->name;
  ty_hostlist_write(names, j->n_slots, &sh.nodelist);
  free(names);
  bool read = false;
  for (uint32_t r = 0; r < j->n_ranks && j->state == TY_JOB_RUNNING; r++) {
    ty_cluster_node *n = j->slots[j->ranks[r].slot].node;
    if (j->ranks[r].state != RANK_WAIT || !n->conn) continue;
    if (j->model_file && !read) {
      /* The model lives on disk, not in memory: read once per launch. */
      char err[TY_ERR_LEN];
      read = true;
      if (ty__model_read(j->model_file, &sh.model, err, sizeof(err)) != 0) {
        ty__job_launch_failed(ctl, j, r, err);
        break;
      }
    }
    launch_rank(ctl, j, r, &sh);
  }
  ty_buf_close(&sh.model);
  ty_buf_close(&sh.nodelist);
}

typedef struct start_ctx {
  ty_controller *ctl;
  uint64_t job_id;
  uint32_t run;
  bool first; /* the job's first start: `after:` conditions it met */
} start_ctx;

/* The job's RUNNING record was not stored (a full or read-only state
 * directory): a restarted controller would find it PENDING and place it
 * again while this run went on, so it is not launched. It is PENDING again
 * in memory, its slots free, and waits until the store writes again
 * (resync.c clears store_wait), when the scheduler places it anew. */
static void start_not_stored(ty_controller *ctl, ty_job *j, int status, bool first) {
  ty_error("job %llu: its RUNNING record was not stored (%s): not launched; pending until the "
           "store writes again",
           (unsigned long long)j->id, ty_strerror(status));
  ty__job_drop_slots(j);
  j->store_wait = true;
  ty_txn *t = ty_txn_create();
  ty__job_transition(ctl, j, TY_JOB_PENDING, TY__STORE_WAIT_REASON, "controller", t);
  if (first) { /* it has not begun: `after:` waits on */
    j->start_ms = 0;
    ty__deps_start_undone(ctl, j);
    ty__job_save(ctl, j, t);
  }
  ty__deps_recheck_after(ctl, j); /* its own start may have rested on one not stored */
  ty__commit(ctl, t, NULL, NULL);
}

static void on_start_committed(int status, void *ud) {
  start_ctx *sc = ud;
  ty_job *j = ty__job_find(sc->ctl, sc->job_id);
  bool current = j && j->run == sc->run && j->state == TY_JOB_RUNNING;
  if (current && status != 0 && !sc->ctl->stopping) {
    start_not_stored(sc->ctl, j, status, sc->first);
  } else if (current && status == 0) {
    j->clock.running = uv_hrtime();
    ty__job_launch(sc->ctl, j);
    j->clock.launched = uv_hrtime();
  }
  free(sc);
}

void ty__job_start(ty_controller *ctl, ty_job *j, ty_slot *slots, uint32_t n_slots) {
  ty__job_set_slots(j, slots, n_slots);
  if (j->spec.kind == TY_JOB_KIND_GRAPH) ty__graph_job_started(ctl, j);
  j->run++;
  j->acct_run = j->requeue_count + 1;
  j->alloc_cpus = j->alloc_gpus = 0;
  for (uint32_t i = 0; i < n_slots; i++) {
    j->alloc_cpus += slots[i].cpus;
    j->alloc_gpus += (uint32_t)__builtin_popcountll(slots[i].gpus);
  }
  j->exit_code = 0;
  j->term_signal = 0;
  j->first_failed = 0;
  j->clock.pass = ctl->pass_t0_ns;
  j->clock.placed = uv_hrtime();
  j->clock.running = j->clock.launched = j->clock.last_update = j->clock.ended = 0;
  bool first = j->start_ms == 0;
  ty_txn *t = ty_txn_create();
  ty__job_transition(ctl, j, TY_JOB_RUNNING, "", "scheduler", t);
  start_ctx *sc = ty_xcalloc(1, sizeof(*sc));
  *sc = (start_ctx){ctl, j->id, j->run, first};
  ty__commit(ctl, t, on_start_committed, sc);
}
