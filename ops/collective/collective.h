/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/collective: the gradient all-reduce of data-parallel graph jobs.
 *
 * A job's ranks form their world through the controller's rendezvous store
 * (RendezvousPut/Get, proto/trainyard.proto), never through ssh or a
 * hostfile:
 *
 *   CPU (Open MPI 4.1): ranks start as MPI singletons. Open MPI needs a PMIx
 *   server all of them reach to connect two singletons, so rank 0 starts
 *   `ompi-server` (its child, gone when rank 0 goes) and publishes its URI
 *   under "mpi.server"; every rank points OMPI_MCA_pmix_server_uri at it and
 *   calls MPI_Init. Rank 0 opens a port ("mpi.port"); then, for k = 1..W-1,
 *   rank 0 publishes "mpi.turn.k", the ranks already joined MPI_Comm_accept
 *   together, rank k MPI_Comm_connects, and MPI_Intercomm_merge grows the
 *   communicator by one. A final MPI_Comm_split orders it by job rank.
 *   (Plain singletons without a server fail in MPI_Comm_connect with
 *   "Underlying runtime environment does not support accept/connect";
 *   MPI_Comm_join uses the same machinery.)
 *
 *   GPU (NCCL, compiled only with TY_HAVE_NCCL): rank 0 publishes the
 *   ncclUniqueId under "nccl.id"; the others fetch it and ncclCommInitRank.
 *
 * Safety: before each bucket the ranks exchange (sequence number, shape
 * hash, length) with one small MPI_Allgather. Disagreement fails that call
 * on every rank, within the step, with a message naming the odd rank and
 * its tensors. Every wait has a deadline (opts.timeout_ms): MPI requests
 * are polled with MPI_Test, and world formation runs under a watchdog
 * thread that ends the process when the deadline passes, so a dead peer
 * never hangs a rank forever. The controller also kills the surviving ranks
 * as soon as one ends badly, which is usually much sooner.
 *
 * Stop agreement: a rank whose stop flag is set (SIGTERM) carries it in the
 * per-bucket exchange; every rank then sets its agreed flag, so all ranks
 * finish the same step, rank 0 checkpoints it, and none waits for a peer
 * that has already left. The training loop reads the agreed flag, never
 * the signal's own: a SIGTERM that lands after a rank's last exchange of
 * a step would otherwise stop that rank after the step while its peers,
 * who saw no flag, go on into the next step's exchange and wait there
 * for a rank that has left (a requeue or a preemption then lost its
 * checkpoint to the grace period's SIGKILL).
 *
 * Threads: one caller thread per ty_coll (MPI_THREAD_FUNNELED).
 */
#ifndef TY_OPS_COLLECTIVE_COLLECTIVE_H
#define TY_OPS_COLLECTIVE_COLLECTIVE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- rendezvous client (rendezvous.c) -------------------------------------- */
typedef struct ty_rdv ty_rdv;

/* Connects to the controller at "host:port" for job_id's keys. Sends the
 * token in env TRAINYARD_RENDEZVOUS_TOKEN (hex, set by the worker for each
 * rank) as every request's credential; unset or not hex: TY_EINVAL naming
 * the variable, before connecting (the controller would refuse). */
int ty_rdv_create(const char *addr, uint64_t job_id, uint32_t timeout_ms, ty_rdv **out_rdv,
                  char *err, size_t err_len);
void ty_rdv_destroy(ty_rdv *r);
int ty_rdv_put(ty_rdv *r, const char *key, const void *value, size_t len, char *err,
               size_t err_len);
/* Waits until the key exists or timeout_ms passes (TY_ETIMEDOUT). *out_value
 * is NUL-terminated, owned by the caller (free). */
int ty_rdv_get(ty_rdv *r, const char *key, uint32_t timeout_ms, uint8_t **out_value,
               size_t *out_len, char *err, size_t err_len);

/* ---- the collective ---------------------------------------------------------- */
typedef struct ty_coll ty_coll;

typedef enum { TY_COLL_MPI = 0, TY_COLL_NCCL = 1 } ty_coll_backend;

typedef struct ty_coll_opts {
  uint32_t rank, world_size;
  uint64_t job_id;
  const char *rendezvous;      /* controller "host:port"; borrowed during create */
  uint32_t timeout_ms;         /* rendezvous and per-operation deadline; 0 = 60 s */
  ty_coll_backend backend;     /* NCCL: TY_EUNSUPPORTED unless built with it */
  volatile sig_atomic_t *stop; /* the rank's stop request (may be NULL); see above */
  /* Set when an exchange saw any rank's request (its own included); what
   * the training loop stops on. NULL: the exchanges set *stop instead. */
  volatile sig_atomic_t *stop_agreed;
  const char *ompi_server; /* path of ompi-server; NULL = "ompi-server" in PATH */
} ty_coll_opts;

/* Forms the world (blocking, at most timeout_ms). A world of one needs no
 * rendezvous and no MPI. Errors name the step that failed. */
int ty_coll_create(const ty_coll_opts *opts, ty_coll **out_coll, char *err, size_t err_len);
/* Finalises MPI unless an operation failed (then peers may be gone and
 * MPI_Finalize could wait for them; the process is about to exit anyway). */
void ty_coll_destroy(ty_coll *c);

/* Describes the gradient layout so mismatches name tensors: parameters in
 * the trainer's order with their shapes, grouped into buckets the way
 * ops/train groups them (last parameter first, a new bucket when the next
 * one would exceed bucket_bytes). Strings are copied. */
int ty_coll_add_tensor(ty_coll *c, const char *name, const int64_t *dims, size_t rank);
void ty_coll_set_bucket_bytes(ty_coll *c, size_t bucket_bytes);

/* Sums buf[0..n) across ranks in place after the (seq, shape) check: the
 * ty_train_allreduce_fn of ops/train (user = the ty_coll). */
int ty_coll_allreduce(float *buf, size_t n, uint64_t seq, void *user);

/* Asynchronous form: starts the check and the reduction of buf (which must
 * stay untouched) and returns; ty_coll_wait completes the oldest one.
 * At most 64 in flight. ty_coll_allreduce = start + wait. */
int ty_coll_start(ty_coll *c, float *buf, size_t n, uint64_t seq);
int ty_coll_wait(ty_coll *c);
/* The GPU path's buckets (NCCL backend): sums the DEVICE buffer
 * buf[0..n) across ranks in place on NCCL's stream once ready (a
 * cudaEvent_t the caller recorded on its compute stream after writing the
 * bucket; NULL: at once) has completed, after the same (seq, shape) check,
 * and returns without waiting for the compute stream; so a bucket's
 * reduction starts on the device as soon as its gradients are written.
 * ty_coll_wait_device completes the oldest one in start order, within the
 * deadline. At most 64 in flight. TY_EUNSUPPORTED on the MPI backend. */
int ty_coll_start_device(ty_coll *c, float *buf, size_t n, uint64_t seq, void *ready);
int ty_coll_wait_device(ty_coll *c);
/* Advances the reductions in flight without blocking (MPI_Test on each):
 * Open MPI moves a nonblocking collective on only inside MPI calls, so a
 * caller overlapping them with computation calls this between its steps. */
int ty_coll_progress(ty_coll *c);

/* The asynchronous hooks of ops/train's ty_train_async_allreduce
 * (user = the ty_coll); failures are also printed to stderr, like
 * ty_coll_allreduce. */
int ty_coll_start_hook(float *buf, size_t n, uint64_t seq, void *user);
int ty_coll_wait_hook(void *user);
int ty_coll_progress_hook(void *user);
/* ... and its device buckets' (the GPU executor's; NCCL backend only). */
int ty_coll_start_device_hook(float *buf, size_t n, uint64_t seq, void *ready, void *user);
int ty_coll_wait_device_hook(void *user);

/* A plain blocking MPI_Allreduce (SUM) of buf on the same communicator,
 * without checks or deadline: the baseline bench/dp compares against. */
int ty_coll_raw_allreduce(ty_coll *c, float *buf, size_t n);

/* ---- a parallel plan's mesh (mesh.c) ------------------------------------------
 * A plan (ops/plan) lays its ranks out as an m0 x m1 mesh, rank = c0 * m1
 * + c1. ty_coll_set_mesh (collective over the world, once, before any
 * other mesh call) forms one communicator per axis of more than one
 * device: the ranks sharing this rank's other coordinate, in coordinate
 * order; an axis set of both axes is the whole world. The mesh_*
 * functions are ops/shard's ty_shard_comm (user = the ty_coll): blocking,
 * each checked by the (seq, hash, length, stop) exchange of its group,
 * where the hash covers the collective's kind, the tensor `what` names
 * and its length, so ranks running different plans or models fail in
 * that call naming the rank and both tensors. Over MPI the exchange and
 * the collective start together (one latency, not two) and the exchange
 * is waited for first, so no result of a mismatched call is used; the
 * rank then makes no further MPI call. Groups of one rank copy. */
int ty_coll_set_mesh(ty_coll *c, int m0, int m1);
/* After ty_coll_set_mesh (collective over the world, once): axis 1 split
 * into an i0 x i1 mesh of its own, rank = c0 * m1 + j0 * i1 + j1 (a
 * pipelined plan: axis 0 its stages, axis 1 a stage's ranks on the stage
 * mesh i0 x i1). Axis sets 4 and 8, and axes 2 and 3 of the all-gather,
 * reduce-scatter and all-to-all, then name the inner axes: the ranks of
 * this rank's axis-1 group sharing its other inner coordinate. Both inner
 * axes are axis 1; axis 0 with one inner axis is refused. Over NCCL an
 * inner mesh with both axes of more than one rank is refused. */
int ty_coll_set_mesh_inner(ty_coll *c, int i0, int i1);
int ty_coll_mesh_all_reduce(unsigned axes, float *buf, size_t n, const char *what, void *user);
int ty_coll_mesh_all_gather(int axis, const float *in, size_t n, float *out, const char *what,
                            void *user);
int ty_coll_mesh_reduce_scatter(int axis, const float *in, size_t n_out, float *out,
                                const char *what, void *user);
int ty_coll_mesh_all_to_all(int axis, const float *in, size_t chunk, float *out, const char *what,
                            void *user);
/* A checked sum of n floats over every rank, outside the gradient buckets'
 * cycle (data parallelism's logged loss); what names it in a mismatch. A
 * hook of ty_train_opts.sum (user: the ty_coll). */
int ty_coll_world_sum(float *buf, size_t n, const char *what, void *user);
/* A gradient bucket's all-reduce over an axis set, started like
 * ty_coll_start (completed by ty_coll_wait in start order across every
 * group, progressed by ty_coll_progress); what describes the bucket. */
int ty_coll_mesh_start(unsigned axes, float *buf, size_t n, const char *what, void *user);
/* Rank 0 receives every rank's n floats, in rank order (out holds
 * world_size * n floats on rank 0; ignored, and may be NULL, elsewhere). */
int ty_coll_gather(const float *in, size_t n, float *out, void *user);
/* Every rank's value, in rank order (out_all: world_size entries). */
int ty_coll_allgather_u64(ty_coll *c, uint64_t mine, uint64_t *out_all);
/* Rank 0's *v on every rank. */
int ty_coll_bcast_f64(ty_coll *c, double *v);
/* Sets every rank's agreed stop flag when any rank's request or agreed
 * flag is set, and *step_s to the largest of the ranks' (one small
 * all-reduce over the world): ranks whose collectives run in sub-groups
 * still finish the same step. ty_train_parallel's agree_stop hook. */
int ty_coll_agree_stop(double *step_s, void *user);

/* ---- pipeline messages (p2p.c) ------------------------------------------------
 * A pipelined plan's activations and their gradients, point to point
 * between the same replica of two stages: ops/train's send, recv and
 * flush hooks (user = the ty_coll; see ty_train_parallel). A message is
 * the header (step, sender's stage, micro-batch, shape hash), which the
 * trainer checks, and the floats. send copies and returns; recv waits at
 * most timeout_ms for the next message from peer (TY_ETIMEDOUT names the
 * peer: a dead stage fails its neighbours instead of hanging them) and
 * reports its length in *out_n, filling buf only when it is n; flush
 * completes every send. On Open MPI each send is an MPI_Isend; on NCCL
 * (GPU ranks) sends are queued and posted, grouped, with the next recv or
 * flush (ncclSend / ncclRecv need both sides at once). */
int ty_coll_send(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n, void *user);
int ty_coll_recv(uint32_t peer, uint64_t out_hdr[4], float *buf, size_t n, size_t *out_n,
                 void *user);
int ty_coll_flush(void *user);

/* The last error in words ("" when none); valid until the next call. */
const char *ty_coll_error(const ty_coll *c);

typedef struct ty_coll_stats {
  uint64_t ops;        /* buckets reduced */
  uint64_t bytes;      /* payload bytes reduced */
  double check_s;      /* time in the (seq, hash) exchanges */
  double reduce_s;     /* from start to completion of the reductions (sum) */
  double wait_s;       /* time the caller spent blocked in ty_coll_wait */
  uint64_t mesh_ops;   /* checked mesh collectives (forward, backward, buckets, gathers) */
  uint64_t mesh_bytes; /* payload of the blocking ones */
  double mesh_s;       /* time in the blocking ones */
  uint64_t p2p_msgs;   /* pipeline messages sent */
  uint64_t p2p_bytes;  /* ... and their bytes, headers included */
} ty_coll_stats;
void ty_coll_get_stats(const ty_coll *c, ty_coll_stats *out);
uint32_t ty_coll_world_size(const ty_coll *c);

#endif
