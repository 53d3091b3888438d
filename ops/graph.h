/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/graph: the graph IR every later pass works on (autodiff, fusion,
 * memory planning, the planner's cost model), ONNX import and export, and
 * shape inference.
 *
 * The IR is deliberately flat, so passes can append and rewrite freely:
 *   - a value is an SSA tensor identified by a dense int id (its index); it
 *     has a name, a dtype, a shape (dim 0 may be TY_DIM_BATCH) and, for
 *     initializers, the tensor data;
 *   - a node has an op enum, the ONNX opset its semantics follow, attributes,
 *     and input/output value ids (TY_NO_VALUE marks an omitted optional
 *     input or output).
 * Invariants: every value has at most one producer; a graph input or an
 * initializer has none; node order is topological after import (passes that
 * append nodes out of order call ty_graph_topo_order).
 *
 * Errors of import, inference and export are written to a caller buffer and
 * name the node, its op type and what is wrong, e.g.
 *   node "conv3" (Conv): attribute auto_pad=SAME_UPPER is not supported
 * Nothing here is thread-safe for writers; readers may share a graph.
 * GPU code never sees this header's internals: kernels for CUDA would plug
 * in behind ops/exec, keyed by the same ty_op enum.
 */
#ifndef TY_OPS_GRAPH_H
#define TY_OPS_GRAPH_H

#include "ops/tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(enum suffix, ONNX op_type, CPU kernel, shape inference): the one table
 * of ops. The enum, the names, the executor's kernel table (ops/exec.c;
 * kernel k is ty__k_<k>) and the inference dispatch (ops/infer.c; rule r is
 * ty__infer_<r>) are generated from it, so an op cannot be added without
 * naming both. Order is the enum order; append only. */
