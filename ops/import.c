/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ONNX import: ModelProto (protobuf-c, generated from Debian's onnx.proto)
 * to the graph IR. Everything a model may hold that we cannot run is
 * rejected here with a message naming the input, initializer or node, so a
 * job fails at submit time rather than mid-training.
 *
 * Ops are checked first, so a model with an op we lack is reported as
 * such rather than by its first odd dtype. Accepted: the default domain at
 * opsets 1..20; tensors of every dtype of TY_DTYPE_LIST from raw_data or the
 * typed fields; Constant's value_* attributes (normalised to one "value"
 * tensor attribute so kernels see one form). After inference, constant
 * shape arithmetic is folded (ops/fold.c).
 *
 * Models are untrusted input: every size is checked for overflow and
 * against the bytes the message holds before anything is allocated, and a
 * malformed model is an error, never a crash (tests/fuzz runs this).
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"
#include "proto/onnx.pb-c.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OPSET_MIN 1
#define OPSET_MAX 20

/* Elements the typed field of tp's dtype holds (ONNX's TensorProto keeps
 * the small integer types, bool and the 16-bit floats' bits in int32_data,
 * the unsigned 32/64-bit ones in uint64_data). */
static size_t typed_count(const Onnx__TensorProto *tp, ty_dtype dt) {
  switch (dt) {
  case TY_DTYPE_F32:
    return tp->n_float_data;
  case TY_DTYPE_I64:
    return tp->n_int64_data;
  case TY_DTYPE_F64:
    return tp->n_double_data;
  case TY_DTYPE_U32:
  case TY_DTYPE_U64:
    return tp->n_uint64_data;
  default:
    return tp->n_int32_data;
  }
}

static void copy_typed(const Onnx__TensorProto *tp, ty_tensor *t) {
  int64_t n = ty_tensor_numel(t);
  if (n == 0) return; /* the field may then be unset (NULL) */
  switch (t->dtype) {
  case TY_DTYPE_F32:
    memcpy(t->data, tp->float_data, t->nbytes);
    return;
  case TY_DTYPE_I64:
    memcpy(t->data, tp->int64_data, t->nbytes);
    return;
  case TY_DTYPE_F64:
    memcpy(t->data, tp->double_data, t->nbytes);
    return;
  case TY_DTYPE_U32:
  case TY_DTYPE_U64:
    for (int64_t i = 0; i < n; i++)
      ty__putu(t->dtype, t->data, i, tp->uint64_data[i]);
    return;
  case TY_DTYPE_F16:
  case TY_DTYPE_BF16: /* the bits, not the value */
    for (int64_t i = 0; i < n; i++)
      ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i];
    return;
  default:
    for (int64_t i = 0; i < n; i++)
      ty__puti(t->dtype, t->data, i, tp->int32_data[i]);
    return;
  }
}

/* The size the shape announces is checked against the bytes the message
 * holds before anything is allocated: a model cannot make us allocate more
 * than it brought. */
static int tensor_from_proto(const Onnx__TensorProto *tp, const char *what, char *err,
                             size_t err_len, ty_tensor **out_tensor) {
  int dt = tp->has_data_type ? tp->data_type : 0;
  if (!ty_dtype_supported(dt))
    return ty_errf(err, err_len, TY_EUNSUPPORTED, "%s: dtype %s is not supported", what,
                   ty_dtype_name(dt));
  if (tp->n_dims > TY_MAX_RANK)
    return ty_errf(err, err_len, TY_EUNSUPPORTED, "%s: rank %zu is above the maximum %d", what,
                   tp->n_dims, TY_MAX_RANK);
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return ty_errf(err, err_len, TY_EUNSUPPORTED, "%s: external data is not supported", what);
  for (size_t i = 0; i < tp->n_dims; i++)
    if (tp->dims[i] < 0)
      return ty_errf(err, err_len, TY_EINVAL, "%s: negative dim %lld", what,
                     (long long)tp->dims[i]);
  ty_shape s = ty_shape_make((int)tp->n_dims, tp->dims);
  size_t nbytes, es = ty_dtype_size((ty_dtype)dt);
  if (ty__shape_too_large(&s) || ty_shape_nbytes(&s, (ty_dtype)dt, &nbytes) != 0)
    return ty_errf(err, err_len, TY_EINVAL, "%s: its shape's size overflows", what);
  if (tp->has_raw_data && tp->raw_data.len != nbytes)
    return ty_errf(err, err_len, TY_EINVAL, "%s: raw_data has %zu bytes but its shape needs %zu",
                   what, tp->raw_data.len, nbytes);
  if (!tp->has_raw_data && typed_count(tp, (ty_dtype)dt) != nbytes / es)
    return ty_errf(err, err_len, TY_EINVAL, "%s: holds %zu values but its shape needs %zu", what,
                   typed_count(tp, (ty_dtype)dt), nbytes / es);
  ty_tensor *t;
  int rc = ty_tensor_create((ty_dtype)dt, &s, &t);
  if (rc != 0)
    return ty_errf(err, err_len, rc, "%s: cannot allocate %zu bytes: %s", what, nbytes,
                   ty_strerror(rc));
  if (tp->has_raw_data && nbytes)
    memcpy(t->data, tp->raw_data.data, nbytes);
  else if (!tp->has_raw_data)
    copy_typed(tp, t);
  *out_tensor = t;
  return 0;
}

