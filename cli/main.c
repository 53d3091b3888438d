/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl: the command-line client of a Trainyard cluster. main() parses
 * the global options, finds the subcommand in a designated table and hands
 * it the rest of argv; the subcommands live one group per file (cmd_*.c).
 * logs and attach, which read the workers' streams on libuv's event loop,
 * run in trainyard-stream (stream_main.c) and plan --mesh in
 * trainyard-plan (helper_exec.c), so the other commands, one request each
 * on lib/rpc's blocking client, load neither libuv nor the planner.
 * Exit codes are a documented contract (docs/cluster-protocol.md) and are
 * listed in --help.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "lib/base/version.h"
#include "cli/socket.h"

static const ty__ctl_cmd commands[] = {
    {.name = "submit",
     .run = ty__cmd_submit,
     .usage = ty__usage_submit,
     .usage_more = ty__usage_submit_more,
     .summary = "submit a job file or a batch command"},
    {.name = "ls",
     .run = ty__cmd_ls,
     .usage = ty__usage_ls,
     .summary = "list jobs (pending and running unless --all)"},
    {.name = "show",
     .run = ty__cmd_show,
     .usage = ty__usage_show,
     .summary = "one job with its event history"},
    {.name = "logs",
     .run = ty__cmd_stream,
     .usage = ty__usage_logs,
     .summary = "a job's output, read straight from the workers"},
    {.name = "cancel", .run = ty__cmd_cancel, .usage = ty__usage_cancel, .summary = "cancel jobs"},
    {.name = "nodes", .run = ty__cmd_nodes, .usage = ty__usage_nodes, .summary = "list nodes"},
    {.name = "attach",
     .run = ty__cmd_stream,
     .usage = ty__usage_attach,
     .summary = "an interactive job's recent output, then what follows"},
    {.name = "queue",
     .run = ty__cmd_queue,
     .usage = ty__usage_queue,
     .summary = "queues: ls, show, create, update, delete, pause, resume"},
    {.name = "node",
     .run = ty__cmd_node,
     .usage = ty__usage_node,
     .summary = "nodes: ls, show, drain, resume, delete"},
    {.name = "job",
     .run = ty__cmd_job,
     .usage = ty__usage_job,
     .summary = "one job: hold, release, priority, move, checkpoint, update, requeue"},
    {.name = "history",
     .run = ty__cmd_history,
     .usage = ty__usage_history,
     .summary = "accounting: ended and live jobs from the store, like sacct"},
    {.name = "why",
     .run = ty__cmd_why,
     .usage = ty__usage_why,
     .summary = "why a job is pending, in numbers"},
    {.name = "share",
     .run = ty__cmd_share,
     .usage = ty__usage_share,
     .summary = "fair share: usage against shares per queue and user"},
    {.name = "reconfigure",
     .run = ty__cmd_reconfigure,
     .usage = ty__usage_reconfigure,
     .summary = "traind reads its --config again and applies it (operators)"},
    {.name = "events",
     .run = ty__cmd_events,
     .usage = ty__usage_events,
     .summary = "the admin events: queue changes and reconfigures, by whom (operators)"},
    {.name = "top",
     .run = ty__cmd_top,
     .usage = ty__usage_top,
     .summary = "the cluster like top: nodes, running jobs, why jobs wait"},
    {.name = "web-token",
     .run = ty__cmd_web_token,
     .usage = ty__usage_web_token,
     .summary = "a token for the web console that acts as you"},
    /* Graph jobs (cmd_watch.c). */
    {.name = "watch",
     .run = ty__cmd_watch,
     .usage = ty__usage_watch,
     .summary = "a graph job's training progress, live"},
    {.name = "checkpoint",
     .run = ty__cmd_checkpoint,
     .usage = ty__usage_checkpoint,
     .summary = "checkpoint ls ID: the checkpoints a graph job reported"},
    {.name = "plan",
     .run = ty__cmd_plan,
     .usage = ty__usage_plan,
     .summary = "how a graph job would be split over its devices, and why"},
};

