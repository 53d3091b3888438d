/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batch scripts, as sbatch takes them: `trainctl submit [OPTIONS] SCRIPT
 * [ARGS...]` where SCRIPT starts with "#!". This file owns
 *   - reading the script (whole, at most TY_CLI_SCRIPT_MAX bytes: it
 *     travels in the job as an argument, so no node needs the file),
 *   - its directives: the `#SBATCH` and `#TRAINYARD` lines of its header
 *     (up to the first line that is neither blank nor a comment, as sbatch
 *     reads them), each split into words as a shell would split plain and
 *     quoted words, for the submit parser (opts.c) to apply before the
 *     command line's options, which win;
 *   - the command that runs it on the node: /bin/sh writes the script to a
 *     private directory under $TMPDIR, runs it with the arguments (its "#!"
 *     line chooses the interpreter) and an `srun` of its own on its PATH,
 *     sends its output where --output and --error say, and removes the
 *     directory when the script ends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/script.h"

bool ty_cli_is_script(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  char head[2] = {0, 0};
  size_t n = fread(head, 1, 2, f);
  fclose(f);
  return n == 2 && head[0] == '#' && head[1] == '!';
}

int ty_cli_script_read(const char *path, char **out, char *err, size_t err_len) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ty_errf(err, err_len, TY_EIO, "%s: %s", path, strerror(errno));
  char *text = ty_xmalloc(TY_CLI_SCRIPT_MAX + 2);
  size_t n = fread(text, 1, TY_CLI_SCRIPT_MAX + 1, f);
  bool bad = ferror(f) != 0;
  fclose(f);
  if (bad) {
    free(text);
    return ty_errf(err, err_len, TY_EIO, "%s: read failed", path);
  }
  if (n > TY_CLI_SCRIPT_MAX) {
    free(text);
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: a batch script may be at most %d bytes (it travels in the job); "
                   "put the work in a file the nodes can read and call it from a short script",
                   path, TY_CLI_SCRIPT_MAX);
  }
  text[n] = '\0';
  if (memchr(text, '\0', n)) {
    free(text);
    return ty_errf(err, err_len, TY_EINVAL, "%s: a batch script must be text (it holds a NUL byte)",
                   path);
  }
  if (strstr(text, "\r\n")) {
    free(text);
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: the script has DOS line breaks (\\r\\n); its #! line would name an "
                   "interpreter ending in \\r: convert it first (dos2unix %s, or sed -i "
                   "'s/\\r$//' %s)",
                   path, path, path);
  }
  *out = text;
  return 0;
}

/* ---- directives -------------------------------------------------------------------------- */

/* The words of one directive's options: plain words, '...' and "..." (with
 * \" and \\ inside double quotes), joined when adjacent; an unquoted '#'
 * starting a word ends the line (a comment). Pushes each onto *words. */
static int split_words(const char *s, char ***words, int *n, char *err, size_t err_len) {
  size_t len = strlen(s);
  char *w = ty_xmalloc(len + 1);
  int rc = 0;
  while (rc == 0) {
    while (*s == ' ' || *s == '\t' || *s == '\r')
      s++;
    if (!*s || *s == '#') break;
    size_t k = 0;
    while (*s && *s != ' ' && *s != '\t' && *s != '\r' && rc == 0) {
      char q = *s;
      if (q != '\'' && q != '"') {
        w[k++] = *s++;
        continue;
      }
      for (s++; *s && *s != q; s++) {
        if (q == '"' && *s == '\\' && (s[1] == '"' || s[1] == '\\')) s++;
        w[k++] = *s;
      }
      if (*s != q)
        rc = ty_errf(err, err_len, TY_EINVAL, "unterminated %c quote", q);
      else
        s++;
    }
    w[k] = '\0';
    if (rc == 0) {
      *words = ty_xrealloc(*words, ((size_t)*n + 1) * sizeof **words);
      (*words)[(*n)++] = ty_strdup(w);
    }
  }
  free(w);
  return rc;
}

/* The options of line `line` (no newline) when it is a directive, else
 * NULL: "#SBATCH" or "#TRAINYARD" and then a blank or the end. */
