/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Subcommand command lines into plain structs: ls, show, logs, cancel,
 * nodes and plan (submit's, with batch scripts' directives: opts_submit.c).
 * Every rejected value yields a message that starts with the option's name.
 */
#include "cli/cli_internal.h"
#include "cli/cli_history.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- ls --------------------------------------------------------------------- */

enum {
  L_JSON = TY__CLI_OPT_FIRST,
  L_SINCE,
  L_HELP_FORMAT,
  L_ME,
  L_NAME,
  L_START,
  L_HELP,
  L_LIMIT,
  L_JOBS = 'j',
  L_NODELIST = 'w',
  L_STATE = 's',
  L_STATES_SQUEUE = 't',
  L_PARTITION = 'p',
  L_USER = 'u',
  L_QUEUE,
  L_QOS = 'q', /* squeue's -q/--qos, not a queue: refused with a pointer */
  L_ALL = 'a',
  L_ARRAY = 'r',
  L_FORMAT = 'o',
  L_FORMAT_LONG = 'O',
  L_LONG = 'l',
  L_SORT = 'S',
  L_NOHEADER = 'n',
  L_NOHEADER_SQUEUE = 'h', /* squeue's -h; --help is still help */
};
static const struct option ls_opts[] = {
    {"state", required_argument, NULL, L_STATE},
    {"user", required_argument, NULL, L_USER},
    {"queue", required_argument, NULL, L_QUEUE},
    {"all", no_argument, NULL, L_ALL},
    {"json", no_argument, NULL, L_JSON},
    {"help", no_argument, NULL, L_HELP},
    {"array", no_argument, NULL, L_ARRAY},
    {"format", required_argument, NULL, L_FORMAT},
    {"sort", required_argument, NULL, L_SORT},
    {"noheader", no_argument, NULL, L_NOHEADER},
    {"since", required_argument, NULL, L_SINCE},
    {"limit", required_argument, NULL, L_LIMIT},
    {"help-format", no_argument, NULL, L_HELP_FORMAT},
    /* squeue's spellings */
    {"states", required_argument, NULL, L_STATES_SQUEUE},
    {"Format", required_argument, NULL, L_FORMAT_LONG},
    {"long", no_argument, NULL, L_LONG},
    {"partition", required_argument, NULL, L_PARTITION},
    {"me", no_argument, NULL, L_ME},
    {"jobs", required_argument, NULL, L_JOBS},
    {"name", required_argument, NULL, L_NAME},
    {"start", no_argument, NULL, L_START},
    {"qos", required_argument, NULL, L_QOS},
    {"nodelist", required_argument, NULL, L_NODELIST},
    {NULL, 0, NULL, 0},
};

int ty__cli_add_names(const char *what, const char *v, char ***names, size_t *n, char *err,
                      size_t err_len) {
  char *copy = ty_strdup(v), *save = NULL;
  size_t before = *n;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    *names = ty_xrealloc(*names, (*n + 1) * sizeof **names);
    (*names)[(*n)++] = ty_strdup(tok);
  }
  free(copy);
  if (*n == before) return ty_errf(err, err_len, TY_EINVAL, "%s: must not be empty", what);
  return 0;
}

int ty__cli_node_list(const char *what, const char *v, char ***names, size_t *n, char *err,
                      size_t err_len) {
  char why[TY_ERR_LEN];
  if (ty_hostnames_parse(v, TY_JOB_MAX_NODE_NAMES, names, n, why, sizeof why) != 0)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s", what, why);
  return 0;
}

/* A list option's names (-u U,U, -p Q,Q), and *one its only name when it
 * has one: the controller filters by one, several are picked here. */
static int add_list(const char *what, char ***names, size_t *n, char **one, const char *v,
                    char *err, size_t err_len) {
  int rc = ty__cli_add_names(what, v, names, n, err, err_len);
  if (rc == 0) {
    free(*one);
    *one = *n == 1 ? ty_strdup((*names)[0]) : NULL;
  }
  return rc;
}

