/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto/convert: the converters of the messages that more than one binary
 * reads or writes (the Job of a submit, a graph job's TrainProgress), so
 * each is written once. Like every convert file: pure, bytes or messages in,
 * plain structs (lib/wire/wire.h) out, and back. Each binary's own
 * convert*.c handles the messages only it sees, using these for the shared
 * parts.
 *
 * Decoders copy what they keep (malloc, TY_ENOMEM on failure, nothing left
 * to free then); encoders point the message at the struct's storage, valid
 * while both live.
 */
#ifndef TY_PROTO_CONVERT_H
#define TY_PROTO_CONVERT_H

#include "lib/wire/wire.h"
#include "proto/trainyard.pb-c.h"

/* Job -> spec: strings, arrays and bytes copied; has_resources and kind
 * say which parts were present. */
int ty_proto_decode_job(const Trainyard__Job *job, ty_job_spec *out);

/* A ProcessSettings message and the SoftLimits it points to. */
typedef struct ty_proto_process {
  Trainyard__ProcessSettings m;
  Trainyard__SoftLimit lim[TY_LIMIT_COUNT];
  Trainyard__SoftLimit *ptr[TY_LIMIT_COUNT];
} ty_proto_process;

/* The messages one encoded Job points into. */
typedef struct ty_proto_job {
  Trainyard__Job job;
  Trainyard__Resources res;
  Trainyard__CommandSpec cmd;
  Trainyard__GraphSpec graph;
  Trainyard__InteractiveSpec ia;
  Trainyard__ArraySpec array;
  Trainyard__ArrayRange **ranges; /* ty_proto_encode_job_extra's, with their messages */
  Trainyard__Dependency **deps;
  Trainyard__UnixUser run_as;
  ty_proto_process process;
} ty_proto_job;
/* spec -> pj->job, borrowing the spec's strings. Resources are always sent
 * (0 = the controller's default); the command or graph by kind; the
 * interactive part when spec->interactive. The array and dependencies need
 * allocations: ty_proto_encode_job_extra adds them after this (TY_ENOMEM),
 * and ty_proto_job_close frees what it allocated. */
void ty_proto_encode_job(const ty_job_spec *spec, ty_proto_job *pj);
int ty_proto_encode_job_extra(const ty_job_spec *spec, ty_proto_job *pj);
void ty_proto_job_close(ty_proto_job *pj); /* accepts what encode_job alone filled */

/* InteractiveSpec <-> ty_interactive. The encoder fills *m and returns it,
 * or returns NULL (send no message) when `in` is off. */
void ty_proto_decode_interactive(const Trainyard__InteractiveSpec *m, ty_interactive *out);
Trainyard__InteractiveSpec *ty_proto_encode_interactive(const ty_interactive *in,
                                                        Trainyard__InteractiveSpec *m);

/* ProcessSettings <-> ty_proc_settings. The encoder fills *m and returns
 * it, or returns NULL (send no message) when `in` holds nothing. */
void ty_proto_decode_process(const Trainyard__ProcessSettings *m, ty_proc_settings *out);
Trainyard__ProcessSettings *ty_proto_encode_process(const ty_proc_settings *in,
                                                    ty_proto_process *m);

/* The caps on the repeated fields of every request of trainyard.proto, one
 * table for traind and trainworkerd, checked on the payload bytes before
 * they are unpacked (lib/wire's ty_wire_check_strings). 0, or TY_EINVAL with
 * the field and the cap in err ("job_ids: 5000 entries or more; at most 1024
 * are allowed"). A field without its own cap gets TY_PROTO_MAX_REPEATED.
 * Every string field is checked too: no NUL byte ("job.name: holds a NUL
 * byte (at byte 1)"), and UTF-8 but in argv, the environment, paths and the
 * few others convert.c lists ("queue: not valid UTF-8 (at byte 0)"). */
#define TY_PROTO_MAX_REPEATED 256
#define TY_PROTO_MAX_CANCEL_REFS                                                                   \
  1024 /* CancelJobRequest's job_ids and refs: a client sends more                                 \
          in several requests */
int ty_proto_check_request(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                           char *err, size_t err_len);

/* A binary's methods: each one's request message and the decoder its
 * handler uses (decode and free; NULL for a request without fields, which
 * is then only unpacked). traind and trainworkerd each keep one table. */
typedef struct ty_proto_method {
  const char *method;
  const ProtobufCMessageDescriptor *request;
  int (*decode)(const uint8_t *p, size_t n);
} ty_proto_method;
/* The caps check of `method`'s request; 0 for a method not in the table
 * (the dispatcher answers it TY_ENOTFOUND). */
int ty_proto_check_method(const ty_proto_method *t, size_t n_t, const char *method,
                          const uint8_t *p, size_t n, char *err, size_t err_len);
/* The caps check, then the decoder: what a request goes through before its
 * handler acts (the fuzzers' entry). 0, or the error with its message in
 * err (TY_ENOTFOUND for an unknown method, "payload is not a X"). */
int ty_proto_decode_method(const ty_proto_method *t, size_t n_t, const char *method,
                           const uint8_t *p, size_t n, char *err, size_t err_len);

/* TrainProgress -> progress (checkpoint_path copied). */
int ty_proto_decode_progress(const Trainyard__TrainProgress *m, ty_train_progress *out);
/* progress -> m, borrowing checkpoint_path. */
void ty_proto_encode_progress(const ty_train_progress *p, Trainyard__TrainProgress *m);

/* CheckpointInfo list <-> checkpoints (GetJobResponse.checkpoints,
 * ReportProgressRequest.existing). The decoder fills l->v and l->n (paths
 * copied; l->listed is the caller's). The encoder makes *out_ptrs an array
 * of n messages pointing into v, freed with free() (one block). */
int ty_proto_decode_checkpoints(Trainyard__CheckpointInfo *const *m, size_t n,
                                ty_checkpoint_list *l);
int ty_proto_encode_checkpoints(const ty_checkpoint_info *v, size_t n,
                                Trainyard__CheckpointInfo ***out_ptrs);

/* GraphCheckRequest and GraphCheckResponse (traind <-> its model-check
 * child, daemon/graphcheck): whole messages to bytes and back. The
 * unpackers copy (the request's job with ty_proto_decode_job): 0,
 * TY_EPROTO for bytes that are not the message, TY_ENOMEM; nothing to
 * free on error. */
int ty_proto_pack_check(const ty_graph_check *c, ty_buf *out);
int ty_proto_unpack_check(const uint8_t *p, size_t n, ty_graph_check *out);
int ty_proto_pack_check_answer(const ty_graph_check_answer *a, ty_buf *out);
int ty_proto_unpack_check_answer(const uint8_t *p, size_t n, ty_graph_check_answer *out);

#endif
