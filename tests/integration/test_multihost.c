/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Many hosts on one machine (issue 19): the controller and each worker run
 * in their own network namespace and UTS namespace (tests/integration/
 * netns.h), with their own address on a bridge, so nothing can reach a
 * daemon through 127.0.0.1 and Open MPI sees distinct hosts. What a real
 * cluster of hosts needs is checked end to end:
 *
 *   - a command job's gang spans three hosts, each rank on its own host
 *     with MASTER_ADDR the address rank 0's worker advertises; trainctl
 *     logs reaches each worker by its advertised address;
 *   - rlaunch, from the test's own namespace, runs a command on a worker
 *     and streams its output straight from the worker's address;
 *   - a data-parallel graph job whose MPI world spans three hosts, and a
 *     tensor-parallel planned one across two, end with the weights of a
 *     single process.
 *
 * Partitions and fencing are test_partition.c's. Every test skips (with the
 * reason) unless it runs as root with `ip netns` available.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/train_config.pb-c.h"
#include "tests/integration/ranks.h"

#define STEPS 12

/* The host (index in net) whose name is `name`, or -1. */
/* A failed assertion ends the test without atexit handlers: its hosts go here. */
TestSuite(multihost, .fini = it_net_destroy_all);

static int host_named(const it_net *net, const char *name) {
  for (size_t i = 0; i < net->n_hosts; i++)
    if (strcmp(net->host[i], name) == 0) return (int)i;
  return -1;
}

static uint64_t submit_gang(ty_rpc_client *cl, const char *script, uint32_t nodes) {
  uint64_t id = 0;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(it_submit_sh_nodes(cl, script, "gang", nodes, &id, err, sizeof err), 0, "submit: %s",
               err);
  return id;
}

static void expect_completed(const it_cluster *c, ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 120000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c->dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "job ended %d: %s (logs in %s)",
               r->job->state, r->job->reason, c->dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
}

/* DIR/rank.R holds "HOSTNAME MASTER_ADDR" as rank R saw them. */
static void read_rank(const it_cluster *c, int rank, char *host, char *master) {
  char path[400];
  snprintf(path, sizeof path, "%s/rank.%d", c->dir, rank);
  FILE *f = fopen(path, "r");
  cr_assert(f, "rank %d wrote no %s (logs in %s)", rank, path, c->dir);
  cr_assert_eq(fscanf(f, "%31s %31s", host, master), 2, "%s: not HOST ADDR", path);
  fclose(f);
}

/* The workers listen on every address and advertise, without --advertise,
 * the one facing the controller: MASTER_ADDR and trainctl logs use it. */
Test(multihost, command_gang_spans_three_hosts_with_master_addr, .timeout = 120) {
  it_cluster c;
  it_net net;
  it_cluster_start_hosts(&c, &net, 3, 1, &(it_options){.wildcard_io = true});
  ty_rpc_client *cl = it_client(&c);
  char script[600];
  snprintf(script, sizeof script,
           "echo \"$(hostname) $MASTER_ADDR\" > %s/rank.$RANK; echo \"rank $RANK on $(hostname)\"",
           c.dir);
  uint64_t id = submit_gang(cl, script, 3);
  expect_completed(&c, cl, id);
  char host[3][32], master[3][32]; /* fscanf: %31s */
  for (int r = 0; r < 3; r++)
    read_rank(&c, r, host[r], master[r]);
  int h0 = host_named(&net, host[0]);
  cr_assert(h0 > 0, "rank 0 ran on \"%s\", not a worker host", host[0]);
  for (int r = 0; r < 3; r++) {
    cr_assert(host_named(&net, host[r]) > 0, "rank %d ran on \"%s\"", r, host[r]);
    for (int q = 0; q < r; q++)
      cr_assert_str_neq(host[r], host[q], "ranks %d and %d both ran on %s", q, r, host[r]);
    cr_assert_str_eq(master[r], net.addr[h0], "rank %d: MASTER_ADDR %s, rank 0's host is %s", r,
                     master[r], net.addr[h0]);
  }
  /* trainctl logs reads each rank's log from its worker's address. */
  char num[32], *out = NULL;
  snprintf(num, sizeof num, "%llu", (unsigned long long)id);
  for (int r = 0; r < 3; r++) {
    char rank[16], want[160];
    snprintf(rank, sizeof rank, "%d", r);
    snprintf(want, sizeof want, "rank %d on %s", r, host[r]);
    cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"logs", num, "--rank", rank, NULL}), 0);
    cr_assert(strstr(out, want), "logs of rank %d: %s", r, out);
    free(out);
  }
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
  it_net_destroy(&net);
}

