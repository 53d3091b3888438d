// SPDX-License-Identifier: Apache-2.0
// Shared by every hand-written kernel file (embed.py puts it in front of
// each, since NVRTC sees one source and no include path): the index type
// and block-wide reductions over warps. Row kernels run one block per row
// with a power-of-two block of at most 1024 threads, reading the row with
// a block-stride loop, so any row length works.
typedef long long ty_i64;
#define TY_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float ty_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float ty_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block reductions; every thread gets the result. `sh` holds 32 floats.
__device__ float ty_block_sum(float v, float *sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = ty_warp_sum(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x + 31) / 32 ? sh[lane] : 0.0f;
  return ty_warp_sum(v);
}

__device__ float ty_block_max(float v, float *sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = ty_warp_max(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x + 31) / 32 ? sh[lane] : -TY_INF;
  return ty_warp_max(v);
}

// The same in double, for sums that must match the CPU's double
// accumulators (gradients of broadcast inputs, reductions).
__device__ double ty_block_sum_d(double v, double *sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x + 31) / 32 ? sh[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// A row's max and sum of exp(x - max), the shared first half of softmax
// and cross-entropy (max-subtracted like ops/kernels/softmax.c).
__device__ void ty_row_softmax_stats(const float *xr, ty_i64 cols, float *sh, float *out_max,
                                     float *out_sum) {
  float m = -TY_INF;
  for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
  m = ty_block_max(m, sh);
  float s = 0.0f;
  for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x) s += expf(xr[c] - m);
  *out_max = m;
  *out_sum = ty_block_sum(s, sh);
}