static const char *directive(const char *line) {
  static const char *const prefixes[] = {"#SBATCH", "#TRAINYARD"};
  for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
    size_t n = strlen(prefixes[i]);
    if (strncmp(line, prefixes[i], n) == 0 && (!line[n] || line[n] == ' ' || line[n] == '\t'))
      return line + n;
  }
  return NULL;
}

/* Whether the header goes on past this line: blank lines and comments. */
static bool in_header(const char *line) {
  while (*line == ' ' || *line == '\t' || *line == '\r')
    line++;
  return !*line || *line == '#';
}

int ty_cli_script_directives(const char *path, const char *text, ty_cli_directive_fn on, void *ud,
                             char *err, size_t err_len) {
  int rc = 0;
  const char *p = text;
  for (int lineno = 1; *p && rc == 0; lineno++) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char *line = ty_xmalloc(n + 1);
    memcpy(line, p, n), line[n] = '\0';
    p += n + (nl != NULL);
    bool more = lineno == 1 || in_header(line);
    const char *opts = more ? directive(line) : NULL;
    char **words = NULL;
    int nw = 0;
    char why[TY_ERR_LEN] = "";
    if (opts && (rc = split_words(opts, &words, &nw, why, sizeof why)) == 0)
      rc = on(words, nw, ud, why, sizeof why);
    if (rc != 0) ty_errf(err, err_len, rc, "%s:%d: %s: %s", path, lineno, line, why);
    for (int i = 0; i < nw; i++)
      free(words[i]);
    free(words);
    free(line);
    if (!more) break;
  }
  return rc;
}

/* ---- the command that runs it ------------------------------------------------------------- */

/* The runner's fixed words before the script's arguments: /bin/sh -c
 * RUNNER trainyard-batch TEXT OUTPUT ERROR NAME. */
#define RUNNER_WORDS 8

/*
 * $1: the script, unless the worker moved it to TRAINYARD_BATCH_SCRIPT
 * (worker/launch.c: arguments are every local user's to read, the
 * environment only the user's; unset here, so the script never sees it),
 * $2: --output's pattern, $3: --error's ("" = as the
 * output), $4: the job's name at submit, then the script's arguments
 * (%x is the name the job starts with, the worker's TRAINYARD_JOB_NAME,
 * which a `job update -J` of the pending job changed; $4 without it). The patterns
 * take sbatch's %j (job id), %x (name), %A and %a (array job and task),
 * %t (rank), %N (node), %u (user) and %%, a number between % and the
 * letter zero-padding a numeric one as sbatch's (%4j: 0042; %3x is %x).
 * The number is one word of n, read in a subshell's x so that the outer
 * loop's p and o are kept. A file is truncated as sbatch's
 * unless SLURM_OPEN_MODE is "a" (--open-mode=append) or several tasks
 * write it (a pattern without %t in a job of more than one task): then
 * every task appends, so that none overwrites another's lines. An --error
 * naming the same file as --output (once expanded) shares its descriptor,
 * as slurmstepd's: opened twice, each write of one stream would overwrite
 * the other's. A file that cannot be opened (its directory missing, not
 * writable) is tried first by w, in a subshell, so that its error does not
 * end this shell with a bare 2: w writes TY_BATCH_ERROR "cannot open output
 * file PATH: WHY" (WHY the shell's words) to the rank's log and exits 1,
 * and the worker makes that line the rank's reason (worker/task.c). The
 * runner's own tools (mktemp, chmod, rm) run by `command
 * -p`, from the system's default PATH: the job's PATH is the user's
 * (--export=NONE,PATH=/opt/x), which sbatch hands the script as it is. The
 * script
 * runs on every task, so an `srun CMD` in it (Slurm's job step) is CMD run
 * in this task: an `srun` first on its PATH execs the command, in the tasks
 * a step of `-n K`, `-N M` and `--ntasks-per-node Q` would have with
 * Slurm's block distribution (srun -N2 -n2 in a 2-node job: one task on
 * each node), exiting 0 in the others and refusing (exit 1) a step larger
 * than the job; it enters
 * -D/--chdir's directory (exit 1 if it cannot), exports --export's
 * NAME=VALUE items, labels each line with the step rank under -l/--label
 * (`0: `, as srun -l), skips srun's other options saying `srun: option X
 * ignored` and refuses one srun does not have; a `scontrol` there answers
 * `scontrol show hostnames` (the idiom that picks the first node as
 * MASTER_ADDR) from the worker's
 * TRAINYARD_NODENAMES and refuses the rest. Signals (SIGTERM of a cancel, the --signal warning)
 * reach the script itself; the trap only keeps this shell waiting for it, so its exit status is the
 * script's. The worker gives a batch task TRAINYARD_EXEC, the path of trainyard-exec, whose
 * --wait-status mode runs the script and writes its real wait status to a file here
 * (worker/exec_wait.c; the variable is unset before the script runs): a script that exits N ends
 * the task with N (`exit 137` is `137:0`); one killed by signal N has this shell, once it has
 * cleaned up, send N to itself with its default action and no core file, so that the task, as
 * Slurm's batch step, ends killed by N (`0:9`). Without the variable (an older worker) only $? is
 * known: 129 to 143 then read as signals 1 to 15, as they did before.
 */