/* -u U,U: as given, before ty_cli_resolve_users reads uids. */
static int add_users(char ***users, size_t *n, char **user, const char *v, char *err,
                     size_t err_len) {
  return add_list("--user", users, n, user, v, err, err_len);
}

/* -p Q,Q: squeue's and scancel's partition list, jobs in any of them. */
static int add_queues(char ***queues, size_t *n, char **queue, const char *v, char *err,
                      size_t err_len) {
  return add_list("--queue", queues, n, queue, v, err, err_len);
}

static void free_users(char **users, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(users[i]);
  free(users);
}

/* squeue --me: the user running this command, by its real uid, among
 * -u's users. */
static int add_me(char ***users, size_t *n, char **user, char *err, size_t err_len) {
  struct passwd *pw = getpwuid(getuid());
  if (!pw || !pw->pw_name)
    return ty_errf(err, err_len, TY_EINVAL, "--me: uid %u has no user name here",
                   (unsigned)getuid());
  return add_users(users, n, user, pw->pw_name, err, err_len);
}

/* Slurm's states with no counterpart here, and where such a job is. */
static const char *slurm_only_state(const char *s) {
  static const struct {
    const char *abbrev, *name, *instead;
  } states[] = {
      {"CG", "COMPLETING", "a job is COMPLETED, FAILED... once its ranks ended"},
      {"RQ", "REQUEUED", "a requeued job is PENDING again (its history says why)"},
      {"S", "SUSPENDED", "jobs are not suspended"},
      {"DL", "DEADLINE", "there are no deadlines"},
      {"BF", "BOOT_FAIL", "nodes are not booted for jobs"},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(states); i++)
    if (!strcasecmp(s, states[i].abbrev) || !strcasecmp(s, states[i].name))
      return states[i].instead;
  return NULL;
}

/* "running,pending" -> states; duplicates are dropped. */
int ty__cli_add_states(int *states, size_t *nstates, const char *v, char *err, size_t err_len) {
  char *copy = ty_strdup(v), *save = NULL;
  int rc = 0;
  if (!*v) rc = ty_errf(err, err_len, TY_EINVAL, "--state: must not be empty");
  for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
    int st = 0;
    const char *instead = slurm_only_state(tok);
    if (instead) {
      rc = ty_errf(err, err_len, TY_EINVAL, "--state: Slurm's %s is not a state here: %s", tok,
                   instead);
      break;
    }
    if (ty_job_state_parse(tok, &st) != 0) {
      rc = ty_errf(err, err_len, TY_EINVAL,
                   "--state: unknown state \"%s\" (one of: pending, running, completed, "
                   "failed, cancelled, timeout, out_of_memory, preempted, node_fail, or "
                   "squeue's and sacct's short forms: PD, R, CD, F, CA, TO, OOM, PR, NF)",
                   tok);
      break;
    }
    bool dup = false;
    for (size_t i = 0; i < *nstates; i++)
      dup |= states[i] == st;
    if (!dup) states[(*nstates)++] = st;
  }
  free(copy);
  return rc;
}

/* --format: ls's field names, or squeue's -o codes ("%.18i %.8j"). */
static int ls_format(ty_cli_ls_args *a, const char *v, char *err, size_t err_len) {
  char *names = NULL;
  if (strchr(v, '%') && ty_cli_ls_squeue_format(v, &names, err, err_len) != 0) return TY_EINVAL;
  int rc = ty_cli_parse_format("--format", names ? names : v, ty_cli_ls_fields, ty_cli_n_ls_fields,
                               &a->format, err, err_len);
  free(names);
  /* The last -o, -O or -l decides: a later list of names is a table again. */
  free(a->squeue_format);
  a->squeue_format = rc == 0 && strchr(v, '%') ? ty_strdup(v) : NULL;
  return rc;
}

