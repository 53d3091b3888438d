/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Virtual hosts on one machine (netns.h): namespaces, veths and a bridge
 * made with iproute2, torn down by name. Every step is one `ip` command run
 * to completion; a failing one aborts the test with the command and its
 * stderr, so a half-built net is reported, then deleted by the atexit
 * handler.
 */
#include "tests/integration/netns.h"
#include "tests/integration/cleanup.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs argv (argv[0] looked up in PATH and /usr/sbin) to completion with
 * stdout discarded; returns its exit status (127: not found) and its stderr
 * in err. */
static int run(char *const argv[], char *err, size_t err_len) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(p[1], 2);
    close(p[0]), close(p[1]);
    setenv("PATH", "/usr/sbin:/sbin:/usr/bin:/bin", 1);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  size_t n = 0;
  ssize_t r;
  char sink[256];
  while ((r = read(p[0], err && n + 1 < err_len ? err + n : sink,
                   err && n + 1 < err_len ? err_len - 1 - n : sizeof sink)) > 0)
    if (err && n + 1 < err_len) n += (size_t)r;
  if (err && err_len) err[n] = '\0';
  close(p[0]);
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Splits a command line on spaces into argv (at most 31 words). */
static int runf(char *err, size_t err_len, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  char *argv[32];
  size_t n = 0;
  for (char *save = NULL, *w = strtok_r(line, " ", &save); w && n < 31;
       w = strtok_r(NULL, " ", &save))
    argv[n++] = w;
  argv[n] = NULL;
  return run(argv, err, err_len);
}

/* The same, aborting the test when the command fails. */
#define MUST(...)                                                                                  \
  do {                                                                                             \
    char must_err[512] = "";                                                                       \
    char must_cmd[512];                                                                            \
    snprintf(must_cmd, sizeof must_cmd, __VA_ARGS__);                                              \
    int must_rc = runf(must_err, sizeof must_err, "%s", must_cmd);                                 \
    cr_assert_eq(must_rc, 0, "`%s` failed (%d): %s", must_cmd, must_rc, must_err);                 \
  } while (0)

void it_net_require(void) {
  if (geteuid() != 0) cr_skip_test("network namespaces need root (run the suite as root)");
  char err[256] = "";
  char name[32];
  snprintf(name, sizeof name, "tyns%dprobe", (int)getpid());
  if (runf(err, sizeof err, "ip netns add %s", name) != 0)
    cr_skip_test("`ip netns add` does not work here (iproute2 missing or no CAP_SYS_ADMIN): %s",
                 err);
  runf(NULL, 0, "ip netns del %s", name);
}

/* ---- sweep --------------------------------------------------------------------------------- */

void it_net_sweep(void) {
  DIR *d = opendir("/run/netns");
  for (struct dirent *e; d && (e = readdir(d));)
    if (it_pid_dead(it_owner_pid(e->d_name, "tyns"))) runf(NULL, 0, "ip netns del %s", e->d_name);
  if (d) closedir(d);
  d = opendir("/sys/class/net");
  for (struct dirent *e; d && (e = readdir(d));)
    if (it_pid_dead(it_owner_pid(e->d_name, "tyb")) || it_pid_dead(it_owner_pid(e->d_name, "tyv")))
      runf(NULL, 0, "ip link del %s", e->d_name);
  if (d) closedir(d);
}

/* ---- create / destroy ---------------------------------------------------------------------- */

static it_net *live[8]; /* nets of this process not yet destroyed, for the atexit handler */

void it_net_destroy_all(void) {
  for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
    if (live[i]) it_net_destroy(live[i]);
}

static void track(it_net *n, bool on) {
  static bool registered;
  if (!registered) atexit(it_net_destroy_all);
  registered = true;
  for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
    if (on && !live[i]) {
      live[i] = n;
      return;
    }
    if (!on && live[i] == n) live[i] = NULL;
  }
}

/* A 10.X.0.0/24 no interface here uses yet (X from the pid, then onwards). */
static int pick_subnet(void) {
  for (int k = 0; k < 200; k++) {
    int x = 20 + ((int)getpid() + k) % 200;
    char path[64], out[64] = "";
    snprintf(path, sizeof path, "ip -o addr show to 10.%d.0.0/24", x);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(p[1], 1);
      close(p[0]), close(p[1]);
      execl("/bin/sh", "sh", "-c", path, (char *)NULL);
      _exit(127);
    }
    close(p[1]);
    ssize_t r = read(p[0], out, sizeof out - 1);
    close(p[0]);
    waitpid(pid, NULL, 0);
    if (r <= 0) return x;
  }
  cr_assert_fail("no free 10.X.0.0/24 subnet");
  return 0;
}