/* clang-format off */
#define TY_OP_LIST(X)                                                                              \
  X(ADD, "Add", binary, binary) X(SUB, "Sub", binary, binary) X(MUL, "Mul", binary, binary)        \
  X(DIV, "Div", binary, binary) X(POW, "Pow", binary, binary) X(RELU, "Relu", unary, unary)        \
  X(LEAKY_RELU, "LeakyRelu", unary, unary) X(SIGMOID, "Sigmoid", unary, unary)                     \
  X(TANH, "Tanh", unary, unary) X(ERF, "Erf", unary, unary) X(SQRT, "Sqrt", unary, unary)          \
  X(EXP, "Exp", unary, unary) X(LOG, "Log", unary, unary) X(NEG, "Neg", unary, unary)              \
  X(IDENTITY, "Identity", unary, unary) X(GEMM, "Gemm", gemm, gemm)                                \
  X(MATMUL, "MatMul", matmul, matmul) X(SOFTMAX, "Softmax", softmax, softmax)                      \
  X(LOG_SOFTMAX, "LogSoftmax", softmax, softmax) X(CONV, "Conv", conv, conv)                       \
  X(MAX_POOL, "MaxPool", pool, pool) X(AVERAGE_POOL, "AveragePool", pool, pool)                    \
  X(GLOBAL_AVERAGE_POOL, "GlobalAveragePool", global_pool, global_pool)                            \
  X(BATCH_NORM, "BatchNormalization", batch_norm, batch_norm)                                      \
  X(LAYER_NORM, "LayerNormalization", layer_norm, layer_norm)                                      \
  X(DROPOUT, "Dropout", dropout, dropout)                                                          \
  X(FLATTEN, "Flatten", copy, flatten) X(RESHAPE, "Reshape", copy, reshape)                        \
  X(TRANSPOSE, "Transpose", transpose, transpose) X(CONCAT, "Concat", concat, concat)              \
  X(GATHER, "Gather", gather, gather) X(SQUEEZE, "Squeeze", copy, squeeze)                         \
  X(UNSQUEEZE, "Unsqueeze", copy, squeeze) X(REDUCE_MEAN, "ReduceMean", reduce, reduce)            \
  X(REDUCE_SUM, "ReduceSum", reduce, reduce) X(CONSTANT, "Constant", constant, constant)           \
  X(SOFTMAX_CE_LOSS, "SoftmaxCrossEntropyLoss", sce_loss, sce_loss)                                \
  X(GRAD, "TyGrad", grad, grad) /* backward-only (ops/autodiff); not an ONNX op */                 \
  /* comparisons, logic and the other binary elementwise ops */                                    \
  X(MOD, "Mod", binary, binary) X(BIT_SHIFT, "BitShift", binary, binary)                           \
  X(AND, "And", binary, binary) X(OR, "Or", binary, binary) X(XOR, "Xor", binary, binary)          \
  X(EQUAL, "Equal", binary, binary) X(LESS, "Less", binary, binary)                                \
  X(GREATER, "Greater", binary, binary) X(LESS_EQUAL, "LessOrEqual", binary, binary)               \
  X(GREATER_EQUAL, "GreaterOrEqual", binary, binary) X(PRELU, "PRelu", binary, binary)             \
  X(MAX, "Max", variadic, variadic) X(MIN, "Min", variadic, variadic)                              \
  X(SUM, "Sum", variadic, variadic) X(MEAN, "Mean", variadic, variadic)                            \
  X(WHERE, "Where", where, where) X(CLIP, "Clip", clip, clip)                                      \
  X(CAST, "Cast", cast, cast) X(CAST_LIKE, "CastLike", cast, cast)                                 \
  /* unary elementwise */                                                                          \
  X(ABS, "Abs", unary, unary) X(SIGN, "Sign", unary, unary)                                        \
  X(RECIPROCAL, "Reciprocal", unary, unary)                                                        \
  X(ELU, "Elu", unary, unary) X(SELU, "Selu", unary, unary) X(CELU, "Celu", unary, unary)          \
  X(HARD_SIGMOID, "HardSigmoid", unary, unary) X(HARD_SWISH, "HardSwish", unary, unary)            \
  X(GELU, "Gelu", unary, unary) X(SOFTPLUS, "Softplus", unary, unary)                              \
  X(SOFTSIGN, "Softsign", unary, unary) X(THRESHOLDED_RELU, "ThresholdedRelu", unary, unary)       \
  X(SHRINK, "Shrink", unary, unary) X(MISH, "Mish", unary, unary) X(FLOOR, "Floor", unary, unary)  \
  X(CEIL, "Ceil", unary, unary) X(ROUND, "Round", unary, unary) X(SIN, "Sin", unary, unary)        \
  X(COS, "Cos", unary, unary) X(TAN, "Tan", unary, unary) X(ASIN, "Asin", unary, unary)            \
  X(ACOS, "Acos", unary, unary) X(ATAN, "Atan", unary, unary) X(SINH, "Sinh", unary, unary)        \
  X(COSH, "Cosh", unary, unary) X(ASINH, "Asinh", unary, unary) X(ACOSH, "Acosh", unary, unary)    \
  X(ATANH, "Atanh", unary, unary) X(NOT, "Not", unary, unary) X(IS_NAN, "IsNaN", unary, unary)     \
  X(IS_INF, "IsInf", unary, unary)                                                                 \
  /* shapes, indexing and data movement */                                                         \
  X(SHAPE, "Shape", shape, shape) X(SIZE, "Size", shape, shape) X(SLICE, "Slice", slice, slice)    \
  X(SPLIT, "Split", split, split) X(EXPAND, "Expand", expand, expand) X(TILE, "Tile", tile, tile)  \
  X(PAD, "Pad", pad, pad) X(TRILU, "Trilu", trilu, trilu) X(RANGE, "Range", range, range)          \
  X(CONSTANT_OF_SHAPE, "ConstantOfShape", constant_of_shape, constant_of_shape)                    \
  X(EYE_LIKE, "EyeLike", eye_like, eye_like) X(ONE_HOT, "OneHot", one_hot, one_hot)                \
  X(GATHER_ELEMENTS, "GatherElements", gather_elements, gather_elements)                           \
  X(GATHER_ND, "GatherND", gather_nd, gather_nd)                                                   \
  X(SCATTER_ND, "ScatterND", scatter_nd, scatter_nd)                                               \
  X(SCATTER_ELEMENTS, "ScatterElements", scatter_elements, scatter_elements)                       \
  X(DEPTH_TO_SPACE, "DepthToSpace", depth_space, depth_space)                                      \
  X(SPACE_TO_DEPTH, "SpaceToDepth", depth_space, depth_space) X(CUMSUM, "CumSum", cumsum, cumsum)  \
  /* reductions */                                                                                 \
  X(REDUCE_MAX, "ReduceMax", reduce, reduce) X(REDUCE_MIN, "ReduceMin", reduce, reduce)            \
  X(REDUCE_PROD, "ReduceProd", reduce, reduce) X(REDUCE_L1, "ReduceL1", reduce, reduce)            \
  X(REDUCE_L2, "ReduceL2", reduce, reduce) X(REDUCE_SUM_SQUARE, "ReduceSumSquare", reduce, reduce) \
  X(REDUCE_LOG_SUM, "ReduceLogSum", reduce, reduce)                                                \
  X(REDUCE_LOG_SUM_EXP, "ReduceLogSumExp", reduce, reduce)                                         \
  X(ARG_MAX, "ArgMax", arg_reduce, arg_reduce) X(ARG_MIN, "ArgMin", arg_reduce, arg_reduce)        \
  X(HARDMAX, "Hardmax", softmax, softmax)                                                          \
  /* layers */                                                                                     \
  X(CONV_TRANSPOSE, "ConvTranspose", conv_transpose, conv_transpose)                               \
  X(EINSUM, "Einsum", einsum, einsum)                                                              \
  X(NLL_LOSS, "NegativeLogLikelihoodLoss", nll_loss, nll_loss)                                     \
  X(GLOBAL_MAX_POOL, "GlobalMaxPool", global_pool, global_pool)                                    \
  X(INSTANCE_NORM, "InstanceNormalization", instance_norm, instance_norm)                         \
  X(SCATTER, "Scatter", scatter_elements, scatter_elements) /* ScatterElements before opset 11 */ \
  /* computed by the executor's caller (ops/exec.h); not an ONNX op */                              \
  X(EXTERN, "TyExtern", extern, extern)                                                            \
  /* recurrent layers (ops/kernels/rnn.c) */                                                       \
  X(LSTM, "LSTM", rnn, rnn) X(GRU, "GRU", rnn, rnn) X(RNN, "RNN", rnn, rnn)                     \
  /* interpolation (ops/kernels/resize.c) */                                                      \
  X(RESIZE, "Resize", resize, resize) X(UPSAMPLE, "Upsample", resize, resize)                     \
  /* ops/kernels/topk.c */                                                                        \
  X(TOP_K, "TopK", top_k, top_k)                                                                  \
  /* ops/kernels/local_norm.c */                                                                  \
  X(LRN, "LRN", lrn, lrn) X(MVN, "MeanVarianceNormalization", mvn, mvn)                          \
  /* ops/kernels/grid_sample.c */                                                                 \
  X(GRID_SAMPLE, "GridSample", grid_sample, grid_sample)                                          \
  /* random generators (ops/kernels/random.c) */                                                  \
  X(RANDOM_NORMAL, "RandomNormal", random, random)                                                \
  X(RANDOM_NORMAL_LIKE, "RandomNormalLike", random, random)                                       \
  X(RANDOM_UNIFORM, "RandomUniform", random, random)                                              \
  X(RANDOM_UNIFORM_LIKE, "RandomUniformLike", random, random)                                     \
  X(BERNOULLI, "Bernoulli", random, random) X(MULTINOMIAL, "Multinomial", multinomial, multinomial)
