/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Global options, and the small parsers every subcommand shares (addresses,
 * job ids, numbers). Error messages start with
 * the option they are about, then quote what the user typed, then say what
 * would have been accepted.
 */
#include "cli/cli_internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/methods.h"

#define DEFAULT_TIMEOUT_MS 10000u

const struct option ty__cli_help_only[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

int ty__cli_parse(int argc, char **argv, const char *shortopts, const struct option *opts,
                  ty__cli_arg_fn on, void *ud, char *err, size_t err_len) {
  ty_opts it;
  int rc = ty_opts_init(&it, argc, argv, shortopts, opts);
  if (rc != 0)
    return ty_errf(err, err_len, rc, "cannot parse the command line: %s", ty_strerror(rc));
  while (rc == 0) {
    const char *v = NULL;
    int id = ty_opts_next(&it, &v, err, err_len);
    if (id == TY_OPT_END) break;
    rc = id < TY_OPT_POSITIONAL ? id : on(&it, id, v, ud, err, err_len);
  }
  ty_opts_close(&it);
  return rc == TY__CLI_STOP ? 0 : rc;
}

int ty__cli_spread_ntasks(ty_job_spec *j, uint32_t ntasks, uint32_t max_per_node, char *err,
                          size_t err_len) {
  if (ntasks == 0) return 0;
  /* No -N: --ntasks-per-node Q says how many nodes N tasks take, as
   * sbatch's and srun's (-n 4 --ntasks-per-node 2 is 2 nodes). */
  if (!j->nodes && j->tasks_per_node && ntasks % j->tasks_per_node != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--ntasks %u is not a multiple of --ntasks-per-node %u (every node runs the "
                   "same number of ranks)",
                   ntasks, j->tasks_per_node);
  if (!j->nodes && j->tasks_per_node) j->nodes = ntasks / j->tasks_per_node;
  uint32_t nodes = j->nodes ? j->nodes : 1;
  if (j->tasks_per_node && (uint64_t)j->tasks_per_node * nodes != ntasks)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--ntasks %u disagrees with --nodes %u x --ntasks-per-node %u; give one of "
                   "--ntasks and --ntasks-per-node",
                   ntasks, nodes, j->tasks_per_node);
  if (ntasks % nodes != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--ntasks %u does not divide evenly over %u nodes (every node runs the same "
                   "number of ranks)",
                   ntasks, nodes);
  if (ntasks / nodes > max_per_node)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--ntasks %u is %u ranks per node (at most %u; add --nodes)", ntasks,
                   ntasks / nodes, max_per_node);
  j->tasks_per_node = ntasks / nodes;
  return 0;
}

int ty__cli_parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                      char *err, size_t err_len) {
  if (!isdigit((unsigned char)s[0]))
    return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not a non-negative integer", what, s);
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end != '\0')
    return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not a non-negative integer", what, s);
  if (errno == ERANGE || v > max)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s is too large (at most %u)", what, s, max);
  if (v < min)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s is not allowed (at least %u)", what, s, min);
  *out = (uint32_t)v;
  return 0;
}

int ty__cli_parse_i32(const char *what, const char *s, int32_t *out, char *err, size_t err_len) {
  const char *digits = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
  if (!isdigit((unsigned char)digits[0]))
    return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not an integer", what, s);
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (*end != '\0')
    return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not an integer", what, s);
  if (errno == ERANGE || v < INT32_MIN || v > INT32_MAX)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s is out of range (%d to %d)", what, s, INT32_MIN,
                   INT32_MAX);
  *out = (int32_t)v;
  return 0;
}

int ty__cli_parse_priority(const char *what, const char *s, int32_t *out, char *err,
                           size_t err_len) {
  int32_t v;
  int rc = ty__cli_parse_i32(what, s, &v, err, err_len);
  if (rc == 0 && (v < TY_JOB_PRIORITY_MIN || v > TY_JOB_PRIORITY_MAX))
    rc = ty_errf(err, err_len, TY_EINVAL, "%s: %s is outside %d..%d", what, s, TY_JOB_PRIORITY_MIN,
                 TY_JOB_PRIORITY_MAX);
  if (rc == 0) *out = v;
  return rc;
}

