/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exit codes and state names. The exit codes are a contract with scripts
 * (docs/cluster-protocol.md): 0 success, 1 an error the controller reported,
 * 2 usage, 3 controller unreachable, 4 unknown job id, 5 invalid job spec.
 */
#include "cli/cli.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

int ty_cli_exit_for_status(ty_cli_op op, int status) {
  if (status == 0) return TY_CLI_EXIT_OK;
  switch (op) {
  case TY_CLI_OP_SUBMIT:
    /* The controller answers an unknown queue with TY_ENOTFOUND: still a
     * refused spec, not an unknown job. */
    if (status == TY_EINVAL || status == TY_ENOTFOUND || status == TY_EUNSUPPORTED)
      return TY_CLI_EXIT_INVALID;
    break;
  case TY_CLI_OP_JOB:
    if (status == TY_ENOTFOUND) return TY_CLI_EXIT_NOTFOUND;
    break;
  case TY_CLI_OP_OTHER:
    break;
  }
  return TY_CLI_EXIT_ERROR;
}

int ty_cli_exit_for_transport(int rc) {
  return rc == 0 ? TY_CLI_EXIT_OK : TY_CLI_EXIT_UNREACHABLE;
}

static const char *const job_states[] = {
    [TY_CLI_JOB_PENDING] = "PENDING",     [TY_CLI_JOB_RUNNING] = "RUNNING",
    [TY_CLI_JOB_COMPLETED] = "COMPLETED", [TY_CLI_JOB_FAILED] = "FAILED",
    [TY_CLI_JOB_CANCELLED] = "CANCELLED", [TY_CLI_JOB_TIMEOUT] = "TIMEOUT",
    [TY_CLI_JOB_PREEMPTED] = "PREEMPTED", [TY_CLI_JOB_NODE_FAIL] = "NODE_FAIL",
};
/* squeue's compact state codes, accepted by --state. */
static const char *const job_short[] = {
    [TY_CLI_JOB_PENDING] = "PD",   [TY_CLI_JOB_RUNNING] = "R",    [TY_CLI_JOB_COMPLETED] = "CD",
    [TY_CLI_JOB_FAILED] = "F",     [TY_CLI_JOB_CANCELLED] = "CA", [TY_CLI_JOB_TIMEOUT] = "TO",
    [TY_CLI_JOB_PREEMPTED] = "PR", [TY_CLI_JOB_NODE_FAIL] = "NF",
};

const char *ty_cli_job_state_name(int state) {
  if (state < 1 || state > TY_CLI_JOB_STATE_MAX) return "UNKNOWN";
  return job_states[state];
}

int ty_cli_job_state_parse(const char *s, int *out_state) {
  char norm[32];
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof norm) return TY_EINVAL;
  for (size_t i = 0; i <= n; i++)
    norm[i] = s[i] == '-' ? '_' : (char)toupper((unsigned char)s[i]);
  for (int st = 1; st <= TY_CLI_JOB_STATE_MAX; st++) {
    if (strcmp(norm, job_states[st]) == 0 || strcmp(norm, job_short[st]) == 0) {
      *out_state = st;
      return 0;
    }
  }
  /* The British and American spellings both appear in other schedulers. */
  if (strcmp(norm, "CANCELED") == 0) {
    *out_state = TY_CLI_JOB_CANCELLED;
    return 0;
  }
  return TY_EINVAL;
}

const char *ty_cli_node_state_name(int state) {
  switch (state) {
  case 1:
    return "UP";
  case 2:
    return "DOWN";
  case 3:
    return "DRAINING";
  case 4:
    return "DRAINED";
  default:
    return "UNKNOWN";
  }
}