/* clang-format on */

typedef enum {
#define TY_OP_ENUM_(e, s, k, r) TY_OP_##e,
  TY_OP_LIST(TY_OP_ENUM_)
#undef TY_OP_ENUM_
      TY_OP_COUNT_
} ty_op;

/* ONNX op_type of op ("Conv"); "?" for an out-of-range value. */
const char *ty_op_name(ty_op op);
/* Looks up an ONNX op_type of the default domain; TY_ENOTFOUND if unknown. */
int ty_op_from_name(const char *op_type, ty_op *out_op);

typedef enum {
  TY_ATTR_FLOAT = 1,
  TY_ATTR_INT = 2,
  TY_ATTR_STRING = 3,
  TY_ATTR_TENSOR = 4,
  TY_ATTR_FLOATS = 6,
  TY_ATTR_INTS = 7,
  TY_ATTR_STRINGS = 8,
} ty_attr_type; /* numbered as ONNX AttributeProto.AttributeType */

typedef struct ty_graph_attr {
  char *name;
  ty_attr_type type;
  int64_t i;
  float f;
  char *s;       /* NUL-terminated (TY_ATTR_STRING); n of them in a row (TY_ATTR_STRINGS) */
  int64_t *ints; /* n entries (TY_ATTR_INTS) */
  float *floats; /* n entries (TY_ATTR_FLOATS) */
  size_t n;
  ty_tensor *t; /* TY_ATTR_TENSOR */
} ty_graph_attr;

