/* SPDX-License-Identifier: Apache-2.0 */
/*
 * history_fill: a controller's state directory holding N finished jobs (and
 * P pending ones), written through the store's own code (daemon/store.c,
 * one transaction per 10,000 rows), for bench/history/growth.sh. Finished
 * jobs end one second apart, across users u0..u99, each with one rank
 * record, as a busy cluster's history would.
 *   build/bench/history/history_fill STATE_DIR FINISHED PENDING
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "daemon/daemon.h"
#include "proto/convert.h"

static int spec_bytes(ty_buf *out) {
  char *argv[] = {"sleep", "1000"};
  ty_job_spec s = {.kind = TY_JOB_KIND_COMMAND,
                   .name = "bench",
                   .user = "u0",
                   .queue = "default",
                   .argv = argv,
                   .argc = 2,
                   .cwd = "/tmp",
                   .cpus_per_task = 64};
  ty_proto_job pj;
  ty_proto_encode_job(&s, &pj);
  int rc = ty_wire_pack(&pj.job.base, out);
  ty_proto_job_close(&pj);
  return rc;
}

static int put(ty_store *s, uint64_t id, bool pending, const ty_buf *spec) {
  char user[16];
  snprintf(user, sizeof user, "u%llu", (unsigned long long)(id % 100));
  int64_t t = 1700000000000 + (int64_t)id * 1000;
  ty_job_row r = {.id = id,
                  .name = "bench",
                  .user = pending ? "u0" : user,
                  .queue = "default",
                  .state = pending ? TY_JOB_PENDING : TY_JOB_COMPLETED,
                  .reason = "",
                  .submit_ms = t,
                  .start_ms = pending ? 0 : t + 100,
                  .end_ms = pending ? 0 : t + 900,
                  .nodes = pending ? "" : "n1",
                  .alloc = "",
                  .spec = spec->data,
                  .spec_len = spec->len,
                  .request_id = "",
                  .model_file = "",
                  .alloc_cpus = 1,
                  .cpu_usec = 800000,
                  .uid = pending ? 1000 : 1000 + (int64_t)(id % 100)};
  int rc = ty_store_insert_job(s, &r);
  if (rc != 0 || pending) return rc;
  ty_rank_row k = {.job_id = id,
                   .run = 1,
                   .rank = 0,
                   .node = "n1",
                   .start_ms = t + 100,
                   .end_ms = t + 900,
                   .state = 3,
                   .cpus = 1,
                   .cpu_ms = 800};
  return ty_store_add_rank(s, &k);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s STATE_DIR FINISHED PENDING\n", argv[0]);
    return 2;
  }
  uint64_t finished = strtoull(argv[2], NULL, 10), pending = strtoull(argv[3], NULL, 10);
  char path[4096], err[TY_ERR_LEN];
  mkdir(argv[1], 0700);
  snprintf(path, sizeof path, "%s/traind.db", argv[1]);
  ty_store *s = NULL;
  if (ty_store_open(path, &s, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  ty_buf spec;
  ty_buf_init(&spec);
  int rc = spec_bytes(&spec);
  for (uint64_t id = 1; rc == 0 && id <= finished + pending; id++) {
    if ((id - 1) % 10000 == 0) rc = ty_store_begin(s);
    if (rc == 0) rc = put(s, id, id > finished, &spec);
    if (rc == 0 && (id % 10000 == 0 || id == finished + pending)) rc = ty_store_commit(s);
  }
  ty_buf_close(&spec);
  ty_store_close(s);
  if (rc != 0) fprintf(stderr, "store: %s\n", ty_strerror(rc));
  return rc ? 1 : 0;
}
