/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for exclusive (whole-node) jobs in scheduler/: placement only
 * on nodes with nothing allocated, slots that take the whole node, nothing
 * else placed beside them, the reason naming the jobs in the way, the
 * reservation and backfill around one, preemption that frees whole nodes,
 * explain, and the pass's memos keeping exclusive and shared requests of
 * one shape apart. */
#include <criterion/criterion.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/scheduler.h"
#include "tests/unit/scheduler/sched_fixture.h"

#define GIB (1ull << 30)

static ty_sched_job xjob(uint64_t id, uint32_t nodes, uint32_t cpus, bool exclusive) {
  ty_sched_job j = {.id = id,
                    .queue = "default",
                    .user = "u",
                    .submit_time_ms = 1000,
                    .nodes = nodes,
                    .tasks_per_node = 1,
                    .cpus_per_task = cpus,
                    .exclusive = exclusive};
  return j;
}

Test(exclusive, placed_only_on_an_empty_node_and_takes_all_of_it) {
  ty_sched_node nodes[] = {sf_node("n1", 4, 2, 8 * GIB), sf_node("n2", 4, 2, 8 * GIB)};
  nodes[0].cpus_free = 3; /* one CPU allocated: not whole */
  nodes[0].mem_free = 7 * GIB;
  ty_sched_job jobs[] = {xjob(1, 1, 1, true)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 2};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_placement *p = sf_placed(&out, 1);
  cr_assert_not_null(p);
  cr_assert_eq(p->slots[0].node, 1u, "placed on a node that has a job");
  cr_expect_eq(p->slots[0].cpus, 4u);
  cr_expect_eq(p->slots[0].gpus, 0x3u);
  cr_expect_eq(p->slots[0].mem, 8 * GIB);
  ty_sched_output_close(&out);
}

Test(exclusive, a_shared_job_of_the_same_shape_still_fits_where_it_did_not) {
  /* The pass remembers a failed search per request: the exclusive one's
   * failure must not answer for the shared one (and the reverse). */
  ty_sched_node nodes[] = {sf_node("n1", 4, 0, 0)};
  nodes[0].cpus_free = 3;
  ty_sched_job jobs[] = {xjob(1, 1, 1, true), xjob(2, 1, 1, false), xjob(3, 1, 1, true)};
  jobs[0].priority = 10, jobs[1].priority = 5;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 3, .nodes = nodes, .n_nodes = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_expect_null(sf_placed(&out, 1));
  cr_expect_not_null(sf_placed(&out, 2));
  cr_expect_null(sf_placed(&out, 3));
  ty_sched_output_close(&out);
}

Test(exclusive, nothing_is_placed_beside_it_in_the_same_pass) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 0, 0)};
  ty_sched_job jobs[] = {xjob(1, 1, 1, true), xjob(2, 1, 1, false)};
  jobs[0].priority = 10;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_not_null(sf_placed(&out, 1));
  const ty_sched_pending *pd = sf_pending(&out, 2);
  cr_assert_not_null(pd, "a job was placed on a node held whole");
  cr_expect(strstr(pd->reason, "Resources: needs 1 node with 1 free CPU; 0 have"), "%s",
            pd->reason);
  ty_sched_output_close(&out);
  /* Without --exclusive both share the node. */
  jobs[0].exclusive = false;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_expect_eq(out.n_placements, 2u);
  ty_sched_output_close(&out);
}