static int ls_option(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  ty_cli_ls_args *a = ud;
  (void)it;
  switch (id) {
  case TY_OPT_POSITIONAL:
    return ty_errf(err, err_len, TY_EINVAL, "ls: unexpected argument \"%s\"", v);
  case L_STATE:
  case L_STATES_SQUEUE:
    if (!strcasecmp(v, "all")) { /* squeue -t all: every state, as --all */
      a->all = true;
      return 0;
    }
    return ty__cli_add_states(a->states, &a->nstates, v, err, err_len);
  case L_USER:
    return add_users(&a->users, &a->nusers, &a->user, v, err, err_len);
  case L_ME:
    return add_me(&a->users, &a->nusers, &a->user, err, err_len);
  case L_JOBS:
    return ty_job_ref_list_parse("--jobs", v, false, &a->jobs, &a->njobs, err, err_len);
  case L_NAME:
    return ty__cli_add_names("--name", v, &a->names, &a->nnames, err, err_len);
  case L_NODELIST:
    return ty__cli_node_list("-w/--nodelist", v, &a->nodes, &a->nnodes, err, err_len);
  case L_START: /* squeue --start: a pointer beats "unknown option" */
    return ty_errf(err, err_len, TY_EINVAL,
                   "ls --start: a pending job's estimated start (squeue --start) is trainctl why "
                   "ID, with its position and priority factors");
  case L_QOS: /* squeue -q QOS listed nothing here when -q was --queue: say so */
    return ty_errf(err, err_len, TY_EINVAL,
                   "ls -q/--qos %s: Trainyard has no QOS (squeue's -q); -p/--partition or "
                   "--queue Q filters by queue (trainctl queue ls lists them)",
                   v);
  case L_QUEUE:
  case L_PARTITION:
    return add_queues(&a->queues, &a->nqueues, &a->queue, v, err, err_len);
  case L_ALL:
    a->all = true;
    return 0;
  case L_ARRAY:
    a->array = true;
    return 0;
  case L_FORMAT:
  case L_FORMAT_LONG: /* squeue -O: names only, as --format takes them */
    return ls_format(a, v, err, err_len);
  case L_LONG: /* squeue -l: its long columns, the time limit among them */
    return ls_format(a, "id,queue,name,user,state,elapsed,timelimit,numnodes,nodes,reason", err,
                     err_len);
  case L_SORT:
    return ty_cli_parse_sort("--sort", v, &a->sort, err, err_len);
  case L_NOHEADER:
  case L_NOHEADER_SQUEUE:
    a->noheader = true;
    return 0;
  case L_SINCE:
    return ty_cli_parse_time("--since", v, ty_now_ms(), &a->since_ms, err, err_len);
  case L_LIMIT:
    return ty__cli_parse_u32("--limit", v, 1, UINT32_MAX, &a->limit, err, err_len);
  case L_HELP_FORMAT:
    a->help_format = true;
    return 0;
  case L_JSON:
    a->json = true;
    return 0;
  case L_HELP:
    a->help = true;
    return 0;
  default:
    return ty_errf(err, err_len, TY_EINTERNAL, "unhandled option");
  }
}

int ty_cli_parse_ls(int argc, char **argv, ty_cli_ls_args *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  int rc =
      ty__cli_parse(argc, argv, "s:t:u:q:p:j:w:aro:O:lS:nh", ls_opts, ls_option, out, err, err_len);
  if (rc == 0 && out->format.n == 0)
    rc = ty_cli_parse_format("--format", ty_cli_ls_default_format, ty_cli_ls_fields,
                             ty_cli_n_ls_fields, &out->format, err, err_len);
  if (rc == 0 && out->all && out->nstates)
    rc = ty_errf(err, err_len, TY_EINVAL, "ls: --all and --state exclude each other");
  if (rc == 0 && !out->all && out->nstates == 0) {
    out->live_default = true;
    out->states[out->nstates++] = TY_JOB_PENDING;
    out->states[out->nstates++] = TY_JOB_RUNNING;
  }
  if (rc) ty_cli_ls_args_close(out);
  return rc;
}

