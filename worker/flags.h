/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainworkerd's flags (docs/cluster-protocol.md): their values after
 * parsing, and the binaries they name (trainrun, the exec helper) resolved
 * to absolute paths. Used by worker/main.c only.
 */
#ifndef TY_WORKER_FLAGS_H
#define TY_WORKER_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/auth/auth.h"
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"

typedef struct worker_opts {
  char controller_host[256];
  int controller_port;
  char name[256];
  char state_dir[1024];
  char io_host[256];
  int io_port;
  char metrics_host[256];
  int metrics_port;
  const char *metrics_token_file; /* --metrics-token-file: NULL = /metrics open */
  const char *advertise;
  char trainrun[1024]; /* graph jobs; "" = searched at start (find_trainrun) */
  long cpus, gpus;     /* -1 = detected */
  uint64_t memory;     /* 0 = detected */
  const char *port_file;
  ty_rpc_limits limits; /* of the task I/O port */
  ty_log_level log_level;
  /* Authentication and isolation (docs/security.md). */
  ty_auth_mode auth;
  const char *cluster_key, *munge_socket, *service_user;
  char exec_helper[1024]; /* "" = next to this binary */
  const char *cgroup_root, *cgroup_name;
  bool no_cgroups;
  long max_pids;   /* --max-pids-per-job: each job's pids.max here, 0 = none */
  char **task_env; /* --task-env, resolved to NAME=value (owned) */
  size_t n_task_env;
  const char *mpi_if;       /* --mpi-if-include (points into argv); NULL = Open MPI's choice */
  const char *tmp_base;     /* --tmp-base (points into argv, or "/tmp") */
  uint64_t log_max;         /* --log-max-size, 0 = no cap */
  uint32_t log_retention_s; /* --log-retention, 0 = keep */
  uint32_t lease_ms;        /* --lease-ms: TY_LEASE_AUTO, or 0 = no fencing */
} worker_opts;

/* Fills o from argv (o's strings may point into argv). Returns -1 to go
 * on, or the process exit code (0 after --help/--version, 2 after a usage
 * error, which it has printed). */
int ty_worker_flags_parse(int argc, char **argv, worker_opts *o);

/* Frees what parsing allocated (--task-env's values). */
void ty_worker_flags_free(worker_opts *o);

/* --trainrun's binary, or the one found beside this binary, in BINDIR or in
 * PATH, kept as an absolute path; a warning when there is none. */
void ty_worker_find_trainrun(worker_opts *o);

/* --exec-helper, or the exec helper beside this binary, in LIBEXECDIR or in
 * PATH. */
void ty_worker_find_helper(worker_opts *o);

#endif
