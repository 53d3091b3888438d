/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one option parser (see base.h): getopt_long in REQUIRE_ORDER mode
 * ("+"), so argv is never permuted and the first word of a command to run
 * can end the options, with ':' first so a missing value is told apart
 * from an unknown option; positional arguments are taken here between
 * getopt calls, and long names are checked for an exact match after getopt
 * accepted an abbreviation.
 */
#include "lib/base/base.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ty_opts_init(ty_opts *o, int argc, char *const *args, const char *shortopts,
                 const struct option *longopts) {
  memset(o, 0, sizeof(*o));
  if (strlen(shortopts) + 3 > sizeof(o->shortopts)) return TY_EINVAL;
  snprintf(o->shortopts, sizeof(o->shortopts), "+:%s", shortopts);
  o->argv = calloc((size_t)argc + 2, sizeof(*o->argv)); /* argv[argc] stays NULL */
  if (!o->argv) return TY_ENOMEM;
  o->argv[0] = "-"; /* getopt skips argv[0]: the program's name */
  for (int i = 0; i < argc; i++)
    o->argv[i + 1] = args[i];
  o->argc = argc + 1;
  o->longopts = longopts;
  o->next = 1;
  /* Start getopt over (optind 0) on an empty command line with this
   * optstring, so its ordering is ours and nothing is left of an earlier
   * parse; from then on it continues wherever o->next says. */
  char *none[] = {o->argv[0], NULL};
  optind = 0;
  opterr = 0;
  (void)getopt_long(1, none, o->shortopts, longopts, NULL);
  return 0;
}

void ty_opts_close(ty_opts *o) {
  free(o->argv);
  memset(o, 0, sizeof(*o));
}

void ty_opts_stop(ty_opts *o) {
  o->only_positional = true;
}

static const struct option *find_long(const ty_opts *o, const char *name, size_t len) {
  for (const struct option *l = o->longopts; l && l->name; l++)
    if (strlen(l->name) == len && strncmp(l->name, name, len) == 0) return l;
  return NULL;
}

/* A message for getopt's '?' or ':' about argv[at]. */
static int refuse(const ty_opts *o, int c, int at, char *err, size_t len) {
  const char *tok = o->argv[at < o->argc ? at : o->argc - 1];
  if (strncmp(tok, "--", 2) != 0) {
    if (c == ':') return ty_errf(err, len, TY_EINVAL, "-%c needs a value", optopt);
    return ty_errf(err, len, TY_EINVAL, "unknown option -%c", optopt);
  }
  const char *name = tok + 2, *eq = strchr(name, '=');
  size_t n = eq ? (size_t)(eq - name) : strlen(name);
  const struct option *l = find_long(o, name, n);
  if (l && c == ':') return ty_errf(err, len, TY_EINVAL, "--%s needs a value", l->name);
  if (l && eq && l->has_arg == no_argument)
    return ty_errf(err, len, TY_EINVAL, "--%s does not take a value", l->name);
  return ty_errf(err, len, TY_EINVAL, "unknown option --%.*s", (int)n, name);
}

/* "-5", "-0.5": an argument, unless the parser has digit options. */
static bool negative_number(const ty_opts *o, const char *a) {
  return a[0] == '-' && isdigit((unsigned char)a[1]) && !strpbrk(o->shortopts, "0123456789");
}

/* "--wrap" taken as -J's value in `-J --wrap CMD`: the value was forgotten.
 * Only a whole argument naming one of this parser's long options counts, so
 * that values which merely start with "-" stay values. */
static bool taken_option(const ty_opts *o, const char *v) {
  if (strncmp(v, "--", 2) != 0 || !v[2]) return false;
  return find_long(o, v + 2, strcspn(v + 2, "=")) != NULL;
}

static int positional(ty_opts *o, const char **out_arg) {
  if (o->next >= o->argc) return TY_OPT_END;
  *out_arg = o->argv[o->next++];
  return TY_OPT_POSITIONAL;
}

int ty_opts_next(ty_opts *o, const char **out_arg, char *err, size_t err_len) {
  *out_arg = NULL;
  for (;;) {
    if (o->only_positional) return positional(o, out_arg);
    if (o->next < o->argc && negative_number(o, o->argv[o->next])) return positional(o, out_arg);
    int at = o->next, li = -1;
    optind = o->next;
    opterr = 0;
    int c = getopt_long(o->argc, o->argv, o->shortopts, o->longopts, &li);
    o->next = optind;
    if (c == '?' || c == ':') return refuse(o, c, c == ':' ? o->next - 1 : at, err, err_len);
    if (c != -1) {
      const char *tok = o->argv[at];
      size_t n = strcspn(tok + 2, "=");
      if (li >= 0 &&
          (strlen(o->longopts[li].name) != n || strncmp(tok + 2, o->longopts[li].name, n)))
        return ty_errf(err, err_len, TY_EINVAL, "unknown option --%.*s", (int)n, tok + 2);
      if (optarg && o->next == at + 2 && optarg == o->argv[at + 1] && taken_option(o, optarg)) {
        if (li >= 0)
          return ty_errf(err, err_len, TY_EINVAL,
                         "--%s needs a value (the next argument, %s, is an option)",
                         o->longopts[li].name, optarg);
        return ty_errf(err, err_len, TY_EINVAL,
                       "-%c needs a value (the next argument, %s, is an option)", c, optarg);
      }
      *out_arg = optarg;
      return c;
    }
    if (o->next > at && strcmp(o->argv[at], "--") == 0) {
      o->only_positional = true; /* getopt took the "--" */
      continue;
    }
    return positional(o, out_arg);
  }
}
