/* SPDX-License-Identifier: Apache-2.0 */
/* Node inventory (worker/inventory.c) on the machine running the tests. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "worker/worker.h"

Test(inventory, detects_cpus_memory_and_topology) {
  ty_worker_inventory inv;
  cr_assert_eq(ty_worker_inventory_detect(&inv), 0);
  cr_expect_gt(inv.cpus, 0);
  cr_expect_gt(inv.cores, 0);
  cr_expect_leq(inv.cores, inv.cpus);
  cr_expect_gt(inv.memory, 0);
  cr_expect_neq(inv.hostname[0], '\0');
  cr_expect(strstr(inv.topology, "package") && strstr(inv.topology, "NUMA node") &&
                strstr(inv.topology, "PU"),
            "topology: %s", inv.topology);
  ty_worker_inventory_close(&inv);
}

Test(inventory, gpus_are_consistent_and_absent_without_a_device) {
  ty_worker_inventory inv;
  cr_assert_eq(ty_worker_inventory_detect(&inv), 0);
  if (access("/dev/nvidia0", F_OK) != 0) cr_expect_eq(inv.n_gpus, 0);
  for (uint32_t i = 0; i < inv.n_gpus; i++) {
    cr_expect_eq(inv.gpus[i].index, i);
    cr_expect_neq(inv.gpus[i].name[0], '\0');
    cr_expect_gt(inv.gpus[i].memory, 0);
    cr_expect_eq(strncmp(inv.gpus[i].uuid, "GPU-", 4), 0);
  }
  ty_worker_inventory_close(&inv);
}

Test(inventory, gpu_override_adds_and_trims) {
  ty_worker_inventory inv;
  cr_assert_eq(ty_worker_inventory_detect(&inv), 0);
  ty_worker_inventory_set_gpus(&inv, inv.n_gpus + 2);
  uint32_t n = inv.n_gpus;
  cr_expect_eq(inv.gpus[n - 1].index, n - 1);
  cr_expect_eq(inv.gpus[n - 1].numa_node, -1);
  cr_expect_eq(inv.gpus[n - 1].nvlink_island, -1);
  ty_worker_inventory_set_gpus(&inv, 0);
  cr_expect_eq(inv.n_gpus, 0);
  ty_worker_inventory_close(&inv);
  ty_worker_inventory_close(NULL);
}

/* ---- NVLink islands from a peer matrix (no GPU needed) ---- */

/* Sets the link i -> j and j -> i in an n*n matrix. */
static void link_pair(uint8_t *m, uint32_t n, uint32_t i, uint32_t j) {
  m[i * n + j] = m[j * n + i] = 1;
}

Test(nvlink_islands, two_quads_like_a_dgx1_half) {
  enum { N = 8 };
  uint8_t m[N * N] = {0};
  for (uint32_t a = 0; a < 4; a++)
    for (uint32_t b = a + 1; b < 4; b++) {
      link_pair(m, N, a, b);
      link_pair(m, N, a + 4, b + 4);
    }
  int island[N];
  cr_assert_eq(ty_worker_nvlink_islands(m, N, island), 2);
  for (uint32_t i = 0; i < N; i++)
    cr_expect_eq(island[i], i < 4 ? 1 : 2, "GPU %u in island %d", i, island[i]);
}

Test(nvlink_islands, chain_is_one_island_and_loners_are_their_own) {
  enum { N = 5 };
  uint8_t m[N * N] = {0};
  link_pair(m, N, 0, 2), link_pair(m, N, 2, 4); /* 0-2-4 through a bridge */
  int island[N];
  cr_assert_eq(ty_worker_nvlink_islands(m, N, island), 3);
  cr_expect_eq(island[0], 1);
  cr_expect_eq(island[2], 1);
  cr_expect_eq(island[4], 1);
  cr_expect_eq(island[1], 2);
  cr_expect_eq(island[3], 3);
}

Test(nvlink_islands, one_way_links_do_not_join) {
  enum { N = 2 };
  uint8_t m[N * N] = {0, 1, 0, 0}; /* 0 -> 1 only */
  int island[N];
  cr_assert_eq(ty_worker_nvlink_islands(m, N, island), 2);
  cr_expect_neq(island[0], island[1]);
}

Test(nvlink_islands, full_mesh_and_empty) {
  enum { N = 4 };
  uint8_t m[N * N];
  memset(m, 1, sizeof m);
  int island[N];
  cr_assert_eq(ty_worker_nvlink_islands(m, N, island), 1);
  for (uint32_t i = 0; i < N; i++)
    cr_expect_eq(island[i], 1);
  cr_expect_eq(ty_worker_nvlink_islands(NULL, 0, island), 0);
}

/* ---- /proc/PID/stat, for per-task usage (worker/usage.c) ---- */

Test(proc_stat, fields_after_a_command_with_spaces_and_parens) {
  const char line[] = "4242 (a (b) c) S 1 4242 4200 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 "
                      "123456 1000000 321 18446744073709551615\n";
  int session = 0;
  uint64_t ticks = 0, rss = 0;
  cr_assert_eq(ty_worker_parse_proc_stat(line, &session, &ticks, &rss), 0);
  cr_assert_eq(session, 4200);
  cr_assert_eq(ticks, 250 + 50 + 7 + 3);
  cr_assert_eq(rss, 321);
}

Test(proc_stat, refuses_truncated_lines) {
  int session;
  uint64_t ticks, rss;
  cr_assert_eq(ty_worker_parse_proc_stat("4242 no-parenthesis S 1", &session, &ticks, &rss),
               TY_EPROTO);
  cr_assert_eq(ty_worker_parse_proc_stat("4242 (x) S 1 2 3 0 -1 0 1", &session, &ticks, &rss),
               TY_EPROTO);
}

Test(proc_stat, this_process) {
  FILE *f = fopen("/proc/self/stat", "r");
  char line[1024];
  cr_assert(f && fgets(line, sizeof(line), f));
  fclose(f);
  int session;
  uint64_t ticks, rss;
  cr_assert_eq(ty_worker_parse_proc_stat(line, &session, &ticks, &rss), 0);
  cr_assert_eq(session, getsid(0));
  cr_assert_gt(rss, 0);
}
