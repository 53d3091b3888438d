/* SPDX-License-Identifier: Apache-2.0 */
/* The integration-test harness: real daemons, loopback, ephemeral ports. */
#include "tests/integration/harness.h"
#include "tests/integration/cleanup.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "proto/methods.h"

void it_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static const char *bin(const char *var) {
  const char *p = getenv(var);
  cr_assert(p && *p, "%s is not set (run through meson test)", var);
  return p;
}

const char *it_controller_host(const it_cluster *c) {
  return c->opts.net ? c->opts.net->addr[0] : "127.0.0.1";
}

const char *it_worker_host(const it_cluster *c, size_t i) {
  return c->opts.net ? c->opts.net->addr[i + 1] : "127.0.0.1";
}

/* Starts argv in host `host` of `net` (none when net is NULL). */
static pid_t spawn_in(const char *cwd, const char *logpath, char *const argv[], const it_net *net,
                      size_t host) {
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
    if (net && it_net_enter(net, host) != 0) {
      fprintf(stderr, "cannot enter host %s: %s\n", net->host[host], strerror(errno));
      _exit(125);
    }
    if (cwd && chdir(cwd) != 0) _exit(126);
    execv(argv[0], argv);
    _exit(127);
  }
  it_cleanup_track_pid(pid);
  return pid;
}

static pid_t spawn(const char *cwd, const char *logpath, char *const argv[]) {
  return spawn_in(cwd, logpath, argv, NULL, 0);
}

/* Reads "key=PORT" from a port file written by a daemon; waits for it. */
static int read_port(const char *path, const char *key, pid_t pid) {
  for (int i = 0; i < 1000; i++) {
    FILE *f = fopen(path, "r");
    if (f) {
      char line[128];
      size_t klen = strlen(key);
      while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
          fclose(f);
          return atoi(line + klen + 1);
        }
      }
      fclose(f);
    }
    int st;
    cr_assert(waitpid(pid, &st, WNOHANG) == 0, "daemon exited before writing %s", path);
    it_sleep_ms(10);
  }
  cr_assert_fail("no %s in %s after 10 s", key, path);
  return -1;
}

/* Appends --auth none at the first of the two spare NULLs of argv. */
static void no_auth(char **argv) {
  size_t n = 0;
  while (argv[n])
    n++;
  argv[n] = "--auth", argv[n + 1] = "none";
}

/* Appends --auth key --cluster-key KEY at the first of four spare NULLs. */
static void key_auth(char **argv, char *key) {
  size_t n = 0;
  while (argv[n])
    n++;
  argv[n] = "--auth", argv[n + 1] = "key", argv[n + 2] = "--cluster-key", argv[n + 3] = key;
}

void it_controller_start(it_cluster *c) {
  char state[300], pf[300], log[300], listen[64], metrics[64], timeout[32];
  if (c->relative_state)
    snprintf(state, sizeof state, "traind");
  else
    snprintf(state, sizeof state, "%s/traind", c->dir);
  snprintf(pf, sizeof pf, "%s/traind.ports", c->dir);
  snprintf(log, sizeof log, "%s/traind.stderr", c->dir);
  snprintf(listen, sizeof listen, "%s:%d", it_controller_host(c), c->rpc_port);
  snprintf(metrics, sizeof metrics, "%s:0", it_controller_host(c));
  snprintf(timeout, sizeof timeout, "%d", c->node_timeout_ms);
  unlink(pf);
  char *argv[48] = {(char *)bin("TY_TRAIND"),
                    "--listen",
                    listen,
                    "--metrics-listen",
                    metrics,
                    "--state-dir",
                    state,
                    "--port-file",
                    pf,
                    "--heartbeat-ms",
                    "200",
                    "--node-timeout-ms",
                    timeout,
                    "--kill-grace-s",
                    "2",
                    "--config",
                    c->config,
                    "--munge-socket",
                    c->munged.socket,
                    NULL};
  if (c->opts.auth_none) no_auth(argv);
  size_t n = 0;
  while (argv[n])
    n++;
  for (size_t i = 0; c->traind_args && c->traind_args[i] && n + 1 < TY_ARRAY_LEN(argv); i++)
    argv[n++] = (char *)c->traind_args[i];
  argv[n] = NULL;
  c->traind = spawn_in(c->relative_state ? c->dir : NULL, log, argv, c->opts.net, 0);
  c->rpc_port = read_port(pf, "rpc", c->traind);
  c->metrics_port = read_port(pf, "metrics", c->traind);
}

