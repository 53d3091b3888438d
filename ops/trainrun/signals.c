/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainrun's signals (see trainrun_internal.h): the stop flags the trainer
 * and the collectives read, and the thread that takes SIGTERM, SIGINT,
 * SIGUSR1 and SIGUSR2 so that none is delivered into a computing thread.
 */
#include "ops/trainrun/trainrun_internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* Set by the signal handler once training started, read by
 * the training loop between steps (one process) or carried in the
 * collectives' exchanges (several ranks). */
volatile sig_atomic_t tr_stop_requested;
/* Several ranks stop on this instead: set by an exchange that saw any
 * rank's request, so every rank leaves after the same step
 * (ops/collective/collective.h, "Stop agreement"). */
volatile sig_atomic_t tr_stop_agreed;

/* Set by the trainer once this run's first step has completed (all ranks
 * complete it together): until then a stop has nothing to save. */
volatile sig_atomic_t tr_training_started;

/* SIGTERM or SIGINT before the first step has completed (loading,
 * compiling, forming the ranks' world, waiting for the checkpoint's lock,
 * or blocked in the first step's exchange with a rank that still waits:
 * nothing reads tr_stop_requested there): the rank ends by the signal at once,
 * as a command would, rather than at the kill grace's SIGKILL.
 * Async-signal-safe. */
static void stop_before_training(int sig) {
  static const char msg[] = "trainrun: stopped before the first step: nothing to save\n";
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
  signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, NULL);
  raise(sig);
  _exit(128 + sig);
}

/* From the signal thread (or a handler of a thread a library started):
 * an atomic store, which the trainer's atomic loads see. */
static void on_signal(int sig) {
  if (!__atomic_load_n(&tr_training_started, __ATOMIC_RELAXED)) stop_before_training(sig);
  __atomic_store_n(&tr_stop_requested, 1, __ATOMIC_RELAXED);
}

/* SIGUSR1 and SIGUSR2: what a job's --signal warning sends by default
 * (sbatch's USR1). Their default action would end the rank with nothing
 * saved; the rank trains on, and the time limit's SIGTERM checkpoints it
 * (docs/training.md, "Time limits"). Async-signal-safe: one write. */
static void on_warning(int sig) {
  static const char msg[] = "trainrun: the job's --signal warning (SIGUSR1 or SIGUSR2): training "
                            "goes on; the time limit's SIGTERM checkpoints and stops it\n";
  (void)sig;
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
}

/* SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 are taken by one thread of their
 * own (sigwait), never delivered into a thread that is computing: a
 * SIGTERM that interrupted a fused kernel's step corrupted the heap (2 to 5
 * runs in 10 of a wide MLP, exit 134). Every thread made later inherits
 * the blocked mask; the handlers stay for threads a library started
 * before main. Children (the JIT's compiler, ompi-server) unblock them. */
static void *signal_thread(void *arg) {
  const sigset_t *set = arg;
  for (;;) {
    int sig = 0;
    if (sigwait(set, &sig) != 0) continue;
    if (sig == SIGTERM || sig == SIGINT)
      on_signal(sig);
    else
      on_warning(sig);
  }
  return NULL;
}

void tr_take_signals(void) {
  static sigset_t set;
  struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  struct sigaction warn = {.sa_handler = on_warning, .sa_flags = SA_RESTART};
  sigemptyset(&warn.sa_mask);
  sigaction(SIGUSR1, &warn, NULL);
  sigaction(SIGUSR2, &warn, NULL);
  sigemptyset(&set);
  sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1), sigaddset(&set, SIGUSR2);
  pthread_t t;
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
      pthread_create(&t, NULL, signal_thread, &set) != 0) {
    pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* the handlers alone, as before */
    return;
  }
  pthread_detach(t);
}
