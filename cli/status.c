/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exit codes of trainctl. They are a contract with scripts
 * (docs/cluster-protocol.md): 0 success, 1 an error the controller reported,
 * 2 usage, 3 controller unreachable, 4 unknown job id, 5 invalid job spec.
 */
#include "cli/cli.h"

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