static void add_host(it_net *n, size_t i, const char *name) {
  int pid = (int)getpid();
  snprintf(n->host[i], sizeof n->host[i], "%s", name);
  snprintf(n->ns[i], sizeof n->ns[i], "tyns%dh%zu", pid, i);
  snprintf(n->veth[i], sizeof n->veth[i], "tyv%dh%zu", pid, i);
  snprintf(n->addr[i], sizeof n->addr[i], "10.%d.0.%zu", n->subnet, i + 1);
  char peer[16];
  snprintf(peer, sizeof peer, "typ%dh%zu", pid, i);
  MUST("ip netns add %s", n->ns[i]);
  n->n_hosts = i + 1; /* from here on, destroy deletes it */
  MUST("ip netns exec %s ip link set lo up", n->ns[i]);
  MUST("ip link add %s type veth peer name %s", n->veth[i], peer);
  MUST("ip link set %s netns %s", peer, n->ns[i]);
  MUST("ip netns exec %s ip link set %s name eth0", n->ns[i], peer);
  MUST("ip netns exec %s ip addr add %s/24 dev eth0", n->ns[i], n->addr[i]);
  MUST("ip netns exec %s ip link set eth0 up", n->ns[i]);
  MUST("ip link set %s master %s", n->veth[i], n->bridge);
  MUST("ip link set %s up", n->veth[i]);
}

/* Held from the choice of a subnet until the bridge has its address, so
 * that tests creating nets side by side never take the same one. */
#define SUBNET_LOCK "/run/tyit-netns.lock"

static int lock_subnets(void) {
  int fd = open(SUBNET_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  cr_assert(fd >= 0, "%s: %s", SUBNET_LOCK, strerror(errno));
  while (flock(fd, LOCK_EX) != 0)
    cr_assert_eq(errno, EINTR, "flock %s: %s", SUBNET_LOCK, strerror(errno));
  return fd;
}

void it_net_create(it_net *n, size_t n_hosts, const char *const *names) {
  cr_assert(n_hosts > 0 && n_hosts <= IT_NET_MAX_HOSTS, "%zu hosts: 1 to %d are supported", n_hosts,
            IT_NET_MAX_HOSTS);
  it_net_sweep();
  memset(n, 0, sizeof *n);
  int lock = lock_subnets();
  n->subnet = pick_subnet();
  snprintf(n->bridge, sizeof n->bridge, "tyb%d", (int)getpid());
  snprintf(n->gateway, sizeof n->gateway, "10.%d.0.254", n->subnet);
  track(n, true);
  MUST("ip link add %s type bridge", n->bridge);
  MUST("ip addr add %s/24 dev %s", n->gateway, n->bridge);
  close(lock); /* the subnet is visibly taken now */
  MUST("ip link set %s up", n->bridge);
  for (size_t i = 0; i < n_hosts; i++) {
    char def[16];
    snprintf(def, sizeof def, "h%zu", i + 1);
    add_host(n, i, names && names[i] ? names[i] : def);
  }
}

void it_net_destroy(it_net *n) {
  if (!n->subnet) return;
  for (size_t i = 0; i < n->n_hosts; i++)
    runf(NULL, 0, "ip netns del %s", n->ns[i]); /* its eth0 goes, and with it the veth */
  runf(NULL, 0, "ip link del %s", n->bridge);
  n->subnet = 0;
  n->n_hosts = 0;
  track(n, false);
}

/* ---- inside and between hosts -------------------------------------------------------------- */

int it_net_enter(const it_net *n, size_t i) {
  char path[64];
  snprintf(path, sizeof path, "/run/netns/%s", n->ns[i]);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = setns(fd, CLONE_NEWNET);
  close(fd);
  if (rc != 0 || unshare(CLONE_NEWUTS) != 0) return -1;
  return sethostname(n->host[i], strlen(n->host[i]));
}

void it_net_link(const it_net *n, size_t i, bool up) {
  MUST("ip link set %s %s", n->veth[i], up ? "up" : "down");
}

bool it_net_netem(const it_net *n, size_t i, const char *args) {
  char err[512] = "";
  if (!args) {
    runf(NULL, 0, "ip netns exec %s tc qdisc del dev eth0 root", n->ns[i]);
    return true;
  }
  int rc = runf(err, sizeof err, "ip netns exec %s tc qdisc replace dev eth0 root netem %s",
                n->ns[i], args);
  cr_assert(rc == 0 || strstr(err, "qdisc kind is unknown"), "tc netem %s on %s failed: %s", args,
            n->host[i], err);
  return rc == 0;
}

bool it_net_has_netem(void) {
  static int has = -1;
  if (has >= 0) return has;
  char name[32], err[256] = "";
  snprintf(name, sizeof name, "tyns%dnetem", (int)getpid());
  has = 0;
  if (runf(NULL, 0, "ip netns add %s", name) == 0) {
    has = runf(err, sizeof err, "ip netns exec %s tc qdisc add dev lo root netem delay 1ms",
               name) == 0;
    runf(NULL, 0, "ip netns del %s", name);
  }
  return has;
}
