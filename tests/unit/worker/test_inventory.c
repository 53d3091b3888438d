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
  ty_worker_inventory_set_gpus(&inv, 0);
  cr_expect_eq(inv.n_gpus, 0);
  ty_worker_inventory_close(&inv);
  ty_worker_inventory_close(NULL);
}
