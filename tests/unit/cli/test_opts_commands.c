/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for cli/args.c and cli/opts.c beyond submit: the global options, ls,
 * the job commands (cancel, show, logs, nodes), state names, exit codes and plan;
 * every bad value rejected with a message naming it. */
#include <criterion/criterion.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_history.h"
#include "proto/train_config.pb-c.h"
#include "proto/trainyard.pb-c.h"
#include "tests/support/tree.h"

#include "tests/unit/cli/args.h"

Test(global, controller_env_flag_and_default) {
  ty_cli_global g;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_global(2, ARGS("trainctl", "ls"), NULL, NULL, &g, err, sizeof err), 0,
               "%s", err);
  cr_assert_str_eq(g.controller, "127.0.0.1:7810");
  cr_assert_eq(g.cmd_index, 1);
  cr_assert_eq(g.timeout_ms, 10000u);
  ty_cli_global_close(&g);

  cr_assert_eq(
      ty_cli_parse_global(2, ARGS("trainctl", "ls"), "ctl.example:9000", NULL, &g, err, sizeof err),
      0);
  cr_assert_str_eq(g.host, "ctl.example");
  cr_assert_eq(g.port, 9000);
  ty_cli_global_close(&g);

  cr_assert_eq(ty_cli_parse_global(7,
                                   ARGS("trainctl", "--controller", "[::1]:7", "--timeout", "30s",
                                        "--json", "nodes"),
                                   "other:1", NULL, &g, err, sizeof err),
               0, "%s", err);
  cr_assert_str_eq(g.host, "::1");
  cr_assert_eq(g.port, 7);
  cr_assert_str_eq(g.controller, "[::1]:7");
  cr_assert_eq(g.timeout_ms, 30000u);
  cr_assert(g.json);
  cr_assert_eq(g.cmd_index, 6);
  ty_cli_global_close(&g);

  cr_assert_eq(ty_cli_parse_global(3, ARGS("trainctl", "--controller", "h"), NULL, NULL, &g, err,
                                   sizeof err),
               0);
  cr_assert_eq(g.port, 7810);
  cr_assert_eq(g.cmd_index, 3); /* no subcommand */
  ty_cli_global_close(&g);
}

/* TRAINYARD_PORT (deploy/cluster.sh's) moves the default controller on this
 * host; an address given by --controller or TRAINYARD_CONTROLLER wins, its
 * port 7810 when it names none; a bad value is named, and only when read. */
Test(global, trainyard_port_moves_the_local_default) {
  ty_cli_global g;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_global(2, ARGS("trainctl", "ls"), NULL, "9460", &g, err, sizeof err), 0,
               "%s", err);
  cr_assert_str_eq(g.controller, "127.0.0.1:9460");
  cr_assert_str_eq(g.host, "127.0.0.1");
  cr_assert_eq(g.port, 9460);
  ty_cli_global_close(&g);
  cr_assert_eq(ty_cli_parse_global(2, ARGS("trainctl", "ls"), "", "", &g, err, sizeof err), 0);
  cr_assert_str_eq(g.controller, "127.0.0.1:7810");
  ty_cli_global_close(&g);
  cr_assert_eq(
      ty_cli_parse_global(2, ARGS("trainctl", "ls"), "ctl:9000", "9460", &g, err, sizeof err), 0);
  cr_assert_str_eq(g.controller, "ctl:9000");
  ty_cli_global_close(&g);
  cr_assert_eq(ty_cli_parse_global(4, ARGS("trainctl", "--controller", "h", "ls"), NULL, "9460", &g,
                                   err, sizeof err),
               0);
  cr_assert_str_eq(g.controller, "h:7810");
  ty_cli_global_close(&g);

  const char *bad[] = {"x", "0", "70000", "94 60"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cr_assert_eq(ty_cli_parse_global(2, ARGS("trainctl", "ls"), NULL, bad[i], &g, err, sizeof err),
                 TY_EINVAL, "TRAINYARD_PORT=%s", bad[i]);
    cr_assert(strstr(err, "TRAINYARD_PORT") && strstr(err, bad[i]), "%s", err);
  }
  cr_assert_eq(ty_cli_parse_global(2, ARGS("trainctl", "ls"), "h:1", "x", &g, err, sizeof err), 0,
               "%s", err);
  ty_cli_global_close(&g);

  /* rlaunch's default, the same rule. */
  char addr[TY_CLI_LOCAL_CONTROLLER_LEN];
  cr_assert_eq(ty_cli_local_controller("9460", addr, sizeof addr, err, sizeof err), 0);
  cr_assert_str_eq(addr, "127.0.0.1:9460");
  cr_assert_eq(ty_cli_local_controller(NULL, addr, sizeof addr, err, sizeof err), 0);
  cr_assert_str_eq(addr, "127.0.0.1:7810");
  cr_assert_eq(ty_cli_local_controller("65536", addr, sizeof addr, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "TRAINYARD_PORT: 65536 is too large"), "%s", err);
}

