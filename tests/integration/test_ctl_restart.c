/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl's followers across a controller restart, killed (-9) or stopped
 * and started again as an upgrade does (SIGTERM, then a new traind on the
 * same state): `submit -W` and `top` reconnect with a backoff and go on,
 * so -W exits with the job's own exit code rather than trainctl's "lost
 * the controller" (docs/cluster-protocol.md: a client reconnects and sends
 * WatchJob again). `watch`, which needs a graph job, is tested with the
 * graph jobs (test_graph_plan_cli.c). Part of the ctl program.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

static size_t count(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

Test(ctl_restart, submit_wait_and_top_outlast_a_controller_restart, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  char log[400];
  for (int kill9 = 1; kill9 >= 0; kill9--) {
    const char *how = kill9 ? "kill -9" : "SIGTERM";
    snprintf(log, sizeof log, "%s/wait-%s.log", c.dir, kill9 ? "kill9" : "term");
    pid_t w = it_trainctl_spawn(&c, log,
                                (const char *const[]){"submit", "-W", "--quiet", "--command", "--",
                                                      "sh", "-c", "sleep 6; exit 3", NULL});
    it_wait_log(log, "\n"); /* the id: submitted, now waiting */
    it_sleep_ms(1000);
    it_controller_restart(&c, kill9);
    int rc = it_wait_exit(w, log, 60000);
    char *text = it_read_text(log);
    cr_assert_eq(rc, 3, "%s: submit -W exited %d, not the job's exit code 3:\n%s", how, rc, text);
    cr_assert(strstr(text, "reconnecting"), "%s: no word of the lost controller:\n%s", how, text);
    free(text);
  }
  /* top -n 6: all six screens, one of them from the new controller. */
  snprintf(log, sizeof log, "%s/top.log", c.dir);
  pid_t t = it_trainctl_spawn(&c, log, (const char *const[]){"top", "-d", "1", "-n", "6", NULL});
  it_wait_log(log, "trainyard top");
  it_controller_restart(&c, true);
  int rc = it_wait_exit(t, log, 60000);
  char *text = it_read_text(log);
  cr_assert_eq(rc, 0, "top exited %d:\n%s", rc, text);
  cr_assert_eq(count(text, "trainyard top "), 6, "%s", text);
  free(text);
  it_cluster_stop(&c);
}
