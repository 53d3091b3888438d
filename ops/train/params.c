/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which initializers train. ONNX does not say which initializers are
 * parameters and which are constants (PyTorch's buffers, the scalars its
 * exporter folds), so the choice is made here, once, and logged:
 *
 *   - config.trainable set: the float initializers matching its patterns;
 *     otherwise every float initializer except rank-0 scalars, which in
 *     exported models are constants (GELU's 0.5, an attention scale), and
 *     those holding -inf, which no parameter does: an additive attention
 *     mask (nn.Transformer's
 *     generate_square_subsequent_mask, a causal buffer), which a gradient
 *     step would change and weight decay turn into NaN;
 *   - less those matching config.frozen;
 *   - less those the loss does not depend on through a differentiable input
 *     (ops/autodiff gives them no gradient): initializers that only reach
 *     shapes, indices, masks or other constant arithmetic.
 * Integer initializers never train, and BatchNormalization's running
 * statistics are updated by bnstats.c, not by gradients.
 *
 * Only the chosen parameters get gradients and optimizer state, so
 * freezing also saves memory and optimizer time. A pattern that matches no
 * float initializer is an error (a typo would otherwise train everything).
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/fold_softmax.h"
#include "ops/ops_internal.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LISTED_FROZEN 6

static bool matches(char *const *pats, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (fnmatch(pats[i], name, 0) == 0) return true;
  return false;
}

/* A BatchNormalization running statistic (input 3 or 4 of a BN node). */
static bool bn_stat(const ty_graph *g, int id) {
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    if (n->op == TY_OP_BATCH_NORM && n->n_inputs >= 5 && (n->inputs[3] == id || n->inputs[4] == id))
      return true;
  }
  return false;
}

static bool is_float_init(const ty_graph *g, int id) {
  const ty_graph_value *v = ty_graph_value_at(g, id);
  return v->init && v->dtype == TY_DTYPE_F32 && !bn_stat(g, id);
}

static int check_patterns(const ty_graph *g, char *const *pats, size_t n, const char *field,
                          char *err, size_t err_len) {
  for (size_t p = 0; p < n; p++) {
    bool hit = false;
    for (size_t i = 0; !hit && i < ty_graph_n_initializers(g); i++) {
      int id = ty_graph_initializer(g, i);
      hit = is_float_init(g, id) && matches(&pats[p], 1, ty_graph_value_at(g, id)->name);
    }
    if (!hit)
      return ty_errf(err, err_len, TY_EINVAL,
                     "config.%s[%zu]: \"%s\" matches no float initializer of the model", field, p,
                     pats[p]);
  }
  return 0;
}

/* Whether initializer v holds -inf (its data at hand): a mask's "never
 * attend", which no parameter holds (a NaN one, a diverged weight, still
 * trains, and spreads its NaN as in PyTorch). */
static bool minus_inf(const ty_graph_value *v) {
  if (v->init_dropped || !v->init->data) return false;
  const float *x = ty_tensor_f32(v->init);
  for (int64_t i = 0, n = ty_tensor_numel(v->init); i < n; i++)
    if (isinf(x[i]) && x[i] < 0) return true;
  return false;
}

/* Why a float initializer is not trained, for the log. */
static const char *frozen_why(const ty_train *t, int id) {
  const ty_train_config *c = t->cfg;
  const ty_graph_value *v = ty_graph_value_at(t->g, id);
  if (matches(c->frozen, c->n_frozen, v->name)) return "config.frozen";
  if (c->n_trainable)
    return matches(c->trainable, c->n_trainable, v->name) ? "no gradient"
                                                          : "not in config.trainable";
  if (v->init->shape.rank == 0) return "scalar constant";
  return minus_inf(v) ? "holds -inf: a mask, not a parameter" : "no gradient";
}

/* The rule above, gradients aside: initializer id of g may train. */
static bool candidate(const ty_graph *g, const ty_train_config *c, int id) {
  const ty_graph_value *v = ty_graph_value_at(g, id);
  if (!is_float_init(g, id)) return false;
  bool in = c->n_trainable ? matches(c->trainable, c->n_trainable, v->name)
                           : v->init->shape.rank != 0 && !minus_inf(v);
  return in && !matches(c->frozen, c->n_frozen, v->name);
}