void ty_cli_ls_args_close(ty_cli_ls_args *a) {
  if (!a) return;
  free(a->user), free(a->queue);
  free_users(a->users, a->nusers);
  free_users(a->queues, a->nqueues);
  free(a->squeue_format);
  free(a->jobs);
  for (size_t i = 0; i < a->nnames; i++)
    free(a->names[i]);
  free(a->names);
  ty_hostnames_free(a->nodes, a->nnodes);
  memset(a, 0, sizeof *a);
}

/* ---- show, logs, cancel, nodes ---------------------------------------------- */

enum { O_JSON = TY__CLI_OPT_FIRST, O_HELP = 'h', O_FOLLOW = 'f', O_RANK = 'r' };
static const struct option json_opts[] = {
    {"json", no_argument, NULL, O_JSON}, {"help", no_argument, NULL, O_HELP}, {NULL, 0, NULL, 0}};
static const struct option logs_opts[] = {{"follow", no_argument, NULL, O_FOLLOW},
                                          {"rank", required_argument, NULL, O_RANK},
                                          {"help", no_argument, NULL, O_HELP},
                                          {NULL, 0, NULL, 0}};

/* One positional: "123", "123_7" or "123_[1-5]" (the last only where
 * several jobs may be named). */
static int add_ref(const char *cmd, const char *v, ty_job_ref **refs, size_t *n, size_t max,
                   char *err, size_t err_len) {
  if (*n == max) return ty_errf(err, err_len, TY_EINVAL, "%s: unexpected argument \"%s\"", cmd, v);
  size_t before = *n;
  int rc = ty_job_refs_parse(cmd, v, refs, n, err, err_len);
  if (rc == 0 && *n > max)
    rc = ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" names several jobs; give one", cmd, v);
  if (rc != 0) *n = before;
  return rc;
}

typedef struct ids_ctx {
  const char *cmd;
  ty_job_ref **ids;
  size_t *nids, max_ids;
  bool help;
  int (*flag)(void *ud, int id, const char *v, char *err, size_t err_len);
  void *ud;
} ids_ctx;

static int ids_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  ids_ctx *c = ud;
  (void)it;
  if (id == TY_OPT_POSITIONAL) return add_ref(c->cmd, v, c->ids, c->nids, c->max_ids, err, err_len);
  c->help |= id == O_HELP;
  return c->flag(c->ud, id, v, err, err_len);
}

/* Parses a command line of flags plus job references; `max_ids` 1 means
 * exactly one, more means any number up to it (the caller checks that
 * there is one), 0 none. */
static int parse_with_ids(const char *cmd, int argc, char **argv, const char *shortopts,
                          const struct option *opts, ty_job_ref **ids, size_t *nids, size_t max_ids,
                          int (*flag)(void *ud, int id, const char *v, char *err, size_t err_len),
                          void *ud, char *err, size_t err_len) {
  ids_ctx c = {.cmd = cmd, .ids = ids, .nids = nids, .max_ids = max_ids, .flag = flag, .ud = ud};
  int rc = ty__cli_parse(argc, argv, shortopts, opts, ids_arg, &c, err, err_len);
  if (rc == 0 && *nids == 0 && !c.help && max_ids == 1)
    rc = ty_errf(err, err_len, TY_EINVAL, "%s: missing job id", cmd);
  return rc;
}

static int json_flag(void *ud, int id, const char *v, char *err, size_t err_len) {
  bool *flags = ud; /* [0] json, [1] help */
  (void)v, (void)err, (void)err_len;
  flags[id == O_JSON ? 0 : 1] = true;
  return 0;
}

/* show -o/--oneliner: scontrol show job's one-line form, Slurm's names. */
enum { O_ONELINER = 'o' };
static const struct option show_opts[] = {{"json", no_argument, NULL, O_JSON},
                                          {"help", no_argument, NULL, O_HELP},
                                          {"oneliner", no_argument, NULL, O_ONELINER},
                                          {NULL, 0, NULL, 0}};

