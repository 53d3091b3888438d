// SPDX-License-Identifier: Apache-2.0
// The one data-movement kernel: an N-D strided copy over an index space of
// at most 8 dims, out[sum(i_d * ost_d)] = in[sum(i_d * ist_d)], offsets
// folded into the pointers by the host. Transpose (input strides
// permuted), Slice (start in the offset, steps in the strides), Concat (a
// launch per input into its offset of the output), Split (a launch per
// output), broadcasting (stride 0: the gradient of a reduction) and the
// gradients of all of these are such copies.
typedef struct {
  ty_i64 v[1 + 3 * 8]; // rank, dims[8], input strides[8], output strides[8]
} ty_copy_shape;

extern "C" __global__ void ty_strided_copy(ty_i64 n, ty_copy_shape s, const float *in,
                                           float *out) {
  const int rank = (int)s.v[0];
  for (ty_i64 k = (ty_i64)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (ty_i64)gridDim.x * blockDim.x) {
    ty_i64 rem = k, io = 0, oo = 0;
    for (int d = rank - 1; d >= 0; d--) {
      const ty_i64 c = rem % s.v[1 + d];
      rem /= s.v[1 + d];
      io += c * s.v[9 + d];
      oo += c * s.v[17 + d];
    }
    out[oo] = in[io];
  }
}

// out[k] = 0 over n elements (a gradient buffer before its copies).
extern "C" __global__ void ty_fill_zero(ty_i64 n, float *out) {
  for (ty_i64 k = (ty_i64)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (ty_i64)gridDim.x * blockDim.x)
    out[k] = 0.0f;
}
