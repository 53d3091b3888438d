// SPDX-License-Identifier: Apache-2.0
// The builtin loss of ops/train: mean over rows of -log softmax(logits)[label].
// Forward writes each row's loss (the caller sums rows / rows, so the mean
// is deterministic) and the row's softmax for the backward; backward is
// (softmax - onehot(label)) * scale with scale = dloss / rows. A label
// outside [0, cols) sets *bad to the first such row + 1 and contributes 0:
// the host turns that into an error naming the row.

extern "C" __global__ void ty_xent(ty_i64 rows, ty_i64 cols, const float *logits,
                                   const ty_i64 *labels, float *loss, float *prob, ty_i64 *bad) {
  __shared__ float sh[32];
  for (ty_i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = logits + r * cols;
    float *pr = prob + r * cols;
    const ty_i64 lab = labels[r];
    float m, s;
    ty_row_softmax_stats(xr, cols, sh, &m, &s);
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x) pr[c] = expf(xr[c] - m) / s;
    if (threadIdx.x == 0) {
      if (lab < 0 || lab >= cols) {
        atomicCAS((unsigned long long *)bad, 0ull, (unsigned long long)(r + 1));
        loss[r] = 0.0f;
      } else {
        loss[r] = -(xr[lab] - m - logf(s));
      }
    }
  }
}

extern "C" __global__ void ty_xent_bwd(ty_i64 rows, ty_i64 cols, const float *prob,
                                       const ty_i64 *labels, float scale, float *dlogits) {
  const ty_i64 n = rows * cols;
  for (ty_i64 k = (ty_i64)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (ty_i64)gridDim.x * blockDim.x) {
    const ty_i64 r = k / cols, c = k % cols;
    dlogits[k] = (prob[k] - (labels[r] == c ? 1.0f : 0.0f)) * scale;
  }
}
