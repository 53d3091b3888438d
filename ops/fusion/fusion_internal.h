/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of ops/fusion shared with ops/memplan and ops/exec: the
 * schedule (the executor's step list, where a step is one graph node or one
 * fused region), the fused program (a register bytecode the code generator
 * and the interpreter both read), and the JIT's kernel lookup.
 *
 * Invariants of a fused region: every member is a float32 elementwise node
 * with one output whose symbolic shape equals the region's loop shape;
 * external inputs broadcast to that shape; the region runs at the position
 * of its last member, and no node outside it that reads a member's output
 * comes before that position (so the schedule stays topological).
 */
#ifndef TY_OPS_FUSION_FUSION_INTERNAL_H
#define TY_OPS_FUSION_FUSION_INTERNAL_H

#include "ops/fusion/fusion.h"
#include "ops/graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many external inputs/outputs per region (the broadcast
 * pattern is a bit mask). */
#define TY__FUSE_MAX_IO TY_FUSE_MAX_IO
/* Elements per interpreter register. */
#define TY__FBLOCK 256

typedef enum {
  TY__FOP_LOAD,  /* r[dst] = in[a] (stride 0 or 1 along the row) */
  TY__FOP_STORE, /* out[dst] = r[a] */
  TY__FOP_ADD,
  TY__FOP_SUB,
  TY__FOP_MUL,
  TY__FOP_DIV,
  TY__FOP_POW,
  TY__FOP_NEG,
  TY__FOP_RELU,
  TY__FOP_LEAKY_RELU, /* alpha = params[param] */
  TY__FOP_SIGMOID,
  TY__FOP_TANH,
  TY__FOP_EXP,
  TY__FOP_LOG,
  TY__FOP_SQRT,
  TY__FOP_ERF,
  TY__FOP_COPY,
  /* Backward (TyGrad) formulas, exactly ops/autodiff/kernels_grad.c's; a is
   * dY. Unary ones in float, b the forward input x or output y: */
  TY__FOP_G_RELU,
  TY__FOP_G_LEAKY_RELU, /* b = x */
  TY__FOP_G_SIGMOID,
  TY__FOP_G_TANH,
  TY__FOP_G_SQRT,
  TY__FOP_G_EXP, /* b = y */
  TY__FOP_G_ERF,
  TY__FOP_G_LOG, /* b = x */
  TY__FOP_G_NEG,
  /* Binary ones: the kernel's double partial stored as (float)(0.0 +
   * partial), like its accumulator. The first four are computed in float,
   * with the same bits and the same signed zeros (program.c): */
  TY__FOP_G_PASS,  /* dY (Add, Sub's first input) */
  TY__FOP_G_NPASS, /* -dY (Sub's second) */
  TY__FOP_G_MUL,   /* dY * b (b: the other input of Mul) */
  TY__FOP_G_DIV0,  /* dY / b */
  /* and these in double: */
  TY__FOP_G_DIV1, /* -dY * b / (c * c)  (b = a, c = b of the forward Div) */
  TY__FOP_G_POW0, /* c == 0 ? 0 : dY * c * pow(b, c - 1) */
  TY__FOP_G_POW1, /* b > 0 ? dY * log(b) * pow(b, c) : 0 */
  TY__FOP_COUNT_
} ty__fopcode;

typedef struct ty__finstr {
  int op;    /* ty__fopcode */
  int dst;   /* register (or output slot for STORE) */
  int a, b;  /* operand registers (input slot for LOAD) */
  int param; /* index into the region's params, or -1 */
  int c;     /* third operand register (backward formulas) */
} ty__finstr;

/* What a fusible node computes: its opcode, the value ids it reads in
 * operand order (a, b, c; a TyGrad node lists only those its formula
 * uses) and its attribute scalar. */
typedef struct ty__fnode {
  int op;
  int in[3];
  int n_in;
  bool has_param;
  float param;
} ty__fnode;

/* Decodes a forward elementwise node or a TyGrad node whose forward op is
 * elementwise and whose gradient has dY's shape (no broadcast to undo).
 * False when the node cannot join a region (dtypes and shapes are checked
 * by the caller). */
bool ty__fnode_decode(const ty_graph *g, const ty_graph_node *n, ty__fnode *out);

/* Loads come first and stores last, so a row may be written over an input
 * of the same row (in place) without reading overwritten elements. */
typedef struct ty__fprog {
  int n_in, n_out, n_regs, n_code, n_params;
  ty__finstr *code;
  float *params; /* attribute scalars (LeakyRelu alpha), passed at run time */
} ty__fprog;

/* One inner-row kernel: n elements; in[i] advances by 1 per element when
 * the pattern bit i is set, else it is read once (broadcast). */
typedef void (*ty__frow_fn)(int64_t n, const float *const *in, float *const *out,
                            const float *params);

typedef struct ty__fvariant {
  uint32_t pattern;
  ty__frow_fn fn; /* NULL: interpreted */
} ty__fvariant;

