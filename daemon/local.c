/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's Unix socket for local clients (issue 20; the design of
 * docker's, containerd's and systemd's sockets, docs/security.md): trainctl
 * and rlaunch on the controller's host connect to --socket PATH instead of
 * the TCP port, and the kernel tells who they are (SO_PEERCRED, read at
 * accept by lib/rpc) instead of a MUNGE credential made and decoded by
 * munged for each request.
 *
 * What this file owns: creating the socket (its directory made 0755 when
 * missing; the socket 0666: any local user may connect and acts as
 * itself), closing it on stop (lib/rpc removes the file), and the gate
 * every request on it passes: only CLIENT-class methods are served there;
 * workers' methods and job-token methods are refused, since a worker
 * proves the cluster's service with its own scheme over TCP. The caller's
 * identity is the peer's uid and gid; an `auth` credential in the envelope
 * is ignored (never read), so a client that attaches another user's MUNGE
 * credential is still the peer (auth.c takes the identity from the conn).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon_internal.h"

/* The socket's directory: created 0755 when missing (an existing one is
 * left as its owner made it: the state dir is 0700, a single-user start). */
static int make_dir(const char *path, char *err, size_t len) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = '\0';
  struct stat st;
  if (stat(dir, &st) == 0) return 0;
  int rc = ty_mkdir_p(dir);
  if (rc == 0 && chmod(dir, 0755) != 0) rc = TY_EIO;
  return rc ? ty_errf(err, len, rc, "--socket %s: cannot create its directory %s: %s", path, dir,
                      rc == TY_EIO ? strerror(errno) : ty_strerror(rc))
            : 0;
}

int ty__local_start(ty_controller *ctl, const ty_rpc_conn_opts *opts, char *err, size_t len) {
  const char *path = ctl->cfg.socket_path;
  if (!path || !path[0]) return 0;
  int rc = make_dir(path, err, len);
  if (rc != 0) return rc;
  char why[TY_ERR_LEN] = "";
  rc = ty_rpc_server_create_unix(ctl->loop, path, opts, NULL, ctl, &ctl->local, why, sizeof why);
  if (rc != 0) return ty_errf(err, len, rc, "--socket: %s", why);
  ty_info("local clients on %s (identified by the kernel, no MUNGE credential)", path);
  return 0;
}

void ty__local_stop(ty_controller *ctl) {
  ty_rpc_server_destroy(ctl->local); /* removes the socket file */
  ctl->local = NULL;
}

bool ty__local_refuses(ty_reply *r, ty_auth_class klass) {
  int rc = ty_rpc_peer_cred(r->conn, NULL, NULL, NULL);
  if (rc == TY_ENOTFOUND) return false; /* TCP: the method's own scheme */
  if (rc != 0) {
    ty__auth_refuse(r, "no_peer_credentials",
                    "%s: permission denied: the kernel gave no credentials for this "
                    "connection to %s",
                    r->method, r->ctl->cfg.socket_path);
    return true;
  }
  if (klass == TY_AUTH_CLASS_CLIENT) return false;
  ty__auth_refuse(r, "local_socket",
                  "%s: permission denied: only client requests are served on the local "
                  "socket %s; %s connect to the controller's TCP port with the cluster's "
                  "credential",
                  r->method, r->ctl->cfg.socket_path,
                  klass == TY_AUTH_CLASS_WORKER ? "workers" : "job ranks");
  return true;
}
