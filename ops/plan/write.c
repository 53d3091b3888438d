/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A plan as JSON (what `trainctl plan --json` prints; the format is
 * documented in docs/planner.md) and as text for people. Both only read
 * the plan; names from the model go through the JSON writer's escaping, so
 * any bytes in a node name still give a valid document.
 */
#include "ops/plan/plan_internal.h"

#include "lib/json/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ty_plan_coll_kind_name(ty_plan_coll_kind k) {
  switch (k) {
  case TY_PLAN_ALL_REDUCE:
    return "all-reduce";
  case TY_PLAN_ALL_GATHER:
    return "all-gather";
  case TY_PLAN_REDUCE_SCATTER:
    return "reduce-scatter";
  case TY_PLAN_ALL_TO_ALL:
    return "all-to-all";
  }
  return "?";
}

/* The data-parallel alternative when the search found none: its reason. */
static const char *no_data_split(const ty_plan *p) {
  for (size_t i = 0; i < p->n_alternatives; i++)
    if (!strcmp(p->alternatives[i].name, "data parallel") && !p->alternatives[i].applicable)
      return p->alternatives[i].why;
  return NULL;
}

/* Whether op o splits work between the ranks: an op that computes
 * nothing (a Constant, a Reshape) may follow its reader's layout either way. */
static bool splits_compute(const ty_plan_op *o) {
  return strncmp(o->strategy, "replicated", strlen("replicated")) != 0 && o->compute_s > 0;
}

/* The first op that runs replicated for want of a sharding rule, or NULL. */
static const ty_plan_op *first_fallback(const ty_plan *p) {
  for (size_t i = 0; i < p->n_ops; i++)
    if (p->ops[i].fallback) return &p->ops[i];
  return NULL;
}

/* The note's tail when ops fell back: the cost model cannot know what they
 * compute, so the replicated plan may have been chosen for that alone. */
static void fallback_tail(const ty_plan *p, char *buf, size_t len) {
  const ty_plan_op *f = first_fallback(p);
  size_t used = strlen(buf);
  if (!f || used >= len) return;
  snprintf(buf + used, len - used,
           "; %zu op%s no sharding rule (first: node \"%.64s\", %s), so %s the whole "
           "global batch on every rank and the cost model counts %s work as a guess: the "
           "predicted step may be far too short",
           p->n_fallback, p->n_fallback == 1 ? " has" : "s have", f->name, ty_op_name(f->op),
           p->n_fallback == 1 ? "it computes" : "they compute",
           p->n_fallback == 1 ? "its" : "their");
}

const char *ty_plan_replicated_note(const ty_plan *p, char *buf, size_t len) {
  buf[0] = '\0';
  if (p->n_stages > 0 || p->mesh[0] * p->mesh[1] < 2) return buf;
  for (size_t i = 0; i < p->n_ops; i++)
    if (splits_compute(&p->ops[i])) return buf;
  const char *batch = no_data_split(p);
  if (batch)
    snprintf(buf, len,
             "every op is replicated: each rank computes every global batch whole, so more "
             "ranks do not make a step faster; the batch cannot be split (%s), and no split of "
             "the model's ops saves more than it costs in communication",
             batch);
  else if (p->batch % p->devices == 0)
    snprintf(buf, len,
             "every op is replicated: each rank computes every global batch whole, so more "
             "ranks do not make a step faster; the cost model predicts that splitting this "
             "model (the batch included) costs more in communication than it saves "
             "(parallelism: data splits the batch anyway)");
  else /* a data job needs equal shares (ty_train_check_data_split) */
    snprintf(buf, len,
             "every op is replicated: each rank computes every global batch whole, so more "
             "ranks do not make a step faster; the cost model predicts that splitting this "
             "model (the batch included) costs more in communication than it saves "
             "(parallelism: data splits the batch anyway given a batch_size the %d ranks "
             "divide; %lld is not a multiple of %d)",
             p->devices, (long long)p->batch, p->devices);
  fallback_tail(p, buf, len);
  return buf;
}

const char *ty_plan_memory_fallback(const ty_plan *p) {
  if (p->n_stages == 0 || p->n_alternatives == 0) return NULL;
  const char *why = p->alternatives[p->n_alternatives - 1].why;
  return strncmp(why, TY__FALLBACK_WHY, strlen(TY__FALLBACK_WHY)) == 0 ? why : NULL;
}

const char *ty_plan_phase_name(ty_plan_phase ph) {
  switch (ph) {
  case TY_PLAN_FORWARD:
    return "forward";
  case TY_PLAN_BACKWARD:
    return "backward";
  case TY_PLAN_GRAD_SYNC:
    return "grad-sync";
  }
  return "?";
}

