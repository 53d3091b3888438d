/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The integration-test harness: a cluster of real daemons (traind and
 * trainworkerd) on loopback or in network namespaces, with ephemeral ports,
 * started, restarted and stopped by PID. Every daemon is tracked by
 * cleanup.c and dies with the test process (PR_SET_PDEATHSIG), so a failed
 * assertion leaves none running. Clients of the cluster are in
 * harness_client.c, the identities tests act as in harness_auth.c.
 */
#include "tests/integration/harness.h"
#include "tests/integration/cleanup.h"
#include "tests/support/subset.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void it_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

char *it_read_text(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  size_t cap = 4096, n = 0, got;
  char *buf = malloc(cap);
  cr_assert(buf);
  while ((got = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
    n += got;
    if (n + 1 == cap) {
      buf = realloc(buf, cap *= 2);
      cr_assert(buf);
    }
  }
  fclose(f);
  buf[n] = '\0';
  return buf;
}

int it_count_lines(const char *path) {
  char *t = it_read_text(path);
  int n = 0;
  for (char *p = t; p && *p; p++)
    n += *p == '\n';
  free(t);
  return n;
}

const char *it_bin(const char *var) {
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

/* Reads "key=PORT" from a port file written by a daemon; waits for it (up
 * to 30 s: a sanitizer-built daemon on a loaded machine starts slowly). */
static int read_port(const char *path, const char *key, pid_t pid) {
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end;) {
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
  cr_assert_fail("no %s in %s after 30 s", key, path);
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
  char *argv[48] = {(char *)it_bin("TY_TRAIND"),
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
  char *argv[48] = {(char *)it_bin("TY_TRAINWORKERD"),
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
  /* Ranks' Open MPI stays on this cluster's own interface: a bridge of
   * another test's namespaces (tyb<pid>, in the root namespace) is then
   * none of its business. worker_args may name another list after it. */
  argv[n++] = "--mpi-if-include";
  argv[n++] = c->opts.net ? "eth0" : "lo";
  /* Tasks' private TMPDIRs in the cluster's own sticky tmp: job ids of
   * clusters running side by side repeat, so /tmp would be shared. */
  char tmp_base[sizeof c->dir + 8];
  snprintf(tmp_base, sizeof tmp_base, "%s/tmp", c->dir);
  argv[n++] = "--tmp-base";
  argv[n++] = tmp_base;
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

/* The node timeout of a cluster whose options name none: 5 s, 10 s when
 * the daemons run under a sanitizer (deploy/test.sh's pass 2 sets
 * TY_TEST_SUBSET, pass 3 TSAN_OPTIONS). The worker's lease is two thirds
 * of it: a worker or traind descheduled longer than that on a loaded
 * machine (1 s with the 1500 ms this once was) fenced its tasks or had its
 * node marked DOWN, and tests that count runs failed. Tests that need a
 * quick DOWN set .node_timeout_ms. */
static int default_node_timeout_ms(void) {
  return it_sanitized() ? 10000 : 5000;
}

bool it_sanitized(void) {
  return ty_test_subset() || getenv("TSAN_OPTIONS");
}

void it_unsanitized_only(const char *covered_by) {
  if (it_sanitized())
    cr_skip_test("the first pass's; under the sanitizers its paths are run by %s", covered_by);
}

void it_full_pass_only(const char *covered_by) {
  if (ty_test_subset())
    cr_skip_test("the first pass's; under ASan its paths are run by %s", covered_by);
}

static void cluster_start(it_cluster *c, size_t n_workers, int cpus, bool relative,
                          const it_options *o) {
  memset(c, 0, sizeof *c);
  /* The clients the tests run find this cluster, not the one the shell
   * running the tests points at (deploy/cluster.sh's exports). */
  unsetenv("TRAINYARD_SOCKET"), unsetenv("TRAINYARD_CONTROLLER"), unsetenv("TRAINYARD_PORT");
  c->relative_state = relative;
  if (o) c->opts = *o;
  c->node_timeout_ms = c->opts.node_timeout_ms;
  c->traind_args = c->opts.traind_args;
  c->worker_extra = c->opts.worker_args;
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  it_cleanup_sweep_stale(tmp);
  cr_assert(it_cleanup_mkdtemp(tmp, c->dir, sizeof c->dir), "mkdtemp in %s: %s", tmp,
            strerror(errno));
  chmod(c->dir, 0755);              /* test users run clients from here */
  char tmp_base[sizeof c->dir + 8]; /* the workers' --tmp-base, sticky as /tmp */
  snprintf(tmp_base, sizeof tmp_base, "%s/tmp", c->dir);
  cr_assert(mkdir(tmp_base, 0700) == 0 && chmod(tmp_base, 01777) == 0, "%s: %s", tmp_base,
            strerror(errno));
  if (!c->opts.auth_none) {
    cr_assert(ty_test_munged_start(&c->munged), "cannot start munged (is the munge package "
                                                "installed?)");
    setenv("TRAINYARD_MUNGE_SOCKET", c->munged.socket, 1);
  } else {
    snprintf(c->munged.socket, sizeof c->munged.socket, "%s/no-munged", c->dir);
  }
  if (c->opts.key_workers) write_key(c);
  write_config(c);
  if (c->node_timeout_ms == 0) c->node_timeout_ms = default_node_timeout_ms();
  it_controller_start(c);
  c->n_workers = n_workers;
  for (size_t i = 0; i < n_workers; i++)
    it_worker_start(c, i, cpus);
  ty_rpc_client *cl = it_client(c);
  cr_assert(it_wait_nodes(cl, n_workers, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "workers did not register in 30 s (logs in %s)", c->dir);
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

void it_controller_restart(it_cluster *c, bool kill9) {
  if (kill9) {
    it_kill9(&c->traind);
  } else if (c->traind > 0) {
    int st;
    kill(c->traind, SIGTERM);
    waitpid(c->traind, &st, 0);
    c->traind = 0;
  }
  it_controller_start(c);
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

bool it_worker_has_cgroups(const it_cluster *c) {
  char path[400], buf[8192] = "";
  snprintf(path, sizeof path, "%s/w1.stderr", c->dir);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  return strstr(buf, "tasks run in their own cgroups") != NULL;
}

pid_t it_spawn(const char *cwd, const char *logpath, char *const argv[]) {
  return spawn(cwd, logpath, argv);
}

int it_prometheus_start(const char *prom, const char *cwd, const char *cfg, const char *data,
                        const char *logpath, pid_t *pid) {
  char flag_cfg[400], flag_data[400], flag_web[64];
  snprintf(flag_cfg, sizeof flag_cfg, "--config.file=%s", cfg);
  snprintf(flag_data, sizeof flag_data, "--storage.tsdb.path=%s", data);
  for (int attempt = 0; attempt < 5; attempt++) {
    int port = it_free_port();
    snprintf(flag_web, sizeof flag_web, "--web.listen-address=127.0.0.1:%d", port);
    char *argv[] = {(char *)prom, flag_cfg, flag_data, flag_web, "--log.level=warn", NULL};
    *pid = it_spawn(cwd, logpath, argv);
    bool exited = false;
    for (int64_t end = ty_mono_ms() + 30000; !exited && ty_mono_ms() < end;) {
      int st, status = 0;
      free(it_http_get(port, "/-/ready", &status));
      if (status == 200) { /* ready, and this one's: not another test's */
        char *flags = it_http_get(port, "/api/v1/status/flags", &status);
        bool ours = status == 200 && flags && strstr(flags, data);
        free(flags);
        if (ours) return port;
      }
      exited = waitpid(*pid, &st, WNOHANG) == *pid;
      if (!exited) it_sleep_ms(100);
    }
    cr_assert(exited, "prometheus not ready after 30 s (see %s)", logpath);
  }
  cr_assert_fail("prometheus exited at its start 5 times (see %s)", logpath);
  return -1;
}
