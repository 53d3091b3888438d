// SPDX-License-Identifier: Apache-2.0
// Sums over some dims: ReduceSum and ReduceMean (scale 1 / count), and the
// gradient of a broadcast input, which sums dY (or a generated region's
// dY * other) over the dims the input was broadcast along. One block per
// output element (grid-stride over outputs), its threads striding over the
// reduced elements, accumulating in double like the CPU kernels. The host
// splits the input's dims into kept ones (the output's, row-major) and
// reduced ones, each with its input stride.
typedef struct {
  // n_keep, keep dims[8], keep strides[8], n_red, red dims[8], red strides[8]
  ty_i64 v[2 + 4 * 8];
} ty_reduce_shape;

__device__ __forceinline__ ty_i64 ty_offset(ty_i64 k, int rank, const ty_i64 *dims,
                                            const ty_i64 *strides) {
  ty_i64 off = 0;
  for (int d = rank - 1; d >= 0; d--) {
    off += (k % dims[d]) * strides[d];
    k /= dims[d];
  }
  return off;
}

extern "C" __global__ void ty_reduce_sum(ty_i64 n_out, ty_i64 n_red, ty_reduce_shape s,
                                         float scale, const float *in, float *out) {
  __shared__ double sh[32];
  const int nk = (int)s.v[0], nr = (int)s.v[17];
  for (ty_i64 o = blockIdx.x; o < n_out; o += gridDim.x) {
    const ty_i64 base = ty_offset(o, nk, &s.v[1], &s.v[9]);
    double acc = 0.0;
    for (ty_i64 r = threadIdx.x; r < n_red; r += blockDim.x)
      acc += (double)in[base + ty_offset(r, nr, &s.v[18], &s.v[26])];
    acc = ty_block_sum_d(acc, sh);
    if (threadIdx.x == 0) out[o] = (float)(acc * (double)scale);
  }
}
