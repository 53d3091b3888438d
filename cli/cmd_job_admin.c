/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl job hold|release|priority|move|checkpoint and trainctl why: an
 * operator's (or owner's) changes to one job, and the scheduler's answer to
 * "why is my job pending". Changes are recorded in the job's history with
 * the caller's name (`trainctl show ID`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_internal.h"
#include "cli/cli_admin.h"
#include "proto/methods.h"

const char ty__usage_job[] =
    "Usage: trainctl job hold ID          keep a pending job from starting\n"
    "       trainctl job release ID       let a held pending job start again (an\n"
    "                                     operator's hold, JobHeldAdmin: only an\n"
    "                                     operator; an ended job keeps its hold)\n"
    "       trainctl job priority ID N    set its priority in its queue (-1000..1000)\n"
    "       trainctl job move ID QUEUE    move a pending job to another queue\n"
    "       trainctl job checkpoint ID    report a checkpoint now (running jobs; from\n"
    "                                     the job: $TRAINYARD_JOB_ID), so preemption\n"
    "                                     picks jobs that lose the least work\n"
    "       trainctl job update ID [--time LIMIT] [--mem SIZE] [-N/--nodes N]\n"
    "                              [--ntasks-per-node N] [-c/--cpus-per-task N]\n"
    "                              [--gres gpu:N | -G/--gpus-per-node N | --gpus N]\n"
    "                              [-p QUEUE] [--priority N | --nice N]\n"
    "                              [--array-throttle N] [-J/--name NAME]\n"
    "                              [-d/--dependency SPEC]\n"
    "                                     change a pending or running job's time\n"
    "                                     limit (within the queue's maximum; e.g.\n"
    "                                     2h, 1:30:00, UNLIMITED; +30 adds 30\n"
    "                                     minutes, -1:00:00 takes an hour, as\n"
    "                                     scontrol's) or a pending job's memory per\n"
    "                                     node (e.g. 16G, 512M, within the queue's\n"
    "                                     --max-mem; 0: all of the node);\n"
    "                                     operators raise them,\n"
    "                                     owners only lower them. -p/--partition\n"
    "                                     (--queue) is job move, --priority N job\n"
    "                                     priority, --nice N priority -N;\n"
    "                                     --array-throttle N an array's %N (0: no\n"
    "                                     limit; its owner may set any); --name a\n"
    "                                     pending or running job's name (no '|');\n"
    "                                     --dependency a pending job's conditions\n"
    "                                     (afterok:12,singleton; \"\": none);\n"
    "                                     --nodes a pending job's node count,\n"
    "                                     --ntasks-per-node, --cpus-per-task and\n"
    "                                     --gres its task layout, as submit takes\n"
    "                                     them (--gpus N, as on submit's command\n"
    "                                     line, is GPUs per node: -G; it must\n"
    "                                     still fit a node; not a graph job's:\n"
    "                                     submit it again)\n"
    "                                     (scontrol's Partition=, Priority=, Nice=,\n"
    "                                     ArrayTaskThrottle=, JobName=, Dependency=,\n"
    "                                     NumNodes=, NumTasks=, MinCPUsNode=, Gres=)\n"
    "       trainctl job requeue ID       a running job is killed and pends again; a\n"
    "                                     finished one pends again\n"
    "ID may be an array (every element that can take the change), one element\n"
    "(123_7), several (123_[3-5]) or a list (12,14,15_2), as scontrol takes them:\n"
    "each job or element named gets its own change and line, in order, and the\n"
    "exit status is 4 when one was not found, else that of the last that failed.\n"
    "An array's element on a node not connected is not changed: a warning names\n"
    "it, the exit status is 1. A signal (cancel -s) reaches all elements or none.\n"
    "Each change is recorded in the job's history with who made it.\n"
    "A controller restart is waited out by the changes that set a value (hold,\n"
    "release, priority, move and update's, but for --time +T/-T): one whose\n"
    "answer was lost is sent again with a backoff for up to --timeout in all, as\n"
    "submit's (a copy applied before its answer was lost makes the retry say, e.g.,\n"
    "\"already held\"). requeue, checkpoint and --time +T/-T are sent once.\n";

const char ty__usage_why[] =
    "Usage: trainctl why ID|ARRAY_TASK [--json]\n"
    "\n"
    "Why job ID is pending, in numbers: its position among pending jobs, its\n"
    "priority split into weighted factors (tier, age, fair share, size, job\n"
    "priority), its owner's fair-share standing, how many nodes would hold a member\n"
    "of its gang and why others would not, and an estimated start from the running\n"
    "jobs' time limits (the backfill reservation); for a job waiting on others\n"
    "(--dependency), the conditions not yet met.\n";

