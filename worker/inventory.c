/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node inventory: hostname, logical CPUs, memory and a one-line topology
 * summary from hwloc; GPUs from the CUDA runtime when the build has CUDA.
 *
 * Detection runs once at start-up, so it favours completeness over speed:
 * hwloc loads the whole topology including PCI devices (to place each GPU on
 * its NUMA node). A machine without a CUDA device or driver reports zero GPUs;
 * that is the normal case on CPU nodes, not an error.
 *
 * NVLink islands come from CUDA peer-access queries. CUDA does not name the
 * link type, so a pair counts as NVLink-class when, in both directions, peer
 * access is supported, native atomics over the link are supported (PCIe peer
 * links do not carry them) and cudaDevP2PAttrPerformanceRank is 0 ("the most
 * performant link"). Islands are the connected components of such pairs. A
 * failed query leaves every GPU at -1 (unknown), which the controller reads
 * as "one island".
 */
#include <hwloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#ifdef TY_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "worker/worker.h"

static unsigned count_type(hwloc_topology_t topo, hwloc_obj_type_t type) {
  int n = hwloc_get_nbobjs_by_type(topo, type);
  return n > 0 ? (unsigned)n : 0;
}

static void summarize(hwloc_topology_t topo, ty_worker_inventory *inv) {
  unsigned packages = count_type(topo, HWLOC_OBJ_PACKAGE);
  unsigned numa = count_type(topo, HWLOC_OBJ_NUMANODE);
  unsigned cores = count_type(topo, HWLOC_OBJ_CORE);
  unsigned pus = count_type(topo, HWLOC_OBJ_PU);
  if (packages == 0) packages = 1;
  if (numa == 0) numa = 1;
  if (cores == 0) cores = pus;
  inv->cpus = pus;
  inv->cores = cores;
  snprintf(inv->topology, sizeof inv->topology, "%u package%s, %u NUMA node%s, %u core%s, %u PU%s",
           packages, packages == 1 ? "" : "s", numa, numa == 1 ? "" : "s", cores,
           cores == 1 ? "" : "s", pus, pus == 1 ? "" : "s");
}

static uint64_t hwloc_memory(hwloc_topology_t topo) {
  hwloc_obj_t root = hwloc_get_root_obj(topo);
  return root ? (uint64_t)root->total_memory : 0;
}

static uint64_t sysinfo_memory(void) {
  struct sysinfo si;
  if (sysinfo(&si) != 0) return 0;
  return (uint64_t)si.totalram * (uint64_t)si.mem_unit;
}

/* NUMA node (logical index) nearest to the PCI device "dddd:bb:dd.f", or -1. */
static int gpu_numa_node(hwloc_topology_t topo, const char *bus_id) {
  unsigned domain = 0, bus = 0, dev = 0, func = 0;
  if (!topo || sscanf(bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &func) != 4) return -1;
  hwloc_obj_t pci = hwloc_get_pcidev_by_busid(topo, domain, bus, dev, func);
  if (!pci) return -1;
  hwloc_obj_t parent = hwloc_get_non_io_ancestor_obj(topo, pci);
  /* A device whose nearest CPU-side object spans several NUMA nodes has no
   * single home node. */
  if (!parent || !parent->nodeset || hwloc_bitmap_weight(parent->nodeset) != 1) return -1;
  int os_index = hwloc_bitmap_first(parent->nodeset);
  hwloc_obj_t numa = hwloc_get_numanode_obj_by_os_index(topo, (unsigned)os_index);
  return numa ? (int)numa->logical_index : os_index;
}

uint32_t ty_worker_nvlink_islands(const uint8_t *link, uint32_t n, int *out_island) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++)
    out_island[i] = 0;
  uint32_t *stack = ty_xcalloc(n + 1u, sizeof *stack);
  for (uint32_t root = 0; root < n; root++) {
    if (out_island[root]) continue;
    size_t top = 0;
    out_island[root] = (int)++k;
    stack[top++] = root;
    while (top > 0) { /* depth-first over mutual links */
      uint32_t i = stack[--top];
      for (uint32_t j = 0; j < n; j++) {
        if (out_island[j] || !link[(size_t)i * n + j] || !link[(size_t)j * n + i]) continue;
        out_island[j] = (int)k;
        stack[top++] = j;
      }
    }
  }
  free(stack);
  return k;
}

#ifdef TY_HAVE_CUDA
/* 1 when src -> dst is an NVLink-class peer link (see the file comment), 0 when
 * not, -1 when CUDA cannot tell. */
static int nvlink_pair(int src, int dst) {
  int access = 0, atomic = 0, rank = 1;
  if (cudaDeviceGetP2PAttribute(&access, cudaDevP2PAttrAccessSupported, src, dst) != cudaSuccess ||
      cudaDeviceGetP2PAttribute(&atomic, cudaDevP2PAttrNativeAtomicSupported, src, dst) !=
          cudaSuccess ||
      cudaDeviceGetP2PAttribute(&rank, cudaDevP2PAttrPerformanceRank, src, dst) != cudaSuccess)
    return -1;
  return access == 1 && atomic == 1 && rank == 0;
}

