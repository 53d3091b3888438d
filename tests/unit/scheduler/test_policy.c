/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the scheduler's policies: priority order, gangs, queue
 * limits and holds, EASY backfill (the reserved job is never delayed),
 * preemption's choice of victims, topology packing, fragmentation, `why`
 * and start estimates (fair share: test_fairshare.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/scheduler.h"
#include "tests/unit/scheduler/sched_fixture.h"

static ty_sched_config config(void) {
  ty_sched_config c;
  ty_sched_config_default(&c);
  return c;
}

/* ---- priority order ---------------------------------------------------------- */

Test(priority, tier_dominates_then_the_weighted_factors_decide) {
  ty_sched_queue qs[] = {{.name = "low", .tier = 0, .share = 1},
                         {.name = "high", .tier = 5, .share = 1}};
  ty_sched_job jobs[] = {sf_gjob(1, "low", "a", 1, 0, 0), sf_gjob(2, "high", "a", 1, 0, 0),
                         sf_gjob(3, "low", "b", 1, 0, 0), sf_gjob(4, "low", "a", 1, 0, 0),
                         sf_gjob(5, "low", "c", 1, 0, 0)};
  jobs[3].priority = 500;     /* job 4: priority within its queue */
  jobs[4].submit_time_ms = 1; /* job 5: oldest, but age is worth little */
  ty_sched_usage usage[] = {{.user = "a", .queue = "low", .usage = 1000},
                            {.user = "c", .queue = "low", .usage = 1000}};
  ty_sched_config c = config();
  /* No nodes: every job stays pending, listed in priority order. */
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 5,
                       .queues = qs,
                       .n_queues = 2,
                       .usage = usage,
                       .n_usage = 2,
                       .config = &c,
                       .now_ms = 3600 * 1000};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_pending, 5u);
  /* 2: the higher tier. 3: b has used nothing (fair share 1.0). 4: a's usage
   * costs it fair share, its priority 500 wins some back. 5 before 1: older. */
  uint64_t want[] = {2, 3, 4, 5, 1};
  for (size_t i = 0; i < 5; i++)
    cr_assert_eq(out.pending[i].job_id, want[i], "position %zu: job %llu, want %llu", i + 1,
                 (unsigned long long)out.pending[i].job_id, (unsigned long long)want[i]);
  for (size_t i = 1; i < 5; i++)
    cr_assert_geq(out.pending[i - 1].priority, out.pending[i].priority);
  ty_sched_output_close(&out);
}

/* Slurm's PriorityTier: a higher tier's job ranks first even when a lower
 * tier's weighs more in all (here its priority is worth 30,000), so it is
 * placed, and a preemptor is never outranked by its victim. */
Test(priority, a_higher_tier_ranks_first_whatever_the_weighted_total) {
  ty_sched_node nodes[] = {sf_gnode("n1", 2, 0)};
  ty_sched_queue qs[] = {{.name = "t9", .tier = 9, .share = 1, .preemptible = true},
                         {.name = "high", .tier = 10, .share = 1}};
  ty_sched_job jobs[] = {sf_gjob(1, "t9", "a", 1, 0, 60), sf_gjob(2, "high", "a", 1, 0, 60)};
  jobs[0].priority = 1000, jobs[1].priority = -1000;
  jobs[0].cpus_per_task = jobs[1].cpus_per_task = 2;
  ty_sched_config c = config();
  c.w_priority = 30000;
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 2,
                       .nodes = nodes,
                       .n_nodes = 1,
                       .queues = qs,
                       .n_queues = 2,
                       .config = &c};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_not_null(sf_placed(&out, 2), "the tier-10 job was not placed");
  const ty_sched_pending *low = sf_pending(&out, 1);
  cr_assert_not_null(low);
  cr_assert_gt(low->priority, 100000.0, "the tier-9 job no longer weighs more: %f", low->priority);
  ty_sched_output_close(&out);
}

Test(priority, larger_jobs_win_ties_and_weights_can_turn_factors_off) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 8), sf_gnode("n2", 8, 8)};
  nodes[0].schedulable = nodes[1].schedulable = false;
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 1, 1, 0), sf_gjob(2, NULL, "a", 2, 8, 0)};
  ty_sched_config c = config();
  ty_sched_input in = {.jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 2, .config = &c};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.pending[0].job_id, 2u);
  ty_sched_output_close(&out);
  c.w_size = 0; /* now FIFO by id */
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.pending[0].job_id, 1u);
  ty_sched_output_close(&out);
}

/* ---- gangs -------------------------------------------------------------------- */

Test(gang, all_or_nothing_with_gpus) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 8), sf_gnode("n2", 8, 8), sf_gnode("n3", 8, 8)};
  nodes[1].gpus_free = 0x0F;
  nodes[2].gpus_free = 0xF0;
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 3, 8, 0), sf_gjob(2, NULL, "a", 3, 4, 0)};
  jobs[1].submit_time_ms = 2000;
  ty_sched_config c = config(); /* job 1 never fits: no reservation holds job 2 back */
  ty_sched_input in = {.jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 3, .config = &c};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_null(sf_placed(&out, 1));
  const ty_sched_placement *p = sf_placed(&out, 2);
  cr_assert_not_null(p);
  cr_assert_eq(p->n_slots, 3u);
  for (uint32_t s = 0; s < 3; s++)
    cr_assert_eq(__builtin_popcountll(p->slots[s].gpus), 4);
  ty_sched_output_close(&out);
}