int ty_onnx_tensor_load(const void *data, size_t len, const char *what, char *err, size_t err_len,
                        ty_tensor **out_tensor) {
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, data);
  if (!tp) return ty_errf(err, err_len, TY_EPROTO, "%s: not an ONNX TensorProto", what);
  int rc = tensor_from_proto(tp, what, err, err_len, out_tensor);
  onnx__tensor_proto__free_unpacked(tp, NULL);
  return rc;
}

typedef struct importer {
  ty_graph *g;
  char *err;
  size_t err_len;
  int if_depth; /* Ifs being inlined around the node being imported */
} importer;

static int import_opset(importer *im, const Onnx__ModelProto *mp) {
  int64_t opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const char *d = mp->opset_import[i]->domain;
    if ((!d || !*d || strcmp(d, "ai.onnx") == 0) && mp->opset_import[i]->has_version)
      opset = mp->opset_import[i]->version;
  }
  /* A model of only other domains (training ops, say) has no ai.onnx
   * opset; its nodes are then rejected one by one with their names. */
  if (opset < 0) opset = OPSET_MAX;
  if (opset < OPSET_MIN || opset > OPSET_MAX)
    return ty_errf(im->err, im->err_len, TY_EUNSUPPORTED,
                   "model: opset %lld is not supported (%d..%d)", (long long)opset, OPSET_MIN,
                   OPSET_MAX);
  ty_graph_set_opset(im->g, (int)opset);
  return 0;
}

/* An initializer's raw bytes, copied into its tensor, go back at once
 * (protobuf-c allocates each bytes field on its own, with the system
 * allocator here, and frees none it finds NULL): an import holds the
 * weights once beside the message, not twice. */
static void release_raw_data(Onnx__TensorProto *tp) {
  if (!tp->has_raw_data) return;
  free(tp->raw_data.data);
  tp->raw_data.data = NULL;
  tp->raw_data.len = 0;
}

static int import_initializers(importer *im, const Onnx__GraphProto *gp) {
  char what[300];
  for (size_t i = 0; i < gp->n_initializer; i++) {
    Onnx__TensorProto *tp = gp->initializer[i];
    const char *name = tp->name ? tp->name : "";
    snprintf(what, sizeof what, "initializer \"%s\"", name);
    if (ty_graph_find_value(im->g, name) != TY_NO_VALUE)
      return ty_errf(im->err, im->err_len, TY_EINVAL, "%s: defined twice", what);
    ty_tensor *t;
    int id, rc = tensor_from_proto(tp, what, im->err, im->err_len, &t);
    if (rc != 0) return rc;
    release_raw_data(tp);
    if ((rc = ty_graph_add_value(im->g, name, t->dtype, &t->shape, &id)) != 0) {
      ty_tensor_destroy(t);
      return rc;
    }
    if ((rc = ty_graph_set_initializer(im->g, id, t)) != 0) return rc;
  }
  if (gp->n_sparse_initializer)
    return ty_errf(im->err, im->err_len, TY_EUNSUPPORTED,
                   "graph: sparse initializers are not supported");
  return 0;
}