int ty_cli_parse_job_id(const char *s, uint64_t *out_id, char *err, size_t err_len) {
  errno = 0;
  char *end;
  unsigned long long v = isdigit((unsigned char)s[0]) ? strtoull(s, &end, 10) : 0;
  if (!isdigit((unsigned char)s[0]) || *end != '\0' || errno == ERANGE || v == 0)
    return ty_errf(err, err_len, TY_EINVAL, "\"%s\" is not a job id (a positive integer)", s);
  *out_id = v;
  return 0;
}

int ty_cli_parse_addr(const char *what, const char *s, int default_port, char **out_host,
                      int *out_port, char *err, size_t err_len) {
  const char *host = s, *colon;
  size_t hlen;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || (close[1] != '\0' && close[1] != ':')) goto bad;
    host = s + 1, hlen = (size_t)(close - host);
    colon = close[1] == ':' ? close + 1 : NULL;
  } else {
    colon = strrchr(s, ':');
    if (colon && strchr(s, ':') != colon) goto bad; /* a bare IPv6 address needs [] */
    hlen = colon ? (size_t)(colon - s) : strlen(s);
  }
  if (hlen == 0) goto bad;
  uint32_t port = (uint32_t)default_port;
  if (colon && ty__cli_parse_u32(what, colon + 1, 1, 65535, &port, NULL, 0) != 0) goto bad;
  *out_host = ty_xmalloc(hlen + 1);
  memcpy(*out_host, host, hlen);
  (*out_host)[hlen] = '\0';
  *out_port = (int)port;
  return 0;
bad:
  return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not HOST:PORT (e.g. 127.0.0.1:%d)", what,
                 s, TY_CONTROLLER_PORT);
}

enum { G_CONTROLLER = TY__CLI_OPT_FIRST, G_TIMEOUT, G_JSON, G_VERSION, G_SOCKET, G_HELP = 'h' };
static const struct option global_opts[] = {
    {"controller", required_argument, NULL, G_CONTROLLER},
    {"socket", required_argument, NULL, G_SOCKET},
    {"timeout", required_argument, NULL, G_TIMEOUT},
    {"json", no_argument, NULL, G_JSON},
    {"help", no_argument, NULL, G_HELP},
    {"version", no_argument, NULL, G_VERSION},
    {NULL, 0, NULL, 0},
};

static int set_controller(ty_cli_global *g, const char *what, const char *v, char *err,
                          size_t err_len) {
  char *host = NULL;
  int port = 0;
  int rc = ty_cli_parse_addr(what, v, TY_CONTROLLER_PORT, &host, &port, err, err_len);
  if (rc) return rc;
  free(g->host);
  free(g->controller);
  g->host = host, g->port = port;
  g->controller = ty_xmalloc(strlen(host) + 16);
  sprintf(g->controller, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
  return 0;
}

/* Options up to the subcommand, which ends them: its argv index is kept. */
static int global_opt(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  ty_cli_global *g = ud;
  uint32_t s = 0;
  switch (id) {
  case TY_OPT_POSITIONAL:
    g->cmd_index = it->next - 1; /* it's indices are argv's: argv[0] is skipped alike */
    return TY__CLI_STOP;
  case G_CONTROLLER:
    return set_controller(g, "--controller", v, err, err_len);
  case G_SOCKET:
    if (strcmp(v, "none") != 0 && v[0] != '/')
      return ty_errf(err, err_len, TY_EINVAL,
                     "--socket: \"%s\" is not an absolute path or none (e.g. %s)", v,
                     "/run/trainyard/traind.sock");
    if (strlen(v) >= 108)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--socket: \"%s\" is longer than a socket path may be", v);
    return ty__cli_set_text("--socket", &g->socket, v, err, err_len);
  case G_TIMEOUT:
    if (ty_parse_duration(v, &s) != 0 || s == 0 || s > 86400)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--timeout: \"%s\" is not a duration between 1s and 1d (examples: 5, "
                     "30s, 2m)",
                     v);
    g->timeout_ms = s * 1000u;
    g->timeout_given = true;
    return 0;
  case G_JSON:
    g->json = true;
    return 0;
  case G_HELP:
    g->help = true;
    return 0;
  case G_VERSION:
    g->version = true;
    return 0;
  default:
    return ty_errf(err, err_len, TY_EINTERNAL, "unhandled option");
  }
}