#define TY_NO_VALUE (-1)

typedef struct ty_graph_node {
  ty_op op;
  int opset;  /* ai.onnx opset version whose semantics this node follows */
  char *name; /* never NULL; the ONNX name, or "<OpType>_<index>" if it had none */
  int n_inputs;
  int *inputs; /* value ids or TY_NO_VALUE */
  int n_outputs;
  int *outputs; /* value ids or TY_NO_VALUE */
  int n_attrs;
  ty_graph_attr *attrs;
} ty_graph_node;

typedef struct ty_graph_value {
  char *name;
  ty_dtype dtype;    /* TY_DTYPE_INVALID until inferred */
  ty_shape shape;    /* rank TY_RANK_UNKNOWN until inferred */
  ty_tensor *init;   /* initializer data, owned by the graph; NULL otherwise */
  int producer;      /* index of the producing node, or -1 */
  bool is_input;     /* a graph input fed at run time */
  bool is_output;    /* a graph output */
  bool init_dropped; /* its data was freed (ty_graph_drop_init_data): init is an empty
                      * tensor, shape and dtype still the initializer's */
} ty_graph_value;

typedef struct ty_graph ty_graph;

/* ---- lifecycle and import ----------------------------------------------- */
int ty_graph_create(ty_graph **out_graph);
void ty_graph_destroy(ty_graph *g);
/* Parses an ONNX ModelProto, converts it (initializers, Constant nodes,
 * opset) and runs shape inference. On failure returns TY_EUNSUPPORTED (op,
 * attribute or dtype we do not handle), TY_EINVAL (malformed model),
 * TY_EPROTO (not a ModelProto) or TY_EIO, with the reason in err. */
int ty_graph_load_bytes(const void *data, size_t len, char *err, size_t err_len,
                        ty_graph **out_graph);
int ty_graph_load_file(const char *path, char *err, size_t err_len, ty_graph **out_graph);
/* A deep copy of g, then the passes an import runs (shape inference and
 * folding): the graph ty_graph_load_bytes of g's ty_graph_to_onnx gives,
 * without the encoding and its parse beside the two graphs (a trainer
 * copying a large model holds one more copy of its weights, not three).
 * Dropped initializers stay dropped. Errors: TY_ENOMEM and those of shape
 * inference, in err. The caller destroys *out_graph. */
int ty_graph_clone(const ty_graph *g, char *err, size_t err_len, ty_graph **out_graph);

/* Decodes a serialized ONNX TensorProto (the input_*.pb files of the ONNX
 * test suite). what names it in errors. The caller owns *out_tensor. */
int ty_onnx_tensor_load(const void *data, size_t len, const char *what, char *err, size_t err_len,
                        ty_tensor **out_tensor);

/* ---- export ------------------------------------------------------------- */
/* Initializer data to write in place of the graph's own (trained weights).
 * The tensor is borrowed; its dtype and shape must match the initializer.
 * A NULL tensor is filled by ty_graph_write_onnx's fill (ty_graph_to_onnx
 * refuses it); an initializer whose data was dropped needs an override. */
typedef struct ty_init_override {
  const char *name;
  const ty_tensor *tensor;
} ty_init_override;

/* Serialises the graph as an ONNX ModelProto (ir_version 8, the graph's
 * opset) into a malloc'd buffer the caller frees with free(). */
int ty_graph_to_onnx(const ty_graph *g, const ty_init_override *overrides, size_t n_overrides,
                     char *err, size_t err_len, uint8_t **out_data, size_t *out_len);
/* The streamed export's output: the file's bytes in order, borrowed for
 * the call; a nonzero return stops the export with it. */
typedef int (*ty_onnx_emit)(const void *data, size_t len, void *user);
/* Supplies the bytes of override k, one whose tensor is NULL, when the
 * export reaches its initializer: exactly the initializer's size (from its
 * dtype and the graph's shape), through emit(data, len, emit_user) in
 * pieces of any size; they may be freed as soon as emitted. */
