/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the scheduler's config parser: every key, switch groups,
 * and a rejection (with the line and key named) for each kind of bad line. */
#include <criterion/criterion.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/scheduler.h"

Test(config, parses_weights_durations_switches) {
  const char *text = "# scheduler\n"
                     "weight.tier = 5000\n"
                     "weight.age=10\n"
                     "\n"
                     "weight.fairshare = 2.5  # comment\n"
                     "weight.size = 0\n"
                     "weight.priority = 7\n"
                     "age_max = 2d\n"
                     "fairshare.halflife = 12h\n"
                     "fairshare.cpu_weight = 0.5\n"
                     "preemption = off\n"
                     "preempt.min_run = 15m\n"
                     "preempt.grace = 90s\n"
                     "backfill = on\n"
                     "backfill.depth = 100\n"
                     "unknown_runtime = 3600\n"
                     "default_mem_per_node = 4000\n"
                     "switch.s1 = n1, n2,n3\n"
                     "switch.s2 = n4\n";
  ty_sched_config c;
  ty_sched_config_default(&c);
  ty_sched_topology t;
  char err[200] = "";
  cr_assert_eq(ty_sched_config_parse(text, &c, &t, err, sizeof(err)), 0, "%s", err);
  cr_assert_float_eq(c.w_tier, 5000, 1e-9);
  cr_assert_float_eq(c.w_age, 10, 1e-9);
  cr_assert_float_eq(c.w_fairshare, 2.5, 1e-9);
  cr_assert_float_eq(c.w_size, 0, 1e-9);
  cr_assert_float_eq(c.w_priority, 7, 1e-9);
  cr_assert_eq(c.age_max_s, 2u * 86400);
  cr_assert_float_eq(c.halflife_s, 12 * 3600, 1e-9);
  cr_assert_float_eq(c.cpu_usage_weight, 0.5, 1e-9);
  cr_assert_not(c.preemption);
  cr_assert_eq(c.min_run_s, 900u);
  cr_assert_eq(c.preempt_grace_s, 90u);
  cr_assert(c.backfill);
  cr_assert_eq(c.backfill_depth, 100u);
  cr_assert_eq(c.unknown_runtime_s, 3600u);
  cr_assert_eq(c.default_mem_per_node, 4000ull << 20, "a bare number is megabytes, as Slurm's");
  cr_assert_eq(t.n_switches, 2u);
  cr_assert_eq(ty_sched_topology_switch_of(&t, "n3"), 0u);
  cr_assert_eq(ty_sched_topology_switch_of(&t, "n4"), 1u);
  cr_assert_eq(ty_sched_topology_switch_of(&t, "n9"), TY_SCHED_NO_SWITCH);
  ty_sched_topology_close(&t);
  ty_sched_topology_close(&t); /* idempotent */
}

static void rejects(const char *text, const char *want);

/* A switch group is a Slurm hostlist, as topology.conf's Nodes=: ranges
 * expand, and an empty entry or a bad hostlist is refused naming the key
 * and line, never kept as a node literally named "worker[1-2]". */
