/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The option iterator, global options, and the small parsers every
 * subcommand shares (addresses, job ids, numbers). Error messages start with
 * the option they are about, then quote what the user typed, then say what
 * would have been accepted.
 */
#include "cli/cli_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/methods.h"

#define DEFAULT_TIMEOUT_MS 10000u

void ty__cli_args_init(ty__cli_args *it, int argc, char **argv, const ty__cli_opt *opts,
                       size_t nopts) {
  memset(it, 0, sizeof *it);
  it->argc = argc, it->argv = argv, it->opts = opts, it->nopts = nopts;
}

static const ty__cli_opt *find_long(const ty__cli_args *it, const char *name, size_t len) {
  for (size_t k = 0; k < it->nopts; k++)
    if (strlen(it->opts[k].name) == len && strncmp(it->opts[k].name, name, len) == 0)
      return &it->opts[k];
  return NULL;
}

static const ty__cli_opt *find_short(const ty__cli_args *it, char c) {
  for (size_t k = 0; k < it->nopts; k++)
    if (it->opts[k].short_name && it->opts[k].short_name == c) return &it->opts[k];
  return NULL;
}

/* Takes the value of `o`: inline ("--x=v") or the next argument. */
static int take_value(ty__cli_args *it, const ty__cli_opt *o, const char *inl, const char *shown,
                      const char **out_val, char *err, size_t err_len) {
  if (!o->has_arg) {
    if (inl) return ty_errf(err, err_len, TY__ARG_ERROR, "%s does not take a value", shown);
    *out_val = NULL;
    return o->id;
  }
  if (inl) {
    *out_val = inl;
    return o->id;
  }
  if (it->i >= it->argc) return ty_errf(err, err_len, TY__ARG_ERROR, "%s needs a value", shown);
  *out_val = it->argv[it->i++];
  return o->id;
}

int ty__cli_args_next(ty__cli_args *it, const char **out_val, char *err, size_t err_len) {
  *out_val = NULL;
  if (it->i >= it->argc) return TY__ARG_END;
  const char *a = it->argv[it->i++];
  if (it->only_positional || a[0] != '-' || a[1] == '\0') {
    *out_val = a;
    return TY__ARG_POSITIONAL;
  }
  if (strcmp(a, "--") == 0) {
    it->only_positional = true;
    return ty__cli_args_next(it, out_val, err, err_len);
  }
  if (a[1] == '-') {
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const ty__cli_opt *o = find_long(it, name, len);
    if (!o) return ty_errf(err, err_len, TY__ARG_ERROR, "unknown option --%.*s", (int)len, name);
    char shown[64];
    snprintf(shown, sizeof shown, "--%s", o->name);
    return take_value(it, o, eq ? eq + 1 : NULL, shown, out_val, err, err_len);
  }
  const ty__cli_opt *o = a[2] == '\0' ? find_short(it, a[1]) : NULL;
  if (!o) return ty_errf(err, err_len, TY__ARG_ERROR, "unknown option %s", a);
  char shown[8];
  snprintf(shown, sizeof shown, "-%c", a[1]);
  return take_value(it, o, NULL, shown, out_val, err, err_len);
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
  if (*end != '\0') return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not an integer", what, s);
  if (errno == ERANGE || v < INT32_MIN || v > INT32_MAX)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s is out of range (%d to %d)", what, s, INT32_MIN,
                       INT32_MAX);
  *out = (int32_t)v;
  return 0;
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
  return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not HOST:PORT (e.g. 127.0.0.1:%d)", what, s,
                     TY_CONTROLLER_PORT);
}

enum { G_CONTROLLER, G_TIMEOUT, G_JSON, G_HELP, G_VERSION };
static const ty__cli_opt global_opts[] = {
    {"controller", 0, true, G_CONTROLLER},
    {"timeout", 0, true, G_TIMEOUT},
    {"json", 0, false, G_JSON},
    {"help", 'h', false, G_HELP},
    {"version", 0, false, G_VERSION},
};

static int set_controller(ty_cli_global *g, const char *what, const char *v, char *err, size_t err_len) {
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

static int global_opt(ty_cli_global *g, int id, const char *v, char *err, size_t err_len) {
  uint32_t s = 0;
  switch (id) {
  case G_CONTROLLER:
    return set_controller(g, "--controller", v, err, err_len);
  case G_TIMEOUT:
    if (ty_parse_duration(v, &s) != 0 || s == 0 || s > 86400)
      return ty_errf(err, err_len, TY_EINVAL,
                         "--timeout: \"%s\" is not a duration between 1s and 1d (examples: 5, "
                         "30s, 2m)",
                         v);
    g->timeout_ms = s * 1000u;
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

int ty_cli_parse_global(int argc, char **argv, const char *env_controller, ty_cli_global *out,
                        char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  out->timeout_ms = DEFAULT_TIMEOUT_MS;
  out->cmd_index = argc;
  int rc = 0;
  ty__cli_args it;
  ty__cli_args_init(&it, argc - 1, argv + 1, global_opts, TY_ARRAY_LEN(global_opts));
  while (rc == 0) {
    const char *v;
    int id = ty__cli_args_next(&it, &v, err, err_len);
    if (id == TY__ARG_END) break;
    if (id == TY__ARG_ERROR)
      rc = TY_EINVAL;
    else if (id == TY__ARG_POSITIONAL) {
      out->cmd_index = it.i; /* it.i is past the command in argv + 1 */
      break;
    } else
      rc = global_opt(out, id, v, err, err_len);
  }
  /* The environment only counts when --controller did not say otherwise. */
  if (rc == 0 && !out->host)
    rc = set_controller(out, "TRAINYARD_CONTROLLER",
                        env_controller && *env_controller ? env_controller : "127.0.0.1", err, err_len);
  if (rc) ty_cli_global_close(out);
  return rc;
}

void ty_cli_global_close(ty_cli_global *g) {
  if (!g) return;
  free(g->host);
  free(g->controller);
  g->host = g->controller = NULL;
}