/* Reads a ValueInfoProto's tensor type. Dim 0 given as a dim_param (or
 * missing) is the symbolic batch; other symbolic dims are unknown. */
static int value_type(importer *im, const Onnx__ValueInfoProto *vi, const char *kind,
                      ty_dtype *out_dt, ty_shape *out_shape) {
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    return ty_errf(im->err, im->err_len, TY_EUNSUPPORTED,
                   "%s \"%s\": only tensor types are supported", kind, vi->name);
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  int dt = tt->has_elem_type ? tt->elem_type : 0;
  if (!ty_dtype_supported(dt))
    return ty_errf(im->err, im->err_len, TY_EUNSUPPORTED, "%s \"%s\": dtype %s is not supported",
                   kind, vi->name, ty_dtype_name(dt));
  *out_dt = (ty_dtype)dt;
  *out_shape = ty_shape_unknown();
  if (!tt->shape) return 0;
  if (tt->shape->n_dim > TY_MAX_RANK)
    return ty_errf(im->err, im->err_len, TY_EUNSUPPORTED,
                   "%s \"%s\": rank %zu is above the maximum %d", kind, vi->name, tt->shape->n_dim,
                   TY_MAX_RANK);
  out_shape->rank = (int)tt->shape->n_dim;
  for (size_t i = 0; i < tt->shape->n_dim; i++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
    bool known =
        d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0;
    if (known && d->dim_value > TY__DIM_MAX)
      return ty_errf(im->err, im->err_len, TY_EINVAL,
                     "%s \"%s\": dim %zu is %lld, above the maximum %lld", kind, vi->name, i,
                     (long long)d->dim_value, (long long)TY__DIM_MAX);
    out_shape->dims[i] = known ? d->dim_value : i == 0 ? TY_DIM_BATCH : TY_DIM_UNKNOWN;
  }
  if (ty__shape_too_large(out_shape))
    return ty_errf(im->err, im->err_len, TY_EINVAL, "%s \"%s\": its shape is too large", kind,
                   vi->name);
  return 0;
}

static int import_inputs(importer *im, const Onnx__GraphProto *gp) {
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    if (!vi->name || !*vi->name)
      return ty_errf(im->err, im->err_len, TY_EINVAL, "input %zu: has no name", i);
    int id = ty_graph_find_value(im->g, vi->name);
    if (id != TY_NO_VALUE) {
      if (ty_graph_value_at(im->g, id)->init) continue; /* IR < 4 lists initializers as inputs */
      return ty_errf(im->err, im->err_len, TY_EINVAL, "input \"%s\": defined twice", vi->name);
    }
    ty_dtype dt = TY_DTYPE_INVALID;
    ty_shape s = ty_shape_unknown();
    int rc = value_type(im, vi, "input", &dt, &s);
    if (rc == 0) rc = ty_graph_add_value(im->g, vi->name, dt, &s, &id);
    if (rc == 0) rc = ty_graph_mark_input(im->g, id);
    if (rc != 0) return rc;
  }
  return 0;
}

static int constant_to_value(importer *im, ty_graph_node *n, const Onnx__AttributeProto *a,
                             ty_tensor **out_t) {
  ty_shape scalar = ty_shape_make(0, NULL);
  ty_shape vec;
  int64_t len;
  if (strcmp(a->name, "value_float") == 0)
    return ty_tensor_create_from(TY_DTYPE_F32, &scalar, &a->f, sizeof a->f, out_t);
  if (strcmp(a->name, "value_int") == 0)
    return ty_tensor_create_from(TY_DTYPE_I64, &scalar, &a->i, sizeof a->i, out_t);
  if (strcmp(a->name, "value_floats") == 0) {
    len = (int64_t)a->n_floats;
    vec = ty_shape_make(1, &len);
    return ty_tensor_create_from(TY_DTYPE_F32, &vec, a->floats, a->n_floats * sizeof(float), out_t);
  }
  if (strcmp(a->name, "value_ints") == 0) {
    len = (int64_t)a->n_ints;
    vec = ty_shape_make(1, &len);
    return ty_tensor_create_from(TY_DTYPE_I64, &vec, a->ints, a->n_ints * sizeof(int64_t), out_t);
  }
  return ty__node_err(im->err, im->err_len, n, TY_EUNSUPPORTED, "attribute %s is not supported",
                      a->name);
}