static const char runner_head[] =
    "s=${TRAINYARD_BATCH_SCRIPT-$1} out=$2 err=$3 name=${TRAINYARD_JOB_NAME:-$4}; shift 4;"
    " unset TRAINYARD_BATCH_SCRIPT\n"
    "x() { p=$1 o=; while [ -n \"$p\" ]; do case $p in"
    " %%*) o=$o%; p=${p#??};;"
    " %j*) o=$o$TRAINYARD_JOB_ID; p=${p#??};;"
    " %x*) o=$o$name; p=${p#??};;"
    " %A*) o=$o${TRAINYARD_ARRAY_JOB_ID:-$TRAINYARD_JOB_ID}; p=${p#??};;"
    " %a*) o=$o${TRAINYARD_ARRAY_TASK_ID:-4294967294}; p=${p#??};;"
    " %t*) o=$o$RANK; p=${p#??};;"
    " %N*) o=$o$TRAINYARD_NODE; p=${p#??};;"
    " %u*) o=$o$USER; p=${p#??};;"
    " %J*) o=$o$TRAINYARD_JOB_ID.batch; p=${p#??};;"
    " %s*) o=${o}batch; p=${p#??};;"
    " %n*) o=$o${SLURM_NODEID:-0}; p=${p#??};;"
    " %b*) o=$o$((${TRAINYARD_ARRAY_TASK_ID:-0} % 10)); p=${p#??};;"
    " %[0-9]*) q=${p#%}; n=${q%%[!0-9]*}; q=${q#\"$n\"}; v=$(x \"%${q%\"${q#?}\"}\"); p=${q#?};"
    " case $v in ''|*[!0-9]*) o=$o$v;; *) o=$o$(printf \"%0${n}d\" \"$v\");; esac;;"
    " *) r=${p#?}; o=$o${p%\"$r\"}; p=$r;; esac; done; printf '%s' \"$o\"; }\n"
    "w() { m=$( { : >>\"$2\"; } 2>&1 ) && return 0;"
    " echo \"" TY_BATCH_ERROR "cannot open $1 file $2: ${m##*: }\" >&2; exit 1; }\n"
    "a() { [ \"${SLURM_OPEN_MODE:-t}\" = a ] && return 0;"
    " case $1 in *%t*|*%[0-9]t*|*%[0-9][0-9]t*) return 1;; esac;"
    " [ \"${SLURM_NTASKS:-1}\" != 1 ]; }\n"
    "O= E=; if [ -n \"$out\" ]; then O=$(x \"$out\"); w output \"$O\"; if a \"$out\"; then"
    " exec >>\"$O\";"
    " else exec >\"$O\"; fi || exit 1; fi\n"
    "if [ -n \"$err\" ]; then E=$(x \"$err\"); w error \"$E\";"
    " if [ -n \"$out\" ] && [ \"$E\" = \"$O\" ]; then"
    " exec 2>&1; elif a \"$err\"; then exec 2>>\"$E\"; else exec 2>\"$E\"; fi || exit 1;"
    " elif [ -n \"$out\" ]; then exec 2>&1; fi\n"
    "d=$(command -p mktemp -d \"${TMPDIR:-/tmp}/trainyard-script.XXXXXX\") || exit 1\n"
    "f=$d/job\n"
    "printf '%s' \"$s\" >\"$f\" && printf '%s\\n' '#!/bin/sh'";