void it_worker_start(it_cluster *c, size_t i, int cpus) {
  char state[300], pf[300], log[300], ctl[64], ncpu[16], cgroup[64], any[64];
  snprintf(c->name[i], sizeof c->name[i], "w%zu", i + 1);
  /* A cgroup subtree per test cluster: tests on one host never share one. */
  snprintf(cgroup, sizeof cgroup, "tyit-%d-%s", (int)getpid(), c->name[i]);
  if (c->relative_state)
    snprintf(state, sizeof state, "%s", c->name[i]);
  else
    snprintf(state, sizeof state, "%s/%s", c->dir, c->name[i]);
  snprintf(pf, sizeof pf, "%s/%s.ports", c->dir, c->name[i]);
  snprintf(log, sizeof log, "%s/%s.stderr", c->dir, c->name[i]);
  snprintf(ctl, sizeof ctl, "%s:%d", it_controller_host(c), c->rpc_port);
  snprintf(any, sizeof any, "%s:0", it_worker_host(c, i));
  snprintf(ncpu, sizeof ncpu, "%d", cpus);
  unlink(pf);
  /* Tasks get none of the worker's environment: the knobs tests turn for
   * their ranks, and the sanitizers' options of a sanitized build (its
   * trainrun ranks must not report Open MPI's leaks), are handed on by
   * name; unset ones are skipped. */
  char *argv[48] = {(char *)bin("TY_TRAINWORKERD"),
                    "--controller",
                    ctl,
                    "--name",
                    c->name[i],
                    "--state-dir",
                    state,
                    "--io-listen",
                    c->opts.wildcard_io ? "0.0.0.0:0" : any,
                    "--metrics-listen",
                    any,
                    "--port-file",
                    pf,
                    "--cpus",
                    ncpu,
                    "--gpus",
                    "0",
                    "--task-env",
                    "TRAINYARD_STEP_DELAY_MS",
                    "--task-env",
                    "TRAINYARD_COLLECTIVE_TIMEOUT_S",
                    "--task-env",
                    "TRAINYARD_KERNEL_CACHE",
                    "--task-env",
                    "ASAN_OPTIONS",
                    "--task-env",
                    "UBSAN_OPTIONS"};
  size_t n = 0;
  while (argv[n])
    n++;
  for (size_t k = 0; c->worker_extra && c->worker_extra[k] && n < 47; k++)
    argv[n++] = (char *)c->worker_extra[k];
  char *auth[] = {
      "--munge-socket", c->munged.socket, "--cgroup-name", cgroup, NULL, NULL, NULL, NULL, NULL};
  if (c->opts.auth_none) no_auth(auth);
  if (c->opts.key_workers) key_auth(auth, c->cluster_key);
  for (size_t k = 0; auth[k] && n < 47; k++)
    argv[n++] = auth[k];
  argv[n] = NULL;
  c->worker[i] = spawn_in(c->relative_state ? c->dir : NULL, log, argv, c->opts.net, i + 1);
  c->io_port[i] = read_port(pf, "io", c->worker[i]);
  c->worker_metrics_port[i] = read_port(pf, "metrics", c->worker[i]);
}

/* A cluster key for key_workers: 64 random bytes, 0600. */
static void write_key(it_cluster *c) {
  snprintf(c->cluster_key, sizeof c->cluster_key, "%s/cluster.key", c->dir);
  uint8_t key[64];
  int r = open("/dev/urandom", O_RDONLY), fd = open(c->cluster_key, O_WRONLY | O_CREAT, 0600);
  cr_assert(r >= 0 && fd >= 0 && read(r, key, sizeof key) == (ssize_t)sizeof key &&
            write(fd, key, sizeof key) == (ssize_t)sizeof key);
  close(r), close(fd);
}