int ty_train_candidate_names(const ty_graph *g, const ty_train_config *c, const char ***out,
                             size_t *n_out) {
  size_t ni = ty_graph_n_initializers(g), n = 0;
  const char **names = calloc(ni + 1, sizeof *names);
  if (!names) return TY_ENOMEM;
  for (size_t i = 0; i < ni; i++)
    if (candidate(g, c, ty_graph_initializer(g, i)))
      names[n++] = ty_graph_value_at(g, ty_graph_initializer(g, i))->name;
  *out = names;
  *n_out = n;
  return 0;
}

static void log_params(const ty_train *t) {
  FILE *f = ty__train_log(t);
  fprintf(f, "parameters: %zu tensors, %llu values trained; %zu float initializer%s frozen", t->np,
          (unsigned long long)t->n_param_values, t->n_frozen, t->n_frozen == 1 ? "" : "s");
  for (size_t i = 0; i < t->n_frozen && i < LISTED_FROZEN; i++)
    fprintf(f, "%s%s (%s)", i ? ", " : ": ", ty_graph_value_at(t->g, t->frozen_ids[i])->name,
            frozen_why(t, t->frozen_ids[i]));
  if (t->n_frozen > LISTED_FROZEN) fprintf(f, ", and %zu more", t->n_frozen - LISTED_FROZEN);
  fprintf(f, "\n");
  fflush(f);
}

/* Keeps the candidates that got a gradient; the other float ones among
 * the model's ni initializers (autodiff appends its own after them) are
 * frozen. */
static int collect(ty_train *t, const int *cand, const int *grads, size_t n, size_t ni) {
  t->param_ids = calloc(n + 1, sizeof *t->param_ids);
  t->grad_ids = calloc(n + 1, sizeof *t->grad_ids);
  t->params = calloc(n + 1, sizeof *t->params);
  t->frozen_ids = calloc(ni + 1, sizeof *t->frozen_ids);
  if (!t->param_ids || !t->grad_ids || !t->params || !t->frozen_ids) return TY_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (grads[i] == TY_NO_VALUE) continue;
    int rc = ty_tensor_clone(ty_graph_value_at(t->g, cand[i])->init, &t->params[t->np]);
    if (rc != 0) return rc;
    t->param_ids[t->np] = cand[i];
    t->grad_ids[t->np] = grads[i];
    t->n_param_values += (uint64_t)ty_tensor_numel(t->params[t->np]);
    t->np++;
  }
  for (size_t i = 0; i < ni; i++) {
    int id = ty_graph_initializer(t->g, i);
    bool trained = false;
    for (size_t p = 0; p < t->np && !trained; p++)
      trained = t->param_ids[p] == id;
    if (!trained && is_float_init(t->g, id)) t->frozen_ids[t->n_frozen++] = id;
  }
  return 0;
}

static void warn_merged(const ty_train *t);
static void warn_folded(const ty_train *t);
static void warn_transposed(const ty_train *t);

/* Transposes read by MatMuls folded into them (ops/fold_matmul.c),
 * attention's scale and mask into its Softmax (ops/fold_softmax.c), and
 * LayerNorm's three gradients into one node (ty_autodiff_one_grad_layer_norm),
 * on the CPU executor's single-process graph: the CUDA backend and the
 * parallel plans' sharding read MatMul, Softmax and TyGrad without the
 * attributes. cand:
 * the initializers that may be trained (never read as constants). */
static int fold_graph(ty_train *t, const int *cand, size_t n, char *err, size_t err_len) {
  if (t->cfg->gpu || t->opts.parallel || t->pipe) return 0;
  size_t folded = 0, sm = 0, ln = 0;
  int rc = ty__fold_transpose_matmul(t->g, &folded);
  if (rc != 0)
    return ty_errf(err, err_len, rc, "model: folding Transposes into MatMuls: %s", ty_strerror(rc));
  if ((rc = ty__fold_softmax(t->g, cand, n, &sm)) != 0)
    return ty_errf(err, err_len, rc, "model: folding scales and masks into Softmax: %s",
                   ty_strerror(rc));
  if ((rc = ty_autodiff_one_grad_layer_norm(t->g, &ln)) != 0)
    return ty_errf(err, err_len, rc, "model: marking LayerNorms: %s", ty_strerror(rc));
  FILE *f = ty__train_log(t);
  if (folded) fprintf(f, "matmul: %zu transposed operands read in place\n", folded);
  if (sm) fprintf(f, "softmax: %zu scaled or masked in one pass\n", sm);
  if (ln) fprintf(f, "layernorm: %zu with one gradient node for X, scale and bias\n", ln);
  fflush(f);
  return 0;
}