/* The runner goes on: the srun's lines, as printf's arguments, up to the
 * options it skips. The srun: -n/--ntasks, -N/--nodes, --ntasks-per-node
 * choose the step's tasks; -D/--chdir and --export's NAME=VALUE items
 * apply; -l/--label (B, also run together with other letters, -lu) labels
 * the step's lines; any other of srun's options is skipped, with its value where it
 * takes one, saying so (i); an option srun does not have is refused by
 * name (u), and so are the placement options -w/--nodelist, -x/--exclude,
 * -r/--relative and -F/--nodefile (l): a step runs on the job's first
 * nodes, and ignoring them would run it where its author said it must not;
 * -C/--constraint, --jobid and --het-group likewise, each with its reason
 * (r); an option whose
 * value is missing is refused by name (v $# OPTION, before any shift 2;
 * z OPTION=VALUE for an empty VALUE);
 * a count is a whole number of 1 or more (c); an empty --propagate= is
 * refused as rlaunch and submit refuse it (a bare --propagate is ALL). */
static const char runner_srun_head[] =
    " 'n= p= N= D= e= B= r='"
    " 'i() { echo \"srun: option $* ignored\" >&2; }'"
    " 'u() { echo \"srun: unknown option $1\" >&2; exit 2; }'"
    " 'v() { [ \"$1\" -ge 2 ] || { echo \"srun: option $2 requires a value\" >&2; exit 2; }; }'"
    " 'z() { [ -n \"${1#*=}\" ] || v 1 \"${1%%=*}\"; }'"
    " 'r() { echo \"srun: option $1 is not supported: $2\" >&2; exit 2; }'"
    " 'l() { r \"$1\" \"a step runs on the job'\\''s first nodes (-N chooses how many)\"; }'"
    " 'c() { case $2 in \"\"|*[!0-9]*|"
    "0*) echo \"srun: $1 \\\"$2\\\" is not a count of 1 or more\" >&2; exit 2;; esac; }'"
    " 'while [ $# -gt 0 ]; do case $1 in --) shift; break;;'"
    " '-n|--ntasks) v $# \"$1\"; n=$2; shift 2;; --ntasks=*) z \"$1\"; n=${1#*=}; shift;;"
    " -n?*) n=${1#-n}; shift;;'"
    " '-N|--nodes) v $# \"$1\"; N=$2; shift 2;; --nodes=*) z \"$1\"; N=${1#*=}; shift;;"
    " -N?*) N=${1#-N}; shift;;'"
    " '--ntasks-per-node) v $# \"$1\"; p=$2; shift 2;; --ntasks-per-node=*) z \"$1\"; p=${1#*=}; "
    "shift;;'"
    " '-D|--chdir) v $# \"$1\"; D=$2; shift 2;; --chdir=*) z \"$1\"; D=${1#*=}; shift;;"
    " -D?*) D=${1#-D}; shift;;'"
    " '--export) v $# \"$1\"; e=$2; shift 2;; --export=*) e=${1#*=}; shift;;'"
    " '-l|--label) B=1; shift;;'"
    " '--propagate=) echo \"srun: --propagate: the value is empty: give ALL, NONE or a list of"
    " limits, or --propagate alone for ALL\" >&2; exit 2;;'"
    " '-w|--nodelist|-x|--exclude|-r|--relative|-F|--nodefile|-[wxrF]?*) l \"$1\";;'"
    " '--nodelist=*|--exclude=*|--relative=*|--nodefile=*) l \"${1%%=*}\";;'"
    " '-C|--constraint|-C?*|--constraint=*) r \"${1%%=*}\" \"a step runs on the job'\\''s nodes,"
    " whatever their features\";;'"
    " '--jobid|--jobid=*) r \"${1%%=*}\" \"a step runs in the job of its batch script\";;'"
    " '--het-group|--het-group=*) r \"${1%%=*}\" \"a job has no heterogeneous components\";;'";