typedef struct ty__fgroup {
  size_t *nodes; /* graph node indices in schedule order */
  size_t n_nodes;
  int in_ids[TY__FUSE_MAX_IO];  /* external input value ids */
  int out_ids[TY__FUSE_MAX_IO]; /* materialised output value ids */
  ty__fprog prog;
  /* Kernels resolved per broadcast pattern (few per region in practice). */
  ty__fvariant variants[8];
  int n_variants;
} ty__fgroup;

/* One executor step: a node (group == NULL) or a fused region. reads and
 * writes list materialised value ids (no TY_NO_VALUE, no duplicates in
 * writes). elementwise: each output element depends only on the inputs'
 * elements at the same (broadcast) index, so an output may take over the
 * buffer of a same-sized input that dies at this step. overwrites: the
 * kernel writes every output element (no zero-fill needed). */
typedef struct ty__step {
  size_t node;
  ty__fgroup *group;
  int *reads;
  int n_reads;
  int *writes;
  int n_writes;
  bool elementwise;
  bool overwrites;
  int view_of; /* Reshape, Flatten, Squeeze, Unsqueeze: the data input, whose
                * bytes the output repeats (memory planning may share its
                * buffer instead of copying); TY_NO_VALUE otherwise */
} ty__step;

typedef struct ty__sched {
  ty__step *steps;
  size_t n_steps;
  size_t n_groups, n_fused_nodes;
  bool *keep; /* per value: must stay readable after a run */
  size_t n_values;
} ty__sched;

/* Builds the schedule for nodes in topological order. fuse false gives one
 * step per node. keep (n_keep ids, may be NULL) are values the caller reads
 * after a run; graph outputs and values nobody reads are kept as well. */
int ty__sched_create(const ty_graph *g, const size_t *order, bool fuse, const int *keep,
                     size_t n_keep, ty__sched **out_sched);
/* The same with every fusible node in a region, alone or not: on the GPU
 * each elementwise op runs as a generated kernel (ops/fusion/cuda_gen.c). */
int ty__sched_create_gpu(const ty_graph *g, const size_t *order, const int *keep, size_t n_keep,
                         ty__sched **out_sched);
void ty__sched_destroy(ty__sched *s);
/* True for ops a region may contain (float32 checked separately). */
bool ty__fuse_op_ok(ty_op op);

/* Builds the region's program from its members (region.c calls it). */
int ty__fprog_build(const ty_graph *g, ty__fgroup *grp, int n_in, int n_out);
void ty__fprog_free(ty__fprog *p);
/* A growing string for generated source; oom latches the first failure
 * (the caller checks it once at the end and frees s). */
typedef struct ty__sbuf {
  char *s;
  size_t len, cap;
  bool oom;
} ty__sbuf;
void ty__sb_printf(ty__sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The expression of one compute instruction over registers r<a>, r<b>,
 * r<c> and parameters p<i>: C that is also CUDA C (libm names, which
 * CUDA's device math library provides), so the CPU and GPU kernels share
 * every formula. */
void ty__fprog_emit_expr(ty__sbuf *b, const ty__finstr *in);
/* Writes the C source of the row kernel for a broadcast pattern into a
 * malloc'd string. The source is the cache key's main part. */
int ty__fprog_codegen(const ty__fprog *p, uint32_t pattern, char **out_src);
/* The CUDA C kernel of the program for input classes cls (n_in of
 * TY_FUSE_CUDA_*), entry ty_fusion_cuda_name's; see cuda_gen.c. */
int ty__fprog_codegen_cuda(const ty__fprog *p, const int *cls, ty_dtype storage, char **out_src);
/* Runs the program over one row with the interpreter; regs holds
 * n_regs * TY__FBLOCK floats of scratch. */
void ty__fprog_interp(const ty__fprog *p, uint32_t pattern, int64_t n, const float *const *in,
                      float *const *out, float *regs);

/* Resolves (compiling or loading from the disk cache) the kernel for src;
 * NULL when the JIT is off or the compiler failed (counted; the caller
 * falls back to the interpreter). sym is the exported function name. */
void *ty__jit_lookup(ty_jit *j, const char *src, const char *sym);
/* Counts one region run through the interpreter. */
void ty__jit_count_interp(ty_jit *j);

/* ---- the disk cache (jit_cache.c; the public part is in fusion.h) ---- */
/* Adds what the object code depends on besides the source: the compiler's
 * argv, the flags, the compiler binary's identity and the CPU. */
void ty__jit_key_target(ty_kernel_key *k, char *const *cc_argv, int cc_argc,
                        const char *const *flags, size_t n_flags);

typedef struct ty_workers ty_workers; /* ops/exec.h */

/* Runs a region over concrete tensors: ins in in_ids order, outs in
 * out_ids order, all outputs of the loop shape (broadcast of the inputs),
 * split over w's threads (NULL: the caller's only). */
int ty__fgroup_run(ty__fgroup *grp, ty_jit *j, ty_workers *w, const ty_tensor *const *ins,
                   ty_tensor *const *outs);

#endif
