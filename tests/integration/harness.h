/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Integration-test harness: starts a real traind and real trainworkerd
 * processes on loopback with ephemeral ports (found through --port-file),
 * in a private temporary directory, and tears them down by PID. With
 * it_cluster_start_hosts each daemon runs on a virtual host of its own
 * instead (netns.h: a network namespace, its own address on a bridge). Tests talk
 * to the controller through lib/rpc's blocking client and to the CLI by
 * running the real trainctl binary.
 *
 * Binaries come from the environment meson sets: TY_TRAIND, TY_TRAINWORKERD,
 * TY_TRAINCTL. Daemon output goes to DIR/<name>.stderr for post-mortems.
 *
 * Authentication is on, as in production: each cluster gets a private
 * munged (its own key and socket, tests/support/munged.h), traind lists the
 * workers in auth.nodes, every client request carries a MUNGE credential
 * (TRAINYARD_MUNGE_SOCKET points trainctl and rlaunch at it). Daemons die
 * with the test process (PR_SET_PDEATHSIG); test users (it_user_add) are
 * removed when the cluster stops and, failing that, at exit.
 */
#ifndef TY_TESTS_INTEGRATION_HARNESS_H
#define TY_TESTS_INTEGRATION_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "proto/trainyard.pb-c.h"
#include "tests/integration/netns.h"
#include "tests/support/munged.h"

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
  ty_test_munged munged;
  char config[300];      /* traind --config: auth.nodes and the options' lines */
  char cluster_key[300]; /* with key_workers */
  /* How a cluster starts (it_cluster_start_with); all fields optional. */
  struct it_options {
    const char *config_extra; /* more `key = value` lines for traind --config */
    bool auth_none;           /* --auth none everywhere, no munged */
    bool key_workers;         /* auth.workers = key with DIR/cluster.key */
    int node_timeout_ms;      /* traind --node-timeout-ms (0 = 5000; 10000 under sanitizers) */
    const char *const *traind_args; /* more traind arguments (NULL-terminated, borrowed) */
    const char *const *worker_args; /* more trainworkerd flags (the same) */
    /* Hosts to run on (netns.h; borrowed, outlives the cluster): traind
     * in host 0, worker i in host i + 1, each listening on and advertising
     * its host's address; NULL = everything on 127.0.0.1. */
    const it_net *net;
    /* Workers listen for task I/O on 0.0.0.0 and advertise the address
     * facing the controller (no --advertise); else on their host's address. */
    bool wildcard_io;
  } opts;
  /* Extra traind arguments (from opts.traind_args, replaceable before a
   * restart; NULL-terminated, borrowed; at most 24). */
  const char *const *traind_args;
  /* More trainworkerd flags (NULL-terminated, may be NULL; borrowed). */
  const char *const *worker_extra;
} it_cluster;
typedef struct it_options it_options;

/* The address clients use for the controller ("127.0.0.1", or host 0's),
 * and the one worker i listens on. */
const char *it_controller_host(const it_cluster *c);
const char *it_worker_host(const it_cluster *c, size_t i);

/* Creates the directory and starts the controller and n workers (cpus each),
 * then waits until every node is UP. Aborts the test on failure. */
void it_cluster_start(it_cluster *c, size_t n_workers, int cpus);
/* The same with relative_state set. */
void it_cluster_start_relative(it_cluster *c, size_t n_workers, int cpus);
/* The same with options (auth, traind and worker flags, kept for restarts). */
void it_cluster_start_with(it_cluster *c, size_t n_workers, int cpus, const it_options *o);
/* The same on virtual hosts (netns.h): skips the test unless it can make
 * them, then creates `net` with hosts "ctl" (traind) and "w1".."wN" (the
 * workers, named as their hosts). The caller destroys net after
 * it_cluster_stop (an atexit handler does when a test fails). */
void it_cluster_start_hosts(it_cluster *c, it_net *net, size_t n_workers, int cpus,
                            const it_options *o);
/* (Re)starts the controller on the same state dir and rpc port. */
void it_controller_start(it_cluster *c);
/* Restarts the controller: kill -9, or SIGTERM (as an upgrade stops it)
 * waited for; then it_controller_start. */
void it_controller_restart(it_cluster *c, bool kill9);
void it_worker_start(it_cluster *c, size_t i, int cpus);
/* SIGKILL, then reap. */
void it_kill9(pid_t *pid);
/* Stops the daemons and removes the test users; the cluster's directory
 * goes when the test process exits (cleanup.h; TY_IT_KEEP=1 keeps it). */
void it_cluster_stop(it_cluster *c);

/* A client whose requests carry root's MUNGE credential (an operator). */
ty_rpc_client *it_client(const it_cluster *c);
/* The same as another user: the client runs in a child process that setuid
 * to uid, so its credentials are that user's. Calls one method with `req`
 * and returns the answer's status, its message in msg. */
