/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for scheduler/: ordering, gang placement, GPU choice, reasons,
 * and the submit-time shape check. The policies (priority factors, backfill,
 * preemption, fair share, topology, config) have their own files here. */
#include <criterion/criterion.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/scheduler.h"
#include "tests/unit/scheduler/sched_fixture.h"

static ty_sched_job job(uint64_t id, int32_t prio, int64_t submit, uint32_t nodes, uint32_t cpus) {
  ty_sched_job j = {.id = id,
                    .queue = "default",
                    .user = "u",
                    .priority = prio,
                    .submit_time_ms = submit,
                    .nodes = nodes,
                    .tasks_per_node = 1,
                    .cpus_per_task = cpus,
                    .gpus_per_node = 0,
                    .mem_per_node = 0};
  return j;
}

Test(sched, higher_priority_runs_first) {
  ty_sched_node nodes[] = {sf_node("n1", 4, 0, 0)};
  ty_sched_job jobs[] = {job(1, 0, 100, 1, 4), job(2, 10, 200, 1, 4)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_not_null(sf_placed(&out, 2));
  cr_assert_null(sf_placed(&out, 1));
  cr_assert_eq(sf_pending(&out, 1)->position, 1u);
  ty_sched_output_close(&out);
}

Test(sched, fifo_within_priority_then_id) {
  ty_sched_node nodes[] = {sf_node("n1", 2, 0, 0)};
  ty_sched_job jobs[] = {job(3, 5, 300, 1, 2), job(2, 5, 100, 1, 2), job(1, 5, 100, 1, 2)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 3, .nodes = nodes, .n_nodes = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 1u);
  cr_assert_eq(out.placements[0].job_id, 1u);
  cr_assert_eq(sf_pending(&out, 2)->position, 1u);
  cr_assert_eq(sf_pending(&out, 3)->position, 2u);
  ty_sched_output_close(&out);
}

Test(sched, gang_is_all_or_nothing) {
  ty_sched_node nodes[] = {sf_node("n1", 4, 0, 0), sf_node("n2", 4, 0, 0)};
  nodes[1].cpus_free = 0; /* busy */
  ty_sched_job jobs[] = {job(1, 0, 1, 2, 1)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 2};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 0u);
  cr_assert_eq(out.n_pending, 1u);
  cr_assert_str_eq(out.pending[0].reason, "Resources: needs 2 nodes with 1 free CPU; 1 has");
  ty_sched_output_close(&out);
}

Test(sched, two_half_fitting_gangs_do_not_deadlock) {
  ty_sched_node nodes[] = {sf_node("n1", 1, 0, 0), sf_node("n2", 1, 0, 0)};
  ty_sched_job jobs[] = {job(1, 0, 1, 2, 1), job(2, 0, 2, 2, 1)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 2};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 1u);
  const ty_sched_placement *p = sf_placed(&out, 1);
  cr_assert_not_null(p);
  cr_assert_eq(p->n_slots, 2u);
  cr_assert_neq(p->slots[0].node, p->slots[1].node);
  cr_assert_not_null(sf_pending(&out, 2));
  ty_sched_output_close(&out);
}

Test(sched, lowest_free_gpu_indices) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 8, 0)};
  nodes[0].gpus_free = 0xF2; /* 1,4,5,6,7 free */
  ty_sched_job jobs[] = {job(1, 0, 1, 1, 1)};
  jobs[0].gpus_per_node = 3;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 1u);
  cr_assert_eq(out.placements[0].slots[0].gpus, (uint64_t)0x32); /* 1,4,5 */
  ty_sched_output_close(&out);
}

Test(sched, later_jobs_see_earlier_allocations) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 4, 1 << 30)};
  ty_sched_job jobs[] = {job(1, 0, 1, 1, 1), job(2, 0, 2, 1, 1), job(3, 0, 3, 1, 1)};
  for (int i = 0; i < 3; i++)
    jobs[i].gpus_per_node = 2;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 3, .nodes = nodes, .n_nodes = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 2u);
  cr_assert_eq(sf_placed(&out, 1)->slots[0].gpus, (uint64_t)0x3);
  cr_assert_eq(sf_placed(&out, 2)->slots[0].gpus, (uint64_t)0xC);
  cr_assert_str_eq(
      sf_pending(&out, 3)->reason,
      "Resources: needs 1 node with 1 free CPU, 2 GPUs; 0 have; reserved, its start waiting "
      "for job 1, which has no time limit");
  ty_sched_output_close(&out);
}