/* What the answer's line calls a change applied to an array's elements. */
static const char *change_name(const char *action) {
  if (!strcmp(action, "time")) return "time limit";
  if (!strcmp(action, "mem")) return "memory limit";
  if (!strcmp(action, "throttle")) return "array throttle";
  if (!strcmp(action, "name")) return "name";
  if (!strcmp(action, "nodes")) return "node count";
  if (!strcmp(action, "layout")) return "task layout";
  return action;
}

/* Whether sending the change twice leaves the job as sending it once: it
 * sets a value (hold, release, a priority, a queue, a limit, a name), so
 * it is retried through a controller restart as submit is. Not a time
 * increment (+30 twice is an hour), requeue (the job may have run again
 * in between), checkpoint (it records the time it arrived) or a signal. */
static bool retry_safe(const ty_cli_job_update *u) {
  static const char *const safe[] = {"hold", "release", "priority", "move",       "name",
                                     "mem",  "nodes",   "layout",   "dependency", "throttle"};
  for (size_t i = 0; i < TY_ARRAY_LEN(safe); i++)
    if (!strcmp(u->action, safe[i])) return true;
  return !strcmp(u->action, "time") && u->time_delta_s == 0;
}

/* ref is an array's id (its first element's too), which names every
 * element: j, the answer, is one of them, not what changed. */
static bool names_array(const ty_job_ref *ref, const ty_cli_jobinfo *j) {
  return !ref->has_task && j->array_job_id && j->array_job_id == ref->id;
}

static int job_change(ty__ctl *c, const ty_job_ref *ref, const ty_cli_job_update *u) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  ty_cli_jobinfo j = {0};
  ty_cli_update_tally tl = {0};
  char name[48];
  ty_job_ref_format(ref, name, sizeof name);
  int code = ty_cli_encode_update_job(ref, u, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0)
    code = retry_safe(u) ? ty__ctl_call_retrying(c, TY_CLI_OP_JOB, TY_M_UPDATE_JOB, &req, &res)
                         : ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_UPDATE_JOB, &req, &res);
  if (code == 0 && ty_cli_decode_update_job(res.payload, res.payload_len, &j, &tl) != 0)
    code = ty__ctl_bad_answer(TY_M_UPDATE_JOB);
  if (code == 0 && !strcmp(u->action, "checkpoint")) {
    time_t t = (time_t)(j.last_ckpt_ms / 1000);
    struct tm tm;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    printf("Job %s: checkpoint recorded at %s; a preemption now loses only the work done "
           "since\n",
           name, when);
  } else if (code == 0 && (tl.changed > 1 || names_array(ref, &j))) {
    printf("Array %s: %s applied to %u element%s\n", name, change_name(u->action), tl.changed,
           tl.changed == 1 ? "" : "s");
  } else if (code == 0) {
    char limit[32] = "", mem[32] = "";
    if (j.spec.time_limit_s)
      ty_cli_format_elapsed((int64_t)j.spec.time_limit_s * 1000, limit, sizeof limit);
    if (j.spec.mem_per_node) ty_cli_format_size(j.spec.mem_per_node, mem, sizeof mem);
    printf("Job %s: %s (queue %s, priority %d%s%s%s%s%s)\n", name, ty_job_state_name(j.state),
           j.spec.queue ? j.spec.queue : "", j.spec.priority, j.held ? ", held" : "",
           limit[0] ? ", time limit " : "", limit, mem[0] ? ", memory per node " : "", mem);
  }
  if (code == 0 && tl.refused) { /* as scontrol's per-task error: not all took it */
    fflush(stdout);
    fprintf(stderr, "warning: %u element%s not changed: %s\n", tl.refused,
            tl.refused == 1 ? "" : "s", tl.refusal);
    code = TY_CLI_EXIT_ERROR;
  }
  free(tl.refusal);
  ty_cli_jobinfo_close(&j);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}

typedef struct job_argv {
  const char **args;
  int nargs, n;
  bool help;
  /* update's --time, --mem, -p/--partition (--queue), --priority, --nice */
  const char *time, *mem, *queue, *priority, *nice, *throttle, *name, *dependency, *nodes;
  /* the task layout, as submit names it: --ntasks-per-node, -c/--cpus-per-task,
   * -G/--gpus-per-node, --gpus (per node, as on submit's command line) or
   * --gres (gpus_opt: which, for its parser) */
  const char *ntasks, *cpus, *gpus, *gpus_opt;
} job_argv;

