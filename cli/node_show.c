/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The testable core of `trainctl node show`: one node (state, use,
 * heartbeat, version) and its event history (drains, resumes, DOWN/UP,
 * deletions: who, when, why), as text or JSON. Pure: the clock comes in as
 * now_ms.
 */
#include "cli/cli_internal.h"
#include "cli/cli_history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ty_cli_node_events_free(ty_cli_node_event *ev, size_t n) {
  for (size_t i = 0; ev && i < n; i++)
    free(ev[i].action), free(ev[i].reason), free(ev[i].actor);
  free(ev);
}

static void node_json(ty_json *js, const ty_cli_node *nd, const ty_cli_node_event *ev, size_t nev) {
  ty_json_begin_object(js);
  ty_json_key(js, "name"), ty_json_string(js, nd->name);
  ty_json_key(js, "state"), ty_json_string(js, ty_node_state_name(nd->state));
  ty_json_key(js, "reason"), ty_json_string(js, nd->reason);
  ty_json_key(js, "cpus"), ty_json_uint(js, nd->cpus);
  ty_json_key(js, "cpus_used"), ty_json_uint(js, nd->cpus_used);
  ty_json_key(js, "gpus"), ty_json_uint(js, nd->gpus);
  ty_json_key(js, "gpus_used"), ty_json_uint(js, nd->gpus_used);
  ty_json_key(js, "memory"), ty_json_uint(js, nd->memory);
  ty_json_key(js, "running_tasks"), ty_json_uint(js, nd->running_tasks);
  ty_json_key(js, "io_addr"), ty_json_string(js, nd->io_addr);
  ty_json_key(js, "last_heartbeat_ms"), ty_json_int(js, nd->last_heartbeat_ms);
  ty_json_key(js, "version"), ty_json_string(js, nd->version ? nd->version : "");
  ty_json_key(js, "switch"), ty_json_string(js, nd->switch_name ? nd->switch_name : "");
  ty_json_key(js, "events"), ty_json_begin_array(js);
  for (size_t i = 0; i < nev; i++) {
    ty_json_begin_object(js);
    ty_json_key(js, "time_ms"), ty_json_int(js, ev[i].time_ms);
    ty_json_key(js, "from"), ty_json_string(js, ev[i].from ? ty_node_state_name(ev[i].from) : "");
    ty_json_key(js, "to"), ty_json_string(js, ev[i].to ? ty_node_state_name(ev[i].to) : "");
    ty_json_key(js, "action"), ty_json_string(js, ev[i].action);
    ty_json_key(js, "reason"), ty_json_string(js, ev[i].reason);
    ty_json_key(js, "actor"), ty_json_string(js, ev[i].actor);
    ty_json_end_object(js);
  }
  ty_json_end_array(js);
  ty_json_end_object(js);
}

static int node_text(const ty_cli_node *nd, const ty_cli_node_event *ev, size_t nev, int64_t now_ms,
                     ty_buf *out) {
  char mem[32], age[32];
  ty_cli_format_size(nd->memory, mem, sizeof mem);
  int64_t hb = nd->last_heartbeat_ms;
  ty_cli_format_elapsed(hb > 0 && now_ms > hb ? now_ms - hb : 0, age, sizeof age);
  ty_buf_printf(out, "Node %s: %s%s%s\n", nd->name, ty_node_state_name(nd->state),
                nd->reason[0] ? " - " : "", nd->reason);
  ty_buf_printf(out, "  CPUs %u/%u used, GPUs %u/%u used, memory %s, %u task(s) running\n",
                nd->cpus_used, nd->cpus, nd->gpus_used, nd->gpus, mem, nd->running_tasks);
  if (nd->last_heartbeat_ms > 0)
    ty_buf_printf(out, "  io %s, last heartbeat %s ago\n", nd->io_addr, age);
  else /* a controller restarted since: its last heartbeat was not stored */
    ty_buf_printf(out, "  io %s, no heartbeat since the controller started\n", nd->io_addr);
  ty_buf_printf(out, "  Version=%s\n", nd->version && nd->version[0] ? nd->version : "unknown");
  ty_buf_printf(out, "  Switch=%s\n",
                nd->switch_name && nd->switch_name[0] ? nd->switch_name : "(none)");
  if (nev == 0) return ty_buf_printf(out, "Events: none recorded\n");
  static const char *const hdr[] = {"TIME", "ACTION", "STATE", "BY", "REASON"};
  ty_cli_table *t = ty_cli_table_create(hdr, NULL, TY_ARRAY_LEN(hdr));
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < nev; i++) {
    char when[32], states[48];
    ty_cli_format_time(ev[i].time_ms, 'T', when, sizeof when);
    if (ev[i].from && ev[i].to && ev[i].from != ev[i].to)
      snprintf(states, sizeof states, "%s -> %s", ty_node_state_name(ev[i].from),
               ty_node_state_name(ev[i].to));
    else
      snprintf(states, sizeof states, "%s", ev[i].to ? ty_node_state_name(ev[i].to) : "-");
    const char *row[] = {when, ev[i].action, states, ev[i].actor, ev[i].reason};
    rc = ty_cli_table_add(t, row);
  }
  if (rc == 0) rc = ty_buf_printf(out, "Events (oldest first):\n");
  if (rc == 0) rc = ty_cli_table_render(t, out);
  ty_cli_table_destroy(t);
  return rc;
}

int ty_cli_render_node_show(const ty_cli_node *nd, const ty_cli_node_event *ev, size_t nev,
                            int64_t now_ms, bool json, ty_buf *out) {
  if (!json) return node_text(nd, ev, nev, now_ms, out);
  ty_json w;
  ty_json_init(&w, out);
  node_json(&w, nd, ev, nev);
  int rc = ty_json_finish(&w);
  return rc ? rc : ty_buf_append(out, "\n", 1);
}