typedef int (*ty_onnx_fill)(size_t k, ty_onnx_emit emit, void *emit_user, void *user);
/* The bytes of ty_graph_to_onnx with the same overrides, handed to emit as
 * they are made: no encoding is held, and an override whose tensor is
 * NULL is asked of fill when its initializer is reached, so a caller
 * (a plan's rank 0 gathering a checkpoint) holds one initializer at a
 * time. Errors: the first nonzero emit or fill return, TY_EINVAL for a
 * fill that gives another size and those of ty_graph_to_onnx. */
int ty_graph_write_onnx(const ty_graph *g, const ty_init_override *overrides, size_t n_overrides,
                        ty_onnx_fill fill, void *fill_user, ty_onnx_emit emit, void *emit_user,
                        char *err, size_t err_len);
/* Writes the model to path atomically (temp file + fsync + rename), so a
 * checkpoint is either the old or the new one. */
int ty_graph_save_onnx(const ty_graph *g, const ty_init_override *overrides, size_t n_overrides,
                       const char *path, char *err, size_t err_len);

/* ---- reading ------------------------------------------------------------ */
int ty_graph_opset(const ty_graph *g);
size_t ty_graph_n_nodes(const ty_graph *g);
/* Borrowed pointers; valid until the graph is changed or destroyed. */
const ty_graph_node *ty_graph_node_at(const ty_graph *g, size_t index);
size_t ty_graph_n_values(const ty_graph *g);
const ty_graph_value *ty_graph_value_at(const ty_graph *g, int id);
/* Value id for a name, or TY_NO_VALUE. */
int ty_graph_find_value(const ty_graph *g, const char *name);
/* Whether op is one of ONNX's Reduce* family (the data in input 0, axes
 * as input 1 or an attribute, keepdims). */
bool ty_op_is_reduce(ty_op op);
/* Whether op draws random numbers (RandomNormal, RandomNormalLike,
 * RandomUniform, RandomUniformLike, Bernoulli, Multinomial): never folded,
 * no gradient, a new draw per run (ops/kernels/random.c). Dropout is not
 * one: it draws only in training (its mask as these draw) and has a
 * gradient. */
bool ty_op_is_random(ty_op op);
/* Ints attributes ops/shard gives a random op (and a Dropout) that
 * computes a slice of its global output: the global shape and the slice's
 * first index per dim, so the rank draws the elements of the one-process
 * tensor (mask) it holds. */
#define TY_RANDOM_FULL "ty_random_full"
#define TY_RANDOM_START "ty_random_start"
/* 0 when t may be bound to value id before a run: id names a graph input
 * or initializer and t has its dtype and every known dim of its shape;
 * else an error naming the value and what differs. Both executors use it
 * so that their refusals read the same. */
int ty_graph_check_bind(const ty_graph *g, int id, const ty_tensor *t, char *err, size_t err_len);
/* Graph inputs fed at run time (initializers excluded), in ONNX order. */
size_t ty_graph_n_inputs(const ty_graph *g);
int ty_graph_input(const ty_graph *g, size_t i);
size_t ty_graph_n_outputs(const ty_graph *g);
int ty_graph_output(const ty_graph *g, size_t i);
/* Initializer value ids in ONNX order. */
size_t ty_graph_n_initializers(const ty_graph *g);
int ty_graph_initializer(const ty_graph *g, size_t i);

/* Attribute lookup on a node; NULL / the default when absent. */
const ty_graph_attr *ty_graph_node_attr(const ty_graph_node *n, const char *name);
int64_t ty_graph_node_attr_int(const ty_graph_node *n, const char *name, int64_t dflt);
float ty_graph_node_attr_float(const ty_graph_node *n, const char *name, float dflt);
/* The NUL-terminated string or dflt. */
const char *ty_graph_node_attr_string(const ty_graph_node *n, const char *name, const char *dflt);
/* Input id i or TY_NO_VALUE when the node has fewer inputs. */
int ty_graph_node_input(const ty_graph_node *n, int i);

/* ---- building and rewriting (for autodiff, fusion, tests) --------------- */
/* Sets the opset new nodes follow (default 17). */
void ty_graph_set_opset(ty_graph *g, int opset);
/* Adds a value. name NULL picks a unique "_v<id>". shape NULL = unknown. */
int ty_graph_add_value(ty_graph *g, const char *name, ty_dtype dt, const ty_shape *shape,
                       int *out_id);
