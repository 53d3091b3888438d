/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for -w/--nodelist and -x/--exclude in scheduler/: required
 * nodes chosen (first, in the job's order), excluded nodes never used, the
 * node count raised to the required nodes', the reservation's start and
 * preemption's victims counted on usable nodes only, a down or busy
 * required node named in the reason, explain, and the submit-time checks
 * (unknown names refused naming them). */
#include <criterion/criterion.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/scheduler.h"
#include "tests/unit/scheduler/sched_fixture.h"

static ty_sched_job ljob(uint64_t id, uint32_t nodes, uint32_t cpus) {
  return (ty_sched_job){.id = id,
                        .queue = "default",
                        .user = "u",
                        .submit_time_ms = 1000,
                        .nodes = nodes,
                        .tasks_per_node = 1,
                        .cpus_per_task = cpus};
}

static void three_nodes(ty_sched_node *n) {
  n[0] = sf_node("n1", 4, 0, 0);
  n[1] = sf_node("n2", 4, 0, 0);
  n[2] = sf_node("n3", 4, 0, 0);
}

static const char *node_of(const ty_sched_placement *p, uint32_t s, const ty_sched_node *nodes) {
  return nodes[p->slots[s].node].name;
}

Test(nodelist, a_required_node_is_chosen) {
  ty_sched_node nodes[3];
  three_nodes(nodes);
  static const char *const req[] = {"n3"};
  ty_sched_job jobs[] = {ljob(1, 1, 1)};
  jobs[0].req_nodes = req, jobs[0].n_req_nodes = 1;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 3};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_placement *p = sf_placed(&out, 1);
  cr_assert_not_null(p);
  cr_assert_eq(p->n_slots, 1u);
  cr_expect_str_eq(node_of(p, 0, nodes), "n3");
  ty_sched_output_close(&out);
}

Test(nodelist, the_count_is_raised_to_the_list_and_others_fill_a_larger_one) {
  ty_sched_node nodes[3];
  three_nodes(nodes);
  static const char *const two[] = {"n3", "n1"};
  ty_sched_job jobs[] = {ljob(1, 1, 1)};
  jobs[0].req_nodes = two, jobs[0].n_req_nodes = 2;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 3};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_placement *p = sf_placed(&out, 1);
  cr_assert_not_null(p);
  cr_assert_eq(p->n_slots, 2u, "-N 1 with two required nodes gets both");
  cr_expect_str_eq(node_of(p, 0, nodes), "n3");
  cr_expect_str_eq(node_of(p, 1, nodes), "n1");
  ty_sched_output_close(&out);
  /* -N 3 -w n2 -x n1: n2, and the others come from what is not excluded;
   * one node short, it waits. */
  static const char *const one[] = {"n2"}, *const x1[] = {"n1"};
  jobs[0] = ljob(1, 2, 1);
  jobs[0].req_nodes = one, jobs[0].n_req_nodes = 1;
  jobs[0].exc_nodes = x1, jobs[0].n_exc_nodes = 1;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  p = sf_placed(&out, 1);
  cr_assert_not_null(p);
  cr_assert_eq(p->n_slots, 2u);
  cr_expect_str_eq(node_of(p, 0, nodes), "n2");
  cr_expect_str_eq(node_of(p, 1, nodes), "n3");
  ty_sched_output_close(&out);
  jobs[0].nodes = 3;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *pd = sf_pending(&out, 1);
  cr_assert_not_null(pd);
  cr_expect_str_eq(pd->reason,
                   "Resources: needs 3 nodes with 1 free CPU; 2 have; node n1 is excluded (-x)");
  ty_sched_output_close(&out);
}

Test(nodelist, an_excluded_node_is_never_used) {
  ty_sched_node nodes[3];
  three_nodes(nodes);
  nodes[1].cpus_free = 2, nodes[2].cpus_free = 2; /* best fit would pick n2 or n3 */
  static const char *const x[] = {"n2", "n3"};
  ty_sched_job jobs[] = {ljob(1, 1, 1), ljob(2, 1, 1), ljob(3, 1, 1), ljob(4, 1, 1), ljob(5, 1, 1)};
  for (int k = 0; k < 5; k++)
    jobs[k].exc_nodes = x, jobs[k].n_exc_nodes = 2;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 5, .nodes = nodes, .n_nodes = 3};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 4u, "n1's 4 CPUs hold four");
  for (size_t k = 0; k < out.n_placements; k++)
    cr_expect_str_eq(node_of(&out.placements[k], 0, nodes), "n1");
  const ty_sched_pending *pd = sf_pending(&out, 5);
  cr_assert_not_null(pd, "a job ran on an excluded node");
  cr_expect_eq(pd->wait, TY_SCHED_WAIT_RESOURCES);
  cr_expect(strstr(pd->reason, "Resources: needs 1 node with 1 free CPU; 0 have; nodes n[2-3] are "
                               "excluded (-x); reserved"),
            "%s", pd->reason);
  ty_sched_output_close(&out);
}

