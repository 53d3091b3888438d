/* SPDX-License-Identifier: Apache-2.0 */
/* RPC method names. Each "Name" carries trainyard.NameRequest and answers
 * trainyard.NameResponse (proto/trainyard.proto). */
#ifndef TY_PROTO_METHODS_H
#define TY_PROTO_METHODS_H

#define TY_M_SUBMIT_JOB "SubmitJob"
#define TY_M_LIST_JOBS "ListJobs"
#define TY_M_GET_JOB "GetJob"
#define TY_M_CANCEL_JOB "CancelJob"
#define TY_M_LIST_NODES "ListNodes"
#define TY_M_GET_TASK_LOCATIONS "GetTaskLocations"
#define TY_M_WATCH_JOB "WatchJob" /* streaming: the job pushed as it changes */
#define TY_M_REGISTER_NODE "RegisterNode"
#define TY_M_HEARTBEAT "Heartbeat"
#define TY_M_TASK_UPDATE "TaskUpdate"
#define TY_M_LAUNCH_TASK "LaunchTask"
#define TY_M_KILL_TASK "KillTask"
#define TY_M_SET_TASK_LIMIT "SetTaskLimit" /* a running job's new time limit */
#define TY_M_READ_LOG "ReadLog"
#define TY_M_ATTACH "Attach"            /* streaming, task token in the credential */
#define TY_M_ATTACH_INPUT "AttachInput" /* stdin, signals, window size */
/* Scheduler and operations (client -> traind). */
#define TY_M_LIST_QUEUES "ListQueues"
#define TY_M_UPDATE_QUEUE "UpdateQueue"          /* create, update, delete */
#define TY_M_UPDATE_NODE "UpdateNode"            /* drain, resume, delete */
#define TY_M_UPDATE_JOB "UpdateJob"              /* hold, release, priority, move, checkpoint */
#define TY_M_EXPLAIN_JOB "ExplainJob"            /* trainctl why */
#define TY_M_GET_SHARES "GetShares"              /* trainctl share */
#define TY_M_RECONFIGURE "Reconfigure"           /* trainctl reconfigure (--config again) */
#define TY_M_LIST_ADMIN_EVENTS "ListAdminEvents" /* trainctl events */
/* Accounting (client -> traind): trainctl history, trainctl node show. */
#define TY_M_GET_HISTORY "GetHistory"
#define TY_M_GET_NODE "GetNode"
/* The web console's per-user tokens (client -> traind; trainctl web-token). */
#define TY_M_WEB_TOKEN "WebToken"
/* Graph jobs: rendezvous of a job's ranks (trainrun -> traind) and training
 * progress (trainworkerd -> traind). */
#define TY_M_RENDEZVOUS_PUT "RendezvousPut"
#define TY_M_RENDEZVOUS_GET "RendezvousGet"
#define TY_M_REPORT_PROGRESS "ReportProgress"
/* Plans a graph job without submitting it (client -> traind; trainctl plan). */
#define TY_M_PLAN_JOB "PlanJob"

/* Default ports. Controller: clients and workers. Worker: task I/O. Metrics
 * are served over HTTP on their own ports. */
#define TY_CONTROLLER_PORT 7810
#define TY_CONTROLLER_METRICS_PORT 7811
#define TY_WORKER_IO_PORT 7820
#define TY_WORKER_METRICS_PORT 7821

#endif
