/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainyard_build_info: the "info" gauge Prometheus exporters use for their
 * build (always 1; the labels are the data), so a query or a dashboard sees
 * which version every daemon runs, as during a rolling upgrade.
 */
#include "lib/metrics/metrics.h"
#include "lib/base/version.h"
#include "lib/metrics/metrics_internal.h"

void ty_metrics_add_build_info(ty_metrics *m) {
  if (!m || ty__metrics_find(m, "trainyard_build_info")) return;
  ty_metric *info = ty_metrics_gauge(
      m, "trainyard_build_info",
      "Always 1: version is this build's (git describe, or the release's), features "
      "its optional parts (cuda, mpi, onednn, systemd).",
      "version,features");
  const char *values[] = {ty_version, ty_build_features};
  ty_metric_set(info, values, 1);
}
