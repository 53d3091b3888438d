/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder while the session part is written. */
#include "worker/worker_internal.h"
