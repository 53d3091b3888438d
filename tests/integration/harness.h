/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Integration-test harness: starts a real traind and real trainworkerd
 * processes on loopback with ephemeral ports (found through --port-file),
 * in a private temporary directory, and tears them down by PID. Tests talk
 * to the controller through lib/rpc's blocking client and to the CLI by
 * running the real trainctl binary.
 *
 * Binaries come from the environment meson sets: TY_TRAIND, TY_TRAINWORKERD,
 * TY_TRAINCTL. Daemon output goes to DIR/<name>.stderr for post-mortems.
 */
#ifndef TY_TESTS_INTEGRATION_HARNESS_H
#define TY_TESTS_INTEGRATION_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "proto/trainyard.pb-c.h"

#define IT_MAX_WORKERS 4

typedef struct it_cluster {
  char dir[256];
  pid_t traind;
  int rpc_port, metrics_port;
  size_t n_workers;
  pid_t worker[IT_MAX_WORKERS];
  int io_port[IT_MAX_WORKERS], worker_metrics_port[IT_MAX_WORKERS];
  char name[IT_MAX_WORKERS][32];
  int node_timeout_ms;
  /* Daemons run with DIR as cwd and relative --state-dir paths (as
   * deploy/cluster.sh is often used), to catch paths handed to tasks that
   * only make sense from the daemon's own cwd. */
  bool relative_state;
  /* Extra traind arguments (NULL-terminated, borrowed; at most 24). */
  const char *const *traind_args;
  /* More trainworkerd flags (NULL-terminated, may be NULL; borrowed). */
  const char *const *worker_extra;
} it_cluster;

/* Creates the directory and starts the controller and n workers (cpus each),
 * then waits until every node is UP. Aborts the test on failure. */
void it_cluster_start(it_cluster *c, size_t n_workers, int cpus);
/* The same with a node timeout (0 = 1500 ms) and more traind flags. */
void it_cluster_start_with(it_cluster *c, size_t n_workers, int cpus, int node_timeout_ms,
                           const char *const *traind_args);
/* The same with relative_state set. */
void it_cluster_start_relative(it_cluster *c, size_t n_workers, int cpus);
/* The same with extra traind arguments (kept for restarts). */
void it_cluster_start_args(it_cluster *c, size_t n_workers, int cpus,
                           const char *const *traind_args);
/* The same with more trainworkerd flags (kept for restarts). */
void it_cluster_start_workers_with(it_cluster *c, size_t n_workers, int cpus,
                                   const char *const *worker_extra);
/* (Re)starts the controller on the same state dir and rpc port. */
void it_controller_start(it_cluster *c);
void it_worker_start(it_cluster *c, size_t i, int cpus);
/* SIGKILL, then reap. */
void it_kill9(pid_t *pid);
/* Kills everything by PID and removes nothing (logs stay for post-mortems). */
void it_cluster_stop(it_cluster *c);

ty_rpc_client *it_client(const it_cluster *c);
/* Submits `sh -c script` as a command job; returns 0 and the id, or the
 * error status of the answer (message copied to err when not NULL). */
int it_submit_sh(ty_rpc_client *cl, const char *script, const char *name, uint64_t *out_id,
                 char *err, size_t err_len);
int it_submit_job(ty_rpc_client *cl, Trainyard__Job *job, uint64_t *out_id, char *err,
                  size_t err_len);
/* The same with a SubmitJob request id (NULL = none). */
int it_submit_job_id(ty_rpc_client *cl, Trainyard__Job *job, const char *request_id,
                     uint64_t *out_id, char *err, size_t err_len);
/* Fetches a job; caller frees with trainyard__get_job_response__free_unpacked. */
Trainyard__GetJobResponse *it_get_job(ty_rpc_client *cl, uint64_t id);
/* Polls until the job is in `state` (or any final state when state is 0);
 * returns the final JobInfo response or NULL on timeout. */
Trainyard__GetJobResponse *it_wait_job(ty_rpc_client *cl, uint64_t id, int state, int timeout_ms);
size_t it_count_nodes_in_state(ty_rpc_client *cl, int state);
bool it_wait_nodes(ty_rpc_client *cl, size_t n, int state, int timeout_ms);

/* Runs trainctl with the cluster's address and the given arguments; returns
 * its exit status and its stdout in a heap string (*out, may be NULL). */
int it_trainctl(const it_cluster *c, char **out, const char *const *args);
/* The same with its stderr in *err_out (a heap string) too. */
int it_trainctl_err(const it_cluster *c, char **out, char **err_out, const char *const *args);
/* A raw TCP connection to 127.0.0.1:port, for peers that misbehave. */
int it_raw_connect(int port);
/* True when the peer closes fd (EOF or reset) within ~5 s, reading and
 * dropping whatever it sends first. */
bool it_closed_by_peer(int fd);
/* Fetches http://127.0.0.1:port/metrics into a heap string. */
char *it_http_get_metrics(int port);
/* GET http://127.0.0.1:port PATH (already URL-encoded): the body as a heap
 * string and the status in *out_status (may be NULL); NULL when nothing
 * listens or no answer came. */
char *it_http_get(int port, const char *path, int *out_status);
/* Starts argv[0] (an absolute path) in its own process group, in cwd (NULL:
 * here), stdout and stderr appended to logpath. */
pid_t it_spawn(const char *cwd, const char *logpath, char *const argv[]);

bool it_is_final(int state);
void it_sleep_ms(int ms);

#endif