Test(exclusive, waits_naming_the_jobs_on_the_node) {
  ty_sched_node nodes[] = {sf_node("n1", 4, 0, 0)};
  nodes[0].cpus_free = 2;
  ty_sched_slot s10 = {.node = 0, .cpus = 1}, s14 = {.node = 0, .cpus = 1};
  ty_sched_running run[] = {sf_running(12, 500, 0, &s10), sf_running(14, 500, 0, &s14)};
  ty_sched_job jobs[] = {xjob(1, 1, 1, true), xjob(2, 1, 1, true), xjob(3, 1, 8, true)};
  ty_sched_input in = {
      .jobs = jobs, .n_jobs = 3, .nodes = nodes, .n_nodes = 1, .running = run, .n_running = 2};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *pd = sf_pending(&out, 1);
  cr_assert_not_null(pd);
  cr_expect_eq(pd->wait, TY_SCHED_WAIT_RESOURCES);
  cr_expect(strstr(pd->reason, "Resources: waiting for a whole free node (exclusive), 0 are free; "
                               "node n1 has jobs 12, 14"),
            "%s", pd->reason);
  /* The next of the same request says the same (from the pass's memo); one
   * no node can ever hold names no node. */
  const char *second = sf_pending(&out, 2)->reason; /* no reservation of its own */
  cr_expect(!strncmp(pd->reason, second, strlen(second)) && strstr(second, "jobs 12, 14"), "%s",
            second);
  cr_expect_str_eq(sf_pending(&out, 3)->reason,
                   "Resources: waiting for a whole free node (exclusive), 0 are free");
  ty_sched_output_close(&out);
  in.n_jobs = 1;
  /* explain says the same per node. */
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert(ex.pending);
  cr_assert_eq(ex.n_nodes, 1u);
  cr_expect_str_eq(ex.nodes[0].why, "not a whole free node: has jobs 12, 14");
  /* Two nodes wanted: the count is in the words. */
  jobs[0].nodes = 2;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_expect(strstr(sf_pending(&out, 1)->reason, "waiting for 2 whole free nodes (exclusive)"), "%s",
            sf_pending(&out, 1)->reason);
  ty_sched_output_close(&out);
}

Test(exclusive, a_node_held_whole_is_named_in_explain) {
  ty_sched_node nodes[] = {sf_node("n1", 4, 0, 0)};
  nodes[0].cpus_free = 0;
  ty_sched_slot s = {.node = 0, .cpus = 4};
  ty_sched_running run[] = {
      {.id = 12, .user = "x", .start_time_ms = 500, .slots = &s, .n_slots = 1, .exclusive = true}};
  ty_sched_job jobs[] = {xjob(2, 1, 1, false)};
  ty_sched_input in = {
      .jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 1, .running = run, .n_running = 1};
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 2, &ex), 0);
  cr_assert(ex.pending);
  cr_assert_eq(ex.n_nodes, 1u);
  cr_expect_str_eq(ex.nodes[0].why, "allocated whole to exclusive job 12");
}

Test(exclusive, reserved_until_the_node_empties_and_backfilled_around) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 0, 0)};
  nodes[0].cpus_free = 6;
  int64_t now = 100000;
  ty_sched_slot s = {.node = 0, .cpus = 2};
  ty_sched_running run[] = {sf_running(10, now - 1000, 101, &s)};
  ty_sched_job jobs[] = {xjob(1, 1, 1, true), xjob(2, 1, 1, false), xjob(3, 1, 1, false)};
  jobs[0].priority = 1000, jobs[0].time_limit_s = 3600;
  jobs[1].time_limit_s = 50;  /* ends before the reservation: backfills */
  jobs[2].time_limit_s = 500; /* would still run then: waits */
  jobs[2].priority = 500;
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 3,
                       .nodes = nodes,
                       .n_nodes = 1,
                       .running = run,
                       .n_running = 1,
                       .now_ms = now};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *big = sf_pending(&out, 1);
  cr_assert(big && big->reserved, "the exclusive job holds no reservation");
  cr_expect_eq(big->est_start_ms, now + 100000, "reserved for when job 10 ends");
  const ty_sched_placement *bf = sf_placed(&out, 2);
  cr_assert(bf && bf->backfilled);
  const ty_sched_pending *lng = sf_pending(&out, 3);
  cr_assert_not_null(lng);
  cr_expect_str_eq(lng->reason, "Priority: would delay job 1, reserved to start in 100 s");
  ty_sched_output_close(&out);
}

Test(exclusive, preempts_until_whole_nodes_are_free) {
  ty_sched_node nodes[] = {sf_node("n1", 8, 0, 0)};
  nodes[0].cpus_free = 4;
  int64_t now = 10000000;
  ty_sched_queue qs[] = {{.name = "low", .tier = 0, .preemptible = true},
                         {.name = "high", .tier = 10},
                         {.name = "mid", .tier = 5}};
  ty_sched_slot sl[2] = {{.node = 0, .cpus = 2}, {.node = 0, .cpus = 2}};
  ty_sched_running run[2];
  for (int i = 0; i < 2; i++)
    run[i] = (ty_sched_running){.id = 20 + (uint64_t)i,
                                .queue = "low",
                                .user = "u",
                                .start_time_ms = now - 3600000,
                                .slots = &sl[i],
                                .n_slots = 1};
  ty_sched_config cfg;
  ty_sched_config_default(&cfg);
  ty_sched_job jobs[] = {xjob(1, 1, 1, true)};
  jobs[0].queue = "high";
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 1,
                       .nodes = nodes,
                       .n_nodes = 1,
                       .queues = qs,
                       .n_queues = 3,
                       .running = run,
                       .n_running = 2,
                       .config = &cfg,
                       .now_ms = now};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  /* A shared job of 1 CPU would fit now; the exclusive one needs both gone. */
  cr_assert_eq(out.n_preemptions, 2u);
  cr_expect_eq(sf_pending(&out, 1)->wait, TY_SCHED_WAIT_PREEMPTING);
  ty_sched_output_close(&out);
  /* One of them is not preemptible: no whole node can be freed, so no
   * victim is taken for nothing. */
  run[1].queue = "mid";
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_expect_eq(out.n_preemptions, 0u);
  cr_expect_eq(sf_pending(&out, 1)->wait, TY_SCHED_WAIT_RESOURCES);
  ty_sched_output_close(&out);
}

