// SPDX-License-Identifier: Apache-2.0
// Layer normalisation over the last `cols` elements of each row, forward
// (saving mean and 1/sigma per row for the backward) and backward (dx per
// row; dgamma and dbeta accumulated with atomics, zeroed by the caller).
// Two-pass statistics like ops/kernels/norm.c: the mean, then the squared
// deviations, which avoids the cancellation of E[x^2] - E[x]^2.

extern "C" __global__ void ty_layer_norm(ty_i64 rows, ty_i64 cols, const float *x,
                                         const float *gamma, const float *beta, float eps,
                                         float *y, float *mean, float *rstd) {
  __shared__ float sh[32];
  for (ty_i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float s = 0.0f;
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    const float mu = ty_block_sum(s, sh) / (float)cols;
    float v = 0.0f;
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x) v += (xr[c] - mu) * (xr[c] - mu);
    const float rs = rsqrtf(ty_block_sum(v, sh) / (float)cols + eps);
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x)
      yr[c] = (xr[c] - mu) * rs * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
    if (threadIdx.x == 0 && mean) mean[r] = mu;
    if (threadIdx.x == 0 && rstd) rstd[r] = rs;
  }
}

extern "C" __global__ void ty_layer_norm_bwd(ty_i64 rows, ty_i64 cols, const float *x,
                                             const float *gamma, const float *mean,
                                             const float *rstd, const float *dy, float *dx,
                                             float *dgamma, float *dbeta) {
  __shared__ float sh[32];
  for (ty_i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * cols, *gr = dy + r * cols;
    float *dr = dx + r * cols;
    const float mu = mean[r], rs = rstd[r];
    float a = 0.0f, b = 0.0f;
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x) {
      const float xh = (xr[c] - mu) * rs, g = gr[c] * (gamma ? gamma[c] : 1.0f);
      a += g;
      b += g * xh;
      if (dgamma) atomicAdd(&dgamma[c], gr[c] * xh);
      if (dbeta) atomicAdd(&dbeta[c], gr[c]);
    }
    a = ty_block_sum(a, sh) / (float)cols;
    b = ty_block_sum(b, sh) / (float)cols;
    for (ty_i64 c = threadIdx.x; c < cols; c += blockDim.x) {
      const float xh = (xr[c] - mu) * rs, g = gr[c] * (gamma ? gamma[c] : 1.0f);
      dr[c] = rs * (g - a - xh * b);
    }
  }
}