int ty_graph_mark_input(ty_graph *g, int id);
int ty_graph_mark_output(ty_graph *g, int id);
/* Makes value id an initializer holding t; the graph takes ownership of t
 * (also on failure) and frees any previous data. */
int ty_graph_set_initializer(ty_graph *g, int id, ty_tensor *t);
/* Frees initializer id's data, keeping its name, dtype and shape (the
 * value's): a trainer whose ranks hold shards of the weights keeps the
 * imported model's structure alone. init becomes an empty tensor and
 * init_dropped is set; exporting the graph then needs an override for it.
 * TY_EINVAL when id is no initializer. */
int ty_graph_drop_init_data(ty_graph *g, int id);
/* Appends a node; name NULL picks "<OpType>_<index>". Input and output ids
 * are copied. Fails if an output already has a producer. */
int ty_graph_add_node(ty_graph *g, ty_op op, const char *name, const int *inputs, int n_inputs,
                      const int *outputs, int n_outputs, int *out_index);
int ty_graph_node_set_int(ty_graph *g, size_t node, const char *name, int64_t v);
int ty_graph_node_set_float(ty_graph *g, size_t node, const char *name, float v);
int ty_graph_node_set_ints(ty_graph *g, size_t node, const char *name, const int64_t *v, size_t n);
int ty_graph_node_set_floats(ty_graph *g, size_t node, const char *name, const float *v, size_t n);
int ty_graph_node_set_string(ty_graph *g, size_t node, const char *name, const char *v);
/* n strings of lens[i] bytes (NUL bytes inside a string are refused). */
int ty_graph_node_set_strings(ty_graph *g, size_t node, const char *name, const char *const *v,
                              const size_t *lens, size_t n);
/* Copies the TY_ATTR_STRINGS attribute a (of any node) onto node. */
int ty_graph_node_copy_strings(ty_graph *g, size_t node, const ty_graph_attr *a);
/* String i of a TY_ATTR_STRINGS attribute, or NULL. */
const char *ty_graph_attr_string_at(const ty_graph_attr *a, size_t i);
/* Takes ownership of t (also on failure). */
int ty_graph_node_set_tensor(ty_graph *g, size_t node, const char *name, ty_tensor *t);

/* Fills out_order (ty_graph_n_nodes entries) with a topological order of
 * the nodes (stable: original order where possible). TY_EINVAL on a cycle
 * or a value read but never produced, fed or initialised. */
int ty_graph_topo_order(const ty_graph *g, size_t *out_order);

/* out[v] (ty_graph_n_values entries): value v is computed from constants
 * alone, so any part of the graph can compute it for itself: a Constant
 * node's output, or an output of a node that draws nothing (neither
 * random nor Dropout) and reads only such values and non-float
 * initializers (PyTorch's exported Slice starts, ends and axes, and the
 * arithmetic on them). Pipeline stages copy such nodes instead of sending
 * their outputs (ops/plan/stages.c, ops/train/pipe_setup.c). TY_ENOMEM, or
 * TY_EINVAL as ty_graph_topo_order. */
int ty_graph_static_values(const ty_graph *g, bool *out);
/* out[v]: value v is static (above), or computed by cheap ops
 * (comparisons, logic, casts, shape arithmetic, reshapes, Where, Add /
 * Sub / Mul) from the data feeds (graph inputs), such values and non-float
 * initializers, never a weight: a padding mask x == 0 and what is made of
 * it. Every pipeline rank loads every feed, so a stage that reads such a
 * value computes its own copy of it (for its micro-batch) instead of
 * receiving it, as for a static one: pipeline cuts may cross it (ops/plan/
 * stages.c, ops/train/pipe_setup.c). TY_ENOMEM, or TY_EINVAL as
 * ty_graph_topo_order. */
int ty_graph_recomputable_values(const ty_graph *g, bool *out);

/* Infers dtype and shape of every value produced by a node, in topological
 * order, folding Constant nodes and initializers where an op needs input
 * values (Reshape's shape, Squeeze's axes). Input shapes may carry
 * TY_DIM_BATCH; it stays symbolic. Errors name the node. */
int ty_graph_infer_shapes(ty_graph *g, char *err, size_t err_len);

#endif