/* traind's --config: the test workers w1..w4 may register. */
static void write_config(it_cluster *c) {
  snprintf(c->config, sizeof c->config, "%s/traind.conf", c->dir);
  FILE *f = fopen(c->config, "w");
  cr_assert(f, "%s: %s", c->config, strerror(errno));
  fprintf(f, "auth.nodes = w[1-%d]\n%s\n", IT_MAX_WORKERS,
          c->opts.config_extra ? c->opts.config_extra : "");
  if (c->opts.key_workers)
    fprintf(f, "auth.workers = key\nauth.cluster_key = %s\n", c->cluster_key);
  fclose(f);
}

static void cluster_start(it_cluster *c, size_t n_workers, int cpus, bool relative,
                          const it_options *o) {
  memset(c, 0, sizeof *c);
  c->relative_state = relative;
  if (o) c->opts = *o;
  c->node_timeout_ms = c->opts.node_timeout_ms;
  c->traind_args = c->opts.traind_args;
  c->worker_extra = c->opts.worker_args;
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  it_cleanup_sweep_stale(tmp);
  cr_assert(it_cleanup_mkdtemp(tmp, c->dir, sizeof c->dir), "mkdtemp in %s: %s", tmp,
            strerror(errno));
  chmod(c->dir, 0755); /* test users run clients from here */
  if (!c->opts.auth_none) {
    cr_assert(ty_test_munged_start(&c->munged), "cannot start munged (is the munge package "
                                                "installed?)");
    setenv("TRAINYARD_MUNGE_SOCKET", c->munged.socket, 1);
  } else {
    snprintf(c->munged.socket, sizeof c->munged.socket, "%s/no-munged", c->dir);
  }
  if (c->opts.key_workers) write_key(c);
  write_config(c);
  if (c->node_timeout_ms == 0) c->node_timeout_ms = 1500;
  it_controller_start(c);
  c->n_workers = n_workers;
  for (size_t i = 0; i < n_workers; i++)
    it_worker_start(c, i, cpus);
  ty_rpc_client *cl = it_client(c);
  cr_assert(it_wait_nodes(cl, n_workers, TRAINYARD__NODE_STATE__NODE_UP, 10000),
            "workers did not register (logs in %s)", c->dir);
  ty_rpc_client_close(cl);
}

void it_cluster_start(it_cluster *c, size_t n_workers, int cpus) {
  cluster_start(c, n_workers, cpus, false, NULL);
}

void it_cluster_start_relative(it_cluster *c, size_t n_workers, int cpus) {
  cluster_start(c, n_workers, cpus, true, NULL);
}

void it_cluster_start_with(it_cluster *c, size_t n_workers, int cpus, const it_options *o) {
  cluster_start(c, n_workers, cpus, false, o);
}

void it_cluster_start_hosts(it_cluster *c, it_net *net, size_t n_workers, int cpus,
                            const it_options *o) {
  it_net_require();
  cr_assert(n_workers < IT_NET_MAX_HOSTS);
  const char *names[] = {"ctl", "w1", "w2", "w3", "w4", "w5"};
  it_net_create(net, n_workers + 1, names);
  it_options with = o ? *o : (it_options){0};
  with.net = net;
  cluster_start(c, n_workers, cpus, false, &with);
}

void it_kill9(pid_t *pid) {
  if (*pid <= 0) return;
  kill(*pid, SIGKILL);
  int st;
  waitpid(*pid, &st, 0);
  *pid = 0;
}

/* SIGTERM, then SIGKILL after 3 s. A daemon that stopped by itself must
 * exit 0: under the sanitizers a leak or memory error found at exit makes
 * it fail (LeakSanitizer's exit code 23, or an abort), and that fails the
 * test, with the report in DIR/<name>.stderr. */
static void stop_gracefully(pid_t *pid, const char *name, const char *dir) {
  if (*pid <= 0) return;
  kill(*pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    int st;
    if (waitpid(*pid, &st, WNOHANG) == *pid) {
      *pid = 0;
      cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "%s did not exit cleanly (status %d; a sanitizer report? see %s/%s.stderr)", name,
                st, dir, name);
      return;
    }
    it_sleep_ms(10);
  }
  it_kill9(pid);
}