Test(global, bad_values_are_named) {
  ty_cli_global g;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_global(4, ARGS("trainctl", "--controller", "h:x", "ls"), NULL, NULL, &g,
                                   err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "--controller: \"h:x\" is not HOST:PORT"), "%s", err);
  cr_assert_eq(ty_cli_parse_global(4, ARGS("trainctl", "--controller", ":1", "ls"), NULL, NULL, &g,
                                   err, sizeof err),
               TY_EINVAL);
  cr_assert_eq(ty_cli_parse_global(4, ARGS("trainctl", "--controller", "h:70000", "ls"), NULL, NULL,
                                   &g, err, sizeof err),
               TY_EINVAL);
  cr_assert_eq(ty_cli_parse_global(4, ARGS("trainctl", "--controller", "::1", "ls"), NULL, NULL, &g,
                                   err, sizeof err),
               TY_EINVAL);
  cr_assert_eq(
      ty_cli_parse_global(2, ARGS("trainctl", "ls"), "bad:port:x", NULL, &g, err, sizeof err),
      TY_EINVAL);
  cr_assert(strstr(err, "TRAINYARD_CONTROLLER"), "%s", err);
  /* --controller overrides a bad environment value. */
  cr_assert_eq(ty_cli_parse_global(4, ARGS("trainctl", "--controller", "h:1", "ls"), "bad:port:x",
                                   NULL, &g, err, sizeof err),
               0, "%s", err);
  cr_assert_str_eq(g.controller, "h:1");
  ty_cli_global_close(&g);
  cr_assert_eq(ty_cli_parse_global(4, ARGS("trainctl", "--timeout", "soon", "ls"), NULL, NULL, &g,
                                   err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "--timeout: \"soon\""), "%s", err);
  cr_assert_eq(ty_cli_parse_global(4, ARGS("trainctl", "--timeout", "0", "ls"), NULL, NULL, &g, err,
                                   sizeof err),
               TY_EINVAL);
  cr_assert_eq(
      ty_cli_parse_global(3, ARGS("trainctl", "--bogus", "ls"), NULL, NULL, &g, err, sizeof err),
      TY_EINVAL);
  cr_assert(strstr(err, "unknown option --bogus"), "%s", err);
}