Test(gang, two_gangs_that_each_half_fit_never_split_the_cluster) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 8), sf_gnode("n2", 8, 8), sf_gnode("n3", 8, 8),
                           sf_gnode("n4", 8, 8)};
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 3, 8, 0), sf_gjob(2, NULL, "b", 3, 8, 0)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 2, .nodes = nodes, .n_nodes = 4};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 1u);
  cr_assert_eq(out.placements[0].n_slots, 3u);
  cr_assert_eq(out.n_pending, 1u);
  ty_sched_output_close(&out);
}

/* ---- queues, limits, holds --------------------------------------------------- */

Test(queues, limits_holds_and_pause_hold_jobs_back_without_blocking_others) {
  ty_sched_node nodes[] = {sf_gnode("n1", 64, 8), sf_gnode("n2", 64, 8)};
  ty_sched_queue qs[] = {{.name = "a", .max_running = 1},
                         {.name = "b", .max_gpus = 4},
                         {.name = "c", .max_gpus_per_user = 2},
                         {.name = "p", .state = TY_SCHED_QUEUE_PAUSED},
                         {.name = "d"}};
  ty_sched_job jobs[] = {sf_gjob(1, "a", "u", 1, 1, 0), sf_gjob(2, "a", "u", 1, 1, 0),
                         sf_gjob(3, "b", "u", 1, 4, 0), sf_gjob(4, "b", "u", 1, 1, 0),
                         sf_gjob(5, "c", "u", 1, 2, 0), sf_gjob(6, "c", "u", 1, 1, 0),
                         sf_gjob(7, "c", "v", 1, 1, 0), sf_gjob(8, "p", "u", 1, 1, 0),
                         sf_gjob(9, "d", "u", 1, 1, 0), sf_gjob(10, "d", "u", 1, 1, 0)};
  for (int i = 0; i < 10; i++)
    jobs[i].submit_time_ms = 1000 + i;
  jobs[8].held = true;
  ty_sched_config c = config();
  c.w_fairshare = c.w_size = 0;
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 10,
                       .nodes = nodes,
                       .n_nodes = 2,
                       .queues = qs,
                       .n_queues = 5,
                       .config = &c};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  uint64_t run[] = {1, 3, 5, 7, 10}, wait[] = {2, 4, 6, 8, 9};
  for (int i = 0; i < 5; i++)
    cr_assert_not_null(sf_placed(&out, run[i]), "job %llu", (unsigned long long)run[i]);
  const char *why[] = {"QueueLimit: queue a runs 1 jobs, max_running is 1",
                       "QueueLimit: queue b uses 4 GPUs, +1 exceeds max_gpus 4",
                       "QueueLimit: user u uses 2 GPUs in queue c, +1 exceeds max_gpus_per_user 2",
                       "QueuePaused: queue p is paused",
                       "JobHeldUser: held until released (trainctl job release)"};
  for (int i = 0; i < 5; i++) {
    const ty_sched_pending *pd = sf_pending(&out, wait[i]);
    cr_assert_not_null(pd);
    cr_assert_str_eq(pd->reason, why[i]);
  }
  ty_sched_output_close(&out);
}

/* Slurm's PartitionTimeLimit: a queue's max_time or max_mem lowered after
 * a job was submitted holds the job back, with a reason naming the limit;
 * an exclusive job's memory is its nodes', which max_mem does not limit. */
Test(queues, a_lowered_max_time_or_max_mem_holds_jobs_above_it) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 0), sf_gnode("n2", 8, 0)};
  ty_sched_queue qs[] = {{.name = "lim", .max_time_s = 60, .max_mem_per_node = 1ull << 30}};
  ty_sched_job jobs[] = {sf_gjob(1, "lim", "u", 1, 0, 120), sf_gjob(2, "lim", "u", 1, 0, 60),
                         sf_gjob(3, "lim", "u", 1, 0, 60), sf_gjob(4, "lim", "u", 1, 0, 60)};
  jobs[1].mem_per_node = 2ull << 30;
  jobs[2].mem_per_node = 1ull << 30;
  jobs[3].mem_per_node = 2ull << 30, jobs[3].exclusive = true;
  ty_sched_config c = config();
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 4,
                       .nodes = nodes,
                       .n_nodes = 2,
                       .queues = qs,
                       .n_queues = 1,
                       .config = &c};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *t = sf_pending(&out, 1), *m = sf_pending(&out, 2);
  cr_assert_not_null(t, "job 1 (120 s > max_time 60 s) was placed");
  cr_assert_eq(t->wait, TY_SCHED_WAIT_QUEUE_TIME_LIMIT);
  cr_assert_str_eq(t->reason,
                   "QueueTimeLimit: time limit of 120 s exceeds queue lim's max_time of 60 s");
  cr_assert_not_null(m, "job 2 (2 GiB > max_mem 1 GiB) was placed");
  cr_assert_eq(m->wait, TY_SCHED_WAIT_QUEUE_MEM_LIMIT);
  cr_assert_str_eq(m->reason,
                   "QueueMemLimit: 2048 MiB per node exceeds queue lim's max_mem of 1024 MiB");
  cr_assert_str_eq(ty_sched_wait_name(m->wait), "QueueMemLimit");
  cr_assert_not_null(sf_placed(&out, 3));
  cr_assert_not_null(sf_placed(&out, 4));
  ty_sched_output_close(&out);
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_UNKNOWN);
  cr_assert_str_eq(ex.est_note, "none while it waits for: QueueTimeLimit");
}

