/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli: named output fields and accounting (cli/fields.c, cli/history.c,
 * cli/node_show.c, cli/convert_history.c).
 * Named output fields (`--format id,name,state`, like squeue -O and sacct
 * -o) and the accounting commands: `trainctl history` (GetHistory, like
 * sacct) and `trainctl node show` (GetNode: the node and its events).
 */
#ifndef TY_CLI_CLI_HISTORY_H
#define TY_CLI_CLI_HISTORY_H

#include "cli/cli.h"

/* "id,name,state" (case-insensitive, no repeats) -> out. `what` names the
 * option in errors; an unknown field's error lists the known ones. */
int ty_cli_parse_format(const char *what, const char *list, const ty_cli_field *fields,
                        size_t nfields, ty_cli_format *out, char *err, size_t err_len);
/* When list names a field as only sacct does ("jobid", "State%10",
 * "ExitCode"), out[k] (TY_CLI_MAX_FIELDS of them) is sacct's spelling of
 * its k-th name ("JobID", "State", "Elapsed" of "elapsed"), the header a
 * script that reads sacct's finds; all NULL for a list as Trainyard spells
 * it ("id,state": the fields' own headers). list passed ty_cli_parse_format. */
void ty_cli_slurm_headers(const char *list, const ty_cli_field *fields, size_t nfields,
                          const char **out);
/* "  id        the job id\n" lines for --help-format. */
void ty_cli_describe_fields(const ty_cli_field *fields, size_t nfields, ty_buf *out);

/* Table layout options: without the header row; and, when max_width > 0,
 * text columns (never right-aligned ones) narrowed, widest first, until a
 * row fits in max_width; a clipped cell ends in '+'. */
typedef struct ty_cli_table_opts {
  bool noheader;
  size_t max_width; /* 0 = no limit (output not to a terminal) */
  /* sacct's --parsable2 ('|' between cells, no padding or clipping), and
   * with delim_last its --parsable (a '|' after the last cell too). */
  char delim;
  bool delim_last;
} ty_cli_table_opts;
int ty_cli_table_render_opts(const ty_cli_table *t, const ty_cli_table_opts *o, ty_buf *out);

/* ls's fields (cli/ls.c): ty_cli_ls_fields[] has ty_cli_n_ls_fields; the
 * default format is ls's historical columns. */
extern const ty_cli_field ty_cli_ls_fields[];
extern const size_t ty_cli_n_ls_fields;
extern const char ty_cli_ls_default_format[];
/* squeue's -o format ("%.18i %.9P %.8j %R": %i/%A id, %j name, %u user,
 * %P queue, %t/%T state, %M elapsed, %l timelimit, %D numnodes, %N nodes,
 * %R/%r reason, %Q/%p priority, %y pri, %V submit, %S start, %e end, %C
 * cpus, %b gpus, %E dependency) into ls's field list in *out (heap), for
 * the sort and JSON; ty_cli_render_jobs_squeue prints the format itself.
 * TY_EINVAL naming an unknown code. */
int ty_cli_ls_squeue_format(const char *fmt, char **out, char *err, size_t err_len);
/* --sort over ls's fields. */
int ty_cli_parse_sort(const char *what, const char *list, ty_cli_sort *out, char *err,
                      size_t err_len);
/* Sorts js in place by s (stable; no keys = as they came). TY_ENOMEM. */
int ty_cli_sort_jobs(ty_cli_jobinfo *js, size_t n, const ty_cli_sort *s, int64_t now_ms);
/* Keeps, in order, the jobs that ls's -j/--jobs, --name, -u and -w select
 * (an array's id names each of its elements), the newest --limit of them;
 * closes the others, *n is the number kept. js is in id order. Returns
 * whether --limit left some out. */
bool ty_cli_ls_select(ty_cli_jobinfo *js, size_t *n, const ty_cli_ls_args *a);
/* cancel's filters: into out (room for n), in js's order, a ref for each
 * of the jobs js holds (an array's elements one by one, as ls --array
 * lists them) that is named `name` (NULL = any), but one ref for a whole
 * array whose every live element (those of `live`, the live jobs of the
 * same users, by array id and task) is among them: a cancel of thousands
 * of elements is one ref. When live_cut (the controller left some live
 * jobs out) no array is whole: each element is its own ref. Returns the
 * number of refs. */
size_t ty_cli_cancel_refs(const ty_cli_jobinfo *js, size_t n, const char *name,
                          const ty_cli_jobinfo *live, size_t nlive, bool live_cut, ty_job_ref *out);
/* ls's table of fmt's fields (o may be NULL: a header, no clipping). */
int ty_cli_render_jobs_table(const ty_cli_jobinfo *js, size_t n, int64_t now_ms, bool fold,
                             const ty_cli_format *fmt, const ty_cli_table_opts *o, ty_buf *out);