enum { U_PRIORITY = TY__CLI_OPT_FIRST, U_NICE, U_THROTTLE, U_NTASKS, U_GRES, U_GPUS };
static const struct option update_opts[] = {{"time", required_argument, NULL, 't'},
                                            {"mem", required_argument, NULL, 'm'},
                                            {"nodes", required_argument, NULL, 'N'},
                                            {"ntasks-per-node", required_argument, NULL, U_NTASKS},
                                            {"cpus-per-task", required_argument, NULL, 'c'},
                                            {"cpus", required_argument, NULL, 'c'},
                                            {"gpus-per-node", required_argument, NULL, 'G'},
                                            {"gres", required_argument, NULL, U_GRES},
                                            {"gpus", required_argument, NULL, U_GPUS},
                                            {"partition", required_argument, NULL, 'p'},
                                            {"queue", required_argument, NULL, 'p'},
                                            {"priority", required_argument, NULL, U_PRIORITY},
                                            {"nice", required_argument, NULL, U_NICE},
                                            {"array-throttle", required_argument, NULL, U_THROTTLE},
                                            {"name", required_argument, NULL, 'J'},
                                            {"job-name", required_argument, NULL, 'J'},
                                            {"dependency", required_argument, NULL, 'd'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};

static int on_job_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  job_argv *a = ud;
  (void)it, (void)err, (void)err_len;
  if (id == 'h')
    a->help = true;
  else if (id == 't')
    a->time = v;
  else if (id == 'm')
    a->mem = v;
  else if (id == 'N')
    a->nodes = v;
  else if (id == U_NTASKS)
    a->ntasks = v;
  else if (id == 'c')
    a->cpus = v;
  else if (id == 'G' || id == U_GRES || id == U_GPUS) /* submit's --gpus: per node */
    a->gpus = v, a->gpus_opt = id == 'G' ? "gpus-per-node" : id == U_GPUS ? "gpus" : "gres";
  else if (id == 'p')
    a->queue = v;
  else if (id == U_PRIORITY)
    a->priority = v;
  else if (id == U_NICE)
    a->nice = v;
  else if (id == U_THROTTLE)
    a->throttle = v;
  else if (id == 'J')
    a->name = v;
  else if (id == 'd')
    a->dependency = v;
  else if (a->n == a->nargs)
    return TY_EINVAL;
  else
    a->args[a->n++] = v;
  return 0;
}

/* ACTION's arguments (ID, and N or QUEUE; update's --time and --mem) and
 * --help, in any order; 0, -1 for --help, or TY_EINVAL with err set. */
static int job_args(int argc, char **argv, bool update, job_argv *a, char *err, size_t err_len) {
  int rc = ty__cli_parse(argc, argv, update ? "t:m:N:c:G:p:J:d:h" : "h",
                         update ? update_opts : ty__cli_help_only, on_job_arg, a, err, err_len);
  if (rc == 0 && !a->help && a->n != a->nargs) rc = TY_EINVAL;
  if (rc == 0 && !a->help && update && !a->time && !a->mem && !a->nodes && !a->queue &&
      !a->priority && !a->nice && !a->throttle && !a->name && !a->dependency && !a->ntasks &&
      !a->cpus && !a->gpus)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "job update: give what to change: --time LIMIT, --mem SIZE, -N/--nodes N, "
                 "--ntasks-per-node N, -c/--cpus-per-task N, --gres gpu:N (-G/--gpus N: per "
                 "node), -p/--partition QUEUE, "
                 "--priority N, --nice N, --array-throttle N, -J/--name NAME or -d/--dependency "
                 "SPEC");
  if (rc == 0 && a->priority && a->nice)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "job update: --priority and --nice both set the priority (--nice N is "
                 "--priority -N); give one");
  return rc == 0 && a->help ? -1 : rc;
}

/* update's task layout with submit's parsers (ty__cli_layout_arg), into u:
 * 0 for what was not given (GPUs: has_gpus), as the controller reads it. */
static int layout_values(const job_argv *a, ty_cli_job_update *u, char *err, size_t err_len) {
  ty_job_spec j = {0};
  ty_cli_slurm s = {0};
  int rc = 0;
  if (a->ntasks) rc = ty__cli_layout_arg(&j, &s, "ntasks-per-node", a->ntasks, err, err_len);
  if (rc == 0 && a->cpus) rc = ty__cli_layout_arg(&j, &s, "cpus", a->cpus, err, err_len);
  if (rc == 0 && a->gpus) rc = ty__cli_layout_arg(&j, &s, a->gpus_opt, a->gpus, err, err_len);
  for (size_t i = 0; rc == 0 && i < s.n_warnings; i++)
    fprintf(stderr, "trainctl: warning: %s\n", s.warnings[i]);
  ty_cli_slurm_close(&s);
  u->tasks_per_node = j.tasks_per_node, u->cpus_per_task = j.cpus_per_task;
  u->gpus_per_node = j.gpus_per_node, u->has_gpus = a->gpus != NULL;
  return rc;
}