Test(multihost, rlaunch_reaches_a_worker_by_its_address, .timeout = 120) {
  it_cluster c;
  it_net net;
  it_cluster_start_hosts(&c, &net, 3, 1, NULL);
  const char *rl = rk_env("TY_RLAUNCH");
  char *out = NULL, *err = NULL;
  int code = it_run_as(&c, 0, 0, c.dir, &out, &err,
                       (const char *[]){rl, "--", "/bin/sh", "-c", "hostname; exit 7", NULL});
  cr_assert_eq(code, 7, "rlaunch exited %d: %s (logs in %s)", code, err, c.dir);
  out[strcspn(out, "\n")] = '\0';
  cr_assert(host_named(&net, out) > 0, "rlaunch's command ran on \"%s\", not a worker", out);
  free(out), free(err);
  /* One rank on each host, each line labelled with its rank. */
  code = it_run_as(&c, 0, 0, c.dir, &out, &err,
                   (const char *[]){rl, "--nodes", "3", "--label", "--", "hostname", NULL});
  cr_assert_eq(code, 0, "rlaunch --nodes 3 exited %d: %s", code, err);
  for (int h = 1; h <= 3; h++) {
    char line[64];
    snprintf(line, sizeof line, ": %s\n", net.host[h]);
    cr_assert(strstr(out, line), "no rank ran on %s: %s", net.host[h], out);
  }
  free(out), free(err);
  /* stdin travels to the worker and back. */
  char in[400];
  snprintf(in, sizeof in, "%s/in.txt", c.dir);
  FILE *f = fopen(in, "w");
  cr_assert(f);
  fputs("across hosts\n", f);
  fclose(f);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "%s -- /bin/cat < %s", rl, in);
  code = it_run_as(&c, 0, 0, c.dir, &out, &err, (const char *[]){"/bin/sh", "-c", cmd, NULL});
  cr_assert_eq(code, 0, "rlaunch cat exited %d: %s", code, err);
  cr_assert_str_eq(out, "across hosts\n");
  free(out), free(err);
  it_cluster_stop(&c);
  it_net_destroy(&net);
}

/* The MLP's config for STEPS steps with a global batch of 48 (shared
 * evenly by 2 or 3 ranks), checkpointing to ckpt. */
static uint8_t *config_48(const char *ckpt, size_t *out_len) {
  size_t n;
  uint8_t *raw = rk_make_config(STEPS, 0, ckpt, &n);
  Trainyard__TrainConfig *t = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(t);
  t->batch_size = 48;
  *out_len = trainyard__train_config__get_packed_size(t);
  uint8_t *out = malloc(*out_len + 1);
  trainyard__train_config__pack(t, out);
  trainyard__train_config__free_unpacked(t, NULL);
  free(raw);
  return out;
}

/* One process's weights after the same STEPS steps of the same batch. */
static void reference_48(const it_cluster *c, char *out, size_t n) {
  char cfg[400], log[400];
  snprintf(out, n, "%s/ref48.onnx", c->dir);
  snprintf(cfg, sizeof cfg, "%s/ref48.pb", c->dir);
  snprintf(log, sizeof log, "%s/ref48.log", c->dir);
  size_t len;
  uint8_t *b = config_48(out, &len);
  rk_write_file(cfg, b, len);
  free(b);
  cr_assert_eq(rk_wait_exit(rk_start(rk_env("TY_MLP_ONNX"), cfg, 0, 1, 0, 1, log, NULL)), 0,
               "reference run failed: %s", log);
}

/* Trains the MLP on nodes x 1 ranks, one per host, and compares the
 * weights with one process's. */
static void expect_world_across_hosts(uint32_t nodes, int parallelism, const char *tag) {
  static const char *const rates[] = {
      "--plan-device-flops", "1e11", "--plan-intra-gbps", "10", "--plan-inter-gbps", "1.25", NULL};
  it_cluster c;
  it_net net;
  it_cluster_start_hosts(&c, &net, nodes, 1, &(it_options){.traind_args = rates});
  char ref[400], out[400];
  reference_48(&c, ref, sizeof ref);
  snprintf(out, sizeof out, "%s/%s.onnx", c.dir, tag);
  size_t len;
  uint8_t *cfg = config_48(out, &len);
  rk_job j;
  rk_graph_job(&j, nodes, 1, cfg, len, parallelism);
  j.job.name = (char *)tag;
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = 0;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof err), 0, "submit: %s", err);
  expect_completed(&c, cl, id);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4, "%s across %u hosts: weights differ from one process's by %g (logs in %s)",
            tag, nodes, d, c.dir);
  /* Every host ran a rank: its log is in that worker's state dir. */
  for (uint32_t w = 0; w < nodes; w++) {
    char log[500];
    snprintf(log, sizeof log, "%s/%s/jobs/%llu/rank0.log", c.dir, c.name[w],
             (unsigned long long)id);
    for (uint32_t r = 1; r < nodes && access(log, R_OK) != 0; r++)
      snprintf(log, sizeof log, "%s/%s/jobs/%llu/rank%u.log", c.dir, c.name[w],
               (unsigned long long)id, r);
    cr_assert_eq(access(log, R_OK), 0, "no rank ran on %s (logs in %s)", c.name[w], c.dir);
  }
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
  it_net_destroy(&net);
}

Test(multihost, data_parallel_world_spans_three_hosts, .timeout = 300) {
  expect_world_across_hosts(3, TRAINYARD__PARALLELISM__PARALLELISM_DATA, "dp3");
}

Test(multihost, tensor_parallel_plan_across_two_hosts, .timeout = 300) {
  expect_world_across_hosts(2, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR, "tp2");
}