/* A list of strings (the recurrent ops' activations). */
static int import_strings(importer *im, size_t idx, const Onnx__AttributeProto *a) {
  const char **v = calloc(a->n_strings + 1, sizeof *v);
  size_t *lens = calloc(a->n_strings + 1, sizeof *lens);
  int rc = v && lens ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < a->n_strings; i++) {
    v[i] = a->strings[i].data ? (const char *)a->strings[i].data : "";
    lens[i] = a->strings[i].data ? a->strings[i].len : 0;
  }
  if (rc == 0) rc = ty_graph_node_set_strings(im->g, idx, a->name, v, lens, a->n_strings);
  if (rc == TY_EINVAL)
    rc = ty__node_err(im->err, im->err_len, &im->g->nodes[idx], TY_EINVAL,
                      "attribute %s: a string holds a NUL byte", a->name);
  free(v);
  free(lens);
  return rc;
}

static int import_attr(importer *im, size_t idx, const Onnx__AttributeProto *a) {
  ty_graph *g = im->g;
  ty_graph_node *n = &g->nodes[idx];
  char what[300];
  ty_tensor *t = NULL;
  int rc;
  if (!a->name || !*a->name)
    return ty__node_err(im->err, im->err_len, n, TY_EINVAL, "an attribute has no name");
  if (ty_graph_node_attr(n, a->name))
    return ty__node_err(im->err, im->err_len, n, TY_EINVAL, "attribute %s is given twice", a->name);
  if (n->op == TY_OP_CONSTANT && strncmp(a->name, "value_", 6) == 0) {
    if ((rc = constant_to_value(im, n, a, &t)) != 0) return rc;
    return ty_graph_node_set_tensor(g, idx, "value", t);
  }
  switch (a->has_type ? (int)a->type : 0) {
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
    return ty_graph_node_set_float(g, idx, a->name, a->f);
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
    return ty_graph_node_set_int(g, idx, a->name, a->i);
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
    return ty_graph_node_set_ints(g, idx, a->name, a->ints, a->n_ints);
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
    return ty_graph_node_set_floats(g, idx, a->name, a->floats, a->n_floats);
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
    char *s =
        a->s.data ? strndup((const char *)a->s.data, a->s.len) : strdup(""); /* s may be unset */
    if (!s) return TY_ENOMEM;
    rc = ty_graph_node_set_string(g, idx, a->name, s);
    free(s);
    return rc;
  }
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
    return import_strings(im, idx, a);
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
    snprintf(what, sizeof what, "node \"%s\" (%s): attribute %s", n->name, ty_op_name(n->op),
             a->name);
    if (!a->t) return ty_errf(im->err, im->err_len, TY_EINVAL, "%s: tensor missing", what);
    if ((rc = tensor_from_proto(a->t, what, im->err, im->err_len, &t)) != 0) return rc;
    return ty_graph_node_set_tensor(g, idx, a->name, t);
  default:
    return ty__node_err(im->err, im->err_len, n, TY_EUNSUPPORTED,
                        "attribute %s of type %d is not supported", a->name,
                        a->has_type ? (int)a->type : 0);
  }
}

static int node_value_ids(importer *im, const Onnx__NodeProto *np, const char *name, int *in,
                          int *out) {
  for (size_t i = 0; i < np->n_input; i++) {
    in[i] = TY_NO_VALUE;
    if (!*np->input[i]) continue;
    in[i] = ty_graph_find_value(im->g, np->input[i]);
    if (in[i] == TY_NO_VALUE)
      return ty_errf(im->err, im->err_len, TY_EINVAL,
                     "node \"%s\" (%s): input \"%s\" is not produced by an earlier node", name,
                     np->op_type, np->input[i]);
  }
  for (size_t i = 0; i < np->n_output; i++) {
    out[i] = TY_NO_VALUE;
    if (!*np->output[i]) continue;
    if (ty_graph_find_value(im->g, np->output[i]) != TY_NO_VALUE)
      return ty_errf(im->err, im->err_len, TY_EINVAL,
                     "node \"%s\" (%s): output \"%s\" is defined twice", name, np->op_type,
                     np->output[i]);
    int rc = ty_graph_add_value(im->g, np->output[i], TY_DTYPE_INVALID, NULL, &out[i]);
    if (rc != 0) return rc;
  }
  return 0;
}

