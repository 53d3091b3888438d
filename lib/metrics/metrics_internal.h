/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/metrics internals shared by registry.c, process.c and http.c. Not for
 * other modules.
 */
#ifndef TY_LIB_METRICS_METRICS_INTERNAL_H
#define TY_LIB_METRICS_METRICS_INTERNAL_H

#include "lib/metrics/metrics.h"

/* The family registered under `name`, or NULL. */
ty_metric *ty__metrics_find(ty_metrics *m, const char *name);

/* Like ty_metrics_on_collect, and the registry calls free_ud(ud) when it is
 * destroyed: the registry then owns ud. */
void ty__metrics_on_collect_owned(ty_metrics *m, void (*cb)(ty_metrics *m, void *ud), void *ud,
                                  void (*free_ud)(void *ud));

/* The ud registered with collect callback cb, or NULL (one registration
 * per callback is assumed). */
void *ty__metrics_collector_ud(ty_metrics *m, void (*cb)(ty_metrics *m, void *ud));

/* Formats a sample value as the exposition format wants it: the shortest of
 * %.15g / %.17g that reads back exactly, or "+Inf", "-Inf", "NaN". */
void ty__metrics_fmt_double(char out[32], double v);

#endif