/* srun's long options that take a value as the next word (Slurm 23's
 * srun(1), less those above): skipped with it. */
static const char srun_valued[] =
    "accel-bind account acctg-freq bb bbf bcast-exclude begin cluster-constraint "
    "clusters comment container container-id core-spec cores-per-socket "
    "cpu-bind cpu-freq cpus-per-gpu cpus-per-task deadline delay-boot dependency "
    "distribution epilog error export-file extra extra-node-info gid gpu-bind "
    "gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres gres-flags "
    "hint input job-name licenses mail-type mail-user mcs-label mem mem-bind "
    "mem-per-cpu mem-per-gpu mincpus mpi network ntasks-per-core "
    "ntasks-per-gpu ntasks-per-socket open-mode output partition power prefer priority "
    "prolog profile qos reservation segment signal slurmd-debug "
    "sockets-per-node switches task-epilog task-prolog thread-spec threads "
    "threads-per-core time time-min tmp tres-bind tres-per-task uid wait wckey";

/* srun's long options that take no value, or one only as --opt=VALUE
 * (--bcast[=DEST], --kill-on-bad-exit[=0|1], ...): skipped alone. */
static const char srun_flags[] =
    "bcast compress contiguous debugger-test disable-status exact exclusive "
    "external-launcher help hold immediate kill-on-bad-exit multi-prog nice "
    "no-allocate no-kill overcommit overlap oversubscribe preserve-env propagate pty "
    "quiet quit-on-interrupt reboot resv-ports send-libs spread-job test-only unbuffered "
    "usage use-min-nodes verbose version whole x11";

/* srun's short options: those taking a value (as the next word or joined,
 * -t5), those taking none (also run together, -lu), and those taking one
 * only joined. */
#define SRUN_VALUED_LETTERS "AbBcdeGiJLmMopqStTW" /* less -w, -x, -r, -F, -C: refused above */
#define SRUN_FLAG_LETTERS "EhHIkKlOQsuvVXZ"
#define SRUN_JOINED_LETTERS SRUN_VALUED_LETTERS "IKk" /* -K1, -I60, -koff */

/* Text growing at its end: the runner, built here (bookkeeping of a
 * size this process chose, so running out of memory aborts). */
typedef struct text {
  char *s;
  size_t len;
} text;

static void put(text *t, const char *a, const char *b, const char *c) {
  size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
  t->s = ty_xrealloc(t->s, t->len + na + nb + nc + 1);
  memcpy(t->s + t->len, a, na);
  memcpy(t->s + t->len + na, b, nb);
  memcpy(t->s + t->len + na + nb, c, nc + 1);
  t->len += na + nb + nc;
}

/* One case pattern: each of the blank-separated names as --NAME, then
 * SUFFIX, joined by '|'. */
static void srun_pattern(text *t, const char *names, const char *suffix) {
  char name[64];
  for (const char *p = names; *p; p += strspn(p, " ")) {
    size_t n = strcspn(p, " ");
    /* memcpy, not "%.*s": under -fsanitize GCC takes p for possibly NULL. */
    size_t k = n < sizeof name ? n : sizeof name - 1;
    memcpy(name, p, k);
    name[k] = 0;
    put(t, p == names ? "--" : "|--", name, suffix);
    p += n;
  }
}

/* The case's arms for every other option: skipped (with the value where
 * it takes one) or, not one of srun's, refused. */
static void srun_skipped(text *t) {
  put(t, " '", "", "");
  srun_pattern(t, srun_valued, "");
  put(t, ") v $# \"$1\"; i \"$1 $2\"; shift 2;;' '", "", "");
  srun_pattern(t, srun_valued, "=*");
  put(t, "|", "", "");
  srun_pattern(t, srun_flags, "=*");
  put(t, "|", "", "");
  srun_pattern(t, srun_flags, "");
  put(t,
      ") i \"$1\"; shift;;'"
      " '--*) u \"${1%%=*}\";;'"
      " '-[" SRUN_VALUED_LETTERS "]) v $# \"$1\"; i \"$1 $2\"; shift 2;;'"
      " '-[" SRUN_JOINED_LETTERS "]?*|-[" SRUN_FLAG_LETTERS "]) i \"$1\"; shift;;'"
      " '-*[!" SRUN_FLAG_LETTERS "]*) u \"$1\";;'"
      " '-*l*) B=1 f=${1#-} w=; while [ -n \"$f\" ]; do a=${f#?}; [ \"${f%\"$a\"}\" = l ] ||"
      " w=$w${f%\"$a\"}; f=$a; done; [ -z \"$w\" ] || i \"-$w\"; shift;;'"
      " '-?*) i \"$1\"; shift;;'",
      "", "");
}

