/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which request message each of the controller's methods carries, for the
 * caps on repeated fields checked before any handler decodes a payload
 * (proto/convert.h), and the decoders themselves run in a row for the
 * fuzzer (ty_controller_decode_request). Every method of rpc.c's dispatch
 * table has a line here.
 */
#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

#include <stdlib.h>
#include <string.h>

#include "proto/convert.h"
#include "proto/methods.h"

static int dec_submit(const uint8_t *p, size_t n) {
  ty_job_spec spec;
  uint8_t *blob = NULL;
  size_t len = 0;
  char *rid = NULL;
  ty__watch_req w;
  ty__job_msg *msg = NULL;
  int rc = ty__conv_submit(p, n, &spec, &blob, &len, &msg, &rid, &w);
  if (rc == 0) {
    char err[TY_ERR_LEN];
    ty_job_check_request_id(rid, err, sizeof err);
    free(rid);
    uint8_t *norm = NULL;
    size_t norm_len = 0;
    if (ty_job_spec_validate(&spec, err, sizeof err) == 0 &&
        ty__conv_normalize(msg, &spec, &norm, &norm_len) == 0)
      free(norm);
    ty_job_spec_close(&spec);
    ty__job_msg_free(msg);
    free(blob);
  }
  return rc;
}

static int dec_list_jobs(const uint8_t *p, size_t n) {
  ty_list_filter f;
  int rc = ty__conv_list_jobs_req(p, n, &f);
  if (rc == 0) ty__list_filter_close(&f);
  return rc;
}

static int dec_job_id(const uint8_t *p, size_t n) {
  ty_job_ref ref;
  bool with_plan = false;
  return ty__conv_job_ref_req(p, n, &ref, &with_plan);
}

static int dec_cancel(const uint8_t *p, size_t n) {
  ty_job_ref *refs = NULL;
  size_t n_refs = 0;
  int rc = ty__conv_cancel_req(p, n, &refs, &n_refs);
  if (rc == 0) free(refs);
  return rc;
}

static int dec_history(const uint8_t *p, size_t n) {
  ty__history_req q;
  int rc = ty__conv_history_req(p, n, &q);
  if (rc == 0) ty__history_req_close(&q);
  return rc;
}

static int dec_get_node(const uint8_t *p, size_t n) {
  char *name = NULL;
  uint32_t limit = 0;
  int rc = ty__conv_get_node_req(p, n, &name, &limit);
  free(name);
  return rc;
}

static int dec_web_token(const uint8_t *p, size_t n) {
  uint32_t ttl;
  bool revoke;
  return ty__conv_web_token_req(p, n, &ttl, &revoke);
}

static int dec_locations(const uint8_t *p, size_t n) {
  uint64_t id;
  bool want = false;
  return ty__conv_task_locations_req(p, n, &id, &want);
}

static int dec_register(const uint8_t *p, size_t n) {
  ty_node_report rep;
  int rc = ty__conv_register_req(p, n, &rep);
  if (rc == 0) ty__node_report_close(&rep);
  return rc;
}

static int dec_heartbeat(const uint8_t *p, size_t n) {
  char *name = NULL;
  uint32_t running;
  bool stopping = false;
  int rc = ty__conv_heartbeat_req(p, n, &name, &running, &stopping);
  free(name);
  return rc;
}

static int dec_task_update(const uint8_t *p, size_t n) {
  ty_task_report tr;
  int rc = ty__conv_task_update_req(p, n, &tr);
  if (rc == 0) ty__task_report_close(&tr);
  return rc;
}

static int dec_admin(int (*conv)(const uint8_t *, size_t, ty_admin_req *), const uint8_t *p,
                     size_t n) {
  ty_admin_req a;
  int rc = conv(p, n, &a);
  if (rc == 0) ty__admin_req_close(&a);
  return rc;
}
static int dec_update_queue(const uint8_t *p, size_t n) {
  return dec_admin(ty__conv_update_queue_req, p, n);
}
static int dec_update_node(const uint8_t *p, size_t n) {
  return dec_admin(ty__conv_update_node_req, p, n);
}
static int dec_update_job(const uint8_t *p, size_t n) {
  return dec_admin(ty__conv_update_job_req, p, n);
}

static int dec_rdv_put(const uint8_t *p, size_t n) {
  uint64_t job;
  char *key = NULL;
  uint8_t *value = NULL;
  size_t len = 0;
  int rc = ty__conv_rdv_put_req(p, n, &job, &key, &value, &len);
  if (rc == 0) free(key), free(value);
  return rc;
}