/* Fills nvlink_island of the detected GPUs; leaves -1 when a query fails. */
static void detect_islands(ty_worker_inventory *inv) {
  uint32_t n = inv->n_gpus;
  uint8_t *link = ty_xcalloc((size_t)n * n + 1u, 1);
  int *island = ty_xcalloc(n + 1u, sizeof *island);
  bool known = true;
  for (uint32_t i = 0; i < n && known; i++)
    for (uint32_t j = 0; j < n && known; j++) {
      if (i == j) continue;
      int v = nvlink_pair((int)inv->gpus[i].index, (int)inv->gpus[j].index);
      if (v < 0) ty_debug("inventory: no peer attributes for GPUs %u and %u", i, j);
      known = v >= 0;
      link[(size_t)i * n + j] = v > 0;
    }
  if (known) {
    uint32_t k = ty_worker_nvlink_islands(link, n, island);
    for (uint32_t i = 0; i < n; i++)
      inv->gpus[i].nvlink_island = island[i];
    ty_debug("inventory: %u GPU%s in %u NVLink island%s", n, n == 1 ? "" : "s", k,
             k == 1 ? "" : "s");
  }
  free(island);
  free(link);
}

static void format_uuid(const unsigned char b[16], char *out, size_t n) {
  snprintf(out, n, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

static void detect_gpus(hwloc_topology_t topo, ty_worker_inventory *inv) {
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess || count <= 0) {
    /* No driver, no device: a CPU node. Keep the reason for debugging. */
    if (rc != cudaSuccess) ty_debug("inventory: no GPUs (%s)", cudaGetErrorString(rc));
    return;
  }
  inv->gpus = ty_xcalloc((size_t)count, sizeof *inv->gpus);
  for (int i = 0; i < count; i++) {
    struct cudaDeviceProp prop;
    ty_worker_gpu *g = &inv->gpus[inv->n_gpus];
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    g->index = (uint32_t)i;
    snprintf(g->name, sizeof g->name, "%s", prop.name);
    g->memory = (uint64_t)prop.totalGlobalMem;
    format_uuid((const unsigned char *)prop.uuid.bytes, g->uuid, sizeof g->uuid);
    if (cudaDeviceGetPCIBusId(g->pci_bus_id, (int)sizeof g->pci_bus_id, i) != cudaSuccess)
      g->pci_bus_id[0] = '\0';
    for (char *p = g->pci_bus_id; *p; p++)
      *p = (char)((*p >= 'A' && *p <= 'F') ? *p + 32 : *p);
    g->numa_node = gpu_numa_node(topo, g->pci_bus_id);
    g->nvlink_island = -1;
    inv->n_gpus++;
  }
  detect_islands(inv);
}
#else
static void detect_gpus(hwloc_topology_t topo, ty_worker_inventory *inv) {
  (void)topo;
  (void)inv;
  (void)gpu_numa_node;
}
#endif

/* hwloc's PCI plugin (through libpciaccess) leaks about 1 KiB per load and
 * is unloaded before LeakSanitizer reports, so its frames show as
 * "<unknown module>" and deploy/lsan.supp cannot name them; sanitizer
 * builds ignore the allocations of that one call instead. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HWLOC_LEAKS_BEGIN() __lsan_disable()
#define HWLOC_LEAKS_END() __lsan_enable()
#else
#define HWLOC_LEAKS_BEGIN() ((void)0)
#define HWLOC_LEAKS_END() ((void)0)
#endif

static int load_topology(hwloc_topology_t *out) {
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) return TY_EIO;
  /* PCI objects place GPUs on NUMA nodes; bridges and OS devices are noise. */
  hwloc_topology_set_type_filter(topo, HWLOC_OBJ_PCI_DEVICE, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  hwloc_topology_set_type_filter(topo, HWLOC_OBJ_BRIDGE, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  HWLOC_LEAKS_BEGIN();
  int loaded = hwloc_topology_load(topo);
  HWLOC_LEAKS_END();
  if (loaded != 0) {
    hwloc_topology_destroy(topo);
    return TY_EIO;
  }
  *out = topo;
  return 0;
}

int ty_worker_inventory_detect(ty_worker_inventory *out) {
  memset(out, 0, sizeof *out);
  if (gethostname(out->hostname, sizeof out->hostname - 1) != 0)
    snprintf(out->hostname, sizeof out->hostname, "localhost");
  hwloc_topology_t topo = NULL;
  int rc = load_topology(&topo);
  if (rc == 0) {
    summarize(topo, out);
    out->memory = hwloc_memory(topo);
  }
  if (out->cpus == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->cpus = out->cores = n > 0 ? (uint32_t)n : 1;
    snprintf(out->topology, sizeof out->topology, "%u PUs (hwloc unavailable)", out->cpus);
  }
  if (out->memory == 0) out->memory = sysinfo_memory();
  detect_gpus(topo, out);
  if (topo) hwloc_topology_destroy(topo);
  return rc;
}

void ty_worker_inventory_close(ty_worker_inventory *inv) {
  if (!inv) return;
  free(inv->gpus);
  inv->gpus = NULL;
  inv->n_gpus = 0;
}

void ty_worker_inventory_set_gpus(ty_worker_inventory *inv, uint32_t n) {
  if (n <= inv->n_gpus) {
    inv->n_gpus = n;
    return;
  }
  inv->gpus = ty_xrealloc(inv->gpus, (size_t)n * sizeof *inv->gpus);
  for (uint32_t i = inv->n_gpus; i < n; i++) {
    ty_worker_gpu *g = &inv->gpus[i];
    memset(g, 0, sizeof *g);
    g->index = i;
    snprintf(g->name, sizeof g->name, "override");
    g->numa_node = -1;
    g->nvlink_island = -1;
  }
  inv->n_gpus = n;
}
