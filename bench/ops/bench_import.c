/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The memory and time of importing one ONNX model (ty_graph_load_file),
 * nothing else in the process: prints the peak RSS the import reached and
 * the wall time, ROUNDS times (each round a new import; the peak is the
 * process's, so later rounds show only a growth).
 *   bench_import MODEL.onnx [ROUNDS]
 */
#include "lib/base/base.h"
#include "ops/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_import MODEL.onnx [ROUNDS]\n");
    return 2;
  }
  int rounds = argc > 2 ? atoi(argv[2]) : 1;
  printf("round peak_rss_mib wall_ms\n");
  for (int r = 1; r <= rounds; r++) {
    char err[TY_ERR_LEN];
    ty_graph *g = NULL;
    double t0 = ty_mono_s();
    if (ty_graph_load_file(argv[1], err, sizeof err, &g) != 0) {
      fprintf(stderr, "bench_import: %s\n", err);
      return 1;
    }
    double ms = (ty_mono_s() - t0) * 1e3;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%d %.1f %.1f\n", r, (double)ru.ru_maxrss / 1024.0, ms);
    ty_graph_destroy(g);
  }
  return 0;
}