/* The srun's end. A step no larger than the job (J nodes, P tasks a
 * node) runs as srun's would (st): on m nodes (-N, else the job's, or as
 * many as --ntasks-per-node fills with -n; never more than its n tasks),
 * its n tasks (-n, else m times the tasks per node) spread as evenly as
 * they go, the first n % m nodes taking one more, and numbered node by
 * node (Slurm's block distribution). A task runs it when its node is one
 * of the first m and its local rank below that node's count, seeing the
 * step's rank, task and node counts, as srun's steps do (a torchrun
 * --node_rank=$SLURM_PROCID must not see the job's 4 tasks in a step of
 * 2); the other tasks exit 0. Without -n, -N and --ntasks-per-node the
 * step is the job's every task. Each step is numbered (I) as Slurm numbers
 * a job's steps, 0, 1, 2, ... in the order the script starts them: each
 * number a directory .stepI made in the script's directory (mkdir is
 * atomic, so sruns started at once get one each; .step holds the next to
 * try), in every task, so that a step's number is the same in all of its
 * tasks; one refused before it starts takes none. Its tasks see it in
 * SLURM_STEP_ID and SLURM_STEPID, with SLURM_STEP_NUM_TASKS, _NUM_NODES,
 * _TASKS_PER_NODE and _NODELIST (H: the job's list, or the names of the
 * step's first nodes joined by commas). Under -l the command's output and error
 * go through a FIFO each to a loop that starts every line with the step
 * rank and ": ", padded to the width of the step's highest rank as srun
 * -l's (" 3: " in a step of 12 tasks), the srun waiting for both loops
 * and exiting with the command's status (no pipe, whose status would be
 * the loop's). */