Test(ls, defaults_to_pending_and_running) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_ls(0, ARGS("x"), &a, err, sizeof err), 0);
  cr_assert_eq(a.nstates, 2u);
  cr_assert_eq(a.states[0], TY_JOB_PENDING);
  cr_assert_eq(a.states[1], TY_JOB_RUNNING);
  ty_cli_ls_args_close(&a);

  cr_assert_eq(ty_cli_parse_ls(2, ARGS("--all", "--json"), &a, err, sizeof err), 0);
  cr_assert(a.all && a.json);
  cr_assert_eq(a.nstates, 0u);
  ty_cli_ls_args_close(&a);

  cr_assert_eq(ty_cli_parse_ls(
                   6,
                   ARGS("--state", "completed,FAILED,cd,node-fail", "--user", "bob", "-p", "gpu"),
                   &a, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(a.nstates, 3u); /* cd == completed */
  cr_assert_eq(a.states[2], TY_JOB_NODE_FAIL);
  cr_assert_str_eq(a.user, "bob");
  cr_assert_str_eq(a.queue, "gpu");
  ty_cli_ls_args_close(&a);
}

Test(ls, bad_options) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("--state", "running,sleeping"), &a, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "--state: unknown state \"sleeping\""), "%s", err);
  /* every state is listed, OUT_OF_MEMORY and the short forms included */
  cr_assert(strstr(err, "out_of_memory") && strstr(err, "OOM"), "%s", err);
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("--state", ""), &a, err, sizeof err), TY_EINVAL);
  cr_assert_eq(ty_cli_parse_ls(3, ARGS("--state", "running", "--all"), &a, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "--all and --state"), "%s", err);
  cr_assert_eq(ty_cli_parse_ls(1, ARGS("42"), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "unexpected argument \"42\""), "%s", err);
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("--user", ""), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--user: must not be empty"), "%s", err);
  cr_assert_eq(ty_cli_parse_ls(1, ARGS("--user"), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--user needs a value"), "%s", err);
  /* squeue's -q is its QOS: a Slurm user is told, not shown an empty list */
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-q", "normal"), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "ls -q/--qos normal: Trainyard has no QOS") &&
                strstr(err, "-p/--partition"),
            "%s", err);
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("--qos", "high"), &a, err, sizeof err), TY_EINVAL);
}

/* squeue's spellings: -t/--states, -p/--partition, --me. */
Test(ls, squeue_spellings) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_ls(5, ARGS("-t", "PD,R", "-p", "gpu", "--me"), &a, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(a.nstates, 2u);
  cr_assert_eq(a.states[0], TY_JOB_PENDING);
  cr_assert_str_eq(a.queue, "gpu");
  struct passwd *pw = getpwuid(getuid());
  cr_assert_str_eq(a.user, pw->pw_name);
  ty_cli_ls_args_close(&a);
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("--states", "bogus"), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--state: unknown state \"bogus\""), "%s", err);
  /* Slurm's OUT_OF_MEMORY is one, by either name. */
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-t", "R,OOM,out_of_memory"), &a, err, sizeof err), 0, "%s",
               err);
  cr_assert_eq(a.nstates, 2u, "OOM and OUT_OF_MEMORY are one state");
  cr_assert_eq(a.states[1], TY_JOB_OUT_OF_MEMORY);
  ty_cli_ls_args_close(&a);
  /* Slurm's states with no counterpart say where such a job is. */
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-t", "R,RQ"), &a, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "--state: Slurm's RQ is not a state here: a requeued job is PENDING "
                        "again (its history says why)");
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-t", "completing"), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "Slurm's completing is not a state here"), "%s", err);
  /* squeue's -o codes: its default format, widths dropped, %R and %r once; %A is
   * the raw id (an element's own), %i the 12_3 form. */
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-o", "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R %r %A"), &a,
                               err, sizeof err),
               0, "%s", err);
  const char *want[] = {"id",      "queue",    "name",   "user", "st",
                        "elapsed", "numnodes", "reason", "rawid"};
  cr_assert_eq(a.format.n, 9u);
  for (size_t i = 0; i < 9; i++)
    cr_assert_str_eq(ty_cli_ls_fields[a.format.idx[i]].name, want[i]);
  ty_cli_ls_args_close(&a);
  /* %t is the compact state (PD), %T the long one (PENDING), as squeue's. */
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-o", "%t %T"), &a, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(ty_cli_ls_fields[a.format.idx[0]].name, "st");
  cr_assert_str_eq(ty_cli_ls_fields[a.format.idx[1]].name, "state");
  ty_cli_ls_args_close(&a);
  /* squeue -O/--Format: its field names, a ":WIDTH" dropped. */
  cr_assert_eq(
      ty_cli_parse_ls(2, ARGS("-O", "JobID:12,Name,StateCompact,ReqNodes"), &a, err, sizeof err), 0,
      "%s", err);
  const char *want_o[] = {"id", "name", "st", "reqnodes"};
  cr_assert_eq(a.format.n, 4u);
  for (size_t i = 0; i < 4; i++)
    cr_assert_str_eq(ty_cli_ls_fields[a.format.idx[i]].name, want_o[i]);
  ty_cli_ls_args_close(&a);
  /* squeue -h: no header, not help (a script's `squeue -h -u me | wc -l`). */
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-h", "-j7"), &a, err, sizeof err), 0, "%s", err);
  cr_assert(a.noheader && !a.help);
  ty_cli_ls_args_close(&a);
  cr_assert_eq(ty_cli_parse_ls(1, ARGS("--help"), &a, err, sizeof err), 0, "%s", err);
  cr_assert(a.help && !a.noheader);
  ty_cli_ls_args_close(&a);
  /* squeue -l: its long columns. */
  cr_assert_eq(ty_cli_parse_ls(1, ARGS("-l"), &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.format.n, 10u);
  cr_assert_str_eq(ty_cli_ls_fields[a.format.idx[6]].name, "timelimit");
  ty_cli_ls_args_close(&a);
  cr_assert_eq(ty_cli_parse_ls(1, ARGS("--Format=jobid,bogus"), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--format: unknown field \"bogus\""), "%s", err);
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-o", "%i %Y"), &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--format: squeue's %Y has no counterpart"), "%s", err);
  cr_assert_eq(ty_cli_parse_ls(2, ARGS("-o", "%i %"), &a, err, sizeof err), TY_EINVAL);
}

