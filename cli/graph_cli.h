/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli/: graph-job views (issue 6). `trainctl watch ID` polls GetJob once a
 * second and draws a progress bar on a terminal (one line rewritten in
 * place: step of total, loss, samples/s, ETA, test accuracy), plain lines
 * when stdout is not a terminal; it ends with the job and exits 0 when the
 * job COMPLETED, 1 otherwise. `trainctl checkpoint ls ID` lists the
 * checkpoints the job reported. `trainctl show ID` adds a progress block.
 */
#ifndef TY_CLI_GRAPH_CLI_H
#define TY_CLI_GRAPH_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/base.h"
#include "lib/wire/wire.h"

/* What GetJob says about a job's training. Strings owned. */
typedef struct ty__cli_graph {
  int state; /* ty_job_state */
  char *reason, *name;
  int64_t start_ms;
  bool graph, has_progress;
  ty_train_progress progress;
  ty_checkpoint_info *ckpts;
  size_t n_ckpts;
} ty__cli_graph;

int ty__cli_decode_graph(const uint8_t *p, size_t n, ty__cli_graph *out);
void ty__cli_graph_close(ty__cli_graph *g);

/* Renders one status line (no newline) into out: with `bar`, a progress bar
 * `width` characters wide comes first. */
void ty__cli_render_progress(const ty__cli_graph *g, bool bar, int width, ty_buf *out);
/* Appends the "Progress:" block of `trainctl show` (nothing for non-graph
 * jobs or before the first report). */
void ty__cli_render_show(const ty__cli_graph *g, ty_buf *out);

#endif
