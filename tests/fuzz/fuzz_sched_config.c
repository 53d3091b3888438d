/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for traind's --config file (scheduler/config.c): the
 * bytes as the file's text, parsed into the scheduler's settings and
 * switch topology. A refusal must say why.
 */
#include "lib/base/base.h"
#include "scheduler/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0'; /* traind reads the file and ends it the same way */
  ty_sched_config cfg;
  ty_sched_topology topo;
  ty_sched_config_default(&cfg);
  memset(&topo, 0, sizeof topo);
  char err[TY_ERR_LEN] = "";
  if (ty_sched_config_parse(text, &cfg, &topo, err, sizeof err) != 0 && !err[0]) {
    fprintf(stderr, "a refused config without a reason\n");
    abort();
  }
  ty_sched_topology_close(&topo);
  free(text);
  return 0;
}
