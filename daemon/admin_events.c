/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ListAdminEvents (`trainctl events`): the admin events -- queue changes and
 * reconfigures (the RPC's and SIGHUP's), applied or refused, with who made
 * them (admin.c, reconfig.c write them) -- read back from the store for
 * operators, filtered by kind and time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

#define EVENTS_DEFAULT 1000u
#define EVENTS_MAX 100000u

typedef struct rows {
  ty_admin_event_row *v;
  size_t n;
} rows;

static int add_row(const ty_admin_event_row *r, void *ud) {
  rows *l = ud;
  l->v = ty_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
  l->v[l->n++] =
      (ty_admin_event_row){r->time_ms,           ty_strdup(r->actor),  ty_strdup(r->kind),
                           ty_strdup(r->object), ty_strdup(r->action), ty_strdup(r->detail)};
  return 0;
}

static void rows_close(rows *l) {
  for (size_t i = 0; i < l->n; i++) {
    ty_admin_event_row *r = &l->v[i];
    free((char *)r->actor), free((char *)r->kind), free((char *)r->object);
    free((char *)r->action), free((char *)r->detail);
  }
  free(l->v);
}

/* The request's fields checked, naming the one that is wrong. */
static int check_query(ty_admin_event_query *q, char *err, size_t len) {
  if (q->kind[0] && strcmp(q->kind, "queue") != 0 && strcmp(q->kind, "config") != 0)
    return ty_errf(err, len, TY_EINVAL,
                   "kind: \"%.64s\" is not an admin event kind (queue, config)", q->kind);
  if (q->since_ms < 0)
    return ty_errf(err, len, TY_EINVAL, "since_ms: %lld is before the epoch",
                   (long long)q->since_ms);
  if (q->limit > EVENTS_MAX)
    return ty_errf(err, len, TY_EINVAL, "limit: %u is above %u", q->limit, EVENTS_MAX);
  if (!q->limit) q->limit = EVENTS_DEFAULT;
  return 0;
}

void ty__h_list_admin_events(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  char err[TY_ERR_LEN];
  int rc = ty__auth_operator(r, "list the admin events", err, sizeof err);
  if (rc != 0) {
    r->refusal = "not_operator";
    ty__reply_finish(r, rc, err);
    return;
  }
  ty_admin_event_query q;
  rc = ty__conv_admin_events_req(p, n, &q);
  if (rc != 0) {
    ty__reply_bad_payload(r, rc, "a ListAdminEventsRequest");
    return;
  }
  rows l = {0};
  rc = check_query(&q, err, sizeof err);
  if (rc == 0 && ty_store_admin_events(ctl->store, &q, add_row, &l) != 0)
    rc = ty_errf(err, sizeof err, TY_ESTORE, "cannot read the admin events: %s",
                 ty_store_errmsg(ctl->store));
  if (rc == 0 && ty__conv_admin_events_resp(l.v, l.n, &r->out) != 0)
    rc = ty_errf(err, sizeof err, TY_ENOMEM, "cannot encode the answer");
  rows_close(&l);
  free((char *)q.kind);
  ty__reply_finish(r, rc, rc ? err : NULL);
}