/* scancel's filters instead of ids: -u, --me, -n, -t, -p; --signal. */
Test(jobs, cancel_filters) {
  char err[TY_ERR_LEN] = "";
  ty_cli_cancel_args c;
  cr_assert_eq(ty_cli_parse_cancel(3, ARGS("--signal", "SIGUSR1", "7"), &c, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(c.signal, 10u);
  ty_cli_cancel_args_close(&c);
  /* scancel -b/-f (the batch script, and what it runs): taken, the tasks' every process gets it. */
  cr_assert_eq(ty_cli_parse_cancel(5, ARGS("-b", "--full", "-s", "USR1", "7"), &c, err, sizeof err),
               0, "%s", err);
  cr_assert(c.signal == 10u && c.nrefs == 1);
  ty_cli_cancel_args_close(&c);
  cr_assert_eq(ty_cli_parse_cancel(3, ARGS("-s", "NOPE", "7"), &c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--signal: \"NOPE\" is not a signal name"), "%s", err);
  cr_assert_eq(ty_cli_parse_cancel(4, ARGS("-u", "bob", "-n", "train"), &c, err, sizeof err), 0,
               "%s", err);
  cr_assert(c.filtered);
  cr_assert_str_eq(c.user, "bob");
  cr_assert_str_eq(c.name, "train");
  cr_assert_eq(c.nstates, 2u, "pending and running by default");
  cr_assert_eq(c.nrefs, 0u);
  ty_cli_cancel_args_close(&c);
  cr_assert_eq(ty_cli_parse_cancel(3, ARGS("--state=pending", "-p", "gpu"), &c, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(c.nstates, 1u);
  cr_assert_eq(c.states[0], TY_JOB_PENDING);
  cr_assert_str_eq(c.queue, "gpu");
  ty_cli_cancel_args_close(&c);
  /* scancel -p's list: a filter of jobs in any of them, no one queue to ask for */
  cr_assert_eq(ty_cli_parse_cancel(2, ARGS("-p", "gpu,cpu"), &c, err, sizeof err), 0, "%s", err);
  cr_assert(c.filtered && c.nqueues == 2 && !c.queue);
  cr_assert_str_eq(c.queues[1], "cpu");
  ty_cli_cancel_args_close(&c);
  /* scancel -w: a hostlist is a filter, pending and running by default */
  cr_assert_eq(ty_cli_parse_cancel(2, ARGS("-w", "n[1-2]"), &c, err, sizeof err), 0, "%s", err);
  cr_assert(c.filtered && c.nnodes == 2 && c.nstates == 2);
  cr_assert_str_eq(c.nodes[1], "n2");
  ty_cli_cancel_args_close(&c);
  cr_assert_eq(ty_cli_parse_cancel(2, ARGS("--nodelist", "n[", "7"), &c, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "-w/--nodelist: "), "%s", err);
  cr_assert_eq(ty_cli_parse_cancel(3, ARGS("7", "--name", "x"), &c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "cancel: give job ids or filters"), "%s", err);
  cr_assert_eq(ty_cli_parse_cancel(2, ARGS("-t", "completed"), &c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--state: only pending and running jobs can be cancelled, not COMPLETED"),
            "%s", err);
  cr_assert_eq(ty_cli_parse_cancel(2, ARGS("--name", ""), &c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--name: must not be empty"), "%s", err);
}

Test(jobs, show_logs_cancel_nodes) {
  char err[TY_ERR_LEN] = "";
  ty_cli_show_args s;
  cr_assert_eq(ty_cli_parse_show(2, ARGS("42", "--json"), &s, err, sizeof err), 0);
  cr_assert_eq(s.id, 42u);
  cr_assert(s.json);
  ty_cli_logs_args l;
  cr_assert_eq(ty_cli_parse_logs(4, ARGS("-f", "7", "--rank", "3"), &l, err, sizeof err), 0, "%s",
               err);
  cr_assert(l.follow);
  cr_assert(l.ref.id == 7 && !l.ref.has_task);
  cr_assert_eq(l.rank, 3);
  cr_assert_eq(ty_cli_parse_logs(1, ARGS("7_12"), &l, err, sizeof err), 0, "%s", err);
  cr_assert(l.ref.id == 7 && l.ref.has_task && l.ref.task == 12);
  cr_assert_eq(ty_cli_parse_logs(1, ARGS("7"), &l, err, sizeof err), 0);
  cr_assert_eq(l.rank, -1);
  ty_cli_cancel_args c;
  cr_assert_eq(ty_cli_parse_cancel(3, ARGS("1", "2", "3"), &c, err, sizeof err), 0);
  cr_assert_eq(c.nrefs, 3u);
  cr_assert_eq(c.refs[2].id, 3u);
  ty_cli_cancel_args_close(&c);
  cr_assert_eq(ty_cli_parse_cancel(3, ARGS("9", "12_4", "20_[1-3,7]"), &c, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(c.nrefs, 6u);
  cr_assert(!c.refs[0].has_task && c.refs[1].has_task && c.refs[1].id == 12 && c.refs[1].task == 4);
  cr_assert(c.refs[5].id == 20 && c.refs[5].task == 7);
  ty_cli_cancel_args_close(&c);
  cr_assert_eq(ty_cli_parse_show(1, ARGS("12_4"), &s, err, sizeof err), 0);
  cr_assert(s.id == 12 && s.has_task && s.task == 4);
  cr_assert_eq(ty_cli_parse_show(2, ARGS("-o", "12"), &s, err, sizeof err), 0, "%s", err);
  cr_assert(s.oneliner && s.id == 12);
  cr_assert_eq(ty_cli_parse_show(3, ARGS("--oneliner", "--json", "12"), &s, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "--json and -o/--oneliner exclude each other"), "%s", err);
  ty_cli_nodes_args n;
  cr_assert_eq(ty_cli_parse_nodes(1, ARGS("--json"), &n, err, sizeof err), 0);
  cr_assert(n.json);
}

/* why and checkpoint ls take show's ID [--json]; their errors name them. */
Test(jobs, one_job_commands_name_themselves) {
  char err[TY_ERR_LEN] = "";
  ty_cli_show_args s;
  cr_assert_eq(ty_cli_parse_one_job("why", 0, ARGS("x"), &s, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "why: missing job id") && !strstr(err, "show"), "%s", err);
  cr_assert_eq(ty_cli_parse_one_job("checkpoint ls", 1, ARGS("x1"), &s, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "checkpoint ls: \"x1\" is not a job id"), "%s", err);
  cr_assert_eq(ty_cli_parse_one_job("why", 2, ARGS("7", "--json"), &s, err, sizeof err), 0, "%s",
               err);
  cr_assert(s.id == 7 && s.json);
  ty_cli_nodes_args n;
  cr_assert_eq(ty_cli_parse_json_only("share", 1, ARGS("x"), &n, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "share: unexpected argument") && !strstr(err, "nodes"), "%s", err);
}

Test(jobs, bad_ids_and_arguments) {
  char err[TY_ERR_LEN] = "";
  ty_cli_show_args s;
  cr_assert_eq(ty_cli_parse_show(0, ARGS("x"), &s, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "show: missing job id"), "%s", err);
  cr_assert_eq(ty_cli_parse_show(1, ARGS("abc"), &s, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "\"abc\" is not a job id"), "%s", err);
  cr_assert_eq(ty_cli_parse_show(1, ARGS("0"), &s, err, sizeof err), TY_EINVAL);
  cr_assert_eq(ty_cli_parse_show(1, ARGS("-3"), &s, err, sizeof err), TY_EINVAL);
  cr_assert_eq(ty_cli_parse_show(1, ARGS("99999999999999999999999"), &s, err, sizeof err),
               TY_EINVAL);
  cr_assert_eq(ty_cli_parse_show(2, ARGS("1", "2"), &s, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "show: unexpected argument \"2\""), "%s", err);
  ty_cli_logs_args l;
  cr_assert_eq(ty_cli_parse_logs(3, ARGS("1", "--rank", "x"), &l, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--rank: \"x\""), "%s", err);
  cr_assert_eq(ty_cli_parse_logs(0, ARGS("x"), &l, err, sizeof err), TY_EINVAL);
  cr_assert_eq(ty_cli_parse_logs(1, ARGS("7_[1-2]"), &l, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "logs: \"7_[1-2]\" names several jobs; give one"), "%s", err);
  cr_assert_eq(ty_cli_parse_show(1, ARGS("7_[1-3]"), &s, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "names several jobs"), "%s", err);
  cr_assert_eq(ty_cli_parse_show(1, ARGS("7_x"), &s, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "is not ID, ID_TASK or ID_[TASKS]"), "%s", err);
  ty_cli_cancel_args c;
  cr_assert_eq(ty_cli_parse_cancel(0, ARGS("x"), &c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "cancel: missing job id"), "%s", err);
  cr_assert_eq(ty_cli_parse_cancel(2, ARGS("1", "x1"), &c, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "\"x1\" is not a job id"), "%s", err);
  ty_cli_nodes_args n;
  cr_assert_eq(ty_cli_parse_nodes(1, ARGS("node1"), &n, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "nodes: unexpected argument"), "%s", err);
  cr_assert_eq(ty_cli_parse_nodes(1, ARGS("--all"), &n, err, sizeof err), TY_EINVAL);
  /* sinfo's -N -l are what nodes prints; its partition summary points at queue ls */
  cr_assert_eq(ty_cli_parse_nodes(3, ARGS("-N", "-l", "--json"), &n, err, sizeof err), 0, "%s",
               err);
  cr_assert(n.json);
  cr_assert_eq(ty_cli_parse_nodes(2, ARGS("-p", "gpu"), &n, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "nodes -p/--partition: a queue is no set of nodes") &&
                strstr(err, "trainctl queue ls"),
            "%s", err);
  cr_assert_eq(ty_cli_parse_nodes(1, ARGS("-s"), &n, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "-s/--summarize"), "%s", err);
  /* sinfo -R: its own columns, so no -o or --json with it */
  cr_assert_eq(ty_cli_parse_nodes(2, ARGS("-R", "-h"), &n, err, sizeof err), 0, "%s", err);
  cr_assert(n.reasons && n.noheader);
  cr_assert_eq(ty_cli_parse_nodes(3, ARGS("--list-reasons", "-o", "%N"), &n, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "nodes -R/--list-reasons: not with -o/--format"), "%s", err);
  ty_cli_nodes_args_close(&n);
  /* sinfo -h is no header (--help is help), -o its codes, -t its states */
  cr_assert_eq(ty_cli_parse_nodes(5, ARGS("-h", "-t", "idle", "-o", "%N"), &n, err, sizeof err), 0,
               "%s", err);
  cr_assert(n.noheader && !n.help && n.states && !strcmp(n.format, "%N"));
  ty_cli_nodes_args_close(&n);
  cr_assert_eq(ty_cli_parse_nodes(2, ARGS("-o", "%N %Z"), &n, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "sinfo's %Z has no counterpart"), "%s", err);
  cr_assert_eq(ty_cli_parse_nodes(2, ARGS("-t", "busy"), &n, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "unknown node state"), "%s", err);
}

Test(states, names_round_trip) {
  int st = 0;
  for (int s = 1; s <= TY_JOB_STATE_MAX; s++) {
    cr_assert_eq(ty_job_state_parse(ty_job_state_name(s), &st), 0);
    cr_assert_eq(st, s);
  }
  cr_assert_eq(ty_job_state_parse("pd", &st), 0);
  cr_assert_eq(st, TY_JOB_PENDING);
  cr_assert_eq(ty_job_state_parse("canceled", &st), 0);
  cr_assert_eq(ty_job_state_parse("", &st), TY_EINVAL);
  cr_assert_str_eq(ty_job_state_name(99), "UNKNOWN");
  cr_assert_str_eq(ty_node_state_name(3), "DRAINING");
}

Test(exit_codes, map_as_documented) {
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_SUBMIT, 0), 0);
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_SUBMIT, TY_EINVAL), 5);
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_SUBMIT, TY_ENOTFOUND), 5); /* unknown queue */
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_SUBMIT, TY_EUNSUPPORTED), 5);
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_SUBMIT, TY_ESTORE), 1);
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_JOB, TY_ENOTFOUND), 4);
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_JOB, TY_ESTATE), 1);
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_JOB, TY_EINVAL), 1);
  cr_assert_eq(ty_cli_exit_for_status(TY_CLI_OP_OTHER, TY_ENOTFOUND), 1);
  cr_assert_eq(ty_cli_exit_for_transport(-111 /* UV_ECONNREFUSED */), 3);
  cr_assert_eq(ty_cli_exit_for_transport(TY_ETIMEDOUT), 3);
  cr_assert_eq(ty_cli_exit_for_transport(TY_ECLOSED), 3);
  cr_assert_eq(ty_cli_exit_for_transport(0), 0);

  ty_cancel_result ok = {.job_id = 1, .status = 0, .message = ""},
                   done = {.job_id = 2,
                           .status = TY_ESTATE,
                           .message = "job 2 is already COMPLETED"},
                   gone = {.job_id = 3, .status = TY_ENOTFOUND, .message = "job 3 not found"};
  cr_assert_eq(ty_cli_cancel_exit((ty_cancel_result[]){ok}, 1), 0);
  cr_assert_eq(ty_cli_cancel_exit((ty_cancel_result[]){ok, done}, 2), 1);
  cr_assert_eq(ty_cli_cancel_exit((ty_cancel_result[]){gone, done}, 2), 4);
  cr_assert_eq(ty_cli_cancel_exit((ty_cancel_result[]){done, gone}, 2), 4);
}