static void usage(FILE *f) {
  fprintf(f, "Usage: trainctl [--controller HOST:PORT] [--timeout DURATION] [--json] COMMAND "
             "[ARGS...]\n\nCommands:\n");
  /* At least two spaces after the longest name: help2man splits a
   * command from its summary at two. */
  int width = 0;
  for (size_t i = 0; i < TY_ARRAY_LEN(commands); i++)
    if ((int)strlen(commands[i].name) > width) width = (int)strlen(commands[i].name);
  for (size_t i = 0; i < TY_ARRAY_LEN(commands); i++)
    fprintf(f, "  %-*s  %s\n", width, commands[i].name, commands[i].summary);
  fprintf(f, "\nGlobal options:\n"
             "  --controller HOST:PORT  the controller (default: $TRAINYARD_CONTROLLER, else\n"
             "                          127.0.0.1:$TRAINYARD_PORT, else 127.0.0.1:7810)\n"
             "  --socket PATH|none      its local Unix socket, tried first (default:\n"
             "                          $TRAINYARD_SOCKET for a controller on this host, else\n"
             "                          " TY_CLI_SOCKET_DEFAULT " for 127.0.0.1:7810)\n"
             "  --timeout DURATION      per connection and request, e.g. 5, 30s, 2m (default 10s)\n"
             "  --json                  JSON output for listings (as COMMAND --json)\n"
             "  -h, --help              this help; `trainctl help COMMAND` for a command\n"
             "  --version               the version\n"
             "\nExit codes:\n"
             "  0  success\n"
             "  1  error reported by the controller (or a worker)\n"
             "  2  usage error (bad command line, unreadable job file)\n"
             "  3  controller unreachable (refused, timed out, connection lost)\n"
             "  4  unknown job id\n"
             "  5  invalid job spec (refused by the controller, or a job file that does not "
             "decode)\n");
}

/* `trainctl help [COMMAND]`, for people who type it that way round. */
static int help(const char *name) {
  if (!name) {
    usage(stdout);
    return TY_CLI_EXIT_OK;
  }
  for (size_t i = 0; i < TY_ARRAY_LEN(commands); i++)
    if (strcmp(commands[i].name, name) == 0) {
      fputs(commands[i].usage, stdout);
      for (const char *const *m = commands[i].usage_more; m && *m; m++)
        fputs(*m, stdout);
      return TY_CLI_EXIT_OK;
    }
  char err[TY_ERR_LEN] = "";
  ty_errf(err, sizeof err, TY_EINVAL, "help: unknown command \"%s\"", name);
  return ty__ctl_usage(NULL, err);
}

static int dispatch(ty__ctl *c, int argc, char **argv) {
  const char *name = argv[c->g.cmd_index];
  if (strcmp(name, "help") == 0)
    return help(c->g.cmd_index + 1 < argc ? argv[c->g.cmd_index + 1] : NULL);
  for (size_t i = 0; i < TY_ARRAY_LEN(commands); i++)
    if (strcmp(commands[i].name, name) == 0)
      return commands[i].run(c, argc - c->g.cmd_index - 1, argv + c->g.cmd_index + 1);
  char err[TY_ERR_LEN] = "";
  ty_errf(err, sizeof err, TY_EINVAL, "unknown command \"%s\"", name);
  return ty__ctl_usage(NULL, err);
}

int main(int argc, char **argv) {
  ty__ctl c = {.argc = argc, .argv = argv};
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_global(argc, argv, getenv("TRAINYARD_CONTROLLER"), getenv("TRAINYARD_PORT"),
                          &c.g, err, sizeof err) != 0) {
    ty_cli_global_close(&c.g);
    return ty__ctl_usage(NULL, err);
  }
  ty_cli_socket_choose(c.g.socket, getenv("TRAINYARD_SOCKET"), c.g.host, c.g.port);
  int code = TY_CLI_EXIT_OK;
  char cwd[PATH_MAX];
  if (c.g.version) {
    ty_version_print(stdout, "trainctl");
  } else if (c.g.help) {
    usage(stdout);
  } else if (c.g.cmd_index >= argc) {
    usage(stderr);
    code = TY_CLI_EXIT_USAGE;
  } else {
    c.cwd = getcwd(cwd, sizeof cwd);
    code = dispatch(&c, argc, argv);
  }
  ty_rpc_sync_close(c.client);
  ty_cli_signer_close(&c.signer);
  ty_cli_global_close(&c.g);
  return code;
}
