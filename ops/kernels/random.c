/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The random generators: RandomNormal, RandomNormalLike, RandomUniform,
 * RandomUniformLike, Bernoulli and Multinomial (their attributes are
 * checked by ops/infer_random.c before a kernel runs), and Dropout's mask,
 * which draws as they do.
 *
 * Every draw is counter-based: word j of element i of a node's output is
 * ty_mix2(key, 2i + j) (lib/base's SplitMix64 finaliser), so an element's
 * value depends only on the key and its position, never on threads or on
 * the order nodes run in. The key is
 *   - with a seed attribute: the seed alone, so the node draws the same
 *     tensor on every run, rank and step (ONNX's meaning of seed);
 *   - without: the executor's run key (ty__kctx.noise, from its
 *     noise_seed or seed and the run's number: ops/exec.h) mixed with the
 *     node's name, so two nodes draw unrelated noise and every run anew.
 * Under a parallel plan a rank's node computes a slice of the global
 * output: ops/shard gives the node the ints attributes TY_RANDOM_FULL
 * (the global shape) and TY_RANDOM_START (the slice's first index per
 * dim), and element i then draws as its global position, so the ranks
 * together draw exactly the one-process tensor, each its own slice.
 *
 * Normal draws use Box-Muller on two 53-bit uniforms; uniform draws are
 * low + (high - low) * u with u in [0, 1); Bernoulli writes 1 where
 * u < p; Multinomial draws sample_size class indices per row from the
 * softmax of the row (unnormalised log-probabilities).
 *
 * Dropout in training keeps element i where u >= ratio, u word 0 of its
 * position under the same key (its seed attribute, else the run key and
 * its name) and the same slice attributes from ops/shard. So a trainer's
 * data-parallel ranks (their noise_seed holds the rank) draw masks of
 * their own, a plan's rank draws its slice of the one-process mask, and a
 * resumed run the masks of an uninterrupted one (the key depends on the
 * seed, step and rank only).
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <string.h>

#define TWO_PI 6.283185307179586476925286766559

/* The stream key of node n for this run. */
static uint64_t node_key(const ty_graph_node *n, const ty__kctx *ctx) {
  const ty_graph_attr *s = ty_graph_node_attr(n, "seed");
  if (s) { /* ONNX's seed is a float; one beyond int64 keys by its bits */
    int64_t v = s->i;
    if (s->type == TY_ATTR_FLOAT && fabsf(s->f) < 9.2e18f) {
      v = (int64_t)s->f;
    } else if (s->type == TY_ATTR_FLOAT) {
      uint32_t bits;
      memcpy(&bits, &s->f, sizeof bits);
      v = bits;
    }
    return ty_mix2(0x73656564ull /* "seed" */, (uint64_t)v);
  }
  uint64_t h = 1469598103934665603ull; /* FNV-1a of the name */
  for (const char *p = n->name; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return ty_mix2(ctx->noise, h);
}

/* Uniform in [0, 1) (j = 0, 1) or (0, 1] (j = 2: Box-Muller's log). */
static double unit(uint64_t key, uint64_t i, int j) {
  uint64_t w = ty_mix2(key, 2 * i + (uint64_t)(j & 1)) >> 11;
  return ((double)w + (j == 2)) * (1.0 / 9007199254740992.0);
}

/* Maps local element indices to global positions (see the top). */
typedef struct pos_map {
  int rank;
  bool slice;
  int64_t local[TY_MAX_RANK], full[TY_MAX_RANK], start[TY_MAX_RANK];
} pos_map;

static void pos_init(pos_map *m, const ty_graph_node *n, const ty_shape *local) {
  const ty_graph_attr *f = ty_graph_node_attr(n, TY_RANDOM_FULL);
  const ty_graph_attr *s = ty_graph_node_attr(n, TY_RANDOM_START);
  m->rank = local->rank;
  m->slice = f && s && f->type == TY_ATTR_INTS && s->type == TY_ATTR_INTS &&
             f->n == (size_t)local->rank && s->n == (size_t)local->rank;
  for (int d = 0; d < local->rank; d++) {
    m->local[d] = local->dims[d];
    m->full[d] = m->slice ? f->ints[d] : local->dims[d];
    m->start[d] = m->slice ? s->ints[d] : 0;
  }
}

static uint64_t pos_global(const pos_map *m, int64_t i) {
  if (!m->slice) return (uint64_t)i;
  uint64_t g = 0, mul = 1;
  for (int d = m->rank - 1; d >= 0; d--) {
    int64_t c = m->local[d] > 0 ? i % m->local[d] : 0;
    i = m->local[d] > 0 ? i / m->local[d] : 0;
    g += (uint64_t)(c + m->start[d]) * mul;
    mul *= (uint64_t)m->full[d];
  }
  return g;
}

typedef struct draw_job {
  ty_op op;
  uint64_t key;
  pos_map pos;
  double a, b;        /* mean and scale, or low and high */
  const ty_tensor *p; /* Bernoulli's probabilities */
  ty_tensor *y;
} draw_job;

static double draw_one(const draw_job *j, int64_t i) {
  uint64_t g = pos_global(&j->pos, i);
  switch (j->op) {
  case TY_OP_RANDOM_NORMAL:
  case TY_OP_RANDOM_NORMAL_LIKE: {
    double r = sqrt(-2.0 * log(unit(j->key, g, 2))), t = TWO_PI * unit(j->key, g, 1);
    return j->a + j->b * r * cos(t);
  }
  case TY_OP_BERNOULLI:
    return unit(j->key, g, 0) < ty__getf(j->p->dtype, j->p->data, i) ? 1.0 : 0.0;
  default: { /* uniform: never high itself, also after rounding to float */
    double v = j->a + (j->b - j->a) * unit(j->key, g, 0);
    if (j->y->dtype == TY_DTYPE_F32 && j->b > j->a && (float)v >= (float)j->b)
      v = nextafterf((float)j->b, (float)j->a);
    return v;
  }
  }
}

static void draw_range(void *arg, int64_t begin, int64_t end, int slot) {
  (void)slot;
  const draw_job *j = arg;
  if (j->y->dtype == TY_DTYPE_F32) {
    float *y = j->y->data;
    for (int64_t i = begin; i < end; i++)
      y[i] = (float)draw_one(j, i);
    return;
  }
  for (int64_t i = begin; i < end; i++)
    ty__putf(j->y->dtype, j->y->data, i, draw_one(j, i));
}

int ty__k_random(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  ty_tensor *y = out[0];
  if (!y) return 0;
  draw_job j = {.op = n->op, .key = node_key(n, ctx), .y = y};
  if (n->op == TY_OP_RANDOM_NORMAL || n->op == TY_OP_RANDOM_NORMAL_LIKE) {
    j.a = ty_graph_node_attr_float(n, "mean", 0.0f);
    j.b = ty_graph_node_attr_float(n, "scale", 1.0f);
  } else if (n->op == TY_OP_BERNOULLI) {
    j.p = in[0];
  } else {
    j.a = ty_graph_node_attr_float(n, "low", 0.0f);
    j.b = ty_graph_node_attr_float(n, "high", 1.0f);
  }
  pos_init(&j.pos, n, &y->shape);
  ty__parallel_for(ctx->workers, ty_tensor_numel(y), TY__PAR_GRAIN / 16 + 1, draw_range, &j);
  return 0;
}

typedef struct drop_job {
  uint64_t key;
  pos_map pos;
  double ratio;
  float scale;
  const float *x;
  float *y;      /* may be NULL */
  uint8_t *mask; /* may be NULL */
} drop_job;

static void drop_range(void *arg, int64_t begin, int64_t end, int slot) {
  (void)slot;
  const drop_job *j = arg;
  for (int64_t i = begin; i < end; i++) {
    bool keep = unit(j->key, pos_global(&j->pos, i), 0) >= j->ratio;
    if (j->y) j->y[i] = keep ? j->x[i] * j->scale : 0.0f;
    if (j->mask) j->mask[i] = keep;
  }
}

/* Dropout (see the top): ratio from the input or the attribute; inference
 * (neither the executor nor training_mode in training) passes x through. */
int ty__k_dropout(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                  ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  const ty_tensor *rt = n->n_inputs > 1 ? in[1] : NULL, *tm = n->n_inputs > 2 ? in[2] : NULL;
  float ratio = rt ? ty_tensor_f32(rt)[0] : ty_graph_node_attr_float(n, "ratio", 0.5f);
  bool training = ctx->training || (tm && ty_tensor_bool(tm)[0]);
  drop_job j = {.ratio = ratio,
                .scale = 1.0f / (1.0f - ratio),
                .x = x->data,
                .y = out[0] ? out[0]->data : NULL,
                .mask = n->n_outputs > 1 && out[1] ? out[1]->data : NULL};
  if (!training || ratio == 0.0f) {
    if (j.y) memcpy(j.y, j.x, x->nbytes);
    if (j.mask) memset(j.mask, 1, (size_t)ty_tensor_numel(x));
    return 0;
  }
  j.key = node_key(n, ctx);
  pos_init(&j.pos, n, &x->shape);
  ty__parallel_for(ctx->workers, ty_tensor_numel(x), TY__PAR_GRAIN / 4 + 1, drop_range, &j);
  return 0;
}

/* Multinomial: row b of the [batch, classes] log-probabilities gives
 * sample_size indices; draw s of row b is element b * sample_size + s of
 * the output, positioned like the other ops' elements. */
int ty__k_multinomial(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                      ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int64_t rows = x->shape.dims[0], cls = x->shape.dims[1], ss = y->shape.dims[1];
  uint64_t key = node_key(n, ctx);
  pos_map pos;
  pos_init(&pos, n, &y->shape);
  for (int64_t b = 0; b < rows; b++) {
    double mx = -INFINITY, total = 0.0;
    for (int64_t c = 0; c < cls; c++)
      mx = fmax(mx, ty__getf(x->dtype, x->data, b * cls + c));
    for (int64_t c = 0; c < cls; c++)
      total += exp(ty__getf(x->dtype, x->data, b * cls + c) - mx);
    for (int64_t s = 0; s < ss; s++) {
      double u = unit(key, pos_global(&pos, b * ss + s), 0) * total, cum = 0.0;
      int64_t pick = cls - 1;
      for (int64_t c = 0; c < cls; c++) {
        cum += exp(ty__getf(x->dtype, x->data, b * cls + c) - mx);
        if (u < cum) {
          pick = c;
          break;
        }
      }
      ty__puti(y->dtype, y->data, b * ss + s, pick);
    }
  }
  return 0;
}
