/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A graph job's Open MPI world through real daemons (part of the graph
 * program, test_graph.c):
 *   - a RendezvousPut without a rank's token, or with garbage, is refused;
 *   - ranks of workers started with --mpi-if-include lo (as the harness
 *     starts them) leave a bridge on the host alone;
 *   - a graph job's --export reaches its ranks' environment, as a command's.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/methods.h"
#include "tests/integration/ranks.h"

/* A data-parallel graph job of `nodes` x `tpn` ranks training cfg. */
static uint64_t submit_graph(ty_rpc_client *cl, uint32_t nodes, uint32_t tpn, const uint8_t *cfg,
                             size_t cfg_len) {
  rk_job j;
  rk_graph_job(&j, nodes, tpn, cfg, cfg_len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof err), 0, "submit: %s", err);
  return id;
}

/* One RendezvousPut for job `id` with cred (cred_len bytes; NULL: none):
 * the status and message. */
static int rdv_put(const it_cluster *c, uint64_t id, const void *cred, size_t cred_len, char *msg,
                   size_t msg_len) {
  ty_rpc_client *cl = it_client(c);
  if (cred) ty_rpc_client_set_credential(cl, cred, cred_len);
  Trainyard__RendezvousPutRequest m = TRAINYARD__RENDEZVOUS_PUT_REQUEST__INIT;
  m.job_id = id;
  m.key = "rank0";
  m.value.data = (uint8_t *)"addr";
  m.value.len = 4;
  uint8_t buf[256];
  size_t n = trainyard__rendezvous_put_request__pack(&m, buf);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(cl, TY_M_RENDEZVOUS_PUT, buf, n, 10000, &res);
  if (rc == 0) rc = res.status;
  snprintf(msg, msg_len, "%s", res.message);
  ty_rpc_result_close(&res);
  ty_rpc_client_close(cl);
  return rc;
}

/* Only the job's ranks (tokens the worker signs with the job's key) may
 * rendezvous; a client without one, or with garbage, is refused, and so is
 * a command job's owner with its token. */
Test(graph, rendezvous_without_valid_token_refused, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2); /* the graph job's rank and the command job's */
  size_t len;
  uint8_t *cfg = rk_make_config(100000, 0, NULL, &len);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph(cl, 1, 1, cfg, len);
  char want[128], msg[512] = "";
  snprintf(want, sizeof want, "rendezvous for job %llu: missing or invalid token",
           (unsigned long long)id);
  cr_assert_eq(rdv_put(&c, id, NULL, 0, msg, sizeof msg), TY_EPERM, "no credential: %s", msg);
  cr_assert(strstr(msg, want), "message: %s", msg);
  const char *garbage = "garbage-garbage-garbage";
  cr_assert_eq(rdv_put(&c, id, garbage, strlen(garbage), msg, sizeof msg), TY_EPERM, "garbage: %s",
               msg);
  cr_assert(strstr(msg, want), "message: %s", msg);
  /* A command job's owner holds its task tokens (for its logs); its keys
   * once took 16 MiB of traind's memory a job, ended jobs' too. */
  uint64_t cmd = 0;
  cr_assert_eq(it_submit_sh(cl, "true", "not-graph", &cmd, NULL, 0), 0);
  cr_assert_eq(it_wait_state(cl, cmd, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  Trainyard__GetTaskLocationsRequest lr = TRAINYARD__GET_TASK_LOCATIONS_REQUEST__INIT;
  lr.job_id = cmd, lr.want_tokens = true;
  uint8_t buf[64];
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_GET_TASK_LOCATIONS, buf,
                                  trainyard__get_task_locations_request__pack(&lr, buf), 10000,
                                  &res),
               0);
  cr_assert_eq(res.status, 0, "%s", res.message);
  Trainyard__GetTaskLocationsResponse *loc =
      trainyard__get_task_locations_response__unpack(NULL, res.payload_len, res.payload);
  cr_assert(loc && loc->n_tasks == 1 && loc->tasks[0]->token.len > 0);
  int rc = rdv_put(&c, cmd, loc->tasks[0]->token.data, loc->tasks[0]->token.len, msg, sizeof msg);
  cr_expect_eq(rc, TY_ESTATE, "a command job's token: %s", msg);
  cr_expect(strstr(msg, "only a running graph job's ranks rendezvous"), "%s", msg);
  trainyard__get_task_locations_response__free_unpacked(loc, NULL);
  ty_rpc_result_close(&res);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- --mpi-if-include ------------------------------------------------------------ */