static const char *node_name(const Onnx__NodeProto *np, size_t index, char *buf, size_t len) {
  if (np->name && *np->name) return np->name;
  snprintf(buf, len, "%s_%zu", np->op_type ? np->op_type : "?", index);
  return buf;
}

/* Why a model exported from PyTorch holds op_type, for the refusals a
 * user meets most; NULL for the others. */
static const char *unsupported_why(const char *op_type) {
  static const char *const control[] = {"Loop", "Scan"};
  for (size_t i = 0; i < sizeof control / sizeof control[0]; i++)
    if (strcmp(op_type, control[i]) == 0)
      return "control flow is not supported (an If whose condition shape inference decides is "
             "inlined); PyTorch exports nn.EmbeddingBag as a Loop (docs/operators.md)";
  return NULL;
}

static int check_op(importer *im, const Onnx__NodeProto *np, size_t index, ty_op *out_op) {
  char auto_name[64];
  const char *name = node_name(np, index, auto_name, sizeof auto_name);
  bool std_domain = !np->domain || !*np->domain || strcmp(np->domain, "ai.onnx") == 0;
  if (!np->op_type || !std_domain || ty_op_from_name(np->op_type, out_op) != 0) {
    const char *why = std_domain && np->op_type ? unsupported_why(np->op_type) : NULL;
    return ty_errf(im->err, im->err_len, TY_EUNSUPPORTED,
                   "node \"%s\" (%s%s%s): op is not supported%s%s", name,
                   std_domain ? "" : np->domain, std_domain ? "" : ".",
                   np->op_type ? np->op_type : "?", why ? ": " : "", why ? why : "");
  }
  return 0;
}

static bool default_domain(const Onnx__NodeProto *np) {
  return !np->domain || !*np->domain || strcmp(np->domain, "ai.onnx") == 0;
}

static bool is_if(const Onnx__NodeProto *np) {
  return np->op_type && strcmp(np->op_type, "If") == 0 && default_domain(np);
}

static int import_if(importer *im, const Onnx__NodeProto *np, const char *name);

static int import_node(importer *im, const Onnx__NodeProto *np, size_t index) {
  char auto_name[64];
  const char *name = node_name(np, index, auto_name, sizeof auto_name);
  if (is_if(np)) return import_if(im, np, name);
  ty_op op;
  int rc0 = check_op(im, np, index, &op);
  if (rc0 != 0) return rc0;
  if (np->n_output == 0)
    return ty_errf(im->err, im->err_len, TY_EINVAL, "node \"%s\" (%s): has no outputs", name,
                   np->op_type);
  size_t n_ids = np->n_input + np->n_output, bytes;
  if (n_ids > INT_MAX || ty_mul_overflow(n_ids, sizeof(int), &bytes))
    return ty_errf(im->err, im->err_len, TY_EINVAL, "node \"%s\" (%s): too many inputs and outputs",
                   name, np->op_type);
  int *ids = malloc(bytes);
  if (!ids) return TY_ENOMEM;
  int idx, rc = node_value_ids(im, np, name, ids, ids + np->n_input);
  if (rc == 0)
    rc = ty_graph_add_node(im->g, op, name, ids, (int)np->n_input, ids + np->n_input,
                           (int)np->n_output, &idx);
  free(ids);
  for (size_t a = 0; rc == 0 && a < np->n_attribute; a++)
    rc = import_attr(im, (size_t)idx, np->attribute[a]);
  return rc;
}

/* ---- If whose condition shape inference decides -------------------------- */
/* PyTorch exports shape-dependent Python branches as an If whose
 * condition is a constant once shapes are known (nn.LocalResponseNorm's
 * squeeze(1) is Equal(Gather(Shape(x), 1), 1)). Such an If is inlined:
 * the taken branch's nodes join the graph and an Identity per output
 * gives the If's output names. The condition is decided on a copy of the
 * graph imported so far, its shape arithmetic folded (the batch kept
 * symbolic, so a condition on the batch size stays undecided); an If it
 * does not decide is refused naming the node. */