void it_cluster_stop(it_cluster *c) {
  for (size_t i = 0; i < c->n_workers; i++)
    stop_gracefully(&c->worker[i], c->name[i], c->dir);
  stop_gracefully(&c->traind, "traind", c->dir);
  ty_test_munged_stop(&c->munged);
  it_users_remove();
  it_cleanup_dir_done(c->dir);
}

/* ---- credentials --------------------------------------------------------------------------- */

/* Signs with the cluster's munged as whoever this process is. */
static int sign(void *ud, const char *method, const void *payload, size_t len, ty_buf *out) {
  ty_auth *a = ud;
  uint8_t *cred = NULL;
  size_t n = 0;
  char err[TY_ERR_LEN];
  int rc = ty_auth_sign(a, method, payload, len, &cred, &n, err, sizeof err);
  cr_assert_eq(rc, 0, "munge: %s", err);
  ty_buf_append(out, cred, n);
  free(cred);
  return 0;
}

static ty_auth *process_auth; /* one per test process, for its clients (any thread) */

static void make_signer(void) {
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = getenv("TRAINYARD_MUNGE_SOCKET")};
  char err[TY_ERR_LEN];
  if (ty_auth_create(&cfg, &process_auth, err, sizeof err) != 0) process_auth = NULL;
}

static ty_auth *signer(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, make_signer);
  cr_assert(process_auth, "cannot create a MUNGE signer");
  return process_auth;
}

ty_rpc_client *it_client(const it_cluster *c) {
  ty_rpc_client *cl = NULL;
  int rc = ty_rpc_client_open(it_controller_host(c), c->rpc_port, 5000, &cl);
  cr_assert_eq(rc, 0, "connect to traind on port %d: %s", c->rpc_port, ty_strerror(rc));
  if (!c->opts.auth_none) ty_rpc_client_set_signer(cl, sign, signer());
  return cl;
}

static void become(uid_t uid, gid_t gid) {
  if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(120);
}

int it_call_as(const it_cluster *c, uid_t uid, gid_t gid, const char *method, const ty_buf *req,
               char *msg, size_t msg_len) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    become(uid, gid);
    ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = c->munged.socket};
    ty_auth *a = NULL;
    ty_rpc_client *cl = NULL;
    ty_rpc_result res = {0};
    char err[TY_ERR_LEN];
    if (ty_auth_create(&cfg, &a, err, sizeof err) != 0 ||
        ty_rpc_client_open(it_controller_host(c), c->rpc_port, 5000, &cl) != 0)
      _exit(121);
    ty_rpc_client_set_signer(cl, sign, a);
    int rc = ty_rpc_client_call(cl, method, req->data, req->len, 10000, &res);
    dprintf(fds[1], "%d\n%s", rc ? rc : res.status, res.message ? res.message : "");
    _exit(0);
  }
  close(fds[1]);
  char buf[TY_ERR_LEN + 32] = "";
  size_t n = 0;
  ssize_t r;
  while (n + 1 < sizeof buf && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = '\0';
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client as uid %d failed (exit %d)", (int)uid,
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  char *nl = strchr(buf, '\n');
  if (msg) snprintf(msg, msg_len, "%s", nl ? nl + 1 : "");
  return atoi(buf);
}

/* ---- test users ---------------------------------------------------------------------------- */

static char users[8][32];
static size_t n_users;

static int run_tool(const char *path, char *const argv[]) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1), dup2(null, 2);
    execv(path, argv);
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void it_users_remove(void) {
  while (n_users > 0) {
    char *name = users[--n_users];
    char *argv[] = {"userdel", "-f", name, NULL};
    run_tool("/usr/sbin/userdel", argv);
  }
}

void it_user_del(const char *name) {
  char *argv[] = {"userdel", "-f", (char *)name, NULL};
  cr_assert_eq(run_tool("/usr/sbin/userdel", argv), 0, "userdel %s failed", name);
  for (size_t i = 0; i < n_users; i++)
    if (!strcmp(users[i], name)) memmove(users[i], users[--n_users], sizeof users[0]);
}