Test(nodelist, a_down_or_unknown_required_node_makes_it_wait_naming_it) {
  ty_sched_node nodes[3];
  three_nodes(nodes);
  nodes[1].schedulable = false;
  static const char *const req[] = {"n1", "n2"}, *const gone[] = {"n9"};
  ty_sched_job jobs[] = {ljob(1, 1, 1), ljob(2, 1, 1)};
  jobs[0].req_nodes = req, jobs[0].n_req_nodes = 2;
  jobs[1].req_nodes = gone, jobs[1].n_req_nodes = 1;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 3};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_expect_eq(out.n_placements, 0u);
  const ty_sched_pending *pd = sf_pending(&out, 1);
  cr_assert_not_null(pd);
  cr_expect_eq(pd->wait, TY_SCHED_WAIT_REQ_NODE);
  cr_expect_str_eq(pd->reason, "ReqNodeNotAvail: required node n2 is down or draining");
  cr_expect_str_eq(ty_sched_wait_name(pd->wait), "ReqNodeNotAvail");
  cr_expect_str_eq(sf_pending(&out, 2)->reason,
                   "ReqNodeNotAvail: required node n9 is not a registered node");
  ty_sched_output_close(&out);
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_expect_eq(ex.est_kind, TY_SCHED_EST_UNKNOWN);
  cr_expect_str_eq(ex.est_note, "none while it waits for: ReqNodeNotAvail");
  cr_assert_eq(ex.nodes_fit, 2u, "n1 and n3");
  cr_assert_eq(ex.n_nodes, 1u);
  cr_expect_str_eq(nodes[ex.nodes[0].node].name, "n2");
  cr_expect_str_eq(ex.nodes[0].why, "not schedulable (down or draining) (required)");
  /* Back up, it starts there. */
  nodes[1].schedulable = true;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_placement *p = sf_placed(&out, 1);
  cr_assert(p && p->n_slots == 2);
  cr_expect_str_eq(nodes[p->slots[1].node].name, "n2");
  ty_sched_output_close(&out);
}

Test(nodelist, a_busy_required_node_is_named_with_its_job_and_explained) {
  ty_sched_node nodes[3];
  three_nodes(nodes);
  nodes[2].cpus_free = 0;
  ty_sched_slot s = {.node = 2, .cpus = 4};
  ty_sched_running run[] = {sf_running(12, 500, 0, &s)};
  static const char *const req[] = {"n3"}, *const x[] = {"n1"};
  ty_sched_job jobs[] = {ljob(1, 2, 1)};
  jobs[0].req_nodes = req, jobs[0].n_req_nodes = 1;
  jobs[0].exc_nodes = x, jobs[0].n_exc_nodes = 1;
  ty_sched_input in = {
      .jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 3, .running = run, .n_running = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *pd = sf_pending(&out, 1);
  cr_assert_not_null(pd);
  cr_expect_eq(pd->wait, TY_SCHED_WAIT_RESOURCES);
  cr_expect(strstr(pd->reason, "Resources: waiting for required node n3: it runs job 12"), "%s",
            pd->reason);
  ty_sched_output_close(&out);
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert(ex.pending);
  cr_expect_eq(ex.nodes_needed, 2u);
  cr_expect_eq(ex.nodes_fit, 1u, "only n2 fits of the nodes it may use");
  cr_assert_eq(ex.n_nodes, 2u);
  cr_expect_str_eq(nodes[ex.nodes[0].node].name, "n3", "the required node comes first");
  cr_expect_str_eq(ex.nodes[0].why, "0 of 4 CPUs free, 1 needed (required)");
  cr_expect_str_eq(nodes[ex.nodes[1].node].name, "n1");
  cr_expect_str_eq(ex.nodes[1].why, "excluded (-x/--exclude)");
}

/* n1 frees at now + 100 s, n2 at now + 1000 s. */
Test(nodelist, the_reservation_counts_only_nodes_it_may_use) {
  ty_sched_node nodes[] = {sf_node("n1", 4, 0, 0), sf_node("n2", 4, 0, 0)};
  nodes[0].cpus_free = nodes[1].cpus_free = 0;
  int64_t now = 1000000;
  ty_sched_slot s1 = {.node = 0, .cpus = 4}, s2 = {.node = 1, .cpus = 4};
  ty_sched_running run[] = {sf_running(10, now, 100, &s1), sf_running(11, now, 1000, &s2)};
  static const char *const x[] = {"n1"}, *const req[] = {"n2"};
  ty_sched_job jobs[] = {ljob(1, 1, 4)};
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 1,
                       .nodes = nodes,
                       .n_nodes = 2,
                       .running = run,
                       .n_running = 2,
                       .now_ms = now};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_expect_eq(sf_pending(&out, 1)->est_start_ms, now + 100000, "no list: n1's end");
  ty_sched_output_close(&out);
  jobs[0].exc_nodes = x, jobs[0].n_exc_nodes = 1;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *pd = sf_pending(&out, 1);
  cr_assert(pd && pd->reserved);
  cr_expect_eq(pd->est_start_ms, now + 1000000, "-x n1: n2's end");
  ty_sched_output_close(&out);
  jobs[0].exc_nodes = NULL, jobs[0].n_exc_nodes = 0;
  jobs[0].req_nodes = req, jobs[0].n_req_nodes = 1;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  pd = sf_pending(&out, 1);
  cr_assert(pd && pd->reserved);
  cr_expect_eq(pd->est_start_ms, now + 1000000, "-w n2: n2's end");
  ty_sched_output_close(&out);
  /* The reservation caps n2 only: a short job backfills on n1's end... and
   * explain's estimate agrees. */
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_expect_eq(ex.est_kind, TY_SCHED_EST_LIMITS);
  cr_expect_eq(ex.est_start_ms, now + 1000000);
}