#define IF_DEPTH_MAX 8

static const Onnx__GraphProto *if_branch(const Onnx__NodeProto *np, const char *which) {
  for (size_t i = 0; i < np->n_attribute; i++) {
    const Onnx__AttributeProto *a = np->attribute[i];
    if (a->name && strcmp(a->name, which) == 0)
      return a->has_type && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH ? a->g : NULL;
  }
  return NULL;
}

/* The condition's value: 1 or 0 in *taken, or TY_EUNSUPPORTED when the
 * graph so far does not decide it. */
static int if_decide(importer *im, int cond, const char *name, bool *taken) {
  ty_graph *g = NULL;
  ty__symvec v;
  int have = 0;
  char why[TY_ERR_LEN] = "";
  int rc = ty__graph_shape_copy(im->g, TY_DIM_BATCH, &g);
  if (rc == 0) rc = ty_graph_mark_output(g, cond); /* kept through folding */
  if (rc == 0) rc = ty__import_lower_soft_labels(g, why, sizeof why);
  if (rc == 0) rc = ty__graph_fold_shapes(g, why, sizeof why);
  if (rc == 0) rc = ty__graph_infer_value(g, cond, &v, &have, why, sizeof why);
  ty_graph_destroy(g);
  if (rc != 0 && rc != TY_ENOMEM)
    return ty_errf(im->err, im->err_len, rc, "node \"%s\" (If): %s", name, why);
  if (rc != 0) return rc;
  if (!have || v.n != 1 || v.kind[0] != TY__SYM_KNOWN)
    return ty_errf(
        im->err, im->err_len, TY_EUNSUPPORTED,
        "node \"%s\" (If): op is not supported: its condition is not known at import (it "
        "depends on the data or the batch size); an If is inlined only when shape "
        "inference decides it",
        name);
  *taken = v.v[0] != 0;
  return 0;
}

/* Checks np's form; the branch it takes in *out. */
static int if_branch_taken(importer *im, const Onnx__NodeProto *np, const char *name,
                           const Onnx__GraphProto **out) {
  const Onnx__GraphProto *br[2] = {if_branch(np, "else_branch"), if_branch(np, "then_branch")};
  if (np->n_input != 1 || !*np->input[0] || np->n_output == 0)
    return ty_errf(im->err, im->err_len, TY_EINVAL,
                   "node \"%s\" (If): takes one condition input and has outputs", name);
  for (int b = 0; b < 2; b++) {
    if (!br[b])
      return ty_errf(im->err, im->err_len, TY_EINVAL,
                     "node \"%s\" (If): attribute %s (a graph) is missing", name,
                     b ? "then_branch" : "else_branch");
    if (br[b]->n_output != np->n_output || br[b]->n_input != 0)
      return ty_errf(im->err, im->err_len, TY_EINVAL,
                     "node \"%s\" (If): %s has %zu outputs and %zu inputs, the If %zu outputs",
                     name, b ? "then_branch" : "else_branch", br[b]->n_output, br[b]->n_input,
                     np->n_output);
  }
  if (im->if_depth >= IF_DEPTH_MAX)
    return ty_errf(im->err, im->err_len, TY_EUNSUPPORTED,
                   "node \"%s\" (If): Ifs nested more than %d deep", name, IF_DEPTH_MAX);
  int cond = ty_graph_find_value(im->g, np->input[0]);
  if (cond == TY_NO_VALUE)
    return ty_errf(im->err, im->err_len, TY_EINVAL,
                   "node \"%s\" (If): input \"%s\" is not produced by an earlier node", name,
                   np->input[0]);
  bool taken = false;
  int rc = if_decide(im, cond, name, &taken);
  if (rc == 0) *out = br[taken];
  return rc;
}

