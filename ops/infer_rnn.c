/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape and dtype inference of the recurrent ops LSTM, GRU and RNN: checks
 * W, R, B, sequence_lens, initial_h/initial_c and P against X and
 * hidden_size (ops/kernels/rnn.c's ty__rnn_read) and sizes Y
 * ([seq, dirs, batch, hidden], or [batch, seq, dirs, hidden] with layout 1)
 * and Y_h / Y_c ([dirs, batch, hidden], or [batch, dirs, hidden]).
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

int ty__infer_rnn(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int max_in = n->op == TY_OP_LSTM ? 8 : 6, max_out = n->op == TY_OP_LSTM ? 3 : 2;
  if (ic->n_in < 3 || ic->n_in > max_in)
    return ty__infer_fail(ic, TY_EINVAL, "takes 3 to %d inputs, got %d", max_in, ic->n_in);
  if (ic->n_out > max_out)
    return ty__infer_fail(ic, TY_EINVAL, "has at most %d outputs, got %d", max_out, ic->n_out);
  int rc = 0;
  for (int i = 0; rc == 0 && i < ic->n_in; i++)
    rc = i == TY__RNN_SEQ ? ty__infer_need(ic, i, TY__DT(I32) | TY__DT(I64), true)
                          : ty__infer_need(ic, i, TY__DT(F32), i > TY__RNN_R);
  if (rc != 0) return rc;
  const ty_shape *shp[8] = {NULL};
  for (int i = 0; i < ic->n_in; i++)
    shp[i] = ty__infer_has(ic, i) ? &ic->in_shape[i] : NULL;
  ty__rnn r;
  if ((rc = ty__rnn_read(n, shp, ic->n_in, &r, ic->err, ic->err_len)) != 0) return rc;
  const ty_tensor *lens = TY__RNN_SEQ < ic->n_in ? ic->in_val[TY__RNN_SEQ] : NULL;
  for (int64_t b = 0; lens && r.seq >= 0 && b < ty_tensor_numel(lens); b++) {
    int64_t v = ty__geti(lens->dtype, lens->data, b);
    if (v < 0 || v > r.seq)
      return ty__infer_fail(ic, TY_EINVAL, "sequence_lens[%lld]=%lld is outside 0..%lld",
                            (long long)b, (long long)v, (long long)r.seq);
  }
  int64_t nd = r.ndir, h = r.hid >= 0 ? r.hid : TY_DIM_UNKNOWN;
  ty_shape y = ty_shape_unknown(), yh = ty_shape_unknown();
  if (ic->in_shape[0].rank == 3) {
    y = r.layout == 0 ? ty_shape_make(4, (int64_t[]){r.seq, nd, r.batch, h})
                      : ty_shape_make(4, (int64_t[]){r.batch, r.seq, nd, h});
    yh = r.layout == 0 ? ty_shape_make(3, (int64_t[]){nd, r.batch, h})
                       : ty_shape_make(3, (int64_t[]){r.batch, nd, h});
  }
  for (int o = 0; o < ic->n_out; o++)
    ty__infer_set(ic, o, TY_DTYPE_F32, o == 0 ? &y : &yh);
  return 0;
}