int ty__train_params(ty_train *t, char *err, size_t err_len) {
  const ty_train_config *c = t->cfg;
  int rc = check_patterns(t->g, c->trainable, c->n_trainable, "trainable", err, err_len);
  if (rc == 0) rc = check_patterns(t->g, c->frozen, c->n_frozen, "frozen", err, err_len);
  if (rc != 0) return rc;
  size_t ni = ty_graph_n_initializers(t->g), n = 0;
  int *cand = calloc(ni + 1, sizeof *cand), *grads = calloc(ni + 1, sizeof *grads);
  rc = TY_ENOMEM;
  if (!cand || !grads) goto done;
  for (size_t i = 0; i < ni; i++)
    if (candidate(t->g, c, ty_graph_initializer(t->g, i)))
      cand[n++] = ty_graph_initializer(t->g, i);
  if ((rc = fold_graph(t, cand, n, err, err_len)) != 0) goto done;
  if ((rc = ty_autodiff(t->g, t->loss_id, cand, n, grads, err, err_len)) != 0) goto done;
  if ((rc = collect(t, cand, grads, n, ni)) != 0) goto done;
  if (t->np == 0) {
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "model: the loss depends on no trainable float initializer%s",
                 c->n_trainable || c->n_frozen ? " (see config.trainable and config.frozen)" : "");
    goto done;
  }
  log_params(t);
  warn_merged(t);
  warn_folded(t);
  warn_transposed(t);
done:
  free(cand);
  free(grads);
  return rc;
}

/* ---- warnings about the exported model -------------------------------------- */

/* The node computing value id, looking through ops that only move values. */
static const ty_graph_node *source(const ty_graph *g, int id) {
  for (int hops = 0; hops < 16 && id != TY_NO_VALUE; hops++) {
    const ty_graph_value *v = ty_graph_value_at(g, id);
    if (v->producer < 0) return NULL;
    const ty_graph_node *n = ty_graph_node_at(g, (size_t)v->producer);
    bool moves = n->op == TY_OP_IDENTITY || n->op == TY_OP_RESHAPE || n->op == TY_OP_FLATTEN ||
                 n->op == TY_OP_SQUEEZE || n->op == TY_OP_UNSQUEEZE || n->op == TY_OP_TRANSPOSE;
    if (!moves) return n;
    id = n->n_inputs > 0 ? n->inputs[0] : TY_NO_VALUE;
  }
  return NULL;
}

void ty__train_warn_softmax(const ty_train *t) {
  const ty_graph *m = t->model;
  FILE *f = ty__train_log(t);
  if (t->cfg->logits_output) {
    const ty_graph_node *s = source(m, ty_graph_find_value(m, t->cfg->logits_output));
    if (s && s->op == TY_OP_SOFTMAX)
      fprintf(f,
              "warning: the loss is applied after a Softmax: "
              "config.softmax_cross_entropy.logits_output \"%s\" comes "
              "from node \"%s\" (Softmax), and the builtin loss applies softmax itself, so "
              "training sees "
              "softmax(softmax(x)) and learns slowly; export the model without its final Softmax, "
              "or name the "
              "Softmax's input \"%s\" as logits_output\n",
              t->cfg->logits_output, s->name, ty_graph_value_at(m, s->inputs[0])->name);
  }
  for (size_t i = 0; i < ty_graph_n_nodes(m); i++) {
    const ty_graph_node *n = ty_graph_node_at(m, i);
    const ty_graph_node *s = n->op == TY_OP_SOFTMAX_CE_LOSS ? source(m, n->inputs[0]) : NULL;
    if (s && s->op == TY_OP_SOFTMAX)
      fprintf(f,
              "warning: the loss is applied after a Softmax: node \"%s\" (SoftmaxCrossEntropyLoss) "
              "reads the output "
              "of node \"%s\" (Softmax) and applies softmax again; feed it the Softmax's input\n",
              n->name, s->name);
  }
  fflush(f);
}