/* Output i of the If as an Identity of the branch's output i. */
static int if_output(importer *im, const Onnx__NodeProto *np, const Onnx__GraphProto *br, size_t i,
                     const char *name) {
  if (!*np->output[i]) return 0;
  const char *from = br->output[i]->name ? br->output[i]->name : "";
  int in = ty_graph_find_value(im->g, from), out, idx;
  if (in == TY_NO_VALUE)
    return ty_errf(im->err, im->err_len, TY_EINVAL,
                   "node \"%s\" (If): branch output \"%s\" is not produced by the branch", name,
                   from);
  if (ty_graph_find_value(im->g, np->output[i]) != TY_NO_VALUE)
    return ty_errf(im->err, im->err_len, TY_EINVAL,
                   "node \"%s\" (If): output \"%s\" is defined twice", name, np->output[i]);
  int rc = ty_graph_add_value(im->g, np->output[i], TY_DTYPE_INVALID, NULL, &out);
  if (rc == 0) rc = ty_graph_add_node(im->g, TY_OP_IDENTITY, name, &in, 1, &out, 1, &idx);
  return rc;
}

static int import_if(importer *im, const Onnx__NodeProto *np, const char *name) {
  const Onnx__GraphProto *br = NULL;
  int rc = if_branch_taken(im, np, name, &br);
  if (rc == 0) rc = import_initializers(im, br);
  im->if_depth++;
  for (size_t i = 0; rc == 0 && i < br->n_node; i++)
    rc = import_node(im, br->node[i], i);
  im->if_depth--;
  for (size_t i = 0; rc == 0 && i < np->n_output; i++)
    rc = if_output(im, np, br, i, name);
  return rc;
}

static int import_outputs(importer *im, const Onnx__GraphProto *gp) {
  for (size_t i = 0; i < gp->n_output; i++) {
    if (!gp->output[i]->name)
      return ty_errf(im->err, im->err_len, TY_EINVAL, "output %zu: has no name", i);
    int id = ty_graph_find_value(im->g, gp->output[i]->name);
    if (id == TY_NO_VALUE)
      return ty_errf(im->err, im->err_len, TY_EINVAL, "output \"%s\": not produced by any node",
                     gp->output[i]->name);
    int rc = ty_graph_mark_output(im->g, id);
    if (rc != 0) return rc;
  }
  return 0;
}

static int import_model(importer *im, const Onnx__ModelProto *mp) {
  const Onnx__GraphProto *gp = mp->graph;
  if (!gp) return ty_errf(im->err, im->err_len, TY_EINVAL, "model: has no graph");
  ty_op op;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < gp->n_node; i++)
    if (!is_if(gp->node[i])) rc = check_op(im, gp->node[i], i, &op); /* If: import_if */
  if (rc == 0) rc = import_opset(im, mp);
  if (rc == 0) rc = import_initializers(im, gp);
  if (rc == 0) rc = import_inputs(im, gp);
  for (size_t i = 0; rc == 0 && i < gp->n_node; i++)
    rc = import_node(im, gp->node[i], i);
  if (rc == 0) rc = import_outputs(im, gp);
  if (rc == 0 && gp->name && !(im->g->name = strdup(gp->name))) rc = TY_ENOMEM;
  /* PyTorch's cross-entropy with probability targets (import_soft.c). */
  if (rc == 0) rc = ty__import_lower_soft_labels(im->g, im->err, im->err_len);
  if (rc == 0) rc = ty_graph_infer_shapes(im->g, im->err, im->err_len);
  /* Constant shape arithmetic is run once here; inferring again lets the
   * nodes it fed (Reshape, Expand...) see the values. */
  if (rc == 0) rc = ty__graph_fold(im->g, im->err, im->err_len);
  if (rc == 0) rc = ty_graph_infer_shapes(im->g, im->err, im->err_len);
  /* log(sigmoid(x)) and log(1 - sigmoid(x)) stable (import_logsig.c). */
  size_t logsig = 0;
  if (rc == 0) rc = ty__import_stable_log_sigmoid(im->g, &logsig, im->err, im->err_len);
  if (rc == 0 && logsig) rc = ty_graph_infer_shapes(im->g, im->err, im->err_len);
  return rc;
}

/* The graph of an unpacked model (NULL: it did not unpack), which it
 * frees. */
