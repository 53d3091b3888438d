/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of trainrun shared by main.c (options, the training run),
 * plan.c (the parallel plan a rank runs: --plan, --parallelism, --mesh,
 * the cluster rates, --write-plan, and the checks that ranks agree) and
 * device.c (config.device DEVICE_GPU).
 */
#ifndef TY_OPS_TRAINRUN_TRAINRUN_INTERNAL_H
#define TY_OPS_TRAINRUN_TRAINRUN_INTERNAL_H

#include "ops/plan/plan.h"
#include "ops/train/train.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* The plan options as given (NULL / 0: not given). */
typedef struct tr_plan_args {
  const char *plan_file;    /* --plan FILE */
  const char *parallelism;  /* --parallelism auto|data|tensor|grid */
  const char *mesh;         /* --mesh NODESxDEVICES */
  const char *device_flops; /* --device-flops N|cpu */
  const char *device_mem;   /* --device-mem BYTES[K|M|G] */
  const char *intra_gbps, *inter_gbps, *latency_us, *inter_latency_us, *launch_us;
  const char *write_plan; /* --write-plan FILE */
  bool print_plan;        /* --print-plan */
  int threads;            /* --threads (for the CPU rate) */
} tr_plan_args;

/* True when the options ask for a plan (any of --plan, --parallelism,
 * --write-plan). */
bool tr_plan_wanted(const tr_plan_args *a);
/* Checks the plan options and resolves them for a job of `world` ranks:
 * *out_plan (the decoded --plan file, the caller destroys it) or
 * *out_req (what to plan with; device_flops 0 when rank 0 must measure
 * the CPU). Exit-code-2 errors (a bad file, a mesh that does not hold the
 * world, a plan made for another cluster) are printed. */
int tr_plan_resolve(const tr_plan_args *a, uint32_t world, ty_plan **out_plan,
                    ty_plan_request *out_req);
/* The CPU's rate for the cost model (measured once, cached under the
 * user's cache dir). */
int tr_plan_cpu_flops(int threads, double *out_flops);
/* --write-plan: plans model + config as a job's ranks would, writes the
 * file, prints the plan. Returns the exit code. */
int tr_plan_write(const tr_plan_args *a, const ty_graph *model, const ty_train_config *config);
/* One line (and with --print-plan the whole plan) on rank 0's log. */
void tr_plan_print(const tr_plan_args *a, const ty_train *t, uint32_t rank);

/* device.c. A DEVICE_GPU job: -1 when this program runs it; in the CPU
 * build, execs trainrun-gpu beside it with the same arguments and returns
 * only when it cannot (the exit code, 2, the reason on stderr). */
int tr_gpu_handoff(char **argv);
/* A DEVICE_GPU job needs a build with CUDA and a visible GPU: 0, or the
 * exit code (2: the job asks for what this host cannot give). */
int tr_gpu_check(uint32_t rank);
/* Which nodes of the training graph ops/cuda has kernels for and why the
 * others would fall back, so a user sees what a GPU executor would run. */
void tr_gpu_print_placement(const ty_train *t);

/* ---- signals.c ---- */
/* Set by SIGTERM/SIGINT once training started, read by the trainer
 * between steps (one process) or carried in the collectives' exchanges. */
extern volatile sig_atomic_t tr_stop_requested;
/* Several ranks stop on this instead: set by an exchange that saw any
 * rank's request (ops/collective/collective.h, "Stop agreement"). */
extern volatile sig_atomic_t tr_stop_agreed;
/* Set by the trainer once this run's first step completed; before it a
 * SIGTERM/SIGINT ends the rank at once (nothing to save). */
extern volatile sig_atomic_t tr_training_started;
/* Takes SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 on a thread of their own. */
void tr_take_signals(void);

#endif
