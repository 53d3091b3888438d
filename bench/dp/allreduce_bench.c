/* SPDX-License-Identifier: Apache-2.0 */
/*
 * All-reduce bandwidth of ops/collective's checked path (shape check +
 * MPI_Iallreduce polled under a deadline) against a raw MPI_Allreduce of the
 * same buffers on the same communicator. Run one process per rank with
 * RANK, WORLD_SIZE, TRAINYARD_JOB_ID and TRAINYARD_CONTROLLER set (run.sh
 * does); rank 0 prints one line per buffer size:
 *   size_mib checked_ms raw_ms checked_busbw_gbs raw_busbw_gbs
 * Bus bandwidth is 2 (W-1)/W x bytes / time, NCCL-tests' convention.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/rank_env.h"
#include "ops/collective/collective.h"

int main(void) {
  ty_coll *c = bench_join("allreduce_bench");
  unsigned rank = bench_env_u("RANK");
  const size_t mib[] = {1, 4, 16, 25};
  const int iters = 20;
  double w = (double)ty_coll_world_size(c);
  if (rank == 0) printf("size_mib checked_ms raw_ms checked_busbw_gbs raw_busbw_gbs\n");
  for (size_t k = 0; k < sizeof mib / sizeof *mib; k++) {
    size_t n = mib[k] << 18; /* floats */
    float *buf = malloc(n * sizeof *buf);
    for (size_t i = 0; i < n; i++)
      buf[i] = 1.0f;
    double t[2] = {0, 0};
    uint64_t seq = 0;
    for (int mode = 0; mode < 2; mode++) {
      for (int it = -3; it < iters; it++) {
        double t0 = bench_now_s();
        int rc = mode == 0 ? ty_coll_allreduce(buf, n, seq++, c) : ty_coll_raw_allreduce(c, buf, n);
        if (rc != 0) {
          fprintf(stderr, "allreduce_bench: %s\n", ty_coll_error(c));
          return 1;
        }
        if (it >= 0) t[mode] += bench_now_s() - t0;
        for (size_t i = 0; i < n; i += 4096)
          buf[i] = 1.0f; /* keep values finite */
      }
    }
    double bytes = (double)(n * sizeof(float)), f = 2 * (w - 1) / w;
    if (rank == 0)
      printf("%zu %.2f %.2f %.2f %.2f\n", mib[k], t[0] / iters * 1e3, t[1] / iters * 1e3,
             f * bytes / (t[0] / iters) / 1e9, f * bytes / (t[1] / iters) / 1e9);
    free(buf);
  }
  ty_coll_destroy(c);
  return 0;
}