static int import_unpacked(Onnx__ModelProto *mp, char *err, size_t err_len, ty_graph **out_graph) {
  if (err && err_len) err[0] = '\0';
  if (!mp) return ty_errf(err, err_len, TY_EPROTO, "model: not an ONNX ModelProto");
  importer im = {.err = err, .err_len = err_len};
  int rc = ty_graph_create(&im.g);
  if (rc == 0) rc = import_model(&im, mp);
  onnx__model_proto__free_unpacked(mp, NULL);
  if (rc != 0) {
    if (err && err_len && !err[0]) ty_errf(err, err_len, rc, "model: %s", ty_strerror(rc));
    ty_graph_destroy(im.g);
    return rc;
  }
  *out_graph = im.g;
  return 0;
}

int ty_graph_load_bytes(const void *data, size_t len, char *err, size_t err_len,
                        ty_graph **out_graph) {
  return import_unpacked(onnx__model_proto__unpack(NULL, len, data), err, err_len, out_graph);
}

/* The whole regular file fd into *out_buf (malloc'd, its size exactly):
 * 0, or a TY_E* code. */
static int read_model(int fd, uint8_t **out_buf, size_t *out_len) {
  struct stat st;
  if (fstat(fd, &st) != 0) return TY_EIO;
  size_t n = (size_t)st.st_size, got = 0;
  uint8_t *b = malloc(n + 1);
  if (!b) return TY_ENOMEM;
  *out_buf = b;
  while (got < n) {
    ssize_t r = pread(fd, b + got, n - got, (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return TY_EIO; /* an error, or the file shrank */
    got += (size_t)r;
  }
  *out_len = n;
  return 0;
}

/* A model is a regular file, opened without blocking: a FIFO (or a
 * device) named as one would hold its reader in open or read for ever,
 * as it once held traind's model check, whose few places every user's
 * graph submits share, until its timeout. 0 with *out open, or the error
 * in err. */
static int open_model(const char *path, char *err, size_t err_len, int *out) {
  struct stat st;
  const char *why;
  int fd = ty_open_regular(path, &st, &why);
  if (fd >= 0) {
    *out = fd;
    return 0;
  }
  if (why) /* a directory too */
    return ty_errf(err, err_len, TY_EINVAL, "%s: not a regular file (a model is an ONNX file)",
                   path);
  /* errno says whose problem it is: a missing file, or one the reader may not read. */
  return ty_errf(err, err_len, TY_EIO, "%s: cannot open: %s", path, strerror(errno));
}

int ty_graph_clone(const ty_graph *g, char *err, size_t err_len, ty_graph **out_graph) {
  ty_graph *c = NULL;
  int rc = ty__graph_copy(g, &c);
  if (rc != 0) return ty_errf(err, err_len, rc, "copying the model: %s", ty_strerror(rc));
  /* The passes import_model runs after reading a model, so that a clone
   * is the graph a re-import of g's encoding gave: a second fold can reach
   * nodes that the first one's results made constant. */
  if ((rc = ty__import_lower_soft_labels(c, err, err_len)) != 0 ||
      (rc = ty_graph_infer_shapes(c, err, err_len)) != 0 ||
      (rc = ty__graph_fold(c, err, err_len)) != 0 ||
      (rc = ty_graph_infer_shapes(c, err, err_len)) != 0 ||
      (rc = ty__import_stable_log_sigmoid(c, NULL, err, err_len)) != 0 ||
      (rc = ty_graph_infer_shapes(c, err, err_len)) != 0) {
    ty_graph_destroy(c);
    return rc;
  }
  *out_graph = c;
  return 0;
}

/* The file is read into a buffer of its size, which goes as soon as the
 * message is unpacked: the import then holds the message and the graph's
 * tensors, each initializer's bytes in one of them (release_raw_data). */
int ty_graph_load_file(const char *path, char *err, size_t err_len, ty_graph **out_graph) {
  int fd = -1;
  int rc = open_model(path, err, err_len, &fd);
  if (rc != 0) return rc;
  uint8_t *buf = NULL;
  size_t len = 0;
  rc = read_model(fd, &buf, &len);
  close(fd);
  if (rc != 0) {
    free(buf);
    return ty_errf(err, err_len, rc, "%s: cannot read: %s", path, ty_strerror(rc));
  }
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
  free(buf);
  return import_unpacked(mp, err, err_len, out_graph);
}