Test(nodelist, victims_only_on_nodes_it_may_use) {
  ty_sched_node nodes[] = {sf_node("n1", 4, 0, 0), sf_node("n2", 4, 0, 0)};
  nodes[0].cpus_free = nodes[1].cpus_free = 0;
  int64_t now = 10000000;
  ty_sched_queue qs[] = {{.name = "low", .tier = 0, .preemptible = true},
                         {.name = "high", .tier = 10}};
  ty_sched_slot sl[2] = {{.node = 0, .cpus = 4}, {.node = 1, .cpus = 4}};
  ty_sched_running run[2];
  for (int i = 0; i < 2; i++)
    run[i] = (ty_sched_running){.id = 20 + (uint64_t)i,
                                .queue = "low",
                                .user = "u",
                                /* job 20 on n1 loses least: the first victim without a list */
                                .start_time_ms = now - 3600000 + (i ? 0 : 1800000),
                                .slots = &sl[i],
                                .n_slots = 1};
  ty_sched_config cfg;
  ty_sched_config_default(&cfg);
  static const char *const x[] = {"n1"};
  ty_sched_job jobs[] = {ljob(1, 1, 4)};
  jobs[0].queue = "high";
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 1,
                       .nodes = nodes,
                       .n_nodes = 2,
                       .queues = qs,
                       .n_queues = 2,
                       .running = run,
                       .n_running = 2,
                       .config = &cfg,
                       .now_ms = now};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 1u);
  cr_expect_eq(out.preemptions[0].victim_id, 20u);
  ty_sched_output_close(&out);
  jobs[0].exc_nodes = x, jobs[0].n_exc_nodes = 1;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 1u);
  cr_expect_eq(out.preemptions[0].victim_id, 21u, "a victim on the excluded node");
  cr_expect_eq(sf_pending(&out, 1)->wait, TY_SCHED_WAIT_PREEMPTING);
  ty_sched_output_close(&out);
}