static int dec_rdv_get(const uint8_t *p, size_t n) {
  uint64_t job;
  char *key = NULL;
  int rc = ty__conv_rdv_get_req(p, n, &job, &key);
  if (rc == 0) free(key);
  return rc;
}

static int dec_progress(const uint8_t *p, size_t n) {
  uint64_t job;
  uint32_t rank;
  ty_train_progress pr;
  ty_checkpoint_list existing = {0};
  int rc = ty__conv_progress_req(p, n, &job, &rank, &pr, &existing);
  if (rc == 0) {
    free(pr.checkpoint_path);
    ty_checkpoint_list_close(&existing);
  }
  return rc;
}

static int dec_plan_job(const uint8_t *p, size_t n) {
  ty_job_spec spec;
  int rc = ty__conv_plan_job_req(p, n, &spec);
  if (rc == 0) {
    char err[TY_ERR_LEN];
    ty_job_spec_validate(&spec, err, sizeof err);
    ty_job_spec_close(&spec);
  }
  return rc;
}

static int dec_watch(const uint8_t *p, size_t n) {
  ty__watch_req w;
  return ty__conv_watch_req(p, n, &w);
}

/* New methods go at the end: byte 0 of the fuzz corpus picks a line. */
static const ty_proto_method requests[] = {
    {TY_M_SUBMIT_JOB, &trainyard__submit_job_request__descriptor, dec_submit},
    {TY_M_LIST_JOBS, &trainyard__list_jobs_request__descriptor, dec_list_jobs},
    {TY_M_GET_JOB, &trainyard__get_job_request__descriptor, dec_job_id},
    {TY_M_CANCEL_JOB, &trainyard__cancel_job_request__descriptor, dec_cancel},
    {TY_M_LIST_NODES, &trainyard__list_nodes_request__descriptor, NULL},
    {TY_M_GET_TASK_LOCATIONS, &trainyard__get_task_locations_request__descriptor, dec_locations},
    {TY_M_REGISTER_NODE, &trainyard__register_node_request__descriptor, dec_register},
    {TY_M_HEARTBEAT, &trainyard__heartbeat_request__descriptor, dec_heartbeat},
    {TY_M_TASK_UPDATE, &trainyard__task_update_request__descriptor, dec_task_update},
    {TY_M_LIST_QUEUES, &trainyard__list_queues_request__descriptor, NULL},
    {TY_M_UPDATE_QUEUE, &trainyard__update_queue_request__descriptor, dec_update_queue},
    {TY_M_UPDATE_NODE, &trainyard__update_node_request__descriptor, dec_update_node},
    {TY_M_UPDATE_JOB, &trainyard__update_job_request__descriptor, dec_update_job},
    {TY_M_EXPLAIN_JOB, &trainyard__explain_job_request__descriptor, dec_job_id},
    {TY_M_GET_SHARES, &trainyard__get_shares_request__descriptor, NULL},
    {TY_M_RENDEZVOUS_PUT, &trainyard__rendezvous_put_request__descriptor, dec_rdv_put},
    {TY_M_RENDEZVOUS_GET, &trainyard__rendezvous_get_request__descriptor, dec_rdv_get},
    {TY_M_REPORT_PROGRESS, &trainyard__report_progress_request__descriptor, dec_progress},
    {TY_M_PLAN_JOB, &trainyard__plan_job_request__descriptor, dec_plan_job},
    {TY_M_GET_HISTORY, &trainyard__get_history_request__descriptor, dec_history},
    {TY_M_GET_NODE, &trainyard__get_node_request__descriptor, dec_get_node},
    {TY_M_WATCH_JOB, &trainyard__watch_job_request__descriptor, dec_watch},
    {TY_M_WEB_TOKEN, &trainyard__web_token_request__descriptor, dec_web_token},
    {TY_M_RECONFIGURE, &trainyard__reconfigure_request__descriptor, NULL},
    {TY_M_LIST_ADMIN_EVENTS, &trainyard__list_admin_events_request__descriptor, NULL},
};

int ty__conv_check_request(const char *method, const uint8_t *p, size_t n, char *err,
                           size_t err_len) {
  return ty_proto_check_method(requests, TY_ARRAY_LEN(requests), method, p, n, err, err_len);
}

int ty_controller_decode_request(const char *method, const uint8_t *p, size_t n, char *err,
                                 size_t err_len) {
  return ty_proto_decode_method(requests, TY_ARRAY_LEN(requests), method, p, n, err, err_len);
}

const char *ty_controller_method(size_t i) {
  return i < TY_ARRAY_LEN(requests) ? requests[i].method : NULL;
}