/* v into out as squeue's and sinfo's -o print a cell: with a width (at
 * most TY_CLI_CELL_MAX_WIDTH), right-justified (right) or left-justified
 * in it and cut to it; without, as it is. */
#define TY_CLI_CELL_MAX_WIDTH 1024
int ty_cli_put_cell(ty_buf *out, const char *v, size_t width, bool right);
/* One line of tmpl as squeue's and sinfo's -o print it: the text between
 * codes kept, each %[.][WIDTH]C put by ty_cli_put_cell with the value
 * cell(ctx, i) gives for C = codes[i]; then a newline. TY_EINVAL for a code
 * not in codes (callers check tmpl first), TY_ENOMEM. */
typedef const char *ty_cli_cell_fn(void *ctx, size_t code);
int ty_cli_put_template(ty_buf *out, const char *tmpl, const char *codes, ty_cli_cell_fn *cell,
                        void *ctx);
/* sinfo's -t states ("idle,mix", "drain", "all") -> a mask; TY_EINVAL
 * naming an unknown one. */
int ty_cli_sinfo_states(const char *list, unsigned *out_mask, char *err, size_t err_len);
/* TY_EINVAL naming a code of sinfo's -o that nodes cannot print. */
int ty_cli_sinfo_check(const char *fmt, char *err, size_t err_len);
/* nodes -t: moves the nodes in ty_cli_sinfo_states' mask `states` to the
 * front of ns, in their order (the others after them), and returns their
 * count; n when states is 0 (all). */
size_t ty_cli_nodes_in_states(ty_cli_node *ns, size_t n, unsigned states);
/* trainctl nodes -o FMT (cli/nodes_sinfo.c): sinfo's lines of the nodes,
 * nodes whose lines read the same on one line with their names folded
 * unless per_node (-N). fmt passed ty_cli_sinfo_check. */
int ty_cli_render_nodes_sinfo(const ty_cli_node *ns, size_t n, const char *fmt, bool per_node,
                              bool noheader, ty_buf *out);
/* ls -o "%i|%t": a line per job (after squeue's header unless noheader)
 * that is tmpl with each code replaced, as squeue prints it: the text
 * between codes kept, "%.8j" right-justified in 8 columns, "%8j" left,
 * both cut to 8 as squeue cuts them, no padding without a width; %r is a
 * pending job's reason as Slurm names it ("Dependency", "JobHeldUser"),
 * else "None", and %R that in parentheses, or a started job's nodes.
 * tmpl passed ty_cli_ls_squeue_format. TY_EINVAL, TY_ENOMEM. */
int ty_cli_render_jobs_squeue(const ty_cli_jobinfo *js, size_t n, int64_t now_ms, bool fold,
                              const char *tmpl, bool noheader, ty_buf *out);

/* A point in time on the command line (--since, --until): "now", "now-DUR"
 * or "DUR" (that long ago: 90s, 15m, 2h, 1d), "@EPOCH" (seconds), or a
 * local date "YYYY-MM-DD[THH:MM[:SS]]" (a space for the T also works). */
int ty_cli_parse_time(const char *what, const char *s, int64_t now_ms, int64_t *out_ms, char *err,
                      size_t err_len);

/* `history [--user U | --all-users] [--since T] [--until T] [--state S,S]
 * [--queue Q] [--job ID,ID] [--ranks] [--limit N] [--format F] [--noheader]
 * [--json]`. Without --user or --all-users: the caller's jobs (sacct's
 * default); the command fills that in. */
typedef struct ty_cli_history_args {
  char *user, *queue; /* owned; NULL = any (user: the one of users, when one) */
  char **users;       /* owned: --user U,U (sacct's list); several: a request each */
  size_t nusers;
  bool all_users, ranks, noheader, json, help, help_format;
  char parsable; /* sacct's -P/--parsable2 'P', -p/--parsable 'p' (a '|' ends lines), 0 */
  int64_t since_ms, until_ms; /* 0 = no bound */
  int states[TY_JOB_STATE_MAX];
  size_t nstates;
  uint64_t *ids; /* owned: the jobs (or arrays) asked for */
  size_t nids;
  ty_job_ref *refs; /* owned: --job as given ("12", "12_3"): elements picked from answers */
  size_t nrefs;
  uint32_t limit; /* 0 = the controller's cap */
  char **names;   /* owned: sacct's --name N,N (the controller picks them); none = any */
  size_t nnames;
  char **nodes; /* owned: sacct's -N/--nodelist, jobs that ran on any; none = any */
  size_t nnodes;
  ty_cli_format format;
  const char *headers[TY_CLI_MAX_FIELDS]; /* static: sacct's header of a column named as
                                           * sacct names it ("JobID"); NULL = the field's */
} ty_cli_history_args;
int ty_cli_parse_history(int argc, char **argv, int64_t now_ms, ty_cli_history_args *out, char *err,
                         size_t err_len);
