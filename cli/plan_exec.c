/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `trainctl plan --mesh` in trainctl: runs trainyard-plan (plan_local.c),
 * found beside trainctl's own executable (a build tree) or in
 * LIBEXECDIR/trainyard (installed), in this process's place with
 * the same arguments, so the planner's libraries load only for it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_internal.h"

int ty__cmd_plan_local(ty__ctl *c, int argc, char **argv) {
  (void)c;
  char self[PATH_MAX], helper[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    ty__ctl_err("plan --mesh: cannot find trainctl's own executable: %s", strerror(errno));
    return TY_CLI_EXIT_ERROR;
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash) *slash = '\0';
  snprintf(helper, sizeof helper, "%s/trainyard-plan", slash ? self : ".");
  /* Beside trainctl in a build tree; installed, in LIBEXECDIR/trainyard. */
  if (access(helper, X_OK) != 0)
    snprintf(helper, sizeof helper, "%s", TY_LIBEXECDIR "/trainyard-plan");
  char *args[argc + 2];
  args[0] = helper;
  for (int i = 0; i < argc; i++)
    args[i + 1] = argv[i];
  args[argc + 1] = NULL;
  fflush(NULL);
  execv(helper, args);
  ty__ctl_err("plan --mesh: cannot run %s (it plans here; trainctl looks beside itself, then in "
              "%s): %s",
              helper, TY_LIBEXECDIR, strerror(errno));
  return TY_CLI_EXIT_ERROR;
}
