/* SPDX-License-Identifier: Apache-2.0 */
/* Error names for Trainyard's own codes; libuv names everything else. */
#include "lib/base/base.h"

#include <uv.h>

const char *ty_strerror(int code) {
  switch (code) {
  case TY_OK: return "success";
  case TY_EINVAL: return "invalid argument";
  case TY_ENOMEM: return "out of memory";
  case TY_EPROTO: return "malformed message";
  case TY_ETOOBIG: return "frame exceeds the maximum frame size";
  case TY_EVERSION: return "protocol version mismatch";
  case TY_ENOTFOUND: return "not found";
  case TY_ETIMEDOUT: return "request timed out";
  case TY_ECLOSED: return "connection closed";
  case TY_ESTATE: return "not valid in the current state";
  case TY_ESTORE: return "state database error";
  case TY_EEXIST: return "already exists";
  case TY_EUNSUPPORTED: return "unsupported";
  case TY_EIO: return "I/O error";
  case TY_EPERM: return "permission denied";
  case TY_EINTERNAL: return "internal error";
  default: break;
  }
  if (code < 0 && code > -4096) return uv_strerror(code);
  return "unknown error";
}