Test(sched, memory_and_cpus_are_per_node_totals) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 0, 4ull << 30)};
  ty_sched_job jobs[] = {job(1, 0, 1, 1, 2), job(2, 0, 2, 1, 1)};
  jobs[0].tasks_per_node = 4; /* 8 CPUs */
  jobs[1].mem_per_node = 1ull << 30;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 1u);
  cr_assert_eq(sf_placed(&out, 1)->slots[0].cpus, 8u);
  cr_assert_str_eq(sf_pending(&out, 2)->reason,
                   "Resources: needs 1 node with 1 free CPU, 1024 MiB memory; 0 have; "
                   "reserved, its start waiting for job 1, which has no time limit");
  ty_sched_output_close(&out);
}

Test(sched, unschedulable_nodes_are_skipped_with_reason) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 0, 0)};
  nodes[0].schedulable = false;
  ty_sched_job jobs[] = {job(1, 0, 1, 1, 1)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 0u);
  cr_assert_str_eq(out.pending[0].reason,
                   "Resources: no schedulable nodes (all are down or draining)");
  ty_sched_output_close(&out);
}

Test(sched, empty_input) {
  ty_sched_input in = {.jobs = NULL, .n_jobs = 0, .nodes = NULL, .n_nodes = 0};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements + out.n_pending, 0u);
  ty_sched_output_close(&out);
  ty_sched_output_close(NULL);
}

Test(check_fits, refuses_what_can_never_run) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 8, 1ull << 30), sf_node("n2", 4, 0, 1ull << 30)};
  char why[160];
  ty_sched_job j = job(1, 0, 1, 1, 1);
  cr_assert_eq(ty_sched_check_fits(&j, nodes, 2, why, sizeof(why)), 0);
  j.gpus_per_node = 16;
  cr_assert_eq(ty_sched_check_fits(&j, nodes, 2, why, sizeof(why)), TY_EINVAL);
  cr_assert_str_eq(why, "resources.gpus_per_node is 16 but the largest node has 8 GPUs");
  j.gpus_per_node = 0;
  j.cpus_per_task = 3;
  j.tasks_per_node = 3;
  cr_assert_eq(ty_sched_check_fits(&j, nodes, 2, why, sizeof(why)), TY_EINVAL);
  cr_assert_str_eq(why,
                   "resources: tasks_per_node * cpus_per_task is 9 CPUs but the largest node has 8 "
                   "(give -N/--nodes to spread the tasks over nodes)",
                   "sbatch -n 9 would find nodes itself: say how");
  j.cpus_per_task = 9;
  j.tasks_per_node = 1;
  cr_assert_eq(ty_sched_check_fits(&j, nodes, 2, why, sizeof(why)), TY_EINVAL);
  cr_assert_str_eq(why,
                   "resources: tasks_per_node * cpus_per_task is 9 CPUs but the largest "
                   "node has 8",
                   "one task: more nodes would not help");
  j.cpus_per_task = 1;
  j.tasks_per_node = 1;
  j.mem_per_node = 2ull << 30;
  cr_assert_eq(ty_sched_check_fits(&j, nodes, 2, why, sizeof(why)), TY_EINVAL);
  cr_assert_str_eq(why,
                   "resources.mem_per_node is 2G (2147483648 bytes) but the largest node has 1G "
                   "(1073741824)",
                   "in --mem's units");
  j.mem_per_node = 107374182400ull;
  nodes[0].mem_total = nodes[1].mem_total = 25276194816ull;
  cr_assert_eq(ty_sched_check_fits(&j, nodes, 2, why, sizeof(why)), TY_EINVAL);
  cr_assert(strstr(why, "is 100G (107374182400 bytes) but the largest node has 23.5G"), "%s", why);
  nodes[0].mem_total = nodes[1].mem_total = 1ull << 30;
  j.mem_per_node = 0;
  j.nodes = 2;
  j.gpus_per_node = 1;
  cr_assert_eq(ty_sched_check_fits(&j, nodes, 2, why, sizeof(why)), TY_EINVAL);
  cr_assert_str_eq(why, "resources.nodes is 2 but only 1 nodes can hold one slot each");
  j.nodes = 0;
  cr_assert_eq(ty_sched_check_fits(&j, nodes, 2, why, sizeof(why)), TY_EINVAL);
  cr_assert_str_eq(why, "resources.nodes: 0 is not allowed");
}

