/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unix stream sockets for lib/rpc (issue 20): binding a server's socket
 * file (stale-socket removal, mode, removal on destroy) and the kernel's
 * word on who is at the other end of an accepted or connected conn
 * (SO_PEERCRED). A local conn is otherwise a ty_rpc_conn like a TCP one:
 * same framing, limits and deadlines (conn.c, server.c).
 *
 * Why a socket at the path may be removed: only when a connect() to it is
 * refused (ECONNREFUSED: a socket file nobody listens on, left by a daemon
 * that did not stop cleanly). A socket that accepts belongs to a running
 * daemon and is never taken over; anything else at the path (a regular
 * file, a directory) is not ours to remove.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "lib/rpc/rpc_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* 1 when something accepts connections at path, 0 when nothing does
 * (refused), or -errno. */
static int socket_answers(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 1 : -errno;
  close(fd);
  return rc == -ECONNREFUSED ? 0 : rc;
}

/* Clears the way for a new socket at path: nothing there, or a stale
 * socket removed. */
static int clear_stale(const char *path, char *err, size_t err_len) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT
               ? 0
               : ty_errf(err, err_len, TY_EIO, "cannot inspect %s: %s", path, strerror(errno));
  if (!S_ISSOCK(st.st_mode))
    return ty_errf(err, err_len, TY_EEXIST,
                   "%s exists and is not a socket; remove it or choose another --socket path",
                   path);
  int live = socket_answers(path);
  if (live == 1)
    return ty_errf(err, err_len, TY_EEXIST,
                   "%s: another process (a running traind?) accepts connections there", path);
  if (live < 0)
    return ty_errf(err, err_len, TY_EIO, "%s: cannot tell whether it is in use: %s", path,
                   strerror(-live));
  if (unlink(path) != 0 && errno != ENOENT)
    return ty_errf(err, err_len, TY_EIO, "cannot remove the stale socket %s: %s", path,
                   strerror(errno));
  ty_info("removed the stale socket %s (nothing answered on it)", path);
  return 0;
}

int ty__unix_bind(uv_pipe_t *h, const char *path, ty__unix_owner *owner, char *err,
                  size_t err_len) {
  if (strlen(path) >= sizeof owner->path)
    return ty_errf(err, err_len, TY_EINVAL, "the socket path %s is longer than %zu bytes", path,
                   sizeof owner->path - 1);
  int rc = clear_stale(path, err, err_len);
  if (rc != 0) return rc;
  rc = uv_pipe_bind(h, path);
  if (rc < 0) return ty_errf(err, err_len, rc, "cannot bind %s: %s", path, ty_strerror(rc));
  struct stat st;
  snprintf(owner->path, sizeof owner->path, "%s", path);
  if (lstat(path, &st) == 0) {
    owner->bound = true;
    owner->dev = (uint64_t)st.st_dev, owner->ino = (uint64_t)st.st_ino;
  }
  /* Any local user may connect; the daemon decides per request who they
   * are. Not umask's business: traind runs with umask 077. */
  if (chmod(path, 0666) != 0)
    return ty_errf(err, err_len, TY_EIO, "cannot make %s 0666: %s", path, strerror(errno));
  return 0;
}

void ty__unix_release(ty__unix_owner *owner) {
  if (!owner->bound) return;
  owner->bound = false;
  struct stat st;
  if (lstat(owner->path, &st) == 0 && (uint64_t)st.st_dev == owner->dev &&
      (uint64_t)st.st_ino == owner->ino)
    unlink(owner->path);
}

void ty__conn_local_peer(ty_rpc_conn *c) {
  uv_os_fd_t fd;
  struct ucred cred;
  socklen_t len = sizeof cred;
  c->addr.ss_family = AF_UNIX;
  if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof cred) {
    c->has_cred = true;
    c->peer_uid = (uint32_t)cred.uid, c->peer_gid = (uint32_t)cred.gid;
    c->peer_pid = (int32_t)cred.pid;
    snprintf(c->peer, sizeof c->peer, "unix:uid=%u,pid=%d", (unsigned)cred.uid, (int)cred.pid);
  } else {
    snprintf(c->peer, sizeof c->peer, "unix:(no credentials)");
  }
}

int ty_rpc_peer_cred(const ty_rpc_conn *c, uint32_t *uid, uint32_t *gid, int32_t *pid) {
  if (!c || !c->local) return TY_ENOTFOUND;
  if (!c->has_cred) return TY_EPERM;
  if (uid) *uid = c->peer_uid;
  if (gid) *gid = c->peer_gid;
  if (pid) *pid = c->peer_pid;
  return 0;
}