void it_user_add(char *name, size_t name_len, uid_t *uid, gid_t *gid) {
  if (geteuid() != 0) cr_skip_test("creating test users needs root");
  cr_assert_lt(n_users, sizeof users / sizeof users[0]);
  static bool registered;
  if (!registered) atexit(it_users_remove);
  registered = true;
  char *u = users[n_users];
  snprintf(u, sizeof users[0], "tyit%dx%zu", (int)getpid(), n_users);
  char *argv[] = {"useradd", "-M", "-s", "/bin/sh", u, NULL};
  cr_assert_eq(run_tool("/usr/sbin/useradd", argv), 0, "useradd %s failed", u);
  n_users++;
  struct passwd *pw = getpwnam(u);
  cr_assert(pw, "no passwd entry for %s after useradd", u);
  snprintf(name, name_len, "%s", u);
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
}

/* Reads both pipes to EOF (poll: neither may fill up and stall the child). */
static void read_both(int out_fd, int err_fd, char **out, char **err) {
  ty_buf b[2];
  ty_buf_init(&b[0]), ty_buf_init(&b[1]);
  struct pollfd p[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
  int open_fds = 2;
  while (open_fds > 0 && poll(p, 2, -1) > 0) {
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !p[i].revents) continue;
      char chunk[4096];
      ssize_t n = read(p[i].fd, chunk, sizeof chunk);
      if (n > 0)
        ty_buf_append(&b[i], chunk, (size_t)n);
      else
        p[i].fd = -1, open_fds--;
    }
  }
  ty_buf_append(&b[0], "", 1), ty_buf_append(&b[1], "", 1);
  if (out)
    *out = (char *)b[0].data;
  else
    ty_buf_close(&b[0]);
  if (err)
    *err = (char *)b[1].data;
  else
    ty_buf_close(&b[1]);
}

int it_run_as(const it_cluster *c, uid_t uid, gid_t gid, const char *cwd, char **out, char **err,
              const char *const *argv) {
  int po[2], pe[2];
  cr_assert(pipe(po) == 0 && pipe(pe) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(po[1], 1), dup2(pe[1], 2);
    close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
    become(uid, gid);
    char addr[64];
    snprintf(addr, sizeof addr, "%s:%d", it_controller_host(c), c->rpc_port);
    setenv("TRAINYARD_CONTROLLER", addr, 1);
    if (cwd && chdir(cwd) != 0) _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(po[1]), close(pe[1]);
  read_both(po[0], pe[0], out, err);
  close(po[0]), close(pe[0]);
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int it_submit_job(ty_rpc_client *cl, Trainyard__Job *job, uint64_t *out_id, char *err,
                  size_t err_len) {
  return it_submit_job_id(cl, job, NULL, out_id, err, err_len);
}

int it_submit_job_id(ty_rpc_client *cl, Trainyard__Job *job, const char *request_id,
                     uint64_t *out_id, char *err, size_t err_len) {
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = job;
  if (request_id) req.request_id = (char *)request_id;
  size_t n = trainyard__submit_job_request__get_packed_size(&req);
  uint8_t *buf = malloc(n ? n : 1);
  trainyard__submit_job_request__pack(&req, buf);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(cl, TY_M_SUBMIT_JOB, buf, n, 10000, &res);
  free(buf);
  if (rc != 0) {
    ty_rpc_result_close(&res); /* a failed call's result still holds its message */
    return rc;
  }
  rc = res.status;
  if (err) snprintf(err, err_len, "%s", res.message);
  if (rc == 0) {
    Trainyard__SubmitJobResponse *r =
        trainyard__submit_job_response__unpack(NULL, res.payload_len, res.payload);
    cr_assert(r, "SubmitJobResponse does not decode");
    *out_id = r->job_id;
    trainyard__submit_job_response__free_unpacked(r, NULL);
  }
  ty_rpc_result_close(&res);
  return rc;
}

int it_submit_sh(ty_rpc_client *cl, const char *script, const char *name, uint64_t *out_id,
                 char *err, size_t err_len) {
  return it_submit_sh_nodes(cl, script, name, 1, out_id, err, err_len);
}

int it_submit_sh_nodes(ty_rpc_client *cl, const char *script, const char *name, uint32_t nodes,
                       uint64_t *out_id, char *err, size_t err_len) {
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.nodes = nodes;
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"/bin/sh", "-c", (char *)script};
  cmd.n_argv = 3;
  cmd.argv = argv;
  cmd.cwd = "/tmp";
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = (char *)name;
  job.resources = nodes > 1 ? &res : NULL;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  job.command = &cmd;
  return it_submit_job(cl, &job, out_id, err, err_len);
}

Trainyard__GetJobResponse *it_get_job(ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobRequest req = TRAINYARD__GET_JOB_REQUEST__INIT;
  req.job_id = id;
  uint8_t buf[32];
  size_t n = trainyard__get_job_request__pack(&req, buf);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(cl, TY_M_GET_JOB, buf, n, 10000, &res);
  Trainyard__GetJobResponse *r = NULL;
  if (rc == 0 && res.status == 0)
    r = trainyard__get_job_response__unpack(NULL, res.payload_len, res.payload);
  ty_rpc_result_close(&res);
  return r;
}

Trainyard__ListJobsResponse *it_list_jobs(ty_rpc_client *cl) {
  Trainyard__ListJobsRequest req = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  uint8_t buf[64];
  size_t n = trainyard__list_jobs_request__pack(&req, buf);
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_LIST_JOBS, buf, n, 10000, &r), 0);
  cr_assert_eq(r.status, 0, "ListJobs: %s", r.message);
  Trainyard__ListJobsResponse *resp =
      trainyard__list_jobs_response__unpack(NULL, r.payload_len, r.payload);
  cr_assert(resp, "ListJobsResponse does not decode");
  ty_rpc_result_close(&r);
  return resp;
}