/* A bridge in the root namespace, as the multihost tests bring up, named
 * so that their sweep (netns.c) removes it should this process die. */
static char extra_if[16];

static void extra_if_remove(void) {
  char cmd[64];
  snprintf(cmd, sizeof cmd, "ip link del %s 2>/dev/null", extra_if);
  if (extra_if[0] && system(cmd) == 0) extra_if[0] = 0;
}

static void extra_if_add(void) {
  if (geteuid() != 0) cr_skip_test("adding an interface needs root (run the suite as root)");
  snprintf(extra_if, sizeof extra_if, "tyv%dif", (int)getpid());
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "ip link add %s type bridge && ip addr add 198.18.%d.1/24 dev %s && ip link set %s up",
           extra_if, (int)(getpid() % 250), extra_if, extra_if);
  if (system(cmd) != 0) {
    extra_if_remove();
    cr_skip_test("`%s` failed: no bridge to stay away from", cmd);
  }
}

/* Open MPI's TCP transport opens on every interface unless told which
 * (a rank once logged 300,000 failed binds on another test's bridge). The
 * harness starts workers with --mpi-if-include lo; with the transport's
 * verbose output on, the ranks' logs show what it examined: lo, and never
 * the bridge. Without the option they name the bridge. What it checks is
 * Open MPI's choice; under ASan the worker's side (the ranks' environment
 * with the option) is every graph job's. */
Test(graph, ranks_use_only_the_workers_mpi_interfaces, .timeout = 120, .fini = extra_if_remove) {
  it_full_pass_only("two_workers_one_rank_each_match_single_process");
  extra_if_add();
  static const char *const verbose[] = {"--task-env", "OMPI_MCA_btl_base_verbose=100", NULL};
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.worker_args = verbose});
  size_t len;
  uint8_t *cfg = rk_make_config(4, 0, NULL, &len);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph(cl, 1, 2, cfg, len);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 60000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c.dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "job ended %d: %s (logs in %s)",
               r->job->state, r->job->reason, c.dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  for (unsigned rank = 0; rank < 2; rank++) {
    char log[400];
    snprintf(log, sizeof log, "%s/w1/jobs/%llu/rank%u.log", c.dir, (unsigned long long)id, rank);
    size_t n;
    char *text = (char *)rk_read_all(log, &n);
    cr_assert_null(strstr(text, extra_if), "rank %u's Open MPI looked at %s (%s)", rank, extra_if,
                   log);
    /* Open MPI leaves lo out by default: it is there only by the option. */
    cr_assert(strstr(text, "btl:tcp: examining interface lo"),
              "rank %u's Open MPI did not report its interfaces (%s)", rank, log);
    free(text);
  }
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* submit --model ... --export NAME=VALUE: the ranks run with it (it once
 * reached a command's tasks only), and the worker's own variables win. */
Test(graph, a_graph_jobs_export_reaches_its_ranks, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char cfgpath[400], *out = NULL;
  snprintf(cfgpath, sizeof cfgpath, "%s/env.config.pb", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(100000, 0, NULL, &len);
  rk_write_file(cfgpath, cfg, len);
  free(cfg);
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"submit", "-q", "--model", rk_env("TY_MLP_ONNX"), "--config",
                                       cfgpath, "--export", "TY_GRAPH_MARK=seen", "--export",
                                       "TRAINYARD_CONTROLLER=nowhere:1", NULL});
  pid_t pid = 0;
  for (int i = 0; i < 300 && !pid; i++) {
    it_sleep_ms(100);
    pid = rk_find_trainrun(c.dir, NULL, "\nTY_GRAPH_MARK=seen\n");
  }
  cr_assert(pid > 0, "no rank of job %s runs with the job's --export (logs in %s)", out, c.dir);
  cr_assert_eq(rk_find_trainrun(c.dir, NULL, "TRAINYARD_CONTROLLER=nowhere:1"), 0,
               "the job's TRAINYARD_CONTROLLER replaced the worker's");
  free(out);
  it_cluster_stop(&c);
}
