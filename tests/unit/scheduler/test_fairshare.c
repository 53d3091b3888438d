/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for fair share: queue shares that a simulated week of jobs
 * converges to, and the decay and share report `trainctl share` prints. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/scheduler.h"
#include "tests/unit/scheduler/sched_fixture.h"

static ty_sched_config sf_config(void) {
  ty_sched_config c;
  ty_sched_config_default(&c);
  return c;
}

/* ---- fair share --------------------------------------------------------------------- */

typedef struct sim_job {
  uint64_t id;
  int queue;
  uint32_t gpus;
  int64_t end;
  ty_sched_slot slot;
} sim_job;

Test(fairshare, converges_to_queue_weights_over_a_simulated_week, .timeout = 60) {
  enum { NN = 8, STEP_S = 300, DAY = 86400 };
  const char *names[2] = {"big", "small"};
  ty_sched_queue qs[2] = {{.name = "big", .share = 3}, {.name = "small", .share = 1}};
  ty_sched_node nodes[NN];
  for (int i = 0; i < NN; i++)
    nodes[i] = sf_gnode("n", 64, 8);
  ty_sched_config cfg = sf_config();
  cfg.halflife_s = DAY;
  cfg.backfill = false;
  double usage[2] = {0, 0}, got[2] = {0, 0};
  sim_job running[NN * 8];
  size_t nrun = 0;
  uint64_t next_id = 1, seed = 12345;
  for (int64_t t = 0; t < 7 * DAY; t += STEP_S) {
    for (size_t r = 0; r < nrun;) {
      if (running[r].end <= t) {
        sim_job *s = &running[r];
        nodes[s->slot.node].gpus_free |= s->slot.gpus;
        nodes[s->slot.node].cpus_free += s->slot.cpus;
        running[r] = running[--nrun];
      } else {
        r++;
      }
    }
    for (int q = 0; q < 2; q++)
      usage[q] = ty_sched_decay(usage[q], STEP_S, cfg.halflife_s);
    ty_sched_job jobs[40];
    for (int k = 0; k < 40; k++) {
      jobs[k] = sf_gjob(next_id + (uint64_t)k, names[k % 2], names[k % 2], 1,
                        1 + (uint32_t)((next_id + (uint64_t)k) % 4), 3600);
      jobs[k].submit_time_ms = t * 1000;
    }
    ty_sched_usage us[2] = {{.user = "big", .queue = "big", .usage = usage[0]},
                            {.user = "small", .queue = "small", .usage = usage[1]}};
    ty_sched_input in = {.jobs = jobs,
                         .n_jobs = 40,
                         .nodes = nodes,
                         .n_nodes = NN,
                         .queues = qs,
                         .n_queues = 2,
                         .usage = us,
                         .n_usage = 2,
                         .config = &cfg,
                         .now_ms = t * 1000};
    ty_sched_output out;
    cr_assert_eq(ty_sched_pass(&in, &out), 0);
    for (size_t k = 0; k < out.n_placements; k++) {
      const ty_sched_placement *p = &out.placements[k];
      const ty_sched_job *j = &jobs[p->job_id - next_id];
      sim_job *s = &running[nrun++];
      *s = (sim_job){.id = j->id,
                     .queue = (p->job_id - next_id) % 2,
                     .gpus = j->gpus_per_node,
                     .end = t + 600 + (int64_t)(sf_rng(&seed) % 7200),
                     .slot = p->slots[0]};
      nodes[s->slot.node].gpus_free &= ~s->slot.gpus;
      nodes[s->slot.node].cpus_free -= s->slot.cpus;
    }
    next_id += 40;
    ty_sched_output_close(&out);
    for (size_t r = 0; r < nrun; r++) {
      usage[running[r].queue] += (double)running[r].gpus * STEP_S;
      if (t >= 2 * DAY) got[running[r].queue] += (double)running[r].gpus * STEP_S;
    }
  }
  double share = got[0] / (got[0] + got[1]);
  cr_assert(share > 0.70 && share < 0.80, "queue big got %.3f of the GPU time, want 0.75", share);
}

Test(fairshare, decay_and_share_report) {
  cr_assert_float_eq(ty_sched_decay(100, 3600, 3600), 50, 1e-9);
  cr_assert_float_eq(ty_sched_decay(100, 0, 3600), 100, 1e-9);
  cr_assert_float_eq(ty_sched_decay(100, 10, 0), 100, 1e-9);
  ty_sched_queue qs[] = {{.name = "a", .share = 3}, {.name = "b", .share = 1}};
  ty_sched_usage us[] = {{.user = "x", .queue = "a", .usage = 30},
                         {.user = "y", .queue = "a", .usage = 10},
                         {.user = "z", .queue = "b", .usage = 60}};
  ty_sched_input in = {.queues = qs, .n_queues = 2, .usage = us, .n_usage = 3};
  ty_sched_share *rows;
  size_t n;
  cr_assert_eq(ty_sched_shares(&in, &rows, &n), 0);
  cr_assert_eq(n, 5u);
  cr_assert_str_eq(rows[0].queue, "a");
  cr_assert_null(rows[0].user);
  cr_assert_float_eq(rows[0].share, 0.75, 1e-9);
  cr_assert_float_eq(rows[0].usage_norm, 0.4, 1e-9);
  cr_assert_float_eq(rows[1].share, 0.25, 1e-9);
  cr_assert_float_eq(rows[1].factor, 0.18946457081379978, 1e-9); /* 2^(-0.6 / 0.25) */
  for (size_t i = 2; i < 4; i++) {
    cr_assert_str_eq(rows[i].queue, "a");
    cr_assert_float_eq(rows[i].share, 0.375, 1e-9); /* two users split queue a */
  }
  cr_assert_str_eq(rows[4].user, "z");
  free(rows);
}
