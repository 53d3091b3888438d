/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inference form of a model: what evaluation runs and what
 * `trainrun --export-inference` writes for an ONNX runtime.
 *
 * A model exported for training carries its mode in the graph:
 * BatchNormalization's training_mode attribute (and its running-statistics
 * outputs) and Dropout's training_mode input, which every runtime honours.
 * ty__train_inference_mode turns those switches off in place. The export
 * then keeps only what the chosen outputs need (the loss and the labels
 * it reads go), so the file is the network alone, with its trained
 * weights, valid for onnx.checker.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

int ty__train_inference_mode(ty_graph *g) {
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    int rc = 0;
    if (n->op == TY_OP_BATCH_NORM && ty_graph_node_attr(n, "training_mode"))
      rc = ty_graph_node_set_int(g, i, "training_mode", 0);
    else if (n->op == TY_OP_DROPOUT && n->n_inputs > 2)
      ((ty_graph_node *)n)->inputs[2] = TY_NO_VALUE;
    if (rc != 0) return rc;
  }
  return 0;
}

/* ONNX allows BatchNormalization's running statistics and Dropout's mask
 * as outputs only in training mode: the exported nodes keep one output.
 * Only for a graph about to be cut (the dropped values stay unproduced). */
static void single_outputs(ty_graph *g) {
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    ty_graph_node *n = (ty_graph_node *)ty_graph_node_at(g, i);
    if ((n->op == TY_OP_BATCH_NORM || n->op == TY_OP_DROPOUT) && n->n_outputs > 1) n->n_outputs = 1;
  }
}

/* Whether node p still computes v (single_outputs dropped some). */
static bool computes(const ty_graph *g, int p, int v) {
  const ty_graph_node *n = ty_graph_node_at(g, (size_t)p);
  for (int k = 0; k < n->n_outputs; k++)
    if (n->outputs[k] == v) return true;
  return false;
}

/* The ids of the outputs to keep: names[] when given, else every graph
 * output but `loss` (the config's loss output, or NULL). */
static int chosen_outputs(const ty_graph *g, const char *const *names, size_t n, const char *loss,
                          int **out, size_t *out_n, char *err, size_t err_len) {
  size_t cap = n ? n : ty_graph_n_outputs(g);
  int *ids = malloc((cap + 1) * sizeof *ids);
  if (!ids) return TY_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    int v = ty_graph_find_value(g, names[i]);
    const ty_graph_value *gv = v == TY_NO_VALUE ? NULL : ty_graph_value_at(g, v);
    const char *why = NULL;
    if (!gv)
      why = "the model has no value of that name";
    else if (gv->producer < 0)
      why = "it is a graph input or an initializer, not computed by a node";
    else if (!computes(g, gv->producer, v))
      why = "only training computes it (a BatchNormalization's running statistics or a "
            "Dropout's mask)";
    if (why) {
      free(ids);
      return ty_errf(err, err_len, TY_EINVAL, "--output \"%s\": %s", names[i], why);
    }
    ids[k++] = v;
  }
  for (size_t i = 0; !n && i < ty_graph_n_outputs(g); i++) {
    int v = ty_graph_output(g, i);
    if (!loss || strcmp(ty_graph_value_at(g, v)->name, loss) != 0) ids[k++] = v;
  }
  if (k == 0) {
    free(ids);
    return ty_errf(err, err_len, TY_EINVAL,
                   "the model's only output is its loss \"%s\": name the prediction to export "
                   "with --output VALUE (e.g. the logits the loss reads)",
                   loss ? loss : "");
  }
  *out = ids;
  *out_n = k;
  return 0;
}

int ty__train_needed_nodes(const ty_graph *g, const int *outs, size_t n_outs, bool **out) {
  size_t nn = ty_graph_n_nodes(g);
  bool *need = calloc(nn + 1, sizeof *need);
  size_t *stack = malloc((nn + n_outs + 1) * sizeof *stack), top = 0;
  if (!need || !stack) {
    free(need);
    free(stack);
    return TY_ENOMEM;
  }
  for (size_t i = 0; i < n_outs; i++) {
    int p = ty_graph_value_at(g, outs[i])->producer;
    if (p >= 0 && !need[p]) need[p] = true, stack[top++] = (size_t)p;
  }
  while (top > 0) {
    const ty_graph_node *n = ty_graph_node_at(g, stack[--top]);
    for (int k = 0; k < n->n_inputs; k++) {
      int p = n->inputs[k] == TY_NO_VALUE ? -1 : ty_graph_value_at(g, n->inputs[k])->producer;
      if (p >= 0 && !need[p]) need[p] = true, stack[top++] = (size_t)p;
    }
  }
  free(stack);
  *out = need;
  return 0;
}

int ty_train_export_inference(const char *model_path, const char *const *outputs, size_t n_outputs,
                              const char *loss_output, const char *out_path, char *err,
                              size_t err_len) {
  ty_graph *src = NULL, *cut = NULL;
  int *outs = NULL;
  size_t n_outs = 0;
  bool *need = NULL;
  int rc = ty_graph_load_file(model_path, err, err_len, &src);
  if (rc == 0 && (rc = ty__train_inference_mode(src)) == 0) {
    single_outputs(src);
    rc = chosen_outputs(src, outputs, n_outputs, loss_output, &outs, &n_outs, err, err_len);
  }
  if (rc == 0) rc = ty__train_needed_nodes(src, outs, n_outs, &need);
  if (rc == 0) rc = ty__pipe_extract(src, need, outs, n_outs, &cut, err, err_len);
  if (rc == 0) rc = ty_graph_save_onnx(cut, NULL, 0, out_path, err, err_len);
  ty_graph_destroy(cut);
  ty_graph_destroy(src);
  free(outs);
  free(need);
  return rc;
}