Test(exclusive, fits_free_wants_whole_nodes_and_size_counts_the_node) {
  ty_sched_node nodes[] = {sf_node("n1", 16, 0, 0)};
  nodes[0].cpus_free = 15;
  ty_sched_job j = xjob(1, 1, 1, true);
  cr_expect(!ty_sched_fits_free(&j, nodes, 1));
  j.exclusive = false;
  cr_expect(ty_sched_fits_free(&j, nodes, 1));
  /* Priority's size factor: an exclusive job of 1 CPU weighs as a job
   * asking for the whole node. */
  nodes[0].cpus_free = 16;
  ty_sched_job jobs[] = {xjob(1, 1, 1, true), xjob(2, 1, 16, false), xjob(3, 1, 1, false)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 3, .nodes = nodes, .n_nodes = 1};
  ty_sched_explain a, b, c;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &a), 0);
  cr_assert_eq(ty_sched_explain_job(&in, 2, &b), 0);
  cr_assert_eq(ty_sched_explain_job(&in, 3, &c), 0);
  cr_expect_float_eq(a.f_size, b.f_size, 1e-9);
  cr_expect_gt(a.f_size, c.f_size);
}

/* A queue's GPU limits count the GPUs an exclusive job's whole nodes hold,
 * not the none it asked for: with 4 of a queue's 8 in use, a whole 8-GPU
 * node would take it to 12, so the job waits as QueueLimit; the user's own
 * limit likewise; a queue without limits places it. */
Test(exclusive, queue_gpu_limits_count_its_whole_nodes) {
  ty_sched_node nodes[] = {sf_node("n1", 16, 8, 0), sf_node("n2", 16, 8, 0)};
  nodes[0].gpus_free = 0xF0, nodes[0].cpus_free = 15;
  ty_sched_slot held[] = {{.node = 0, .gpus = 0x0F, .cpus = 1}};
  ty_sched_running run[] = {sf_running(10, 0, 3600, held)};
  run[0].queue = "default", run[0].user = "v";
  ty_sched_queue qs[] = {{.name = "default", .max_gpus = 8}};
  ty_sched_job jobs[] = {xjob(1, 1, 1, true)};
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 1,
                       .nodes = nodes,
                       .n_nodes = 2,
                       .running = run,
                       .n_running = 1,
                       .queues = qs,
                       .n_queues = 1};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_null(sf_placed(&out, 1), "placed past the queue's max_gpus");
  const ty_sched_pending *pd = sf_pending(&out, 1);
  cr_assert_not_null(pd);
  cr_expect_eq(pd->wait, TY_SCHED_WAIT_QUEUE_LIMIT);
  cr_expect_str_eq(
      pd->reason, "QueueLimit: queue default uses 4 GPUs, +8 (its whole nodes) exceeds max_gpus 8");
  ty_sched_output_close(&out);
  qs[0] = (ty_sched_queue){.name = "default", .max_gpus_per_user = 4};
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_null(sf_placed(&out, 1), "placed past the user's max_gpus_per_user");
  cr_expect_str_eq(sf_pending(&out, 1)->reason,
                   "QueueLimit: user u uses 0 GPUs in queue default, +8 (its whole nodes) exceeds "
                   "max_gpus_per_user 4");
  ty_sched_output_close(&out);
  qs[0] = (ty_sched_queue){.name = "default"};
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_placement *p = sf_placed(&out, 1);
  cr_assert_not_null(p);
  cr_expect_eq(p->slots[0].gpus, 0xFFu);
  ty_sched_output_close(&out);
}