/* --time T, or scontrol's +T / -T: T added to or taken from each job's
 * limit as the controller has it (an array's elements each their own). */
static int time_value(const char *s, ty_cli_job_update *u, char *err, size_t err_len) {
  if (s[0] != '+' && s[0] != '-')
    return ty_parse_time_limit("--time", s, &u->time_limit_s, err, err_len);
  uint32_t secs = 0;
  int rc = ty_parse_time_limit("--time", s + 1, &secs, err, err_len);
  if (rc != 0 || secs == TY_TIME_LIMIT_UNLIMITED || secs > INT32_MAX)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "--time: \"%s\" is not an increment (+T or -T with T a time limit: +30 = 30 "
                 "minutes more, -1:00:00 = an hour less)",
                 s);
  if (rc == 0) u->time_delta_s = s[0] == '-' ? -(int32_t)secs : (int32_t)secs;
  return rc;
}

/* The change's values from its arguments: the jobs the ID names (a list,
 * as cancel's: "12", "12_[3-5]", "12,14_2"; *refs heap, *n entries), a
 * priority, a queue, a time limit, a memory limit; TY_EINVAL with err set. */
static int job_values(const char *sub, const job_argv *a, ty_job_ref **refs, size_t *n,
                      ty_cli_job_update *u, char *err, size_t err_len) {
  char what[32];
  snprintf(what, sizeof what, "job %s", sub);
  int rc = ty_job_ref_list_parse(what, a->args[0], false, refs, n, err, err_len);
  if (rc == 0 && !strcmp(sub, "priority"))
    rc = ty__cli_parse_priority("priority", a->args[1], &u->priority, err, err_len);
  if (!strcmp(sub, "move")) u->queue = a->args[1];
  if (a->queue) u->queue = a->queue;
  if (a->name) u->name = a->name;
  if (a->dependency) u->dependency = a->dependency;
  if (rc == 0 && a->dependency && a->dependency[0]) { /* its syntax here; its jobs at traind */
    ty_dep *deps = NULL;
    size_t nd = 0;
    bool any;
    rc = ty_dep_parse("--dependency", a->dependency, &deps, &nd, &any, err, err_len);
    free(deps);
  }
  if (rc == 0 && a->name && !a->name[0])
    rc = ty_errf(err, err_len, TY_EINVAL, "--name: must not be empty");
  if (rc == 0 && a->priority)
    rc = ty__cli_parse_priority("--priority", a->priority, &u->priority, err, err_len);
  if (rc == 0 && a->nice) /* sbatch's and scontrol's: priority -N */
    rc = ty__cli_parse_priority("--nice", a->nice, &u->priority, err, err_len);
  if (a->nice) u->priority = -u->priority;
  if (rc == 0 && a->throttle)
    rc = ty__cli_parse_u32("--array-throttle", a->throttle, 0, TY_ARRAY_MAX_TASKS,
                           &u->array_max_running, err, err_len);
  if (rc == 0 && a->time) rc = time_value(a->time, u, err, err_len);
  if (rc == 0 && a->mem)
    rc = ty__cli_parse_mem("--mem", a->mem, true, &u->mem_per_node, err, err_len);
  if (rc == 0 && a->nodes)
    rc = ty__cli_parse_u32("--nodes", a->nodes, 1, 100000, &u->nodes, err, err_len);
  if (rc == 0) rc = layout_values(a, u, err, err_len);
  return rc;
}

/* The worse of two exit codes, as cancel's: an unknown job (4) wins, then
 * the latest failure. */
static int worse(int worst, int code) {
  if (code == TY_CLI_EXIT_NOTFOUND || worst == TY_CLI_EXIT_NOTFOUND) return TY_CLI_EXIT_NOTFOUND;
  return code ? code : worst;
}

/* One change per job named, in order, a line (or an error) each, as
 * scontrol hold/release/requeue take a job list; stops only when the
 * controller cannot be reached. */
static int job_changes(ty__ctl *c, const ty_job_ref *refs, size_t n, const ty_cli_job_update *u) {
  int worst = 0;
  for (size_t i = 0; i < n; i++) {
    int code = job_change(c, &refs[i], u);
    if (code == TY_CLI_EXIT_UNREACHABLE) return code;
    worst = worse(worst, code);
  }
  return worst;
}