int it_call_as(const it_cluster *c, uid_t uid, gid_t gid, const char *method, const ty_buf *req,
               char *msg, size_t msg_len);
/* In a child of it_as: a client carrying the MUNGE credential of the user
 * that child now is (it exits 121 when it cannot open one). */
ty_rpc_client *it_client_self(const it_cluster *c);
/* Runs fn in a child process that setuid to uid/gid (so a client it opens
 * carries that user's credentials); fn returns a status and may write a
 * message into its msg. Returns that status, the message in msg (may be
 * NULL). fn may _exit(non-zero) to fail the test. */
int it_as(uid_t uid, gid_t gid, int (*fn)(void *ud, char *msg, size_t msg_len), void *ud, char *msg,
          size_t msg_len);

/* Creates a user "tyit<pid>x<n>" (useradd) and returns its name, uid and
 * gid; skips the test when not root. Removed by it_cluster_stop or at exit. */
void it_user_add(char *name, size_t name_len, uid_t *uid, gid_t *gid);
/* Creates a group "tyit<pid>g<n>" (groupadd) with `member` (a user of
 * it_user_add) as a supplementary member; removed with the users. */
void it_group_add(char *name, size_t name_len, const char *member);
/* Removes every user it_user_add made and every group of it_group_add
 * (also run at exit). */
void it_users_remove(void);
/* Removes one of them now (userdel). */
void it_user_del(const char *name);
/* Runs a binary (TY_TRAINCTL, TY_RLAUNCH...) with the cluster's address as
 * uid/gid, from cwd; returns its exit status, stdout in *out and stderr in
 * *err (heap strings; either may be NULL). */
int it_run_as(const it_cluster *c, uid_t uid, gid_t gid, const char *cwd, char **out, char **err,
              const char *const *argv);
/* Runs TY_TRAINCTL with args as uid/gid from cwd, as it_run_as does. */
int it_trainctl_as(const it_cluster *c, uid_t uid, gid_t gid, const char *cwd, char **out,
                   char **err, const char *const *args);
/* Submits `sh -c script` as a command job; returns 0 and the id, or the
 * error status of the answer (message copied to err when not NULL). */
int it_submit_sh(ty_rpc_client *cl, const char *script, const char *name, uint64_t *out_id,
                 char *err, size_t err_len);
/* The same as a gang of one rank on each of `nodes` nodes. */
int it_submit_sh_nodes(ty_rpc_client *cl, const char *script, const char *name, uint32_t nodes,
                       uint64_t *out_id, char *err, size_t err_len);
int it_submit_job(ty_rpc_client *cl, Trainyard__Job *job, uint64_t *out_id, char *err,
                  size_t err_len);
/* The same with a SubmitJob request id (NULL = none). */
int it_submit_job_id(ty_rpc_client *cl, Trainyard__Job *job, const char *request_id,
                     uint64_t *out_id, char *err, size_t err_len);
/* Fetches a job; caller frees with trainyard__get_job_response__free_unpacked. */
Trainyard__GetJobResponse *it_get_job(ty_rpc_client *cl, uint64_t id);
/* Every job (ListJobs without a filter); aborts the test when the call
 * fails. Caller frees with trainyard__list_jobs_response__free_unpacked. */
Trainyard__ListJobsResponse *it_list_jobs(ty_rpc_client *cl);
/* The same with a request's filters (states, fold_arrays...). */
Trainyard__ListJobsResponse *it_list_jobs_req(ty_rpc_client *cl,
                                              const Trainyard__ListJobsRequest *req);
/* Polls until the job is in `state` (or any final state when state is 0);
 * returns the final JobInfo response or NULL on timeout. */
Trainyard__GetJobResponse *it_wait_job(ty_rpc_client *cl, uint64_t id, int state, int timeout_ms);
/* The same, failing the test on timeout: the state reached (`state`, or
 * the final one when state is 0). */
int it_wait_state(ty_rpc_client *cl, uint64_t id, int state, int timeout_ms);
/* The job's state now; fails the test when the job is not found. */
int it_job_state(ty_rpc_client *cl, uint64_t id);
size_t it_count_nodes_in_state(ty_rpc_client *cl, int state);
bool it_wait_nodes(ty_rpc_client *cl, size_t n, int state, int timeout_ms);

/* Runs trainctl with the cluster's address and the given arguments; returns
 * its exit status and its stdout in a heap string (*out, may be NULL). */
int it_trainctl(const it_cluster *c, char **out, const char *const *args);
/* Asserts that `text` has each of want[] (NULL-terminated) exactly once,
 * in that order (what: whose text, for the message). */
void it_expect_in_order(const char *text, const char *const *want, const char *what);
/* Asserts that `trainctl history --job ID --ranks` shows rank 0 of run
 * `run` of job id in `state` (its STATE cell: how the run ended). */