/* ---- backfill ------------------------------------------------------------------- */

Test(backfill, short_jobs_fill_in_long_ones_wait_for_the_reservation) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 8), sf_gnode("n2", 8, 8), sf_gnode("n3", 8, 8),
                           sf_gnode("n4", 8, 8)};
  ty_sched_slot r1s[] = {{.node = 0, .gpus = 0xFF, .cpus = 1},
                         {.node = 1, .gpus = 0xFF, .cpus = 1}};
  ty_sched_slot r2s[] = {{.node = 2, .gpus = 0xFF, .cpus = 1}};
  for (int i = 0; i < 3; i++)
    nodes[i].gpus_free = 0, nodes[i].cpus_free = 7;
  int64_t now = 100000;
  ty_sched_running run[] = {{.id = 10,
                             .user = "x",
                             .start_time_ms = now - 1000,
                             .time_limit_s = 101,
                             .slots = r1s,
                             .n_slots = 2},
                            {.id = 11,
                             .user = "x",
                             .start_time_ms = now - 1000,
                             .time_limit_s = 1001,
                             .slots = r2s,
                             .n_slots = 1}};
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 3, 8, 3600), sf_gjob(2, NULL, "b", 1, 8, 50),
                         sf_gjob(3, NULL, "b", 1, 8, 500)};
  jobs[0].priority = 1000;
  jobs[2].priority = 500; /* tried before job 2: would take node 4 past the reservation */
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 3,
                       .nodes = nodes,
                       .n_nodes = 4,
                       .running = run,
                       .n_running = 2,
                       .now_ms = now};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *big = sf_pending(&out, 1);
  cr_assert(big && big->reserved);
  cr_assert_eq(big->est_start_ms, now + 100000);
  const ty_sched_placement *s = sf_placed(&out, 2);
  cr_assert(s && s->backfilled);
  cr_assert_eq(s->slots[0].node, 3u);
  const ty_sched_pending *lng = sf_pending(&out, 3);
  cr_assert_not_null(lng);
  cr_assert_str_eq(lng->reason, "Priority: would delay job 1, reserved to start in 100 s");
  ty_sched_output_close(&out);
  /* Job 10 without a limit: the reservation waits on a guess, and says so. */
  run[0].time_limit_s = 0;
  jobs[0].nodes = 4;             /* node 4 too is reserved */
  jobs[2].time_limit_s = 200000; /* past the guess (unknown_runtime, a day) */
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  lng = sf_pending(&out, 3);
  cr_assert_not_null(lng);
  cr_assert_str_eq(lng->reason, "Priority: would delay job 1, reserved until job 10 (no time "
                                "limit) ends");
  ty_sched_output_close(&out);
}

/* Free resources at time t: what is free now, plus what running jobs that
 * end by t give back, minus what jobs placed by the pass still hold. */
static bool reserved_fits_at(const ty_sched_node *nodes, size_t nn, const ty_sched_running *run,
                             size_t nr, const ty_sched_output *out, const ty_sched_job *rj,
                             int64_t now, int64_t t) {
  uint32_t cpus[16];
  uint64_t gpus[16];
  for (size_t i = 0; i < nn; i++)
    cpus[i] = nodes[i].cpus_free, gpus[i] = nodes[i].gpus_free;
  for (size_t r = 0; r < nr; r++)
    if (run[r].start_time_ms + (int64_t)run[r].time_limit_s * 1000 <= t)
      for (uint32_t s = 0; s < run[r].n_slots; s++)
        cpus[run[r].slots[s].node] += run[r].slots[s].cpus,
            gpus[run[r].slots[s].node] |= run[r].slots[s].gpus;
  for (size_t k = 0; k < out->n_placements; k++) {
    const ty_sched_placement *p = &out->placements[k];
    bool gone = now + (int64_t)p->time_limit_s * 1000 <= t;
    for (uint32_t s = 0; s < p->n_slots; s++) {
      if (gone) continue;
      cpus[p->slots[s].node] -= p->slots[s].cpus;
      gpus[p->slots[s].node] &= ~p->slots[s].gpus;
    }
  }
  uint32_t fit = 0;
  for (size_t i = 0; i < nn; i++)
    fit += cpus[i] >= rj->cpus_per_task &&
           (uint32_t)__builtin_popcountll(gpus[i]) >= rj->gpus_per_node;
  return fit >= rj->nodes;
}

