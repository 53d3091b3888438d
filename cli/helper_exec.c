/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl's commands that run in a helper executable, found beside
 * trainctl's own executable (a build tree) or in LIBEXECDIR/trainyard
 * (installed), in this process's place, so that their libraries load only
 * for them:
 *   - `plan --mesh` runs trainyard-plan (plan_local.c: the planner, OpenBLAS,
 *     GLPK) with the arguments of `plan`;
 *   - `logs` and `attach` run trainyard-stream (stream_main.c: libuv's event
 *     loop over the workers' streams) with trainctl's whole command line,
 *     so that the one-request commands neither load nor start libuv
 *     (issue 20 item 3).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_internal.h"

/* execv()s helper `name` with args[1..] (args[0] is set here; args ends
 * with NULL); returns only after saying why it could not. */
static int exec_helper(const char *name, const char *cmd, const char *role, char **args) {
  char self[PATH_MAX], helper[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    ty__ctl_err("%s: cannot find trainctl's own executable: %s", cmd, strerror(errno));
    return TY_CLI_EXIT_ERROR;
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash) *slash = '\0';
  snprintf(helper, sizeof helper, "%s/%s", slash ? self : ".", name);
  /* Beside trainctl in a build tree; installed, in LIBEXECDIR/trainyard. */
  if (access(helper, X_OK) != 0) snprintf(helper, sizeof helper, "%s/%s", TY_LIBEXECDIR, name);
  args[0] = helper;
  fflush(NULL);
  execv(helper, args);
  ty__ctl_err("%s: cannot run %s (%s; trainctl looks beside itself, then in %s): %s", cmd, helper,
              role, TY_LIBEXECDIR, strerror(errno));
  return TY_CLI_EXIT_ERROR;
}

int ty__cmd_plan_local(ty__ctl *c, int argc, char **argv) {
  (void)c;
  char *args[argc + 2];
  for (int i = 0; i < argc; i++)
    args[i + 1] = argv[i];
  args[argc + 1] = NULL;
  return exec_helper("trainyard-plan", "plan --mesh", "it plans here", args);
}

int ty__cmd_stream(ty__ctl *c, int argc, char **argv) {
  (void)argc, (void)argv; /* the helper parses the whole command line again */
  char *args[c->argc + 1];
  for (int i = 1; i < c->argc; i++)
    args[i] = c->argv[i];
  args[c->argc] = NULL;
  return exec_helper("trainyard-stream", c->argv[c->g.cmd_index], "it reads the workers' streams",
                     args);
}