#define PLAN(...) ty_cli_parse_plan(NARGS(__VA_ARGS__), ARGS(__VA_ARGS__), &p, err, sizeof err)

Test(plan, options_and_the_job_file) {
  char err[TY_ERR_LEN] = "";
  ty_cli_plan_args p;
  cr_assert_eq(PLAN("job.pb"), 0, "%s", err);
  cr_assert_str_eq(p.file, "job.pb");
  cr_assert(!p.json && !p.mesh && p.parallelism == -1);
  cr_assert_eq(PLAN("--json", "--mesh", "2x4", "--device-flops", "cpu", "--launch-us", "3",
                    "--parallelism", "Grid", "job.pb"),
               0, "%s", err);
  cr_assert(p.json && p.parallelism == TY_PARALLELISM_GRID);
  cr_assert_str_eq(p.mesh, "2x4");
  cr_assert_str_eq(p.rates[0], "cpu");
  cr_assert_str_eq(ty_cli_plan_rate_key(6), "launch-us");
  cr_assert_null(ty_cli_plan_rate_key(7));
  cr_assert_str_eq(p.rates[6], "3");
  cr_assert_eq(PLAN("-h"), 0);
  cr_assert(p.help);
  cr_assert_eq(PLAN("--model", "m.onnx", "--config", "c.pb", "--nodes", "2", "--ntasks-per-node",
                    "4", "--gpus", "4", "--mesh", "2x4"),
               0, "%s", err);
  cr_assert(!p.file && !strcmp(p.model, "m.onnx") && !strcmp(p.config, "c.pb"));
  cr_assert(!strcmp(p.nodes, "2") && !strcmp(p.ntasks, "4") && !strcmp(p.gpus, "4"));
  cr_assert_eq(PLAN("--model", "m.onnx", "--config", "c.pb", "--mem", "512M"), 0, "%s", err);
  cr_assert_str_eq(p.mem, "512M");
}

