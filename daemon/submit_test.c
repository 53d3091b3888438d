/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test-only submit (sbatch --test-only): the job a SubmitJobRequest with
 * test_only describes, already through every check a real submit runs
 * (submit.c, so the refusals and their words are the same), is
 * answered with the start estimate `trainctl why` gives a pending job
 * (sched_pass.c's explain) and is never created: it gets no id (it is
 * explained as the id the next submit would get, which stays free), goes
 * into no store, list or queue, and only the test-only counter moves.
 *
 * Its dependencies are resolved as a submit resolves them (a missing
 * target is refused the same way) but not watched: nothing waits for it.
 * An array is estimated as its first element, as Slurm does. A graph job
 * is refused: its model check and parallel plan run in a child process
 * only for a job that is submitted.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* The pending job spec would be, borrowing it: id the next free one, an
 * array's first element. */
static int job_of(ty_controller *ctl, ty_job_spec *spec, ty_job *j, char *err, size_t len) {
  memset(j, 0, sizeof(*j));
  j->id = ctl->next_id;
  j->spec = *spec;
  j->state = TY_JOB_PENDING;
  j->submit_ms = ty_now_ms();
  j->held = spec->hold;
  j->dep = TY__DEP_MET;
  if (spec->array.n) {
    uint32_t *tasks = NULL;
    size_t n = 0;
    if (ty_array_tasks(&spec->array, &tasks, &n) != 0 || n == 0) {
      free(tasks);
      return ty_errf(err, len, TY_ENOMEM, "job.array: no memory for its elements");
    }
    j->array_id = j->id, j->array_task = tasks[0];
    free(tasks);
  }
  return ty__deps_resolve(ctl, j, false, err, len);
}

/* CPUs the job would hold: a whole node's for an exclusive job are known
 * only once placed, so the asked-for count, as sbatch's answer gives. */
static uint32_t cpus_of(const ty_job_spec *s) {
  uint64_t c = (uint64_t)(s->nodes ? s->nodes : 1) * (s->tasks_per_node ? s->tasks_per_node : 1) *
               (s->cpus_per_task ? s->cpus_per_task : 1);
  return c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

static int answer(ty_controller *ctl, ty_reply *r, const ty_job *j, const ty_sched_explain *ex) {
  const char *names[TY_SCHED_EXPLAIN_NODES];
  size_t n = 0;
  for (uint32_t i = 0; i < ex->n_start_nodes && i < TY_SCHED_EXPLAIN_NODES; i++)
    if (ex->start_nodes[i] < ctl->n_nodes) names[n++] = ctl->nodes[ex->start_nodes[i]]->name;
  return ty__conv_submit_test_resp(ex, names, n, cpus_of(&j->spec), j->spec.queue, &r->out);
}

void ty__submit_test(ty_controller *ctl, ty_reply *r, ty_job_spec *spec) {
  char err[TY_ERR_LEN] = "";
  ty_job j;
  ty_sched_explain ex;
  int rc = 0;
  memset(&j, 0, sizeof(j));
  if (spec->kind == TY_JOB_KIND_GRAPH)
    rc = ty_errf(err, sizeof(err), TY_EINVAL,
                 "test_only: a graph job is not estimated unsubmitted: its model check and "
                 "parallel plan run only for a submitted job (submit it and read trainctl why ID)");
  if (rc == 0) rc = job_of(ctl, spec, &j, err, sizeof(err));
  if (rc == 0) rc = ty__sched_explain_new(ctl, &j, &ex);
  if (rc == TY_ENOMEM && !err[0]) snprintf(err, sizeof(err), "out of memory");
  if (rc == 0 && answer(ctl, r, &j, &ex) != 0)
    rc = ty_errf(err, sizeof(err), TY_ENOMEM, "cannot encode the answer");
  if (rc == 0) ty_metric_inc(ctl->m.test_only, NULL, 1);
  free(j.deps);
  free(j.dep_reason);
  ty_job_spec_close(spec);
  ty__reply_finish(r, rc, rc ? err : NULL);
}