int ty_cli_local_controller(const char *env_port, char *out, size_t out_len, char *err,
                            size_t err_len) {
  uint32_t port = TY_CONTROLLER_PORT;
  if (env_port && *env_port) {
    int rc = ty__cli_parse_u32("TRAINYARD_PORT", env_port, 1, 65535, &port, err, err_len);
    if (rc) return rc;
  }
  snprintf(out, out_len, "127.0.0.1:%" PRIu32, port);
  return 0;
}

/* No address given: the controller on this host (ty_cli_local_controller). */
static int set_local_controller(ty_cli_global *g, const char *env_port, char *err, size_t err_len) {
  char addr[TY_CLI_LOCAL_CONTROLLER_LEN];
  int rc = ty_cli_local_controller(env_port, addr, sizeof addr, err, err_len);
  return rc ? rc : set_controller(g, "TRAINYARD_PORT", addr, err, err_len);
}

int ty_cli_parse_global(int argc, char **argv, const char *env_controller, const char *env_port,
                        ty_cli_global *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  out->timeout_ms = DEFAULT_TIMEOUT_MS;
  out->cmd_index = argc;
  int rc = ty__cli_parse(argc - 1, argv + 1, "h", global_opts, global_opt, out, err, err_len);
  /* The environment only counts when --controller did not say otherwise,
   * and TRAINYARD_PORT only when TRAINYARD_CONTROLLER did not either. */
  if (rc == 0 && !out->host && env_controller && *env_controller)
    rc = set_controller(out, "TRAINYARD_CONTROLLER", env_controller, err, err_len);
  else if (rc == 0 && !out->host)
    rc = set_local_controller(out, env_port, err, err_len);
  if (rc) ty_cli_global_close(out);
  return rc;
}

void ty_cli_global_close(ty_cli_global *g) {
  if (!g) return;
  free(g->host);
  free(g->controller);
  free(g->socket);
  g->host = g->controller = g->socket = NULL;
}

int ty__cli_set_text(const char *what, char **field, const char *v, char *err, size_t err_len) {
  if (!*v) return ty_errf(err, err_len, TY_EINVAL, "%s: must not be empty", what);
  free(*field);
  *field = ty_strdup(v);
  return 0;
}

int ty__cli_set_queue(char **field, const char *v, char *err, size_t err_len) {
  if (strchr(v, ','))
    return ty_errf(err, err_len, TY_EINVAL,
                   "-p/--partition: \"%s\" is a list of queues (sbatch's: the first that can "
                   "start the job); a job goes to one queue here: give one (trainctl queue ls "
                   "lists them)",
                   v);
  return ty__cli_set_text("--queue", field, v, err, err_len);
}

int ty__cli_parse_job_mem(const char *s, uint64_t *out, char *err, size_t err_len) {
  int rc = ty__cli_parse_mem("--mem", s, true, out, err, err_len);
  if (rc == 0 && *out == 0) *out = TY_MEM_ALL;
  return rc;
}

int ty__cli_parse_mem(const char *what, const char *s, bool allow_zero, uint64_t *out, char *err,
                      size_t err_len) {
  uint64_t v = 0;
  if (ty_parse_mem_mb(s, &v) != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: \"%s\" is not a size (a bare number is megabytes, as Slurm's: 4000; or "
                   "512K, 512M, 16G, 1T)",
                   what, s);
  if (v == 0 && !allow_zero) return ty_errf(err, err_len, TY_EINVAL, "%s: must be above 0", what);
  /* Slurm counts memory in whole megabytes, rounding up (512K is 1M): a
   * limit of a few kilobytes is no cgroup limit the kernel takes. */
  *out = v > UINT64_MAX - ((1u << 20) - 1) ? v : (v + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
  return 0;
}