Test(backfill, never_delays_the_reserved_job_random_clusters) {
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  int reservations = 0;
  for (int round = 0; round < 300; round++) {
    enum { NN = 8, NR = 12, NJ = 20 };
    ty_sched_node nodes[NN];
    for (int i = 0; i < NN; i++)
      nodes[i] = sf_gnode("n", 8, 8);
    ty_sched_running run[NR];
    ty_sched_slot slots[NR];
    size_t nr = 0;
    int64_t now = 1000000;
    for (int r = 0; r < NR; r++) {
      uint32_t i = (uint32_t)(sf_rng(&seed) % NN), g = 1 + (uint32_t)(sf_rng(&seed) % 8);
      uint32_t have = (uint32_t)__builtin_popcountll(nodes[i].gpus_free);
      if (have < g || nodes[i].cpus_free < 1) continue;
      uint64_t mask = 0;
      for (uint32_t b = 0; b < 8 && (uint32_t)__builtin_popcountll(mask) < g; b++)
        if (nodes[i].gpus_free & (1ull << b)) mask |= 1ull << b;
      nodes[i].gpus_free &= ~mask;
      nodes[i].cpus_free -= 1;
      slots[nr] = (ty_sched_slot){.node = i, .gpus = mask, .cpus = 1};
      run[nr] = (ty_sched_running){.id = 100 + (uint64_t)r,
                                   .user = "x",
                                   .start_time_ms = now - (int64_t)(sf_rng(&seed) % 1000) * 1000,
                                   .time_limit_s = 1000 + (uint32_t)(sf_rng(&seed) % 5000),
                                   .slots = &slots[nr],
                                   .n_slots = 1};
      nr++;
    }
    ty_sched_job jobs[NJ];
    for (int k = 0; k < NJ; k++) {
      jobs[k] = sf_gjob(1 + (uint64_t)k, NULL, "u", 1 + (uint32_t)(sf_rng(&seed) % 4),
                        1 + (uint32_t)(sf_rng(&seed) % 8), 60 + (uint32_t)(sf_rng(&seed) % 7000));
      jobs[k].priority = (int32_t)(sf_rng(&seed) % 2000) - 1000;
    }
    ty_sched_input in = {.jobs = jobs,
                         .n_jobs = NJ,
                         .nodes = nodes,
                         .n_nodes = NN,
                         .running = run,
                         .n_running = nr,
                         .now_ms = now};
    ty_sched_output out;
    cr_assert_eq(ty_sched_pass(&in, &out), 0);
    for (size_t k = 0; k < out.n_pending; k++) {
      if (!out.pending[k].reserved) continue;
      reservations++;
      const ty_sched_job *rj = &jobs[out.pending[k].job_id - 1];
      cr_assert(reserved_fits_at(nodes, NN, run, nr, &out, rj, now, out.pending[k].est_start_ms),
                "round %d: job %llu no longer fits at its reserved start", round,
                (unsigned long long)rj->id);
    }
    ty_sched_output_close(&out);
  }
  cr_assert_gt(reservations, 50, "too few reservations (%d) to mean anything", reservations);
}

/* ---- preemption -------------------------------------------------------------------- */

typedef struct preempt_case {
  ty_sched_node nodes[1];
  ty_sched_queue qs[3];
  ty_sched_slot slots[4];
  ty_sched_running run[4];
  ty_sched_job job;
  ty_sched_config cfg;
  int64_t now;
} preempt_case;

static void preempt_setup(preempt_case *c) {
  memset(c, 0, sizeof(*c));
  c->now = 10000000;
  c->nodes[0] = sf_gnode("n1", 8, 0);
  c->nodes[0].cpus_free = 0;
  c->qs[0] = (ty_sched_queue){.name = "low", .tier = 0, .preemptible = true};
  c->qs[1] = (ty_sched_queue){.name = "high", .tier = 10};
  c->qs[2] = (ty_sched_queue){.name = "mid", .tier = 5, .preemptible = false};
  for (int i = 0; i < 4; i++) {
    c->slots[i] = (ty_sched_slot){.node = 0, .cpus = 2};
    c->run[i] = (ty_sched_running){.id = 20 + (uint64_t)i,
                                   .queue = "low",
                                   .user = "u",
                                   .start_time_ms = c->now - 3600000,
                                   .slots = &c->slots[i],
                                   .n_slots = 1};
  }
  c->run[0].last_checkpoint_ms = c->now - 300000; /* 300 s lost */
  c->run[1].last_checkpoint_ms = c->now - 10000;  /* 10 s lost: the victim */
  c->run[2].last_checkpoint_ms = c->now - 10000;
  c->run[2].priority = 5; /* same loss, higher priority */
  c->run[3].last_checkpoint_ms = c->now - 1000;
  c->run[3].start_time_ms = c->now - 60000; /* ran 60 s < min_run */
  c->job = sf_gjob(1, "high", "v", 1, 0, 0);
  c->job.cpus_per_task = 2;
  ty_sched_config_default(&c->cfg);
}

static ty_sched_input preempt_input(preempt_case *c) {
  ty_sched_input in = {.jobs = &c->job,
                       .n_jobs = 1,
                       .nodes = c->nodes,
                       .n_nodes = 1,
                       .queues = c->qs,
                       .n_queues = 3,
                       .running = c->run,
                       .n_running = 4,
                       .config = &c->cfg,
                       .now_ms = c->now};
  return in;
}