bool it_is_final(int state) {
  return state == TRAINYARD__JOB_STATE__JOB_COMPLETED ||
         state == TRAINYARD__JOB_STATE__JOB_FAILED ||
         state == TRAINYARD__JOB_STATE__JOB_CANCELLED || state == TRAINYARD__JOB_STATE__JOB_TIMEOUT;
}

Trainyard__GetJobResponse *it_wait_job(ty_rpc_client *cl, uint64_t id, int state, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    Trainyard__GetJobResponse *r = it_get_job(cl, id);
    if (r && r->job) {
      int s = (int)r->job->state;
      if ((state == 0 && it_is_final(s)) || s == state) return r;
    }
    if (r) trainyard__get_job_response__free_unpacked(r, NULL);
    it_sleep_ms(20);
  }
  return NULL;
}

int it_wait_state(ty_rpc_client *cl, uint64_t id, int state, int timeout_ms) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, state, timeout_ms);
  cr_assert(r, "job %llu never reached state %d", (unsigned long long)id, state);
  int s = (int)r->job->state;
  trainyard__get_job_response__free_unpacked(r, NULL);
  return s;
}

size_t it_count_nodes_in_state(ty_rpc_client *cl, int state) {
  Trainyard__ListNodesRequest req = TRAINYARD__LIST_NODES_REQUEST__INIT;
  uint8_t buf[8];
  size_t n = trainyard__list_nodes_request__pack(&req, buf);
  ty_rpc_result res;
  if (ty_rpc_client_call(cl, TY_M_LIST_NODES, buf, n, 5000, &res) != 0) return 0;
  size_t count = 0;
  Trainyard__ListNodesResponse *r =
      res.status == 0 ? trainyard__list_nodes_response__unpack(NULL, res.payload_len, res.payload)
                      : NULL;
  for (size_t i = 0; r && i < r->n_nodes; i++)
    if ((int)r->nodes[i]->state == state) count++;
  if (r) trainyard__list_nodes_response__free_unpacked(r, NULL);
  ty_rpc_result_close(&res);
  return count;
}

