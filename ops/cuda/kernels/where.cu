// SPDX-License-Identifier: Apache-2.0
// Where: out = cond ? x : y over the output's index space (at most 8 dims),
// each operand read at its own strides (0 along the dims it is broadcast
// over), cond as bytes (ONNX bool). The backward gives an operand shaped
// like the output dY where cond holds (x) or does not (y), 0 elsewhere.
typedef struct {
  ty_i64 v[1 + 4 * 8]; // rank, dims[8], cond, x and y strides[8]
} ty_where_shape;

extern "C" __global__ void ty_where(ty_i64 n, ty_where_shape s, const unsigned char *cond,
                                    const float *x, const float *y, float *out) {
  const int rank = (int)s.v[0];
  for (ty_i64 k = (ty_i64)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (ty_i64)gridDim.x * blockDim.x) {
    ty_i64 rem = k, ic = 0, ix = 0, iy = 0;
    for (int d = rank - 1; d >= 0; d--) {
      const ty_i64 c = rem % s.v[1 + d];
      rem /= s.v[1 + d];
      ic += c * s.v[9 + d];
      ix += c * s.v[17 + d];
      iy += c * s.v[25 + d];
    }
    out[k] = cond[ic] ? x[ix] : y[iy];
  }
}

extern "C" __global__ void ty_where_bwd(ty_i64 n, ty_where_shape s, const unsigned char *cond,
                                        const float *dy, int take_true, float *dx) {
  const int rank = (int)s.v[0];
  for (ty_i64 k = (ty_i64)blockIdx.x * blockDim.x + threadIdx.x; k < n;
       k += (ty_i64)gridDim.x * blockDim.x) {
    ty_i64 rem = k, ic = 0;
    for (int d = rank - 1; d >= 0; d--) {
      const ty_i64 c = rem % s.v[1 + d];
      rem /= s.v[1 + d];
      ic += c * s.v[9 + d];
    }
    dx[k] = (cond[ic] != 0) == (take_true != 0) ? dy[k] : 0.0f;
  }
}
