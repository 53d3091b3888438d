/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/graph_check: what the controller asks the training runtime about a
 * graph job (see graph_check.c). Free of controller state.
 */
#ifndef TY_DAEMON_GRAPH_CHECK_H
#define TY_DAEMON_GRAPH_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/job.h"

/* Imports the model (model_path or model_bytes) with shape inference,
 * decodes and validates the config, checks its data_input and loss/logits
 * names against the model and the batch against the rank count. TY_EINVAL
 * with "job.graph.<field>: <the runtime's message>" in err. */
int ty__graph_check(const ty_job_spec *s, char *err, size_t err_len);
/* The config's checkpoint_path (heap, caller frees), or NULL when it has
 * none or does not decode. */
char *ty__graph_config_checkpoint(const uint8_t *cfg, size_t len);

#endif