bool it_wait_nodes(ty_rpc_client *cl, size_t n, int state, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    if (it_count_nodes_in_state(cl, state) == n) return true;
    it_sleep_ms(20);
  }
  return false;
}

static char *read_all(int fd) {
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  ssize_t n;
  while ((n = read(fd, s + len, cap - len - 1)) > 0) {
    len += (size_t)n;
    if (cap - len < 1024) s = realloc(s, cap *= 2);
  }
  s[len] = '\0';
  return s;
}

int it_trainctl(const it_cluster *c, char **out, const char *const *args) {
  return it_trainctl_err(c, out, NULL, args);
}

int it_trainctl_err(const it_cluster *c, char **out, char **err_out, const char *const *args) {
  char addr[64];
  snprintf(addr, sizeof addr, "%s:%d", it_controller_host(c), c->rpc_port);
  const char *argv[32] = {bin("TY_TRAINCTL"), "--controller", addr};
  size_t n = 3;
  for (size_t i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  int pfd[2], efd[2] = {-1, -1};
  /* Close-on-exec: a daemon another thread spawns meanwhile must not keep
   * these pipes open (read_all would wait for them). */
  cr_assert(pipe2(pfd, O_CLOEXEC) == 0);
  cr_assert(!err_out || pipe2(efd, O_CLOEXEC) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pfd[1], 1);
    if (err_out) dup2(efd[1], 2);
    close(pfd[0]);
    close(pfd[1]);
    if (err_out) close(efd[0]), close(efd[1]);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(pfd[1]);
  if (err_out) close(efd[1]);
  char *s = read_all(pfd[0]); /* stderr is a line or two: the pipe holds it meanwhile */
  close(pfd[0]);
  if (err_out) {
    *err_out = read_all(efd[0]);
    close(efd[0]);
  }
  int st;
  waitpid(pid, &st, 0);
  if (out)
    *out = s;
  else
    free(s);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int it_raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0, "connect: %s",
               strerror(errno));
  return fd;
}

bool it_worker_has_cgroups(const it_cluster *c) {
  char path[400], buf[8192] = "";
  snprintf(path, sizeof path, "%s/w1.stderr", c->dir);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  return strstr(buf, "tasks run in their own cgroups") != NULL;
}

bool it_closed_by_peer(int fd) {
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b[256];
  ssize_t n;
  while ((n = read(fd, b, sizeof b)) > 0) {
  }
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

char *it_http_get(int port, const char *path, int *out_status) {
  return it_http_get_at("127.0.0.1", port, path, out_status);
}

char *it_http_get_at(const char *host, int port, const char *path, int *out_status) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  cr_assert_eq(inet_pton(AF_INET, host, &a.sin_addr), 1, "%s is not an IPv4 address", host);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
  cr_assert(n > 0 && (size_t)n < sizeof req, "path too long: %s", path);
  cr_assert(write(fd, req, (size_t)n) == (ssize_t)n);
  char *resp = read_all(fd);
  close(fd);
  char *body = strstr(resp, "\r\n\r\n");
  if (!body) {
    free(resp);
    return NULL;
  }
  if (out_status) *out_status = strncmp(resp, "HTTP/1.", 7) == 0 ? atoi(resp + 9) : 0;
  char *copy = strdup(body + 4);
  free(resp);
  return copy;
}

char *it_http_get_metrics(int port) {
  return it_http_get_metrics_at("127.0.0.1", port);
}

char *it_http_get_metrics_at(const char *host, int port) {
  char *body = it_http_get_at(host, port, "/metrics", NULL);
  cr_assert(body, "no /metrics from %s:%d", host, port);
  return body;
}

pid_t it_spawn(const char *cwd, const char *logpath, char *const argv[]) {
  return spawn(cwd, logpath, argv);
}

uint64_t it_submit_cli(const it_cluster *c, const char *const *args) {
  const char *argv[32] = {"submit", "--quiet", "--command"};
  size_t n = 3;
  for (; *args && n < 31; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(c, &out, &err, argv);
  cr_assert_eq(rc, 0, "submit failed (%d): %s", rc, err ? err : "");
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert(id > 0);
  return id;
}