/* job update: each change asked for (the queue's as job move, the
 * priority's as job priority, the name, dependency, time limit, memory and
 * array throttle) as its own UpdateJob per job (a line each) with its own
 * rules; the worse exit code. The queue first: the time limit is then
 * checked against the queue the job will run in. */
static int job_updates(ty__ctl *c, const ty_job_ref *refs, size_t n, const job_argv *a,
                       ty_cli_job_update *u) {
  const struct {
    bool given;
    const char *action;
  } steps[] = {{a->queue != NULL, "move"},
               {a->name != NULL, "name"},
               {a->dependency != NULL, "dependency"},
               {a->priority || a->nice, "priority"},
               {a->time != NULL, "time"},
               {a->mem != NULL, "mem"},
               {a->nodes != NULL, "nodes"},
               {a->ntasks || a->cpus || a->gpus, "layout"},
               {a->throttle != NULL, "throttle"}};
  int code = 0;
  for (size_t i = 0; i < TY_ARRAY_LEN(steps); i++) {
    if (!steps[i].given) continue;
    u->action = steps[i].action;
    int one = job_changes(c, refs, n, u);
    if (one == TY_CLI_EXIT_UNREACHABLE) return one;
    code = worse(code, one);
  }
  return code;
}

int ty__cmd_job(ty__ctl *c, int argc, char **argv) {
  static const struct {
    const char *action, *expects, *sent;
    int nargs;
  } subs[] = {{"hold", "ID", "hold", 1},
              {"release", "ID", "release", 1},
              {"priority", "ID N", "priority", 2},
              {"move", "ID QUEUE", "move", 2},
              {"checkpoint", "ID", "checkpoint", 1},
              {"update",
               "ID [--time LIMIT] [--mem SIZE] [-N N] [--ntasks-per-node N] [-c N] "
               "[--gres gpu:N] [-p QUEUE] [--priority N | --nice N] [--array-throttle N] "
               "[-J NAME] [-d SPEC]",
               NULL, 1},
              {"requeue", "ID", "requeue", 1}};
  char err[TY_ERR_LEN] = "";
  const char *sub = NULL, *args[2] = {NULL, ""};
  int code = ty__ctl_group("job", ty__usage_job, argc, argv, &sub);
  if (code >= 0) return code;
  for (size_t i = 0; i < TY_ARRAY_LEN(subs); i++) {
    if (strcmp(sub, subs[i].action) != 0) continue;
    job_argv a = {.args = args, .nargs = subs[i].nargs};
    int rc = job_args(argc - 1, argv + 1, !strcmp(sub, "update"), &a, err, sizeof err);
    if (rc == -1) return fputs(ty__usage_job, stdout), TY_CLI_EXIT_OK;
    if (rc == TY_EINVAL && !err[0])
      ty_errf(err, sizeof err, TY_EINVAL, "job %s: expects %s", sub, subs[i].expects);
    ty_job_ref *refs = NULL;
    size_t n = 0;
    ty_cli_job_update u = {.action = subs[i].sent, .queue = ""};
    if (rc == 0) rc = job_values(sub, &a, &refs, &n, &u, err, sizeof err);
    if (rc != 0) {
      free(refs);
      return ty__ctl_usage("job", err);
    }
    code = u.action ? job_changes(c, refs, n, &u) : job_updates(c, refs, n, &a, &u);
    free(refs);
    return code;
  }
  ty_errf(err, sizeof err, TY_EINVAL, "job: unknown subcommand \"%s\"", sub);
  return ty__ctl_usage("job", err);
}

int ty__cmd_why(ty__ctl *c, int argc, char **argv) {
  ty_cli_show_args a; /* the same shape: ID [--json] */
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_one_job("why", argc, argv, &a, err, sizeof err) != 0)
    return ty__ctl_usage("why", err);
  if (a.help) {
    fputs(ty__usage_why, stdout);
    return 0;
  }
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_cli_explain e = {0};
  int code = ty_cli_encode_job_ref(&(ty_job_ref){a.id, a.has_task, a.task}, &req) == 0
                 ? 0
                 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_EXPLAIN_JOB, &req, &res);
  if (code == 0 && ty_cli_decode_explain(res.payload, res.payload_len, &e) != 0)
    code = ty__ctl_bad_answer(TY_M_EXPLAIN_JOB);
  if (code == 0 && a.has_task) /* an element: named as asked, with its own id */
    ty_job_ref_format(&(ty_job_ref){a.id, true, a.task}, e.name, sizeof e.name);
  if (code == 0 && ty_cli_render_explain(&e, ty_now_ms(), a.json || c->g.json, &out) == 0)
    code = ty__ctl_write(&out);
  ty_cli_explain_close(&e);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}