Test(preempt, least_work_lost_then_lowest_priority) {
  preempt_case c;
  preempt_setup(&c);
  ty_sched_input in = preempt_input(&c);
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 1u);
  cr_assert_eq(out.preemptions[0].victim_id, 21u);
  cr_assert_eq(out.preemptions[0].for_job_id, 1u);
  cr_assert_str_eq(sf_pending(&out, 1)->reason, "Preempting: waiting for preempted jobs to exit");
  ty_sched_output_close(&out);
  /* The victim is ending now: the next pass waits for it, preempting no more. */
  c.run[1].ending = true;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 0u);
  ty_sched_output_close(&out);
  /* 21 not preemptible: 22 is next by work lost (20 lost 300 s). */
  c.run[1].ending = false;
  c.run[1].queue = "mid";
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 1u);
  cr_assert_eq(out.preemptions[0].victim_id, 22u);
  ty_sched_output_close(&out);
  c.run[1].queue = "low";
  c.run[2].priority = -5; /* equal loss: the lower priority goes */
  c.run[1].priority = 0;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.preemptions[0].victim_id, 22u);
  ty_sched_output_close(&out);
}

Test(preempt, never_same_tier_unpreemptible_or_young_jobs) {
  preempt_case c;
  preempt_setup(&c);
  for (int i = 0; i < 3; i++)
    c.run[i].queue = "mid"; /* not preemptible */
  c.job.cpus_per_task = 4;  /* only young job 23 has 2 */
  ty_sched_input in = preempt_input(&c);
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 0u);
  cr_assert_not_null(sf_pending(&out, 1));
  ty_sched_output_close(&out);
  c.job.queue = "low"; /* same tier as the victims */
  for (int i = 0; i < 3; i++)
    c.run[i].queue = "low";
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 0u);
  ty_sched_output_close(&out);
  c.cfg.preemption = false;
  c.job.queue = "high";
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 0u);
  ty_sched_output_close(&out);
}

Test(preempt, takes_only_the_victims_it_needs) {
  preempt_case c;
  preempt_setup(&c);
  c.job.cpus_per_task = 4; /* two victims: 21 then 22 by loss; 20 stays */
  ty_sched_input in = preempt_input(&c);
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 2u);
  uint64_t a = out.preemptions[0].victim_id, b = out.preemptions[1].victim_id;
  cr_assert((a == 21 && b == 22) || (a == 22 && b == 21), "victims %llu %llu",
            (unsigned long long)a, (unsigned long long)b);
  ty_sched_output_close(&out);
}

/* ---- topology ------------------------------------------------------------------------ */

Test(topology, packs_a_gang_into_one_switch_and_gpus_into_one_island) {
  ty_sched_node nodes[8];
  for (int i = 0; i < 8; i++) {
    nodes[i] = sf_gnode("n", 8, 8);
    nodes[i].switch_id = i < 4 ? 0 : 1;
    for (int g = 0; g < 8; g++)
      nodes[i].gpu_island[g] = g < 4 ? 0 : 1;
  }
  nodes[0].gpus_free = 0; /* switch 0 has 3 whole nodes, switch 1 has 4 */
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 3, 8, 0)};
  ty_sched_input in = {.jobs = jobs, .n_jobs = 1, .nodes = nodes, .n_nodes = 8};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_placement *p = sf_placed(&out, 1);
  cr_assert_not_null(p);
  for (uint32_t s = 0; s < 3; s++)
    cr_assert_lt(p->slots[s].node, 4u, "tightest switch first");
  ty_sched_output_close(&out);
  jobs[0].nodes = 6; /* needs both switches: 4 from the fuller one, then 2 */
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  p = sf_placed(&out, 1);
  cr_assert_not_null(p);
  int in_sw1 = 0;
  for (uint32_t s = 0; s < 6; s++)
    in_sw1 += p->slots[s].node >= 4;
  cr_assert_eq(in_sw1, 4);
  ty_sched_output_close(&out);
  /* Islands: 0,1 free on island 0; 4..7 free on island 1. */
  nodes[1].gpus_free = 0xF3;
  uint64_t want[] = {0, 0x01, 0x03, 0x70, 0xF0};
  for (uint32_t g = 1; g <= 4; g++) {
    ty_sched_job one = sf_gjob(2, NULL, "a", 1, g, 0);
    ty_sched_input in1 = {.jobs = &one, .n_jobs = 1, .nodes = &nodes[1], .n_nodes = 1};
    cr_assert_eq(ty_sched_pass(&in1, &out), 0);
    cr_assert_eq(out.n_placements, 1u);
    cr_assert_eq(out.placements[0].slots[0].gpus, want[g], "g=%u got %llx", g,
                 (unsigned long long)out.placements[0].slots[0].gpus);
    ty_sched_output_close(&out);
  }
}

Test(topology, fragmentation_counts_free_gpus_on_partly_used_nodes) {
  ty_sched_node nodes[] = {sf_gnode("a", 8, 8), sf_gnode("b", 8, 8)};
  cr_assert_float_eq(ty_sched_fragmentation(nodes, 2), 0.0, 1e-9);
  nodes[1].gpus_free = 0x0F;
  cr_assert_float_eq(ty_sched_fragmentation(nodes, 2), 4.0 / 12.0, 1e-9);
  nodes[0].gpus_free = 0x01;
  cr_assert_float_eq(ty_sched_fragmentation(nodes, 2), 1.0, 1e-9);
  nodes[0].gpus_free = nodes[1].gpus_free = 0;
  cr_assert_float_eq(ty_sched_fragmentation(nodes, 2), 0.0, 1e-9);
}

