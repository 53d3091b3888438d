// SPDX-License-Identifier: Apache-2.0
// Embedding lookup (ONNX Gather on axis 0 of a [vocab, dim] table) and its
// gradient, a scatter-add of the output gradient rows into the table's
// gradient (zeroed by the caller; atomics, since indices repeat). Negative
// indices count from the end as in ONNX; one outside [-vocab, vocab) sets
// *bad to its position + 1 and gathers zeros, and the host reports it.

__device__ __forceinline__ ty_i64 ty_row(ty_i64 i, ty_i64 vocab) {
  return i < 0 ? i + vocab : i;
}

extern "C" __global__ void ty_embedding_gather(ty_i64 n_idx, ty_i64 dim, ty_i64 vocab,
                                               const float *table, const ty_i64 *idx,
                                               float *out, ty_i64 *bad) {
  const ty_i64 n = n_idx * dim;
  for (ty_i64 k = (ty_i64)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (ty_i64)gridDim.x * blockDim.x) {
    const ty_i64 j = k / dim, row = ty_row(idx[j], vocab);
    if (row < 0 || row >= vocab) {
      if (k % dim == 0) atomicCAS((unsigned long long *)bad, 0ull, (unsigned long long)(j + 1));
      out[k] = 0.0f;
    } else {
      out[k] = table[row * dim + k % dim];
    }
  }
}

extern "C" __global__ void ty_embedding_scatter_add(ty_i64 n_idx, ty_i64 dim, ty_i64 vocab,
                                                    const float *dout, const ty_i64 *idx,
                                                    float *dtable) {
  const ty_i64 n = n_idx * dim;
  for (ty_i64 k = (ty_i64)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (ty_i64)gridDim.x * blockDim.x) {
    const ty_i64 row = ty_row(idx[k / dim], vocab);
    if (row >= 0 && row < vocab) atomicAdd(&dtable[row * dim + k % dim], dout[k]);
  }
}
