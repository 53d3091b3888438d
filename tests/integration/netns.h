/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Virtual hosts for the integration tests (issue 19): a network namespace
 * per host, each with loopback up and one veth whose other end sits on a
 * bridge in the test's own (root) namespace. Host i has 10.X.0.(i+1)/24 on
 * its eth0, the bridge 10.X.0.254, so the test process reaches every host
 * and the hosts reach each other through the bridge, as hosts on one
 * switch. X is chosen per test run among the subnets nothing here uses,
 * under a lock (/run/tyit-netns.lock) so that nets made side by side differ.
 *
 * Every name carries the test process's pid ("tyns<pid>h<i>", bridge
 * "tyb<pid>", veth "tyv<pid>h<i>"), so tests running side by side never
 * collide, and it_net_sweep() can tell leftovers of dead test processes
 * from live ones. A process started with it_net_enter() in its child
 * (between fork and exec) runs inside host i's namespace and, with its own
 * UTS namespace, under the host's name, so Open MPI and the daemons see
 * distinct hosts.
 *
 * Teardown: it_net_destroy() deletes the namespaces (their veths go with
 * them) and the bridge; it_net_destroy_all() (a suite's .fini, and an
 * atexit handler) does the same for nets a failed test left, and the next
 * run's sweep for a harness that was killed. The
 * daemons themselves die with the test process (PR_SET_PDEATHSIG).
 *
 * Needs root and iproute2's `ip netns`; it_net_require() skips the test
 * (cr_skip_test, reported as skipped) with the reason otherwise.
 */
#ifndef TY_TESTS_INTEGRATION_NETNS_H
#define TY_TESTS_INTEGRATION_NETNS_H

#include <stdbool.h>
#include <stddef.h>

#define IT_NET_MAX_HOSTS 6

typedef struct it_net {
  int subnet; /* X of 10.X.0.0/24; 0 while not created */
  char bridge[16];
  size_t n_hosts;
  char ns[IT_NET_MAX_HOSTS][32];   /* namespace name (under /run/netns) */
  char veth[IT_NET_MAX_HOSTS][16]; /* the bridge's end of host i's link */
  char host[IT_NET_MAX_HOSTS][16]; /* host i's name, also its hostname */
  char addr[IT_NET_MAX_HOSTS][16]; /* host i's address */
  char gateway[16];                /* the bridge's address: where tests connect from */
} it_net;

/* Skips the test unless it runs as root and `ip netns` works here. */
void it_net_require(void);
/* Removes namespaces and bridges of test processes that no longer run. */
void it_net_sweep(void);
/* Sweeps, then creates n hosts named names[i] (NULL: "h1".."hn"); aborts
 * the test when a step fails, naming the command. */
void it_net_create(it_net *n, size_t n_hosts, const char *const *names);
/* Deletes everything it_net_create made; safe to call twice. */
void it_net_destroy(it_net *n);
/* Destroys every net of this process (the atexit handler, and the test
 * suites' .fini: Criterion ends a failed test's process without atexit). */
void it_net_destroy_all(void);
/* For a child between fork and exec: joins host i's namespace, a fresh UTS
 * namespace named after the host. Returns 0, or -1 (errno set). */
int it_net_enter(const it_net *n, size_t i);
/* Cuts (up = false) or heals host i's link, at the bridge's end. */
void it_net_link(const it_net *n, size_t i, bool up);
/* Applies `tc qdisc replace dev eth0 root netem ARGS` in host i (ARGS is
 * split on spaces, e.g. "delay 10ms"; NULL removes the qdisc). False when
 * the kernel has no netem (the test then skips). */
bool it_net_netem(const it_net *n, size_t i, const char *args);
/* Whether netem works on this kernel (probed once, on a scratch namespace). */
bool it_net_has_netem(void);

#endif