/* Whether every element of float tensor x has the same value. */
static bool constant_filled(const ty_tensor *x) {
  if (!x || x->dtype != TY_DTYPE_F32) return false;
  const float *d = x->data;
  int64_t n = ty_tensor_numel(x);
  for (int64_t i = 1; i < n; i++)
    if (d[i] != d[0]) return false;
  return n > 1;
}

/* Value id, looking back through Identity nodes (how PyTorch's exporter
 * hands one deduplicated initializer to each of its users). */
static int through_identity(const ty_graph *g, int id) {
  for (int hops = 0; hops < 16 && id != TY_NO_VALUE; hops++) {
    int p = ty_graph_value_at(g, id)->producer;
    const ty_graph_node *n = p >= 0 ? ty_graph_node_at(g, (size_t)p) : NULL;
    if (!n || n->op != TY_OP_IDENTITY || n->n_inputs < 1) break;
    id = n->inputs[0];
  }
  return id;
}

/* Who reads a parameter: the first two readers (Identity nodes aside),
 * how many there are, and whether any reads it through an Identity. */
typedef struct readers {
  long node[2];
  int slot[2];
  int n;
  bool same_use;     /* two readers share their op and input slot */
  bool via_identity; /* one reads it through an Identity node */
} readers;

static readers find_readers(const ty_graph *g, int id) {
  readers r = {.node = {-1, -1}};
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    for (int k = 0; n->op != TY_OP_IDENTITY && k < n->n_inputs; k++) {
      if (n->inputs[k] == TY_NO_VALUE || through_identity(g, n->inputs[k]) != id) continue;
      r.via_identity |= n->inputs[k] != id;
      if (r.n == 1 && ty_graph_node_at(g, (size_t)r.node[0])->op == n->op && r.slot[0] == k)
        r.same_use = true;
      if (r.n < 2) r.node[r.n] = (long)i, r.slot[r.n] = k;
      r.n++;
    }
  }
  return r;
}

/* Warns of a trained, constant-filled parameter that several nodes read
 * where PyTorch's eval-mode export merged equal initial values into one
 * initializer: through Identity nodes (the exporter's way of sharing it),
 * or at the same input of the same op. Intentionally shared weights are
 * rarely all one value, so the warning names what to do. */
static void warn_merged(const ty_train *t) {
  const ty_graph *m = t->model;
  FILE *f = ty__train_log(t);
  for (size_t p = 0; p < t->np; p++) {
    const char *name = ty_graph_value_at(t->g, t->param_ids[p])->name;
    int id = ty_graph_find_value(m, name);
    if (id == TY_NO_VALUE || !constant_filled(ty_graph_value_at(m, id)->init)) continue;
    readers r = find_readers(m, id);
    if (r.n < 2 || !(r.same_use || r.via_identity)) continue;
    const ty_graph_node *a = ty_graph_node_at(m, (size_t)r.node[0]);
    const ty_graph_node *b = ty_graph_node_at(m, (size_t)r.node[1]);
    fprintf(f,
            "warning: parameter \"%s\" (every value %g) is read by %d nodes, among them \"%s\" "
            "(%s) and \"%s\" (%s), so they train as one tensor; if these are separate layers, "
            "PyTorch's eval-mode export merged their equal initial values (it deduplicates "
            "initializers): export with training=torch.onnx.TrainingMode.TRAINING to keep them "
            "apart\n",
            name, (double)((const float *)ty_graph_value_at(m, id)->init->data)[0], r.n, a->name,
            ty_op_name(a->op), b->name, ty_op_name(b->op));
  }
  fflush(f);
}

/* Warns once when trained parameters carry the names PyTorch's eval-mode
 * export (its default) gives the weights of a Conv it folded a following
 * BatchNormalization into: the model then trains without the batch
 * normalisation the PyTorch model has. A Conv without BatchNorm keeps its
 * module's names in that export, so the name says what happened. */