static int show_flag(void *ud, int id, const char *v, char *err, size_t err_len) {
  ty_cli_show_args *a = ud;
  (void)v, (void)err, (void)err_len;
  if (id == O_JSON) a->json = true;
  if (id == O_HELP) a->help = true;
  if (id == O_ONELINER) a->oneliner = true;
  return 0;
}

int ty_cli_parse_show(int argc, char **argv, ty_cli_show_args *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  ty_job_ref *ids = NULL;
  size_t n = 0;
  int rc = parse_with_ids("show", argc, argv, "ho", show_opts, &ids, &n, 1, show_flag, out, err,
                          err_len);
  if (rc == 0 && n) out->id = ids[0].id, out->has_task = ids[0].has_task, out->task = ids[0].task;
  if (rc == 0 && out->json && out->oneliner)
    rc = ty_errf(err, err_len, TY_EINVAL, "show: --json and -o/--oneliner exclude each other");
  free(ids);
  return rc;
}

int ty_cli_parse_one_job(const char *cmd, int argc, char **argv, ty_cli_show_args *out, char *err,
                         size_t err_len) {
  memset(out, 0, sizeof *out);
  bool flags[2] = {false, false};
  ty_job_ref *ids = NULL;
  size_t n = 0;
  int rc =
      parse_with_ids(cmd, argc, argv, "h", json_opts, &ids, &n, 1, json_flag, flags, err, err_len);
  if (rc == 0 && n) out->id = ids[0].id, out->has_task = ids[0].has_task, out->task = ids[0].task;
  out->json = flags[0], out->help = flags[1];
  free(ids);
  return rc;
}

static int logs_flag(void *ud, int id, const char *v, char *err, size_t err_len) {
  ty_cli_logs_args *a = ud;
  uint32_t r = 0;
  int rc = 0;
  if (id == O_FOLLOW)
    a->follow = true;
  else if (id == O_HELP)
    a->help = true;
  else if ((rc = ty__cli_parse_u32("--rank", v, 0, UINT32_MAX, &r, err, err_len)) == 0)
    a->rank = r;
  return rc;
}

int ty_cli_parse_logs(int argc, char **argv, ty_cli_logs_args *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  out->rank = -1;
  ty_job_ref *ids = NULL;
  size_t n = 0;
  int rc = parse_with_ids("logs", argc, argv, "fr:h", logs_opts, &ids, &n, 1, logs_flag, out, err,
                          err_len);
  if (rc == 0 && n) out->ref = ids[0];
  free(ids);
  return rc;
}

/* cancel's filters take scancel's letters: -u user, -n name, -t state,
 * -p partition (our queue). */
enum {
  C_ME = TY__CLI_OPT_FIRST + 1,
  C_USER = 'u',
  C_NAME = 'n',
  C_STATE = 't',
  C_QUEUE = 'p',
  C_NODELIST = 'w',
  C_SIGNAL = 's',
  C_BATCH = 'b',
  C_FULL = 'f'
};
static const struct option cancel_opts[] = {
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, O_HELP},
    {"user", required_argument, NULL, C_USER},
    {"me", no_argument, NULL, C_ME},
    {"name", required_argument, NULL, C_NAME},
    {"state", required_argument, NULL, C_STATE},
    {"queue", required_argument, NULL, C_QUEUE},
    {"partition", required_argument, NULL, C_QUEUE},
    {"signal", required_argument, NULL, C_SIGNAL},
    {"batch", no_argument, NULL, C_BATCH},
    {"full", no_argument, NULL, C_FULL},
    {"nodelist", required_argument, NULL, C_NODELIST},
    {NULL, 0, NULL, 0},
};