static size_t put_axes(char *buf, size_t len, size_t off, uint8_t axes) {
  for (int a = 0; a < TY_PLAN_AXES && off + 1 < len; a++)
    if (axes >> a & 1u) buf[off++] = (char)('0' + a);
  buf[off < len ? off : len - 1] = '\0';
  return off;
}

void ty_plan_layout_format(const ty_plan_layout *l, char *buf, size_t len) {
  if (len == 0) return;
  size_t off = 0;
  buf[0] = '\0';
  if (l->rank < 0) {
    snprintf(buf, len, "-");
    return;
  }
  for (int d = 0; d < l->rank && d < TY_MAX_RANK && off + 4 < len; d++) {
    buf[off++] = d ? ',' : '[';
    if (!l->dim_axes[d]) {
      buf[off++] = 'R';
    } else {
      buf[off++] = 'S';
      off = put_axes(buf, len, off, l->dim_axes[d]);
    }
  }
  if (l->rank == 0 && off + 1 < len) buf[off++] = '[';
  if (off + 1 < len) buf[off++] = ']';
  buf[off] = '\0';
  if (l->partial && off + 4 < len) {
    buf[off++] = '+';
    buf[off++] = 'P';
    put_axes(buf, len, off, l->partial);
  }
}

void ty__fmt_bytes(double bytes, char *buf, size_t len) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4)
    bytes /= 1024, u++;
  snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

/* ---- JSON ---------------------------------------------------------------------- */

static void json_layouts(ty_json *j, const char *key, const ty_plan_layout *l, int n) {
  char s[64];
  ty_json_key(j, key);
  ty_json_begin_array(j);
  for (int i = 0; i < n; i++) {
    if (l[i].rank < 0) {
      ty_json_null(j);
      continue;
    }
    ty_plan_layout_format(&l[i], s, sizeof s);
    ty_json_string(j, s);
  }
  ty_json_end_array(j);
}

static void json_op(ty_json *j, const ty_plan *p, const ty_plan_op *o) {
  ty_json_begin_object(j);
  if (p->n_stages > 0) {
    ty_json_key(j, "stage");
    ty_json_int(j, o->stage);
  }
  ty_json_key(j, "name");
  ty_json_string(j, o->name);
  ty_json_key(j, "op");
  ty_json_string(j, ty_op_name(o->op));
  ty_json_key(j, "strategy");
  ty_json_string(j, o->strategy);
  ty_json_key(j, "sharding");
  ty_json_begin_object(j);
  json_layouts(j, "inputs", o->inputs, o->n_inputs);
  json_layouts(j, "outputs", o->outputs, o->n_outputs);
  ty_json_end_object(j);
  if (o->fallback) {
    ty_json_key(j, "fallback");
    ty_json_string(j, o->note);
  }
  ty_json_end_object(j);
}

static void json_collective(ty_json *j, const ty_plan *p, const ty_plan_collective *c) {
  ty_json_begin_object(j);
  ty_json_key(j, "kind");
  ty_json_string(j, ty_plan_coll_kind_name(c->kind));
  ty_json_key(j, "tensor");
  ty_json_string(j, c->tensor);
  ty_json_key(j, "bytes");
  ty_json_uint(j, c->bytes);
  ty_json_key(j, "mesh_axis");
  ty_json_int(j, c->mesh_axis);
  ty_json_key(j, "phase");
  ty_json_string(j, ty_plan_phase_name(c->phase));
  ty_json_key(j, "at");
  ty_json_string(j, c->node >= 0 && (size_t)c->node < p->n_ops ? p->ops[c->node].name : NULL);
  ty_json_key(j, "input");
  if (c->input >= 0)
    ty_json_int(j, c->input);
  else
    ty_json_null(j);
  if (c->dim >= 0) {
    ty_json_key(j, "dim");
    ty_json_int(j, c->dim);
  }
  if (c->src_dim >= 0) {
    ty_json_key(j, "src_dim");
    ty_json_int(j, c->src_dim);
  }
  ty_json_key(j, "predicted_s");
  ty_json_double(j, c->seconds);
  ty_json_end_object(j);
}