static void warn_folded(const ty_train *t) {
  static const char prefix[] = "onnx::Conv_";
  size_t n = 0;
  const char *first = NULL;
  for (size_t p = 0; p < t->np; p++) {
    const char *name = ty_graph_value_at(t->g, t->param_ids[p])->name;
    if (strncmp(name, prefix, sizeof prefix - 1) != 0) continue;
    if (!first) first = name;
    n++;
  }
  if (!n) return;
  FILE *f = ty__train_log(t);
  fprintf(f,
          "warning: %zu trained parameters are named like \"%s\": PyTorch's eval-mode export "
          "(its default) folded each BatchNormalization into the Conv before it, so the model "
          "trains without batch normalisation; export with "
          "training=torch.onnx.TrainingMode.TRAINING to keep it\n",
          n, first);
  fflush(f);
}

/* Whether 2-D float tensor b holds the transpose of 2-D float tensor a. */
static bool is_transpose(const ty_tensor *a, const ty_tensor *b) {
  if (!a || !b || a == b || a->dtype != TY_DTYPE_F32 || b->dtype != TY_DTYPE_F32) return false;
  if (a->shape.rank != 2 || b->shape.rank != 2) return false;
  int64_t r = a->shape.dims[0], c = a->shape.dims[1];
  if (b->shape.dims[0] != c || b->shape.dims[1] != r || r * c < 2) return false;
  const float *x = a->data, *y = b->data;
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < c; j++)
      if (x[i * c + j] != y[j * r + i]) return false;
  return true;
}

/* The model's initializer of trained parameter p. */
static const ty_tensor *param_init(const ty_train *t, size_t p) {
  const char *name = ty_graph_value_at(t->g, t->param_ids[p])->name;
  int id = ty_graph_find_value(t->model, name);
  return id == TY_NO_VALUE ? NULL : ty_graph_value_at(t->model, id)->init;
}

/* Warns of what PyTorch's constant folding (on by default, in training
 * mode too) does to a Linear applied to a 3-D input: the exporter writes
 * MatMul(x, Transpose(W)) and folds the Transpose into a new initializer
 * "onnx::MatMul_<n>". Alone that trains as W would (the same elements,
 * transposed), but under a name PyTorch's load_state_dict cannot map
 * back. For a tied weight (GPT's output layer reading the token
 * embedding) the folded copy is a second tensor: the two uses train
 * apart and the losses drift from PyTorch's, silently. So each copy that
 * equals another parameter's transpose is named, and the names once. */
static void warn_transposed(const ty_train *t) {
  static const char prefix[] = "onnx::MatMul_";
  FILE *f = ty__train_log(t);
  size_t n = 0;
  const char *first = NULL;
  for (size_t p = 0; p < t->np; p++) {
    const char *name = ty_graph_value_at(t->g, t->param_ids[p])->name;
    if (strncmp(name, "onnx::", 6) != 0) continue;
    if (strncmp(name, prefix, sizeof prefix - 1) == 0 && n++ == 0) first = name;
    for (size_t q = 0; q < t->np; q++) {
      if (q == p || !is_transpose(param_init(t, q), param_init(t, p))) continue;
      fprintf(f,
              "warning: parameter \"%s\" holds the transpose of parameter \"%s\": PyTorch's "
              "constant folding (do_constant_folding=True, its default) copied a tied weight's "
              "Transpose into a new initializer, so the two uses train apart, unlike PyTorch; "
              "export with do_constant_folding=False to keep one tensor\n",
              name, ty_graph_value_at(t->g, t->param_ids[q])->name);
      break;
    }
  }
  if (n)
    fprintf(f,
            "warning: %zu trained parameters are named like \"%s\": PyTorch's constant folding "
            "transposed Linear weights into new initializers, so the checkpoint does not carry "
            "PyTorch's names for them; export with do_constant_folding=False to keep them\n",
            n, first);
  fflush(f);
}

uint64_t ty_train_n_param_values(const ty_train *t) {
  return t->n_param_values;
}
size_t ty_train_n_frozen(const ty_train *t) {
  return t->n_frozen;
}
const char *ty_train_frozen_name(const ty_train *t, size_t i) {
  return i < t->n_frozen ? ty_graph_value_at(t->g, t->frozen_ids[i])->name : NULL;
}