void it_expect_run_state(const it_cluster *c, uint64_t id, uint32_t run, const char *state);
/* The same with its stderr in *err_out (a heap string) too. */
int it_trainctl_err(const it_cluster *c, char **out, char **err_out, const char *const *args);
/* TY_TRAINCTL with args, which must exit 0 (the test fails naming its
 * stderr otherwise); stdout in *out (heap; may be NULL). Returns 0. */
int it_trainctl_ok(const it_cluster *c, char **out, const char *const *args);
/* Starts `trainctl ARGS` (at most 12) in the background with the
 * cluster's address, its stdout and stderr appended to `log`. */
pid_t it_trainctl_spawn(const it_cluster *c, const char *log, const char *const *args);
/* Its exit status (128 + the signal that killed it); fails the test, killing
 * it and showing `log`, when it runs past timeout_ms. */
int it_wait_exit(pid_t pid, const char *log, int timeout_ms);
/* Waits up to 20 s for `log` to hold `want`; fails the test otherwise. */
void it_wait_log(const char *log, const char *want);
/* Whether the first worker said at start that tasks run in their own
 * cgroups (then their CPU time and memory are measured). */
bool it_worker_has_cgroups(const it_cluster *c);
/* A raw TCP connection to 127.0.0.1:port, for peers that misbehave. */
int it_raw_connect(int port);
/* A loopback port free a moment ago (for a third-party server the test
 * starts, such as Prometheus). */
int it_free_port(void);
/* True when the peer closes fd (EOF or reset) within ~5 s, reading and
 * dropping whatever it sends first. */
bool it_closed_by_peer(int fd);
/* trainctl submit --quiet ARGS... (NULL-terminated, at most 29: a script,
 * --wrap, options): the id it printed; fails the test when the submit fails. */
uint64_t it_submit_quiet(const it_cluster *c, const char *const *args);
/* The same with --command first (at most 28 ARGS). */
uint64_t it_submit_cli(const it_cluster *c, const char *const *args);
/* Fetches http://127.0.0.1:port/metrics into a heap string. */
char *it_http_get_metrics(int port);
/* The same from HOST:port. */
char *it_http_get_metrics_at(const char *host, int port);
/* The sum of the values of every sample line of a Prometheus text `scrape`
 * that starts with `prefix` (a name, or a name and the start of its labels:
 * "x_total{method=\"Submit\","), or NAN when no line does. */
double it_metric_in(const char *scrape, const char *prefix);
/* it_metric_in over a fresh scrape of http://127.0.0.1:port/metrics. */
double it_metric(int port, const char *prefix);
/* GET http://127.0.0.1:port PATH (already URL-encoded): the body as a heap
 * string and the status in *out_status (may be NULL); NULL when nothing
 * listens or no answer came. */
char *it_http_get(int port, const char *path, int *out_status);
/* The same from HOST (a numeric IPv4 address). */
char *it_http_get_at(const char *host, int port, const char *path, int *out_status);
/* Starts argv[0] (an absolute path) in its own process group, in cwd (NULL:
 * here), stdout and stderr appended to logpath. */
pid_t it_spawn(const char *cwd, const char *logpath, char *const argv[]);
/* Starts Prometheus (the binary prom) in cwd with --config.file=cfg and
 * --storage.tsdb.path=data, logging to logpath, on a port of
 * it_free_port's, and waits up to 30 s until it is ready there. The port
 * is free when picked, not when Prometheus binds it: a test binary beside
 * this one may take it meanwhile, and Prometheus then exits; it is started
 * again on another port (5 tries). The one that answers must name `data`
 * among its flags. Returns the port; its pid in *pid. */
int it_prometheus_start(const char *prom, const char *cwd, const char *cfg, const char *data,
                        const char *logpath, pid_t *pid);

/* Whether the daemons under test are sanitizer builds: deploy/test.sh's
 * pass 2 (ASan+UBSan) sets TY_TEST_SUBSET, its pass 3 TSAN_OPTIONS. */
bool it_sanitized(void);
/* Skips the test in those passes, naming `covered_by`: the test that runs
 * the same daemon paths under both sanitizers. deploy/test.sh's pass 1
 * runs it. */
void it_unsanitized_only(const char *covered_by);
/* Skips the test in pass 2 alone (TY_TEST_SUBSET, tests/support/subset.h),
 * naming `covered_by`: the test that runs its daemon paths under ASan. */
void it_full_pass_only(const char *covered_by);

bool it_is_final(int state);
void it_sleep_ms(int ms);
/* The whole text of a file (NUL-terminated), or NULL when it cannot be
 * opened; the caller frees. */
char *it_read_text(const char *path);
/* How many lines the file at path holds (0 when it cannot be read). */
int it_count_lines(const char *path);
/* The path of a binary under test from its environment variable
 * (TY_TRAIND...); fails the test when meson test did not set it. */
const char *it_bin(const char *var);

#endif