Test(plan, bad_command_lines_are_named) {
  char err[TY_ERR_LEN] = "";
  ty_cli_plan_args p;
  cr_assert_eq(PLAN("--json"), TY_EINVAL);
  cr_assert_str_eq(err, "plan: missing the job file (JOB.pb) or --model M.onnx --config C.pb");
  cr_assert_eq(PLAN("--model", "m.onnx", "a.pb"), TY_EINVAL);
  cr_assert_str_eq(err, "plan: give a job file or --model, not both");
  cr_assert_eq(PLAN("--config", "c.pb"), TY_EINVAL);
  cr_assert_str_eq(err, "plan: --model and --config go together");
  cr_assert_eq(PLAN("--nodes", "2", "a.pb"), TY_EINVAL);
  cr_assert(strstr(err, "only apply with --model (a job file carries its own resources and queue)"),
            "%s", err);
  cr_assert_eq(PLAN("--mem", "1G", "a.pb"), TY_EINVAL);
  cr_assert(strstr(err, "--gpus, --mem and -p only apply with --model"), "%s", err);
  cr_assert_eq(PLAN("-p", "q", "a.pb"), TY_EINVAL);
  cr_assert(strstr(err, "-p only apply with --model"), "%s", err);
  cr_assert_eq(PLAN("--model", "m.onnx", "--config", "c.pb", "-p", "q", "--mesh", "1x2"),
               TY_EINVAL);
  cr_assert(strstr(err, "plan: -p/--partition picks the controller's queue"), "%s", err);
  cr_assert_eq(PLAN("--model", "m.onnx", "--config", "c.pb", "--partition", "q"), 0, "%s", err);
  cr_assert_str_eq(p.queue, "q");
  /* Planned here, the device memory is --device-mem: a --mem would change nothing. */
  cr_assert_eq(PLAN("--model", "m.onnx", "--config", "c.pb", "--mem", "1G", "--mesh", "1x2"),
               TY_EINVAL);
  cr_assert(strstr(err, "plan: --mem sets the controller's memory per device") &&
                strstr(err, "with --mesh give --device-mem instead"),
            "%s", err);
  cr_assert_eq(PLAN("a.pb", "b.pb"), TY_EINVAL);
  cr_assert_str_eq(err, "plan: one job file, not \"b.pb\" too");
  cr_assert_eq(PLAN("--inter-gbps", "5", "a.pb"), TY_EINVAL);
  cr_assert(strstr(err, "--inter-gbps: only with --mesh"), "%s", err);
  cr_assert_eq(PLAN("--parallelism", "model", "a.pb"), TY_EINVAL);
  cr_assert_str_eq(err, "--parallelism: expected auto, data, tensor or grid, got \"model\"");
  cr_assert_eq(PLAN("--mesh"), TY_EINVAL);
  cr_assert_eq(PLAN("--meshes", "2x2", "a.pb"), TY_EINVAL);
}