/* ---- why ------------------------------------------------------------------------------ */

Test(explain, rank_factors_nodes_and_estimate) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 4), sf_gnode("n2", 8, 4)};
  nodes[1].gpus_free = 0x1;
  ty_sched_slot rs = {.node = 1, .gpus = 0xE, .cpus = 1};
  ty_sched_running run = {
      .id = 9, .user = "x", .start_time_ms = 0, .time_limit_s = 600, .slots = &rs, .n_slots = 1};
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 2, 4, 60), sf_gjob(2, NULL, "b", 1, 1, 60)};
  jobs[0].priority = 100;
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 2,
                       .nodes = nodes,
                       .n_nodes = 2,
                       .running = &run,
                       .n_running = 1,
                       .now_ms = 60000};
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert(ex.pending);
  cr_assert_eq(ex.position, 1u);
  cr_assert_eq(ex.nodes_needed, 2u);
  cr_assert_eq(ex.nodes_fit, 1u);
  cr_assert_eq(ex.n_nodes, 1u);
  cr_assert_eq(ex.nodes[0].node, 1u);
  cr_assert_str_eq(ex.nodes[0].why, "0 of 4 GPUs free, 4 needed");
  cr_assert_eq(ex.est_start_ms, 600000);
  cr_assert_float_eq(ex.priority, ex.f_tier + ex.f_age + ex.f_fairshare + ex.f_size + ex.f_priority,
                     1e-6);
  cr_assert_eq(ex.reserved_job, 1u);
  cr_assert_eq(ty_sched_explain_job(&in, 2, &ex), 0); /* backfills onto n2's last GPU */
  cr_assert_not(ex.pending);
  cr_assert_eq(ty_sched_explain_job(&in, 77, &ex), TY_ENOTFOUND);
}

Test(fifo, baseline_stops_at_the_first_job_that_does_not_fit) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 8)};
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 1, 4, 0), sf_gjob(2, NULL, "a", 1, 8, 0),
                         sf_gjob(3, NULL, "a", 1, 1, 0)};
  for (int i = 0; i < 3; i++)
    jobs[i].submit_time_ms = i;
  ty_sched_config c = config();
  c.fifo = true;
  ty_sched_input in = {.jobs = jobs, .n_jobs = 3, .nodes = nodes, .n_nodes = 1, .config = &c};
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 1u);
  cr_assert_str_eq(sf_pending(&out, 3)->reason, "Priority: waiting behind job 2 (FIFO)");
  ty_sched_output_close(&out);
}

/* ---- start estimates (issue: "why" said "in 0:00" behind a reservation) --------- */

/* The backfill example: job 1 holds the reservation for nodes 1-3 at
 * now + 100 s for an hour; job 3 (500 s) fits node 4 now but would still
 * run then, so it waits. */
typedef struct resv_case {
  ty_sched_node nodes[4];
  ty_sched_slot r1s[2], r2s[1];
  ty_sched_running run[2];
  ty_sched_job jobs[3];
  int64_t now;
} resv_case;

static ty_sched_input resv_setup(resv_case *c) {
  memset(c, 0, sizeof(*c));
  for (int i = 0; i < 4; i++)
    c->nodes[i] = sf_gnode(i == 0 ? "n1" : i == 1 ? "n2" : i == 2 ? "n3" : "n4", 8, 8);
  c->r1s[0] = (ty_sched_slot){.node = 0, .gpus = 0xFF, .cpus = 1};
  c->r1s[1] = (ty_sched_slot){.node = 1, .gpus = 0xFF, .cpus = 1};
  c->r2s[0] = (ty_sched_slot){.node = 2, .gpus = 0xFF, .cpus = 1};
  for (int i = 0; i < 3; i++)
    c->nodes[i].gpus_free = 0, c->nodes[i].cpus_free = 7;
  c->now = 100000;
  c->run[0] = (ty_sched_running){.id = 10,
                                 .user = "x",
                                 .start_time_ms = c->now - 1000,
                                 .time_limit_s = 101,
                                 .slots = c->r1s,
                                 .n_slots = 2};
  c->run[1] = (ty_sched_running){.id = 11,
                                 .user = "x",
                                 .start_time_ms = c->now - 1000,
                                 .time_limit_s = 1001,
                                 .slots = c->r2s,
                                 .n_slots = 1};
  c->jobs[0] = sf_gjob(1, NULL, "a", 3, 8, 3600);
  c->jobs[1] = sf_gjob(2, NULL, "b", 1, 8, 500);
  c->jobs[2] = sf_gjob(3, NULL, "b", 1, 8, 500);
  c->jobs[0].priority = 1000;
  c->jobs[1].priority = 500;
  c->jobs[2].held = true;
  ty_sched_input in = {.jobs = c->jobs,
                       .n_jobs = 3,
                       .nodes = c->nodes,
                       .n_nodes = 4,
                       .running = c->run,
                       .n_running = 2,
                       .now_ms = c->now};
  return in;
}

/* backfill = off is Slurm's sched/builtin: strict priority order, so jobs
 * 2 and 3, which fit node 4 now, wait behind blocked job 1 (there is no
 * reservation to backfill around). */