static const char runner_srun_tail[] =
    " '*) break;; esac; done'"
    " '[ $# -gt 0 ] || { echo \"srun: no command given\" >&2; exit 2; }'"
    " 'T=${SLURM_NTASKS:-1} J=${SLURM_JOB_NUM_NODES:-1} o='"
    " 'P=${SLURM_NTASKS_PER_NODE:-$((T / J))}'"
    " '[ -z \"$N\" ] || { c -N \"$N\"; [ \"$N\" -le \"$J\" ] ||"
    " { echo \"srun: step of $N nodes exceeds the job'\\''s $J\" >&2; exit 1; }; [ \"$N\" "
    "-eq \"$J\" ] || o=\" on $N nodes\"; }'"
    " '[ -z \"$p\" ] || { c --ntasks-per-node \"$p\"; [ \"$p\" -le \"$P\" ] ||"
    " { echo \"srun: step of $p tasks per node exceeds the job'\\''s $P\" >&2; exit 1; }; "
    "o=\"$o at $p per node\"; }'"
    " '[ -z \"$n\" ] || c -n \"$n\"'"
    " 'g() { if [ \"$2\" -gt 1 ]; then printf \"%s(x%s)\" \"$1\" \"$2\"; else printf %s \"$1\"; "
    "fi; }'"
    " 'st() { h=${SLURM_NODEID:-0} L=${SLURM_LOCALID:-0} m=${N:-$J} q=${p:-$P}'"
    " '[ -n \"$N\" ] || [ -z \"$p\" ] || [ -z \"$n\" ] || m=$(((n + p - 1) / p))'"
    " '[ \"$m\" -le \"$J\" ] || m=$J; [ -n \"$n\" ] || n=$((m * q))'"
    " '[ \"$n\" -le $((m * q)) ] || { echo \"srun: step of $n tasks exceeds the job'\\''s "
    "$((m * q))$o\" >&2; exit 1; }'"
    " '[ \"$n\" -ge \"$m\" ] || { [ -z \"$N\" ] || echo \"srun: warning: can'\\''t run $n "
    "processes on $N nodes, setting nnodes to $n\" >&2; m=$n; }'"
    " 'b=$((n / m)) x=$((n % m)); k=$b; [ \"$h\" -ge \"$x\" ] || k=$((b + 1))'"
    " '[ \"$h\" -lt \"$m\" ] && [ \"$L\" -lt \"$k\" ] || return 1'"
    " 's=$((h * b + (h < x ? h : x))); r=$((s + L)) t=$(g \"$b\" $((m - x))) G=$s j=1'"
    " '[ \"$x\" -eq 0 ] || t=$(g $((b + 1)) \"$x\"),$t'"
    " 'while [ \"$j\" -lt \"$k\" ]; do G=$G,$((s + j)) j=$((j + 1)); done'"
    " 'export SLURM_PROCID=$r RANK=$r SLURM_NTASKS=$n SLURM_NPROCS=$n WORLD_SIZE=$n "
    "SLURM_NNODES=$m LOCAL_WORLD_SIZE=$k SLURM_TASKS_PER_NODE=$t SLURM_GTIDS=$G'"
    " 'if [ -n \"$p\" ]; then export SLURM_NTASKS_PER_NODE=$p; elif [ \"$x\" -eq 0 ]; then "
    "export SLURM_NTASKS_PER_NODE=$b; else unset SLURM_NTASKS_PER_NODE; fi; }'"
    " 'R=1; if [ -n \"$N$p$n\" ]; then st || R=; else n=$T m=$J"
    " t=${SLURM_TASKS_PER_NODE:-$(g \"$P\" \"$J\")}; fi'"
    " 'Y=${TRAINYARD_SCRIPT_DIR:-${0%/*}}/.step I=; [ ! -s \"$Y\" ] || read -r I <\"$Y\"'"
    " 'case $I in \"\"|*[!0-9]*) I=0;; esac; until command -p mkdir \"$Y$I\" 2>/dev/null; do'"
    " '[ -d \"$Y$I\" ] || { command -p mkdir \"$Y$I\"; exit 1; }; I=$((I + 1)); done'"
    " 'echo $((I + 1)) >\"$Y\"; [ -n \"$R\" ] || exit 0'"
    " 'H=${SLURM_JOB_NODELIST-}; [ \"$m\" -ge \"$J\" ] || { H= j=0; for w in "
    "${TRAINYARD_NODENAMES-}; do [ \"$j\" -lt \"$m\" ] && H=$H${H:+,}$w; j=$((j + 1)); done; }'"
    " 'export SLURM_STEP_ID=$I SLURM_STEPID=$I SLURM_STEP_NODELIST=$H SLURM_STEP_NUM_TASKS=$n "
    "SLURM_STEP_NUM_NODES=$m SLURM_STEP_TASKS_PER_NODE=$t'"
    " '[ -z \"$D\" ] || cd \"$D\" 2>/dev/null ||"
    " { echo \"srun: --chdir $D: cannot enter that directory\" >&2; exit 1; }'"
    " 'set -f; s=$IFS; IFS=,; for x in $e; do case $x in ALL|"
    "\"\") ;; NONE) i --export=NONE;; *=*) case ${x%%=*} in \"\"|[0-9]*|"
    "*[!A-Za-z0-9_]*) echo \"srun: --export item \\\"$x\\\" is not NAME=VALUE\" >&2; exit "
    "2;; esac; export \"$x\";; esac; done; IFS=$s; set +f'"
    " '[ -n \"$B\" ] || exec \"$@\"'"
    " 'F=$(command -p mktemp -d \"${TMPDIR:-/tmp}/trainyard-label.XXXXXX\") || exit 1'"
    " 'command -p mkfifo \"$F/o\" \"$F/e\" || { command -p rm -rf \"$F\"; exit 1; }'"
    " 'x=$((n - 1)); W=${#x} r=${r:-${SLURM_PROCID:-0}}'"
    " 'lb() { while IFS= read -r x || [ -n \"$x\" ]; do printf \"%${W}s: %s\\n\" \"$r\" \"$x\";"
    " done; }'"
    " 'lb <\"$F/o\" & lb <\"$F/e\" >&2 & (exec \"$@\") >\"$F/o\" 2>\"$F/e\"; x=$?; wait'"
    " 'command -p rm -rf \"$F\"; exit \"$x\"'";