void ty_cli_history_args_close(ty_cli_history_args *a);
/* history's fields (ty_cli_history_fields[] has ty_cli_n_history_fields). */
extern const ty_cli_field ty_cli_history_fields[];
extern const size_t ty_cli_n_history_fields;

/* One rank of one run, as accounting recorded it (RankRecord). */
typedef struct ty_cli_rank_record {
  uint32_t run, rank;
  char *node; /* owned */
  int64_t start_ms, end_ms;
  int state; /* ty_task_state */
  int32_t exit_code, term_signal;
  uint32_t cpus, gpus;
  double cpu_s, gpu_s;
  uint64_t mem_peak; /* 0 = not measured */
  bool measured;
  int run_state; /* how its run ended (ty_run_state_name); 0 = not known */
} ty_cli_rank_record;
/* One job as accounting sees it (JobRecord). Strings owned. */
typedef struct ty_cli_record {
  uint64_t id, array_job_id;
  uint32_t array_task_id;
  char *name, *user, *queue, *reason, *nodes; /* nodes: "a,b" */
  int state;
  int32_t exit_code, term_signal;
  int64_t submit_ms, start_ms, end_ms;
  uint32_t requeue_count, cpus, gpus, time_limit_s;
  uint64_t mem_bytes, mem_peak;
  double cpu_s, gpu_s;
  bool measured; /* CPU time and memory measured; else the allocation */
  ty_cli_rank_record *ranks;
  size_t nranks;
} ty_cli_record;
void ty_cli_records_free(ty_cli_record *rs, size_t n);
/* Closes rs[0..n) and leaves the array (the caller keeps the rest). */
void ty_cli_records_free_range(ty_cli_record *rs, size_t n);
/* Keeps the records --job's refs name once some ref is one element
 * ("12_3": the controller answered the whole array 12) and those --name
 * names, ordered by id as sacct lists them (the controller answers the
 * newest first); frees the others, *n is the number kept. */
void ty_cli_history_select(ty_cli_record *rs, size_t *n, const ty_cli_history_args *a);
int ty_cli_encode_history(const ty_cli_history_args *a, ty_buf *out);
int ty_cli_decode_history(const uint8_t *p, size_t n, ty_cli_record **out, size_t *out_n,
                          bool *out_truncated);
/* Text (the format's fields; allocation-based times marked "~" with a
 * note under the table unless noheader) or JSON (one job per line). */
int ty_cli_render_history(const ty_cli_record *rs, size_t n, const ty_cli_history_args *a,
                          int64_t now_ms, size_t max_width, ty_buf *out);

/* A node's event (NodeEvent). Strings owned. */
typedef struct ty_cli_node_event {
  int64_t time_ms;
  int from, to; /* ty node states; 0 = unchanged */
  char *action, *reason, *actor;
} ty_cli_node_event;
void ty_cli_node_events_free(ty_cli_node_event *ev, size_t n);
/* trainctl nodes -R (sinfo -R): a node out of service (DOWN, DRAINING,
 * DRAINED) with its events (GetNode's, oldest first), a line each after
 * sinfo -R's header: its reason (an operator's drain: the words given),
 * who set it and when (its newest event into that state; "Unknown" when
 * none was kept), its name. */
typedef struct ty_cli_node_reason {
  const ty_cli_node *node;
  const ty_cli_node_event *ev;
  size_t nev;
} ty_cli_node_reason;
bool ty_cli_node_out_of_service(const ty_cli_node *nd);
int ty_cli_render_node_reasons(const ty_cli_node_reason *rs, size_t n, bool noheader, ty_buf *out);
/* `trainctl web-token` (WebToken): a console token for the caller, or
 * revoking the caller's tokens. The decoded strings are the caller's to free. */
typedef struct ty_cli_web_token {
  char *token, *url;
  int64_t expires_ms;
  uint32_t revoked;
} ty_cli_web_token;
int ty_cli_encode_web_token(uint32_t ttl_s, bool revoke, ty_buf *out);
int ty_cli_decode_web_token(const uint8_t *p, size_t n, ty_cli_web_token *out);
int ty_cli_encode_get_node(const char *name, uint32_t limit, ty_buf *out);
int ty_cli_decode_get_node(const uint8_t *p, size_t n, ty_cli_node *out_node,
                           ty_cli_node_event **out_ev, size_t *out_nev);
int ty_cli_render_node_show(const ty_cli_node *nd, const ty_cli_node_event *ev, size_t nev,
                            int64_t now_ms, bool json, ty_buf *out);

#endif