Test(backfill, off_starts_nothing_behind_a_blocked_job) {
  resv_case rc;
  ty_sched_input in = resv_setup(&rc);
  rc.jobs[2].held = false;
  ty_sched_config c = config();
  c.backfill = false;
  in.config = &c;
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_placements, 0u, "job %llu started ahead of blocked job 1",
               out.n_placements ? (unsigned long long)out.placements[0].job_id : 0ull);
  cr_assert_str_eq(sf_pending(&out, 2)->reason, "Priority: waiting behind job 1 (backfill is off)");
  cr_assert_eq(sf_pending(&out, 3)->wait, TY_SCHED_WAIT_PRIORITY);
  cr_assert_not(sf_pending(&out, 1)->reserved);
  ty_sched_output_close(&out);
}

/* backfill.depth 1: job 2 is tried and would delay job 1's reservation;
 * job 3, beyond the depth, is never tried, and its reason says so rather
 * than that it would delay job 1. */
Test(backfill, jobs_beyond_the_depth_say_they_were_not_tried) {
  resv_case rc;
  ty_sched_input in = resv_setup(&rc);
  rc.jobs[2].held = false, rc.jobs[2].time_limit_s = 50;
  ty_sched_config c = config();
  c.backfill_depth = 1;
  in.config = &c;
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_str_eq(sf_pending(&out, 2)->reason,
                   "Priority: would delay job 1, reserved to start in 100 s");
  const ty_sched_pending *pd = sf_pending(&out, 3);
  cr_assert_not_null(pd);
  cr_assert_eq(pd->wait, TY_SCHED_WAIT_PRIORITY);
  cr_assert_str_eq(pd->reason,
                   "Priority: beyond backfill.depth 1 behind job 1's reservation (not tried)");
  ty_sched_output_close(&out);
}

Test(estimate, the_reservation_holder_starts_when_limits_free_its_nodes) {
  resv_case c;
  ty_sched_input in = resv_setup(&c);
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.wait, TY_SCHED_WAIT_RESOURCES);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_LIMITS);
  cr_assert_eq(ex.est_start_ms, c.now + 100000);
  cr_assert_not(ex.est_lower_bound);
  cr_assert_str_eq(ex.est_note, "from running jobs' time limits");
}

Test(estimate, a_job_held_back_by_the_reservation_is_not_estimated_now) {
  resv_case c;
  ty_sched_input in = resv_setup(&c);
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 2, &ex), 0);
  cr_assert_eq(ex.wait, TY_SCHED_WAIT_PRIORITY);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_LIMITS);
  /* Node 4 is free now, but a 500 s job there would overlap the reserved
   * job's hour on nodes 1-3 and 4's cap; n3 frees at +1000 s, when it can
   * start beside the reserved job. */
  cr_assert_gt(ex.est_start_ms, c.now);
  cr_assert_eq(ex.est_start_ms, c.now + 1000000);
  cr_assert_str_eq(ex.est_note, "from running jobs' time limits and job 1's reservation");
}

Test(estimate, held_jobs_and_jobs_behind_unlimited_ones_have_none) {
  resv_case c;
  ty_sched_input in = resv_setup(&c);
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 3, &ex), 0);
  cr_assert_eq(ex.wait, TY_SCHED_WAIT_HELD);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_UNKNOWN);
  cr_assert_eq(ex.est_start_ms, 0);
  cr_assert_str_eq(ex.est_note, "none while it waits for: Held");
  /* The jobs on n1-n2 have no limit: the reservation rests on an assumption. */
  c.run[0].time_limit_s = 0;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_UNKNOWN);
  cr_assert_str_eq(ex.est_note, "none: it depends on job 10, which has no time limit");
  /* The pass's reason says the same, not a start 86,400 s (unknown_runtime)
   * away; job 2 backfills before that guess. */
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *big = sf_pending(&out, 1);
  cr_assert(big && big->reserved);
  cr_assert(
      strstr(big->reason, "; reserved, its start waiting for job 10, which has no time limit"),
      "%s", big->reason);
  ty_sched_output_close(&out);
}

Test(estimate, a_preempting_job_starts_within_the_grace_period) {
  preempt_case c;
  preempt_setup(&c);
  ty_sched_input in = preempt_input(&c);
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  const ty_sched_pending *pd = sf_pending(&out, 1);
  cr_assert_eq(pd->wait, TY_SCHED_WAIT_PREEMPTING);
  cr_assert_eq(pd->est_kind, TY_SCHED_EST_PREEMPTION);
  cr_assert_eq(pd->est_start_ms, c.now + (int64_t)c.cfg.preempt_grace_s * 1000);
  ty_sched_output_close(&out);
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_PREEMPTION);
  cr_assert_eq(ex.est_start_ms, c.now + (int64_t)c.cfg.preempt_grace_s * 1000);
}

/* Every low job ran only 60 s of preempt.min_run's 600: the pass cannot
 * preempt yet, but will once the first of them reaches min_run, at +540 s,
 * long before their 2 h limits end. why and --test-only (both explain)
 * say that moment and name the preemption, not the limits. */
