/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/policy.c: the auth. keys of traind's configuration, every rejection
 * naming its line and key, node patterns (globs and Slurm hostlists), and
 * who counts as an operator or as the cluster's service.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

static ty_auth_policy parse(const char *text) {
  ty_auth_policy p = {0};
  char *copy = strdup(text), err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_policy_take_config(copy, &p, err, sizeof err), 0, "%s", err);
  free(copy);
  return p;
}

static void refused(const char *text, const char *words) {
  ty_auth_policy p = {0};
  char *copy = strdup(text), err[TY_ERR_LEN] = "";
  cr_expect_eq(ty_policy_take_config(copy, &p, err, sizeof err), TY_EINVAL, "%s", text);
  cr_expect(strstr(err, words), "want \"%s\" in \"%s\"", words, err);
  free(copy);
  ty_policy_close(&p);
}

Test(policy, auth_lines_are_taken_and_blanked_the_rest_left_alone) {
  ty_auth_policy p = {0};
  char text[] = "weight.age = 5\n"
                "auth.operators = alice, bob  # ops\n"
                "  auth.nodes = gpu[01-04,09], cpu*\n"
                "auth.operator_group = tyadmin\n"
                "auth.workers = key\n"
                "auth.cluster_key = /etc/trainyard/cluster.key\n"
                "auth.service_user = trainyard\n"
                "backfill = on\n";
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_policy_take_config(text, &p, err, sizeof err), 0, "%s", err);
  cr_expect_eq(p.n_operators, 2);
  cr_expect_str_eq(p.operators[1], "bob");
  cr_expect_eq(p.n_nodes, 2);
  cr_expect_str_eq(p.nodes[0], "gpu[01-04,09]");
  cr_expect(p.nodes_listed);
  cr_expect_str_eq(p.operator_group, "tyadmin");
  cr_expect(p.workers_set && p.workers == TY_AUTH_KEY);
  cr_expect_str_eq(p.cluster_key, "/etc/trainyard/cluster.key");
  cr_expect_str_eq(p.service_user, "trainyard");
  /* Other keys stay for the scheduler's parser, on their own lines. */
  cr_expect(strstr(text, "weight.age = 5\n"));
  cr_expect(strstr(text, "backfill = on\n"));
  cr_expect(!strstr(text, "auth."), "%s", text);
  cr_expect_eq(strchr(text, '\n') - text, 14);
  ty_auth_policy copy;
  ty_policy_copy(&p, &copy);
  ty_policy_close(&p);
  cr_expect_str_eq(copy.nodes[1], "cpu*");
  ty_policy_close(&copy);
}

Test(policy, bad_lines_name_the_line_and_key) {
  refused("auth.nodes = gpu[01-\n", "line 1: auth.nodes: \"gpu[01-\"");
  refused("# c\nauth.nodes = gpu[4-2]\n", "line 2: auth.nodes");
  refused("auth.nodes = a]\n", "']' without '['");
  refused("auth.nodes = a,,b\n", "an empty entry");
  refused("auth.operators = alice,\n", "auth.operators: an empty entry");
  refused("auth.workers = kerberos\n", "auth.workers: \"kerberos\" is not munge, key or none");
  refused("auth.admins = alice\n", "unknown key \"auth.admins\"");
  refused("auth.service_user =\n", "auth.service_user: needs a value");
  refused("auth.nodes\n", "line 1: expected key = value");
}

Test(policy, node_patterns) {
  ty_auth_policy p = parse("auth.nodes = gpu[01-16,20], cpu*, n?, w[1-4]x, exact\n");
  const char *yes[] = {"gpu01", "gpu16", "gpu20", "cpu", "cpu-big-7", "n1", "nz", "w3x", "exact"};
  const char *no[] = {"gpu1", "gpu00", "gpu17", "gpu020", "gpu",    "xcpu",
                      "n12",  "w5x",   "w03x",  "w3",     "exact2", ""};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
    cr_expect(ty_policy_node_allowed(&p, yes[i]), "%s should be allowed", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof *no; i++)
    cr_expect_not(ty_policy_node_allowed(&p, no[i]), "%s should not be allowed", no[i]);
  ty_policy_close(&p);
  ty_auth_policy none = {0};
  cr_expect_not(ty_policy_node_allowed(&none, "anything"));
}

Test(policy, operators_and_the_service) {
  ty_auth_policy p = parse("auth.operators = alice\n");
  p.has_operator_gid = true;
  p.operator_gid = 4242;
  ty_auth_id id = {.uid = 1001, .gid = 1001, .known = true};
  strcpy(id.user, "alice");
  cr_expect(ty_policy_is_operator(&p, &id, 999));
  strcpy(id.user, "bob");
  cr_expect_not(ty_policy_is_operator(&p, &id, 999));
  id.known = false; /* a name without a passwd entry here never matches */
  strcpy(id.user, "alice");
  cr_expect_not(ty_policy_is_operator(&p, &id, 999));
  id.groups[id.n_groups++] = 4242; /* the operator group */
  cr_expect(ty_policy_is_operator(&p, &id, 999));
  ty_auth_id root = {.uid = 0}, self = {.uid = 999};
  cr_expect(ty_policy_is_operator(&p, &root, 999));
  cr_expect(ty_policy_is_operator(&p, &self, 999), "traind's own user is an operator");
  ty_policy_close(&p);
  ty_auth_id svc = {.uid = 998}, key = {.uid = 1234, .via_key = true}, user = {.uid = 1001};
  cr_expect(ty_auth_id_is_service(&svc, 998));
  cr_expect(ty_auth_id_is_service(&root, 998));
  cr_expect(ty_auth_id_is_service(&key, 998));
  cr_expect_not(ty_auth_id_is_service(&user, 998));
}
