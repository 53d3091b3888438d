/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The users -u/--user names (ls, cancel, history), as sacct and squeue
 * take them: names or numeric uids, each a user this host knows.
 *
 * /etc/passwd is read first, without NSS: trainctl is linked statically
 * (cli/meson.build), and a static program's NSS lookup of a name that
 * /etc/passwd lacks loads the next source's shared module, which for
 * systemd's (Debian's default "passwd: files systemd") crashes it. NSS is
 * asked only when nsswitch.conf names a directory beyond those two (sss,
 * ldap, winbind...), whose users /etc/passwd cannot know.
 */
#include "cli/cli_internal.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether nsswitch.conf's passwd line names a source other than files
 * and systemd. */
static bool directory_source(void) {
  FILE *f = fopen("/etc/nsswitch.conf", "re");
  char line[512];
  bool other = false;
  while (f && !other && fgets(line, sizeof line, f)) {
    if (strncmp(line, "passwd:", 7) != 0) continue;
    char *save = NULL;
    for (char *t = strtok_r(line + 7, " \t\n", &save); t && !other;
         t = strtok_r(NULL, " \t\n", &save))
      other = t[0] != '[' && t[0] != '#' && strcmp(t, "files") && strcmp(t, "systemd");
  }
  if (f) fclose(f);
  return other;
}

/* The name of user s (a name, or a uid when numeric) into *out (heap);
 * false when this host knows no such user. */
static bool user_lookup(const char *s, bool numeric, char **out) {
  uid_t uid = numeric ? (uid_t)strtoul(s, NULL, 10) : 0;
  FILE *f = fopen("/etc/passwd", "re");
  struct passwd *pw = NULL;
  while (f && (pw = fgetpwent(f)) != NULL)
    if (numeric ? pw->pw_uid == uid : !strcmp(pw->pw_name, s)) break;
  if (pw) *out = ty_strdup(pw->pw_name);
  if (f) fclose(f);
  if (pw || !directory_source()) return pw != NULL;
  pw = numeric ? getpwuid(uid) : getpwnam(s);
  if (pw && pw->pw_name) *out = ty_strdup(pw->pw_name);
  return pw && pw->pw_name;
}

/* users[i] as the name of the user it names. */
static int user_name(const char *what, char **u, char *err, size_t err_len) {
  const char *s = *u;
  bool numeric = s[0] && strlen(s) <= 10 && s[strspn(s, "0123456789")] == '\0';
  char *name = NULL;
  if (!user_lookup(s, numeric, &name))
    return numeric ? ty_errf(err, err_len, TY_EINVAL, "%s: no user has uid %s here", what, s)
                   : ty_errf(err, err_len, TY_EINVAL,
                             "%s: \"%.64s\" is not a user here (Invalid user id, as sacct says)",
                             what, s);
  free(*u);
  *u = name;
  return 0;
}

/* Drops the users named before (root,0 is root once). */
static void drop_repeats(char **users, size_t *n) {
  size_t kept = 0;
  for (size_t i = 0; i < *n; i++) {
    bool seen = false;
    for (size_t k = 0; k < kept && !seen; k++)
      seen = !strcmp(users[k], users[i]);
    if (seen)
      free(users[i]);
    else
      users[kept++] = users[i];
  }
  *n = kept;
}

int ty_cli_resolve_users(const char *what, char **users, size_t *n, char **user, char *err,
                         size_t err_len) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < *n; i++)
    rc = user_name(what, &users[i], err, err_len);
  if (rc == 0) drop_repeats(users, n);
  if (rc == 0 && *n) {
    free(*user);
    *user = *n == 1 ? ty_strdup(users[0]) : NULL;
  }
  return rc;
}
