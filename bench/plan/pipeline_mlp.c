/* SPDX-License-Identifier: Apache-2.0 */
/* The pipeline benches' MLP (see pipeline_mlp.h). */
#include "bench/plan/pipeline_mlp.h"

#include "tests/unit/ops/plan/models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bench_mlp_option(bench_mlp *m, const char *a, const char *v) {
  if (strcmp(a, "--layers") == 0)
    m->layers = atoi(v);
  else if (strcmp(a, "--hidden") == 0)
    m->hidden = atoll(v);
  else if (strcmp(a, "--batch") == 0)
    m->batch = atoll(v);
  else
    return 0;
  return 1;
}

ty_graph *bench_mlp_build(const bench_mlp *m, bool weights) {
  ty_graph *g = model_mlp(m->layers, m->hidden);
  uint64_t s = 7;
  for (size_t i = 0; g && weights && i < ty_graph_n_initializers(g); i++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_initializer(g, i));
    if (v->dtype != TY_DTYPE_F32) continue;
    float *w = v->init->data;
    for (int64_t k = 0; k < ty_tensor_numel(v->init); k++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      w[k] = (float)(((double)(s >> 11) / 9007199254740992.0 * 2 - 1) / sqrt((double)m->hidden));
    }
  }
  return g;
}

void bench_mlp_cluster(ty_plan_request *r) {
  r->cluster.nodes = 2;
  r->cluster.devices_per_node = 2;
}