/* The runner's end: the scontrol, then the script's run. */
static const char runner_tail[] =
    " >\"$d/srun\" && printf '%s\\n' '#!/bin/sh'"
    " 'case \"$1 $2\" in \"show hostnames\"|\"show hostname\")'"
    " '[ \"${3:-$SLURM_JOB_NODELIST}\" = \"$SLURM_JOB_NODELIST\" ] && [ -n "
    "\"$TRAINYARD_NODENAMES\" ] &&'"
    " '{ for n in $TRAINYARD_NODENAMES; do echo \"$n\"; done; exit 0; };; esac'"
    " 'echo \"scontrol $*: in a Trainyard job only scontrol show hostnames of the job nodes"
    " works; use trainctl (show ID, job hold|release|requeue|update ID)\" >&2' 'exit 1'"
    " >\"$d/scontrol\""
    " && command -p chmod 700 \"$f\" \"$d/srun\" \"$d/scontrol\" || { command -p rm -rf \"$d\"; "
    "exit 1; }\n"
    "PATH=$d:$PATH; TRAINYARD_SCRIPT_DIR=$d; export PATH TRAINYARD_SCRIPT_DIR\n"
    "trap : HUP INT TERM USR1 USR2\n"
    "w=${TRAINYARD_EXEC:-}; unset TRAINYARD_EXEC\n"
    "if [ -x \"$w\" ]; then \"$w\" --wait-status \"$d/.status\" -- \"$f\" \"$@\";"
    " else \"$f\" \"$@\"; fi; rc=$?\n"
    "e= n=; [ -s \"$d/.status\" ] && read -r e n <\"$d/.status\"\n"
    "command -p rm -rf \"$d\"\n"
    "case $e:$n in exited:[0-9]*) exit \"$n\";; signaled:[0-9]*) ;;"
    " *) case $rc in 129|13[0-9]|14[0-3]) n=$((rc - 128));; *) exit $rc;; esac;; esac\n"
    "trap - HUP INT TERM USR1 USR2; ulimit -c 0; kill -\"$n\" $$\n"
    "exit $((128 + n))\n";

/* The runner's text, in parts: one C string literal may hold no more
 * than 4095 bytes (-Woverlength-strings), and the srun's skipped options
 * come from the tables above. */
static char *runner_text(void) {
  text t = {NULL, 0};
  put(&t, runner_head, runner_srun_head, "");
  srun_skipped(&t);
  put(&t, runner_srun_tail, runner_tail, "");
  return t.s;
}

void ty_cli_script_command(ty_job_spec *j, const char *text, const char *output,
                           const char *error) {
  char **argv = ty_xcalloc(j->argc + RUNNER_WORDS, sizeof *argv);
  size_t n = 0;
  argv[n++] = ty_strdup("/bin/sh");
  argv[n++] = ty_strdup("-c");
  argv[n++] = runner_text();
  argv[n++] = ty_strdup("trainyard-batch");
  argv[n++] = ty_strdup(text);
  argv[n++] = ty_strdup(output ? output : "");
  argv[n++] = ty_strdup(error ? error : "");
  argv[n++] = ty_strdup(j->name ? j->name : "");
  for (size_t i = 0; i < j->argc; i++)
    argv[n++] = j->argv[i]; /* the script's arguments, moved */
  free(j->argv);
  j->argv = argv, j->argc = n;
}

bool ty_cli_script_view(const ty_job_spec *j, const char **text, const char **output,
                        const char **error, char *const **args, size_t *nargs) {
  if (j->argc < RUNNER_WORDS || strcmp(j->argv[0], "/bin/sh") != 0 ||
      strcmp(j->argv[3], "trainyard-batch") != 0)
    return false;
  *text = j->argv[4], *output = j->argv[5], *error = j->argv[6];
  *args = j->argv + RUNNER_WORDS, *nargs = j->argc - RUNNER_WORDS;
  return true;
}