Test(estimate, a_job_that_will_preempt_once_min_run_is_reached_starts_then) {
  preempt_case c;
  preempt_setup(&c);
  for (int i = 0; i < 4; i++) {
    c.run[i].start_time_ms = c.now - 60000;
    c.run[i].time_limit_s = 7200;
  }
  ty_sched_input in = preempt_input(&c);
  ty_sched_output out;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 0u);
  cr_assert_eq(sf_pending(&out, 1)->wait, TY_SCHED_WAIT_RESOURCES);
  ty_sched_output_close(&out);
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.wait, TY_SCHED_WAIT_RESOURCES);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_PREEMPTION);
  cr_assert_eq(ex.est_start_ms, c.now + 540000);
  cr_assert_not(ex.est_lower_bound);
  cr_assert_str_eq(ex.reason,
                   "Resources: can preempt once job 20 has run preempt.min_run (600 s), in 540 s");
  cr_assert_str_eq(ex.est_note, "preemption once job 20 has run preempt.min_run (600 s); its "
                                "victims may take preempt.grace (60 s) to exit");
  /* Then the pass does preempt (its victim by least work lost): the same rule. */
  in.now_ms = c.now + 540000;
  cr_assert_eq(ty_sched_pass(&in, &out), 0);
  cr_assert_eq(out.n_preemptions, 1u);
  cr_assert_eq(out.preemptions[0].victim_id, 23u);
  cr_assert_eq(sf_pending(&out, 1)->wait, TY_SCHED_WAIT_PREEMPTING);
  ty_sched_output_close(&out);
  in.now_ms = c.now;
  /* A limit that ends sooner than min_run: the limits estimate stands. */
  c.run[2].time_limit_s = 100;
  in = preempt_input(&c);
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_LIMITS);
  cr_assert_eq(ex.est_start_ms, c.now + 40000);
  /* Preemption off: the limits alone. */
  c.run[2].time_limit_s = 7200;
  c.cfg.preemption = false;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_LIMITS);
  cr_assert_eq(ex.est_start_ms, c.now - 60000 + 7200000);
  cr_assert(strncmp(ex.reason, "Resources: needs", 16) == 0, "%s", ex.reason);
}

Test(estimate, blocked_jobs_ahead_make_it_a_lower_bound) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 8)};
  nodes[0].gpus_free = 0;
  ty_sched_slot rs = {.node = 0, .gpus = 0xFF, .cpus = 1};
  ty_sched_running run = {
      .id = 9, .user = "x", .start_time_ms = 0, .time_limit_s = 600, .slots = &rs, .n_slots = 1};
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 1, 8, 60), sf_gjob(2, NULL, "b", 1, 4, 60),
                         sf_gjob(3, NULL, "b", 1, 8, 60)};
  jobs[0].priority = 300, jobs[1].priority = 200, jobs[2].priority = 100;
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 3,
                       .nodes = nodes,
                       .n_nodes = 1,
                       .running = &run,
                       .n_running = 1,
                       .now_ms = 60000};
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 3, &ex), 0);
  cr_assert_eq(ex.position, 3u);
  cr_assert(ex.est_lower_bound);
  cr_assert(strstr(ex.est_note, "not before: 1 job ahead may start first"), "%s", ex.est_note);
  cr_assert_str_eq(ty_sched_wait_name(TY_SCHED_WAIT_QUEUE_LIMIT), "QueueLimit");
  cr_assert_str_eq(ty_sched_wait_name((ty_sched_wait)99), "?");
}

/* A job with a begin time (sbatch --begin) starts then, or later when the
 * nodes it needs free up only after it: squeue --start and sbatch
 * --test-only give that time, not "unknown". */
Test(estimate, a_begin_time_is_the_start_unless_the_nodes_free_later) {
  ty_sched_node nodes[] = {sf_gnode("n1", 8, 8)};
  nodes[0].gpus_free = 0;
  ty_sched_slot rs = {.node = 0, .gpus = 0xFF, .cpus = 1};
  ty_sched_running run = {
      .id = 9, .user = "x", .start_time_ms = 0, .time_limit_s = 600, .slots = &rs, .n_slots = 1};
  ty_sched_job jobs[] = {sf_gjob(1, NULL, "a", 1, 8, 60)};
  jobs[0].begin_ms = 1000000;
  ty_sched_input in = {.jobs = jobs,
                       .n_jobs = 1,
                       .nodes = nodes,
                       .n_nodes = 1,
                       .running = &run,
                       .n_running = 1,
                       .now_ms = 60000};
  ty_sched_explain ex;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.wait, TY_SCHED_WAIT_BEGIN_TIME);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_LIMITS, "%s", ex.est_note);
  cr_assert_eq(ex.est_start_ms, 1000000, "job 9 ends at 600 s, before the begin time");
  cr_assert_not(ex.est_lower_bound);
  cr_assert_str_eq(ex.est_note, "its --begin time");
  /* A begin time before job 9's end: the end, as for any job. */
  jobs[0].begin_ms = 300000;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.wait, TY_SCHED_WAIT_BEGIN_TIME);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_LIMITS);
  cr_assert_eq(ex.est_start_ms, 600000);
  cr_assert_str_eq(ex.est_note, "from running jobs' time limits");
  /* Behind a job with no time limit there is none, begin time or not. */
  run.time_limit_s = 0;
  cr_assert_eq(ty_sched_explain_job(&in, 1, &ex), 0);
  cr_assert_eq(ex.est_kind, TY_SCHED_EST_UNKNOWN);
  cr_assert_str_eq(ex.est_note, "none: it depends on job 9, which has no time limit");
}