static int cancel_flag(void *ud, int id, const char *v, char *err, size_t err_len) {
  ty_cli_cancel_args *a = ud;
  switch (id) {
  case O_JSON:
    a->json = true;
    return 0;
  case O_HELP:
    a->help = true;
    return 0;
  case C_USER:
    return add_users(&a->users, &a->nusers, &a->user, v, err, err_len);
  case C_ME:
    return add_me(&a->users, &a->nusers, &a->user, err, err_len);
  case C_NAME:
    return ty__cli_set_text("--name", &a->name, v, err, err_len);
  case C_QUEUE:
    return add_queues(&a->queues, &a->nqueues, &a->queue, v, err, err_len);
  case C_NODELIST:
    return ty__cli_node_list("-w/--nodelist", v, &a->nodes, &a->nnodes, err, err_len);
  case C_SIGNAL:
    return ty_cli_parse_signal_name("--signal", v, &a->signal, err, err_len);
  case C_BATCH: /* scancel -b: the batch script alone, so that its trap decides. */
    a->batch_only = true;
    return 0;
  case C_FULL: /* scancel -f: the script and what it runs, as without -b. */
    a->batch_only = false;
    return 0;
  default:
    return ty__cli_add_states(a->states, &a->nstates, v, err, err_len);
  }
}

/* Only live jobs can be cancelled: --state narrows pending and running. */
static int cancel_states_check(const ty_cli_cancel_args *a, char *err, size_t err_len) {
  for (size_t i = 0; i < a->nstates; i++)
    if (a->states[i] != TY_JOB_PENDING && a->states[i] != TY_JOB_RUNNING)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--state: only pending and running jobs can be cancelled, not %s",
                     ty_job_state_name(a->states[i]));
  return 0;
}

int ty_cli_parse_cancel(int argc, char **argv, ty_cli_cancel_args *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  int rc = parse_with_ids("cancel", argc, argv, "hu:n:t:p:w:s:bf", cancel_opts, &out->refs,
                          &out->nrefs, TY_JOB_REF_MAX_EXPAND, cancel_flag, out, err, err_len);
  bool filtered = out->nusers || out->name || out->nqueues || out->nstates || out->nnodes;
  if (rc == 0 && !filtered && out->nrefs == 0 && !out->help)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "cancel: missing job id (or filters: --user, --me, --name, --state, --queue, "
                 "--nodelist)");
  if (rc == 0 && filtered && out->nrefs)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "cancel: give job ids or filters (--user, --me, --name, --state, --queue, "
                 "--nodelist), not both");
  if (rc == 0) rc = cancel_states_check(out, err, err_len);
  if (rc == 0 && filtered && out->nstates == 0) {
    out->states[out->nstates++] = TY_JOB_PENDING;
    out->states[out->nstates++] = TY_JOB_RUNNING;
  }
  out->filtered = filtered;
  if (rc) ty_cli_cancel_args_close(out);
  return rc;
}

void ty_cli_cancel_args_close(ty_cli_cancel_args *a) {
  if (!a) return;
  free(a->refs);
  free(a->user), free(a->name), free(a->queue);
  free_users(a->users, a->nusers);
  free_users(a->queues, a->nqueues);
  ty_hostnames_free(a->nodes, a->nnodes);
  memset(a, 0, sizeof *a);
}

/* sinfo's spellings: -N and -l are what nodes prints already (a line per
 * node, the long columns); a partition summary has no counterpart, as a
 * queue here is no set of nodes. */
enum {
  N_HELP = TY__CLI_OPT_FIRST + 1, /* -h is sinfo's --noheader */
  N_NODE = 'N',
  N_LONG = 'l',
  N_SUMMARIZE = 's',
  N_PARTITION = 'p',
  N_NOHEADER = 'h',
  N_FORMAT = 'o',
  N_STATES = 't',
  N_REASONS = 'R'
};
static const struct option nodes_opts[] = {
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, N_HELP},
    {"noheader", no_argument, NULL, N_NOHEADER},
    {"format", required_argument, NULL, N_FORMAT},
    {"states", required_argument, NULL, N_STATES},
    {"Node", no_argument, NULL, N_NODE},
    {"long", no_argument, NULL, N_LONG},
    {"summarize", no_argument, NULL, N_SUMMARIZE},
    {"partition", required_argument, NULL, N_PARTITION},
    {"list-reasons", no_argument, NULL, N_REASONS},
    {NULL, 0, NULL, 0},
};

