/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One single-precision GEMM through oneDNN's dnnl_sgemm (Debian's libdnnl,
 * the library PyTorch's CPU matmuls also reach), built when meson finds
 * oneDNN. On the GPT's shapes its AVX-512 kernels run a training step's
 * GEMMs in ~20% less CPU than OpenBLAS 0.3.21's SkylakeX kernels
 * (bench/train/RESULTS.md, "GEMMs through oneDNN"); kernels/gemm.c picks
 * which library runs each call.
 *
 * The call runs on the calling thread alone (oneDNN's OpenMP threads set
 * to one around it, as kernels/conv_dnnl.c does), so its result depends on
 * the shape and the operands only, never on the executor's thread count.
 */
#include "ops/ops_internal.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

bool ty__sgemm_dnnl(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  int old = omp_get_max_threads();
  if (old != 1) omp_set_num_threads(1);
  dnnl_status_t s =
      dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (old != 1) omp_set_num_threads(old);
  return s == dnnl_success;
}