static void json_alternative(ty_json *j, const ty_plan_alternative *a) {
  ty_json_begin_object(j);
  ty_json_key(j, "name");
  ty_json_string(j, a->name);
  ty_json_key(j, "mesh");
  if (a->applicable) {
    ty_json_begin_array(j);
    ty_json_int(j, a->mesh[0]);
    ty_json_int(j, a->mesh[1]);
    ty_json_end_array(j);
  } else {
    ty_json_null(j);
  }
  ty_json_key(j, "predicted_step_s");
  if (a->applicable)
    ty_json_double(j, a->step_s);
  else
    ty_json_null(j);
  ty_json_key(j, "memory_per_device_bytes");
  if (a->applicable)
    ty_json_uint(j, a->memory_bytes);
  else
    ty_json_null(j);
  ty_json_key(j, "fits");
  ty_json_bool(j, a->applicable && a->fits);
  if (a->why[0]) {
    ty_json_key(j, "note");
    ty_json_string(j, a->why);
  }
  ty_json_end_object(j);
}

static void json_plan_body(ty_json *j, const ty_plan *p) {
  ty_json_key(j, "mesh");
  ty_json_begin_array(j);
  ty_json_int(j, p->mesh[0]);
  ty_json_int(j, p->mesh[1]);
  ty_json_end_array(j);
  ty_json_key(j, "batch");
  ty_json_int(j, p->batch);
  ty_json_key(j, "ops");
  ty_json_begin_array(j);
  for (size_t i = 0; i < p->n_ops; i++)
    json_op(j, p, &p->ops[i]);
  ty_json_end_array(j);
  ty_json_key(j, "params");
  ty_json_begin_array(j);
  for (size_t i = 0; i < p->n_params; i++) {
    char s[64];
    ty_plan_layout_format(&p->params[i].layout, s, sizeof s);
    ty_json_begin_object(j);
    ty_json_key(j, "name");
    ty_json_string(j, p->params[i].name);
    ty_json_key(j, "sharding");
    ty_json_string(j, s);
    ty_json_end_object(j);
  }
  ty_json_end_array(j);
  ty_json_key(j, "collectives");
  ty_json_begin_array(j);
  for (size_t i = 0; i < p->n_collectives; i++)
    json_collective(j, p, &p->collectives[i]);
  ty_json_end_array(j);
}

/* "key": [first, last]. */
static void json_range(ty_json *j, const char *key, int first, int last) {
  ty_json_key(j, key);
  ty_json_begin_array(j);
  ty_json_int(j, first);
  ty_json_int(j, last);
  ty_json_end_array(j);
}

/* "pipeline": null without stages. */
static void json_pipeline(ty_json *j, const ty_plan *p) {
  ty_json_key(j, "pipeline");
  if (p->n_stages == 0) {
    ty_json_null(j);
    return;
  }
  ty_json_begin_object(j);
  ty_json_key(j, "micro_batches");
  ty_json_int(j, p->micro_batches);
  ty_json_key(j, "layers");
  ty_json_int(j, p->n_layers);
  ty_json_key(j, "bubble");
  ty_json_double(j, p->bubble);
  ty_json_key(j, "stages");
  ty_json_begin_array(j);
  for (int k = 0; k < p->n_stages; k++) {
    const ty_plan_stage *st = &p->stages[k];
    ty_json_begin_object(j);
    json_range(j, "ranks", st->first_rank, st->first_rank + p->mesh[0] * p->mesh[1] - 1);
    json_range(j, "layers", st->first_layer, st->first_layer + st->n_layers - 1);
    ty_json_key(j, "predicted_s");
    ty_json_double(j, st->step_s);
    ty_json_key(j, "send_s");
    ty_json_double(j, st->send_s);
    ty_json_key(j, "memory_per_device_bytes");
    ty_json_uint(j, st->memory_bytes);
    ty_json_key(j, "in_flight");
    ty_json_int(j, st->in_flight);
    ty_json_key(j, "recompute");
    ty_json_bool(j, st->recompute);
    ty_json_key(j, "memory_without_recompute_bytes");
    ty_json_uint(j, st->memory_no_recompute_bytes);
    ty_json_end_object(j);
  }
  ty_json_end_array(j);
  ty_json_end_object(j);
}

