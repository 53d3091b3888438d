/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which local socket trainctl and rlaunch try before TCP (cli/socket.c):
 * the flag for any host, the environment only for a loopback controller,
 * the service's default only for the default controller, "none" never;
 * and a failed socket is not tried again.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "cli/socket.h"

Test(cli_socket, the_flag_wins_for_any_host) {
  ty_cli_socket_choose("/s/flag.sock", "/s/env.sock", "10.0.0.5", 7810);
  cr_expect_str_eq(ty_cli_socket_for("10.0.0.5", 7810), "/s/flag.sock");
  cr_expect_null(ty_cli_socket_for("10.0.0.6", 7810), "another controller keeps TCP");
  ty_cli_socket_choose("none", "/s/env.sock", "127.0.0.1", 7810);
  cr_expect_null(ty_cli_socket_for("127.0.0.1", 7810));
}

Test(cli_socket, the_environment_applies_to_a_local_controller_only) {
  ty_cli_socket_choose(NULL, "/s/env.sock", "127.0.0.1", 17850);
  cr_expect_str_eq(ty_cli_socket_for("127.0.0.1", 17850), "/s/env.sock");
  ty_cli_socket_choose(NULL, "/s/env.sock", "localhost", 7810);
  cr_expect_str_eq(ty_cli_socket_for("localhost", 7810), "/s/env.sock");
  ty_cli_socket_choose(NULL, "/s/env.sock", "ctl.example", 7810);
  cr_expect_null(ty_cli_socket_for("ctl.example", 7810), "a remote controller keeps TCP");
  ty_cli_socket_choose(NULL, "none", "127.0.0.1", 7810);
  cr_expect_null(ty_cli_socket_for("127.0.0.1", 7810));
}

Test(cli_socket, the_default_is_for_the_default_controller) {
  ty_cli_socket_choose(NULL, NULL, "127.0.0.1", 7810);
  cr_expect_str_eq(ty_cli_socket_for("127.0.0.1", 7810), TY_CLI_SOCKET_DEFAULT);
  ty_cli_socket_choose(NULL, "", "::1", 7810);
  cr_expect_str_eq(ty_cli_socket_for("::1", 7810), TY_CLI_SOCKET_DEFAULT);
  ty_cli_socket_choose(NULL, NULL, "127.0.0.1", 17850);
  cr_expect_null(ty_cli_socket_for("127.0.0.1", 17850), "another port may be another traind");
}

Test(cli_socket, a_failed_socket_is_not_tried_again) {
  ty_cli_socket_choose(NULL, "/s/env.sock", "127.0.0.1", 7810);
  ty_cli_socket_failed(-ENOENT);
  cr_expect_null(ty_cli_socket_for("127.0.0.1", 7810));
}
