// SPDX-License-Identifier: Apache-2.0
// Softmax and log-softmax over the last axis of a [rows, cols] view (the
// executor folds ONNX's axis into that view), forward and backward, one
// block per row; max-subtracted like ops/kernels/softmax.c.

extern "C" __global__ void ty_softmax(ty_i64 rows, ty_i64 cols, const float *x, float *y,
                                      int log_out) {
  __shared__ float sh[32];
  for (ty_i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float m, s;
    ty_row_softmax_stats(xr, cols, sh, &m, &s);
    const float ls = logf(s);
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x)
      yr[c] = log_out ? xr[c] - m - ls : expf(xr[c] - m) / s;
  }
}

// dx = y * (dy - sum(dy * y)) for softmax; dx = dy - exp(y) * sum(dy) for
// log-softmax (y its output).
extern "C" __global__ void ty_softmax_bwd(ty_i64 rows, ty_i64 cols, const float *y,
                                          const float *dy, float *dx, int log_out) {
  __shared__ float sh[32];
  for (ty_i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *yr = y + r * cols, *gr = dy + r * cols;
    float *dr = dx + r * cols;
    float s = 0.0f;
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x) s += log_out ? gr[c] : gr[c] * yr[c];
    s = ty_block_sum(s, sh);
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x)
      dr[c] = log_out ? gr[c] - expf(yr[c]) * s : yr[c] * (gr[c] - s);
  }
}