static int nodes_option(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  ty_cli_nodes_args *a = ud;
  (void)it;
  switch (id) {
  case TY_OPT_POSITIONAL:
    return ty_errf(err, err_len, TY_EINVAL, "nodes: unexpected argument \"%s\"", v);
  case O_JSON:
    a->json = true;
    return 0;
  case N_HELP:
    a->help = true;
    return 0;
  case N_NOHEADER:
    a->noheader = true;
    return 0;
  case N_FORMAT:
    free(a->format);
    a->format = ty_strdup(v);
    return ty_cli_sinfo_check(v, err, err_len);
  case N_STATES:
    return ty_cli_sinfo_states(v, &a->states, err, err_len);
  case N_NODE: /* sinfo -N: a line per node for -o; the table always has one */
    a->per_node = true;
    return 0;
  case N_LONG: /* sinfo -l: the table's columns are its long ones */
    return 0;
  case N_REASONS:
    a->reasons = true;
    return 0;
  case N_SUMMARIZE:
  case N_PARTITION:
    return ty_errf(err, err_len, TY_EINVAL,
                   "nodes %s: a queue is no set of nodes here (every node runs every queue's "
                   "jobs); trainctl queue ls summarizes the queues",
                   id == N_PARTITION ? "-p/--partition" : "-s/--summarize");
  default:
    return ty_errf(err, err_len, TY_EINVAL, "unhandled option");
  }
}

int ty_cli_parse_nodes(int argc, char **argv, ty_cli_nodes_args *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  int rc = ty__cli_parse(argc, argv, "hNlsp:o:t:R", nodes_opts, nodes_option, out, err, err_len);
  if (rc == 0 && out->reasons && (out->format || out->json))
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "nodes -R/--list-reasons: not with %s (its columns are sinfo -R's: REASON, USER, "
                 "TIMESTAMP, NODELIST)",
                 out->format ? "-o/--format" : "--json");
  if (rc) ty_cli_nodes_args_close(out);
  return rc;
}

void ty_cli_nodes_args_close(ty_cli_nodes_args *a) {
  if (!a) return;
  free(a->format);
  memset(a, 0, sizeof *a);
}

int ty_cli_parse_json_only(const char *cmd, int argc, char **argv, ty_cli_nodes_args *out,
                           char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  bool flags[2] = {false, false};
  ty_job_ref *ids = NULL;
  size_t n = 0;
  int rc =
      parse_with_ids(cmd, argc, argv, "h", json_opts, &ids, &n, 0, json_flag, flags, err, err_len);
  out->json = flags[0], out->help = flags[1];
  free(ids);
  return rc;
}

/* ---- plan -------------------------------------------------------------------------- */

static const char *const plan_rate_keys[] = {
#define KEY_(key, i) [i] = key,
    TY_PLAN_CLUSTER_OPTIONS(KEY_)
#undef KEY_
};

const char *ty_cli_plan_rate_key(int i) {
  return i >= 0 && i < TY_PLAN_N_CLUSTER_OPTIONS ? plan_rate_keys[i] : NULL;
}