Test(config, switch_groups_are_hostlists) {
  ty_sched_config c;
  ty_sched_config_default(&c);
  ty_sched_topology t;
  char err[200] = "";
  cr_assert_eq(ty_sched_config_parse("switch.r1 = worker[1-2], gpu[01-02,07]\nswitch.r2 = n1\n", &c,
                                     &t, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(t.switches[0].n_nodes, 5u);
  cr_assert_eq(ty_sched_topology_switch_of(&t, "worker2"), 0u);
  cr_assert_eq(ty_sched_topology_switch_of(&t, "gpu07"), 0u);
  cr_assert_eq(ty_sched_topology_switch_of(&t, "worker[1-2]"), TY_SCHED_NO_SWITCH);
  ty_sched_topology_close(&t);
  rejects("\nswitch.r1 = n[1-\n",
          "line 2: switch.r1: hostlist \"n[1-\": unbalanced brackets in \"n[1-\"");
  rejects("switch.r1 = n1,,n2\n", "line 1: switch.r1: an empty entry in the list");
  rejects("switch.r1 = n1,\n", "line 1: switch.r1: an empty entry in the list");
  rejects("switch.r1 = n[3-1]\n",
          "line 1: switch.r1: hostlist \"n[3-1]\": the range \"3-1\" is reversed");
  rejects("switch.r1 = n 1\n",
          "line 1: switch.r1: hostlist \"n 1\": ' ' may not be in a node name (\"n 1\")");
  rejects("switch.r1 = n[1-2],n2\n", "line 1: switch.r1 lists node n2 twice");
  rejects("switch.a = n1\nswitch.b = n[0-3]\n", "line 2: node n1 is in two switches");
}

static void rejects(const char *text, const char *want) {
  ty_sched_config c, before;
  ty_sched_config_default(&c);
  before = c;
  ty_sched_topology t;
  char err[200] = "";
  cr_assert_eq(ty_sched_config_parse(text, &c, &t, err, sizeof(err)), TY_EINVAL, "accepted: %s",
               text);
  cr_assert_str_eq(err, want);
  cr_assert_eq(t.n_switches, 0u);
  cr_assert(memcmp(&c, &before, sizeof(c)) == 0, "config changed on error");
}

Test(config, rejects_bad_lines_naming_line_and_key) {
  rejects("weight.age = x\n", "line 1: weight.age: \"x\" is not a number >= 0");
  rejects("\nweight.tier = -1\n", "line 2: weight.tier: \"-1\" is not a number >= 0");
  rejects("bogus = 1\n", "line 1: unknown key \"bogus\"");
  rejects("default_mem_per_node = -5\n",
          "line 1: default_mem_per_node: \"-5\" is not a size (a bare number is megabytes: 4000; "
          "or 512M, 16G; 0 = none)");
  rejects("default_mem_per_node = 4X\n",
          "line 1: default_mem_per_node: \"4X\" is not a size (a bare number is megabytes: 4000; "
          "or 512M, 16G; 0 = none)");
  rejects("no equals sign\n", "line 1: expected key = value");
  rejects("preemption = maybe\n", "line 1: preemption: \"maybe\" is not on or off");
  rejects("age_max = 3w\n", "line 1: age_max: \"3w\" is not a duration (90, 90s, 15m, 2h, 1d)");
  /* n * 86400 wraps in 64 bits to 61184 s: too large, not 17 hours. */
  rejects("age_max = 213503982334602d\n",
          "line 1: age_max: \"213503982334602d\" is not a duration (90, 90s, 15m, 2h, 1d)");
  rejects("preempt.grace = 307445734561825861m\n",
          "line 1: preempt.grace: \"307445734561825861m\" is not a duration (90, 90s, 15m, 2h, "
          "1d)");
  rejects("fairshare.halflife = 5124095576030432h\n",
          "line 1: fairshare.halflife: \"5124095576030432h\" is not a duration above 0 (90, "
          "90s, 15m, 2h, 1d)");
  rejects("fairshare.halflife = 0\n",
          "line 1: fairshare.halflife: \"0\" is not a duration above 0 (90, 90s, 15m, 2h, 1d)");
  /* backfill would take every job without a time limit to end at once */
  rejects("unknown_runtime = 0\n",
          "line 1: unknown_runtime: \"0\" is not a duration above 0 (90, 90s, 15m, 2h, 1d)");
  rejects("unknown_runtime = 0s\n",
          "line 1: unknown_runtime: \"0s\" is not a duration above 0 (90, 90s, 15m, 2h, 1d)");
  rejects("backfill.depth = -3\n", "line 1: backfill.depth: \"-3\" is not a count");
  rejects("switch.a = n1\nswitch.a = n2\n", "line 2: switch.a is defined twice");
  rejects("switch.a = n1\nswitch.b = n1\n", "line 2: node n1 is in two switches");
  rejects("switch.a = ,\n", "line 1: switch.a: an empty entry in the list");
  rejects("switch.a =\n", "line 1: switch.a lists no nodes");
  rejects("switch. = n1\n", "line 1: switch. needs a name");
}