int ty_plan_to_json(const ty_plan *p, ty_buf *out) {
  ty_json j;
  ty_json_init(&j, out);
  ty_json_begin_object(&j);
  ty_json_key(&j, "plan");
  ty_json_begin_object(&j);
  json_plan_body(&j, p);
  ty_json_key(&j, "predicted_step_s");
  ty_json_double(&j, p->step_s);
  ty_json_key(&j, "compute_s");
  ty_json_double(&j, p->compute_s);
  ty_json_key(&j, "communication_s");
  ty_json_double(&j, p->comm_s);
  ty_json_key(&j, "memory_per_device_bytes");
  ty_json_uint(&j, p->memory_bytes);
  ty_json_key(&j, "device_memory_bytes");
  ty_json_uint(&j, p->budget_bytes);
  ty_json_key(&j, "exact");
  ty_json_bool(&j, p->exact);
  json_pipeline(&j, p);
  ty_json_key(&j, "one_micro_batch_why"); /* null: micro-batches add the loss up */
  if (p->one_micro_why[0])
    ty_json_string(&j, p->one_micro_why);
  else
    ty_json_null(&j);
  ty_json_end_object(&j);
  ty_json_key(&j, "alternatives");
  ty_json_begin_array(&j);
  for (size_t i = 0; i < p->n_alternatives; i++)
    json_alternative(&j, &p->alternatives[i]);
  ty_json_end_array(&j);
  ty_json_key(&j, "search_ms");
  ty_json_double(&j, p->search_ms);
  ty_json_end_object(&j);
  return ty_json_finish(&j);
}

/* ---- text ------------------------------------------------------------------------ */

