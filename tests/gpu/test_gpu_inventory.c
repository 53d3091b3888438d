/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GPU suite: the worker's GPU inventory through the CUDA runtime. Exits 77
 * (meson's "skipped") where the build has CUDA but the machine has no GPU,
 * so CI without a GPU skips it and a GPU host runs it for real. On a GPU it
 * checks what the controller relies on for placement: every device has a
 * name, memory, a UUID and a PCI bus id, and ordinals are dense from 0.
 */
#include <stdio.h>
#include <string.h>

#include "worker/worker.h"
#include "tests/gpu/check.h"

int main(void) {
  ty_worker_inventory inv;
  int rc = ty_worker_inventory_detect(&inv);
  CHECK(rc == 0 || rc == TY_EIO, "inventory: %s", ty_strerror(rc));
  if (inv.n_gpus == 0) {
    printf("no CUDA device on this machine: skipped\n");
    ty_worker_inventory_close(&inv);
    return 77;
  }
  for (uint32_t i = 0; i < inv.n_gpus; i++) {
    const ty_worker_gpu *g = &inv.gpus[i];
    printf("gpu %u: %s, %llu MiB, %s, %s, NUMA %d\n", g->index, g->name,
           (unsigned long long)(g->memory >> 20), g->uuid, g->pci_bus_id, g->numa_node);
    CHECK(g->index == i, "gpu %u has ordinal %u", i, g->index);
    CHECK(g->name[0] != '\0', "gpu %u has no name", i);
    CHECK(g->memory > 0, "gpu %u reports no memory", i);
    CHECK(strncmp(g->uuid, "GPU-", 4) == 0, "gpu %u uuid \"%s\"", i, g->uuid);
    CHECK(strchr(g->pci_bus_id, ':') != NULL, "gpu %u pci bus id \"%s\"", i, g->pci_bus_id);
  }
  printf("1 passed, 0 failed\n");
  ty_worker_inventory_close(&inv);
  return 0;
}