Test(nodelist, submit_checks_refuse_unknown_names_and_count_usable_nodes) {
  ty_sched_node nodes[3];
  three_nodes(nodes);
  char why[256];
  static const char *const bad[] = {"n1", "w9"}, *const x2[] = {"n1", "n2"};
  ty_sched_job j = ljob(1, 1, 1);
  j.req_nodes = bad, j.n_req_nodes = 2;
  cr_expect_eq(ty_sched_check_fits(&j, nodes, 3, why, sizeof why), TY_EINVAL);
  cr_expect(strstr(why, "resources.required_nodes: Invalid node name specified: w9 is not a "
                        "node of this cluster (-w/--nodelist)"),
            "%s", why);
  cr_expect_eq(ty_sched_check_fits(&j, nodes, 0, why, sizeof why), TY_EINVAL);
  cr_expect(strstr(why, "Invalid node name specified: n1"), "%s", why);
  j.req_nodes = NULL, j.n_req_nodes = 0;
  j.exc_nodes = bad, j.n_exc_nodes = 2;
  cr_expect_eq(ty_sched_check_fits(&j, nodes, 3, why, sizeof why), TY_EINVAL);
  cr_expect(strstr(why, "resources.excluded_nodes: Invalid node name specified: w9"), "%s", why);
  j.exc_nodes = x2, j.nodes = 2;
  cr_expect_eq(ty_sched_check_fits(&j, nodes, 3, why, sizeof why), TY_EINVAL);
  cr_expect(strstr(why, "resources.nodes is 2 but only 1 of the nodes it may use"), "%s", why);
  j.nodes = 1;
  cr_expect_eq(ty_sched_check_fits(&j, nodes, 3, why, sizeof why), 0, "%s", why);
  /* fits_free: only n3 may be used; busy, nothing fits. */
  cr_expect(ty_sched_fits_free(&j, nodes, 3));
  nodes[2].cpus_free = 0;
  cr_expect(!ty_sched_fits_free(&j, nodes, 3));
  static const char *const r1[] = {"n1"};
  j.exc_nodes = NULL, j.n_exc_nodes = 0;
  j.req_nodes = r1, j.n_req_nodes = 1;
  cr_expect(ty_sched_fits_free(&j, nodes, 3));
  nodes[0].schedulable = false;
  cr_expect(!ty_sched_fits_free(&j, nodes, 3), "a down required node fits nothing");
  /* A required node too small for one slot is refused at submit. */
  j = ljob(1, 1, 8);
  nodes[1].cpus_total = 16;
  j.req_nodes = r1, j.n_req_nodes = 1;
  cr_expect_eq(ty_sched_check_fits(&j, nodes, 3, why, sizeof why), TY_EINVAL);
  cr_expect(strstr(why, "node n1 cannot hold one slot"), "%s", why);
}

/* Backfill around the top job's reservation (both nodes whole once job 11
 * ends): a short job that may use only n2 (-x n1) starts there; one that
 * may use only n1 (-x n2), full, waits; a long one limited to n2 would
 * delay the reserved job there. */
Test(nodelist, backfill_uses_only_the_nodes_it_may_use) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 0, 0), sf_node("n2", 8, 0, 0)};
  nodes[0].cpus_free = 0, nodes[1].cpus_free = 4;
  int64_t now = 1000000;
  ty_sched_slot s1 = {.node = 0, .cpus = 8}, s2 = {.node = 1, .cpus = 4};
  ty_sched_running run[] = {sf_running(10, now, 100, &s1), sf_running(11, now, 1000, &s2)};
  static const char *const x1[] = {"n1"}, *const x2[] = {"n2"};
  ty_sched_job jobs[] = {ljob(1, 2, 8), ljob(2, 1, 2), ljob(3, 1, 2), ljob(4, 1, 2)};
  jobs[0].priority = 1000, jobs[0].time_limit_s = 3600;
  jobs[1].priority = 500, jobs[1].time_limit_s = 50, jobs[1].exc_nodes = x2;
  jobs[1].n_exc_nodes = 1;
  jobs[2].priority = 400, jobs[2].time_limit_s = 50, jobs[2].exc_nodes = x1;
  jobs[2].n_exc_nodes = 1;
  jobs[3].priority = 300, jobs[3].time_limit_s = 5000, jobs[3].exc_nodes = x1;
  jobs[3].n_exc_nodes = 1;
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 4,
                       .nodes = nodes,
                       .n_nodes = 2,
                       .running = run,
                       .n_running = 2,
                       .now_ms = now};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *top = sf_pending(&out, 1);
  cr_assert(top && top->reserved);
  cr_expect_eq(top->est_start_ms, now + 1000000);
  cr_expect_null(sf_placed(&out, 2), "-x n2 started, but n1 is full");
  const ty_sched_placement *bf = sf_placed(&out, 3);
  cr_assert(bf && bf->backfilled, "-x n1, short: backfills on n2");
  cr_expect_str_eq(nodes[bf->slots[0].node].name, "n2");
  const ty_sched_pending *lng = sf_pending(&out, 4);
  cr_assert_not_null(lng, "a long job took the reserved job's n2");
  cr_expect_str_eq(lng->reason, "Priority: would delay job 1, reserved to start in 1000 s");
  ty_sched_output_close(&out);
}