/* Appends unless an earlier append failed; *rc keeps the first error. */
static void pf(ty_buf *b, int *rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pf(ty_buf *b, int *rc, const char *fmt, ...) {
  if (*rc != 0) return;
  va_list ap;
  va_start(ap, fmt);
  *rc = ty_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

static void text_alternatives(ty_buf *b, int *rc, const ty_plan *p) {
  pf(b, rc, "\n%-26s %-7s %12s %14s  %s\n", "ALTERNATIVE", "MESH", "STEP (ms)", "MEMORY/DEVICE",
     "FITS");
  for (size_t i = 0; i < p->n_alternatives; i++) {
    const ty_plan_alternative *a = &p->alternatives[i];
    char mesh[24] = "-", mem[32] = "-", step[32] = "-";
    if (a->applicable) {
      snprintf(mesh, sizeof mesh, "%dx%d", a->mesh[0], a->mesh[1]);
      ty__fmt_bytes((double)a->memory_bytes, mem, sizeof mem);
      snprintf(step, sizeof step, "%.3f", a->step_s * 1e3);
    }
    pf(b, rc, "%-26s %-7s %12s %14s  %s%s%s\n", a->name, mesh, step, mem,
       a->applicable ? (a->fits ? "yes" : "no") : "n/a", a->why[0] ? "  " : "", a->why);
  }
}

static void text_ops(ty_buf *b, int *rc, const ty_plan *p) {
  pf(b, rc, "\n%-28s %-20s %-34s %s\n", "OP", "TYPE", "STRATEGY", "INPUTS -> OUTPUTS");
  for (size_t i = 0; i < p->n_ops; i++) {
    const ty_plan_op *o = &p->ops[i];
    pf(b, rc, "%-28s %-20s %-34s", o->name, ty_op_name(o->op), o->strategy);
    for (int k = 0; k < o->n_inputs + o->n_outputs; k++) {
      char s[64];
      bool in = k < o->n_inputs;
      ty_plan_layout_format(in ? &o->inputs[k] : &o->outputs[k - o->n_inputs], s, sizeof s);
      pf(b, rc, "%s%s", k == 0 ? " " : k == o->n_inputs ? " -> " : " ", s);
    }
    pf(b, rc, "%s%s\n", o->fallback ? "  # " : "", o->fallback ? o->note : "");
  }
}

static void text_collectives(ty_buf *b, int *rc, const ty_plan *p) {
  pf(b, rc, "\n%-10s %-15s %-5s %12s %10s  %s\n", "PHASE", "COLLECTIVE", "AXIS", "BYTES",
     "TIME (us)", "TENSOR (AT OP)");
  for (size_t i = 0; i < p->n_collectives; i++) {
    const ty_plan_collective *c = &p->collectives[i];
    pf(b, rc, "%-10s %-15s %-5d %12llu %10.1f  %s (%s)\n", ty_plan_phase_name(c->phase),
       ty_plan_coll_kind_name(c->kind), c->mesh_axis, (unsigned long long)c->bytes,
       c->seconds * 1e6, c->tensor, c->node >= 0 ? p->ops[c->node].name : "graph output");
  }
  if (p->n_collectives == 0) pf(b, rc, "(none: every rank runs independently)\n");
  char note[2 * TY_ERR_LEN];
  if (ty_plan_replicated_note(p, note, sizeof note)[0]) pf(b, rc, "\nnote: %s\n", note);
}

/* The stages: ranks, layers, first and last op, time, sends, memory. */
static void text_stages(ty_buf *b, int *rc, const ty_plan *p) {
  pf(b, rc,
     "pipeline: %d stage%s of mesh %dx%d, %d micro-batch%s of %lld (global batch %lld), "
     "%d layers, bubble %.1f%%\n",
     p->n_stages, p->n_stages == 1 ? "" : "s", p->mesh[0], p->mesh[1], p->micro_batches,
     p->micro_batches == 1 ? "" : "es", (long long)p->batch, (long long)p->batch * p->micro_batches,
     p->n_layers, 100 * p->bubble);
  if (p->one_micro_why[0]) pf(b, rc, "one micro-batch only: %s\n", p->one_micro_why);
  pf(b, rc, "\n%-6s %-9s %-7s %12s %10s %14s %9s %-20s %s\n", "STAGE", "RANKS", "LAYERS",
     "STEP (ms)", "SEND (ms)", "MEMORY/DEVICE", "IN FLIGHT", "RECOMPUTE", "OPS");
  for (int k = 0; k < p->n_stages; k++) {
    const ty_plan_stage *st = &p->stages[k];
    char ranks[24], layers[24], mem[32], plain[32], rec[48] = "no";
    const char *first = "-", *last = "-";
    for (size_t i = 0; i < p->n_ops; i++)
      if (p->ops[i].stage == k) {
        if (first[0] == '-') first = p->ops[i].name;
        last = p->ops[i].name;
      }
    snprintf(ranks, sizeof ranks, "%d-%d", st->first_rank,
             st->first_rank + p->mesh[0] * p->mesh[1] - 1);
    snprintf(layers, sizeof layers, "%d-%d", st->first_layer, st->first_layer + st->n_layers - 1);
    ty__fmt_bytes((double)st->memory_bytes, mem, sizeof mem);
    ty__fmt_bytes((double)st->memory_no_recompute_bytes, plain, sizeof plain);
    if (st->recompute) snprintf(rec, sizeof rec, "yes (else %s)", plain);
    pf(b, rc, "%-6d %-9s %-7s %12.3f %10.3f %14s %9d %-20s %s .. %s\n", k, ranks, layers,
       st->step_s * 1e3, st->send_s * 1e3, mem, st->in_flight, rec, first, last);
  }
}

int ty_plan_to_text(const ty_plan *p, ty_buf *out) {
  char mem[32], dev[32];
  ty__fmt_bytes((double)p->memory_bytes, mem, sizeof mem);
  ty__fmt_bytes((double)p->budget_bytes, dev, sizeof dev);
  int rc = 0;
  if (p->n_stages)
    pf(out, &rc, "plan: %d stage%s of mesh %dx%d (%d devices), micro-batch %lld\n", p->n_stages,
       p->n_stages == 1 ? "" : "s", p->mesh[0], p->mesh[1], p->devices, (long long)p->batch);
  else
    pf(out, &rc, "plan: mesh %dx%d (%d devices), batch %lld\n", p->mesh[0], p->mesh[1], p->devices,
       (long long)p->batch);
  if (p->n_stages)
    pf(out, &rc,
       "predicted step: %.3f ms (1F1B over %d micro-batch%s; one micro-batch through every "
       "stage: compute %.3f ms, communication %.3f ms)\n",
       p->step_s * 1e3, p->micro_batches, p->micro_batches == 1 ? "" : "es", p->compute_s * 1e3,
       p->comm_s * 1e3);
  else
    pf(out, &rc, "predicted step: %.3f ms (compute %.3f ms, communication %.3f ms)\n",
       p->step_s * 1e3, p->compute_s * 1e3, p->comm_s * 1e3);
  pf(out, &rc, "memory per device: %s of %s%s\n", mem, dev,
     p->n_stages ? " (the largest stage's)" : "");
  if (ty_plan_memory_fallback(p)) pf(out, &rc, "why: %s\n", ty_plan_memory_fallback(p));
  if (p->n_stages)
    text_stages(out, &rc, p);
  else if (p->one_micro_why[0]) /* the search kept the batch whole rather than pipeline it */
    pf(out, &rc, "one micro-batch only: %s\n", p->one_micro_why);
  pf(out, &rc, "search: %.1f ms, %s%s\n", p->search_ms,
     p->exact ? "optimal for the cost model" : "best found",
     p->n_fallback ? "; some ops have no sharding rule and run replicated (#)" : "");
  text_alternatives(out, &rc, p);
  text_ops(out, &rc, p);
  text_collectives(out, &rc, p);
  return rc;
}
