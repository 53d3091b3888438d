/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder while the io part is written. */
#include "worker/worker_internal.h"