Test(check_fits, no_nodes_known_accepts) {
  ty_sched_job j = job(1, 0, 1, 4, 64);
  char why[160];
  cr_assert_eq(ty_sched_check_fits(&j, NULL, 0, why, sizeof(why)), 0);
}

/* An array's blocked elements are one shape in a row: the pass searches
 * for them once while nothing was placed in between (a memo), yet every
 * job gets what its own search would say: after job 4 (short enough to
 * end before job 2's reservation) takes the second node, job 5 (the same
 * shape as 2 and 3) finds no node at all. */
Test(sched, blocked_jobs_of_one_shape_keep_their_own_reasons) {
  ty_sched_node nodes[] = {sf_node("n1", 4, 0, 0), sf_node("n2", 4, 0, 0)};
  ty_sched_job jobs[] = {job(1, 0, 1, 1, 4), job(2, 0, 2, 2, 1), job(3, 0, 3, 2, 1),
                         job(4, 0, 4, 1, 4), job(5, 0, 5, 2, 1)};
  ty_sched_config cfg;
  ty_sched_config_default(&cfg);
  for (int i = 0; i < 5; i++) /* tried in id order */
    jobs[i].priority = 1000 - 100 * i;
  jobs[0].time_limit_s = 3600, jobs[3].time_limit_s = 60;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 5, .nodes = nodes, .n_nodes = 2, .config = &cfg};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 2u);
  cr_assert_not_null(sf_placed(&out, 1));
  cr_assert_not_null(sf_placed(&out, 4));
  cr_assert_neq(sf_placed(&out, 1)->slots[0].node, sf_placed(&out, 4)->slots[0].node);
  static const char one_has[] = "Resources: needs 2 nodes with 1 free CPU; 1 has";
  cr_assert_str_eq(sf_pending(&out, 2)->reason,
                   "Resources: needs 2 nodes with 1 free CPU; 1 has; reserved to start in 3600 s");
  cr_assert_str_eq(sf_pending(&out, 3)->reason, one_has);
  cr_assert_str_eq(sf_pending(&out, 5)->reason, "Resources: needs 2 nodes with 1 free CPU; 0 have");
  cr_assert_eq(sf_pending(&out, 5)->position, 3u);
  ty_sched_output_close(&out);
}

/* A job with a begin time waits for it (BeginTime, its time in UTC) and
 * leaves its nodes to others; once the time has come it runs. */
Test(sched, a_begin_time_holds_a_job_back_until_it_comes) {
  ty_sched_node nodes[] = {sf_node("n1", 1, 0, 0)};
  ty_sched_job jobs[] = {job(1, 0, 1000, 1, 1), job(2, 0, 2000, 1, 1)};
  jobs[0].begin_ms = 1765000000000; /* 2025-12-06 05:46:40 UTC */
  ty_sched_input in = {
      .jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 1, .now_ms = jobs[0].begin_ms - 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_not_null(sf_placed(&out, 2), "the later job takes the node");
  const ty_sched_pending *pd = sf_pending(&out, 1);
  cr_assert_not_null(pd);
  cr_assert_eq(pd->wait, TY_SCHED_WAIT_BEGIN_TIME);
  cr_assert_str_eq(pd->reason, "BeginTime: not before 2025-12-06 05:46:40 UTC");
  ty_sched_output_close(&out);
  in.now_ms = jobs[0].begin_ms;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_not_null(sf_placed(&out, 1), "its time has come");
  ty_sched_output_close(&out);
}
