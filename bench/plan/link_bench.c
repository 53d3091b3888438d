/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The link parameters of the planner's cost model, measured on this
 * machine's MPI transport (shared memory between the ranks of one host):
 * the time of ops/collective's checked all-reduce (the path a plan's
 * collectives take) for a 4-byte and an 8 MiB buffer across WORLD_SIZE
 * ranks, fitted to the ring formula the planner uses,
 *   T(S) = 2 (n-1)/n S/B + 2 (n-1) L,
 * so L = T(4 B) / (2 (n-1)) and B = 2 (n-1)/n S / (T(8 MiB) - T(4 B)).
 * One process per rank with RANK, WORLD_SIZE, TRAINYARD_JOB_ID,
 * TRAINYARD_CONTROLLER and TRAINYARD_RENDEZVOUS_TOKEN set (run.sh does);
 * rank 0 prints
 *   ranks=4 small_us=... large_ms=... intra_gbps=... latency_us=...
 */
#include "bench/rank_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Median of `iters` checked all-reduces of n floats over every rank. */
static double time_allreduce(ty_coll *c, float *buf, size_t n, int iters) {
  double *t = calloc((size_t)iters, sizeof *t);
  for (int it = -5; it < iters; it++) {
    double t0 = bench_now_s();
    if (ty_coll_mesh_all_reduce(3u, buf, n, "link_bench", c) != 0) {
      fprintf(stderr, "link_bench: %s\n", ty_coll_error(c));
      exit(1);
    }
    if (it >= 0) t[it] = bench_now_s() - t0;
    for (size_t i = 0; i < n; i += 1024)
      buf[i] = 1.0f;
  }
  for (int i = 1; i < iters; i++) /* insertion sort: a few dozen samples */
    for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
      double x = t[j];
      t[j] = t[j - 1];
      t[j - 1] = x;
    }
  double m = t[iters / 2];
  free(t);
  return m;
}

int main(void) {
  unsigned rank = bench_env_u("RANK"), world = bench_env_u("WORLD_SIZE");
  if (world < 2) {
    fprintf(stderr, "link_bench: needs WORLD_SIZE >= 2\n");
    return 1;
  }
  ty_coll *c = bench_join("link_bench");
  /* one mesh axis over every rank: 1 x n */
  if (ty_coll_set_mesh(c, 1, (int)world) != 0) {
    fprintf(stderr, "link_bench: %s\n", ty_coll_error(c));
    return 1;
  }
  size_t big = (size_t)2 << 20; /* floats: 8 MiB */
  float *buf = malloc(big * sizeof *buf);
  for (size_t i = 0; i < big; i++)
    buf[i] = 1.0f;
  double n = world, small = time_allreduce(c, buf, 1, 200), large = time_allreduce(c, buf, big, 20);
  double lat = small / (2 * (n - 1)),
         bw = 2 * (n - 1) / n * (double)(big * sizeof *buf) / (large - small);
  if (rank == 0)
    printf("ranks=%u small_us=%.1f large_ms=%.2f intra_gbps=%.3f latency_us=%.2f\n", world,
           small * 1e6, large * 1e3, bw / 1e9, lat * 1e6);
  free(buf);
  ty_coll_destroy(c);
  return 0;
}