enum {
  P_JSON = TY__CLI_OPT_FIRST,
  P_MESH,
  P_PARALLELISM,
  P_MODEL,
  P_CONFIG,
  P_NODES,
  P_NTASKS,
  P_GPUS,
  P_MEM,
  P_RATE0,
  P_HELP = 'h',
  P_QUEUE = 'p'
};
static const struct option plan_opts[] = {
    {"json", no_argument, NULL, P_JSON},
    {"model", required_argument, NULL, P_MODEL},
    {"config", required_argument, NULL, P_CONFIG},
    {"nodes", required_argument, NULL, P_NODES},
    {"ntasks-per-node", required_argument, NULL, P_NTASKS},
    {"gpus", required_argument, NULL, P_GPUS},
    {"mem", required_argument, NULL, P_MEM},
    {"partition", required_argument, NULL, P_QUEUE},
    {"queue", required_argument, NULL, P_QUEUE},
    {"mesh", required_argument, NULL, P_MESH},
    {"parallelism", required_argument, NULL, P_PARALLELISM},
#define OPT_(key, i) {key, required_argument, NULL, P_RATE0 + i},
    TY_PLAN_CLUSTER_OPTIONS(OPT_)
#undef OPT_
        {"help", no_argument, NULL, P_HELP},
    {NULL, 0, NULL, 0},
};

static int plan_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  ty_cli_plan_args *a = ud;
  (void)it;
  int mode;
  switch (id) {
  case TY_OPT_POSITIONAL:
    if (a->file) return ty_errf(err, err_len, TY_EINVAL, "plan: one job file, not \"%s\" too", v);
    a->file = v;
    return 0;
  case P_JSON:
    a->json = true;
    return 0;
  case P_HELP:
    a->help = true;
    return 0;
  case P_MESH:
    a->mesh = v;
    return 0;
  case P_MODEL:
    a->model = v;
    return 0;
  case P_CONFIG:
    a->config = v;
    return 0;
  case P_NODES:
    a->nodes = v;
    return 0;
  case P_NTASKS:
    a->ntasks = v;
    return 0;
  case P_GPUS:
    a->gpus = v;
    return 0;
  case P_MEM:
    a->mem = v;
    return 0;
  case P_QUEUE:
    a->queue = v;
    return 0;
  case P_PARALLELISM:
    if (ty_parallelism_parse(v, &mode) != 0)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--parallelism: expected auto, data, tensor or grid, got \"%s\"", v);
    a->parallelism = mode;
    return 0;
  default:
    if (id >= P_RATE0 && id < P_RATE0 + TY_PLAN_N_CLUSTER_OPTIONS) a->rates[id - P_RATE0] = v;
    return 0;
  }
}

int ty_cli_parse_plan(int argc, char **argv, ty_cli_plan_args *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  out->parallelism = -1;
  int rc = ty__cli_parse(argc, argv, "hp:", plan_opts, plan_arg, out, err, err_len);
  if (rc != 0 || out->help) return rc;
  bool model = out->model || out->config;
  if (model && out->file)
    return ty_errf(err, err_len, TY_EINVAL, "plan: give a job file or --model, not both");
  if (model && (!out->model || !out->config))
    return ty_errf(err, err_len, TY_EINVAL, "plan: --model and --config go together");
  if (!model && (out->nodes || out->ntasks || out->gpus || out->mem || out->queue))
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: --nodes, --ntasks-per-node, --gpus, --mem and -p only apply with --model "
                   "(a job file carries its own resources and queue)");
  if (out->queue && out->mesh)
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: -p/--partition picks the controller's queue (its default memory); with "
                   "--mesh give --device-mem instead");
  /* Here the device memory is --device-mem; a --mem that changed nothing
   * would let a user believe the plan was made for it. */
  if (out->mem && out->mesh)
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: --mem sets the controller's memory per device (the job's memory / "
                   "tasks per node); with --mesh give --device-mem instead");
  if (!model && !out->file)
    return ty_errf(err, err_len, TY_EINVAL,
                   "plan: missing the job file (JOB.pb) or --model M.onnx --config C.pb");
  for (int i = 0; i < TY_PLAN_N_CLUSTER_OPTIONS && !out->mesh; i++)
    if (out->rates[i])
      return ty_errf(err, err_len, TY_EINVAL,
                     "--%s: only with --mesh (without it the controller plans with its own cost "
                     "model)",
                     plan_rate_keys[i]);
  return 0;
}
