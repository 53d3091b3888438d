#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Starts and stops a single-node Slurm (Debian's slurm-wlm) with its own
# munged, configured in a private directory, for side-by-side benchmarks.
# Everything is stopped by PID; nothing outside DIR is touched.
#
#   bench/slurm-local.sh start DIR CPUS     # SLURM_BENCH_PROFILE=tuned (default) | stock
#   bench/slurm-local.sh munged DIR         # munged alone, socket DIR/munge/munge.socket
#   bench/slurm-local.sh stop DIR
#
# `munged` serves Trainyard's half of a comparison that runs before Slurm's:
# both sides then authenticate every request with MUNGE, as deployed.
#
# Profiles. `tuned` is the baseline every comparison uses: Slurm as its
# high-throughput guide configures it, so the comparison measures Slurm's
# speed and not its queueing: the node advertises 64 CPUs (the real
# machine's cores still do the work; more CPUs let jobs start instead of
# queueing behind two slots), `SchedulerParameters=batch_sched_delay=0`
# (no batching delay before a batch job is scheduled) and `MinJobAge=2`
# (finished jobs leave slurmctld's memory after 2 s). `stock` is Debian's
# defaults with CPUS as given, kept as a second column.
set -euo pipefail
cmd=$1 dir=$2

start_munged() {
  mkdir -p "$dir/munge"
  cp /etc/munge/munge.key "$dir/munge/munge.key"
  chmod 0400 "$dir/munge/munge.key"
  munged --key-file "$dir/munge/munge.key" --socket "$dir/munge/munge.socket" \
    --pid-file "$dir/munge/munged.pid" --log-file "$dir/munge/munged.log" \
    --seed-file "$dir/munge/seed" -f
}

case $cmd in
munged) start_munged ;;
start)
  cpus=$3
  profile=${SLURM_BENCH_PROFILE:-tuned}
  tuning=""
  case $profile in
  tuned)
    cpus=64
    # config_overrides: slurmd takes the advertised CPUs instead of
    # marking a node with fewer real ones INVAL ("Low CPUs").
    tuning=$'SchedulerParameters=batch_sched_delay=0\nMinJobAge=2\nSlurmdParameters=config_overrides'
    ;;
  stock) ;;
  *) echo "slurm-local: SLURM_BENCH_PROFILE must be tuned or stock, not $profile" >&2; exit 2 ;;
  esac
  mkdir -p "$dir"/{ctld,d}
  host=$(hostname -s)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  start_munged
  cat >"$dir/slurm.conf" <<CONF
ClusterName=trainyardbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldPort=${SLURM_BENCH_PORT:-16817}
SlurmdPort=$(( ${SLURM_BENCH_PORT:-16817} + 1 ))
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MaxJobCount=100000
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
$tuning
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=bench Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -c -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 1 200); do
    sinfo -h -o %T 2>/dev/null | grep -qE '^idle' && exit 0
    sleep 0.1
  done
  echo "slurm-local: node did not come up; see $dir/*.log" >&2
  exit 1
  ;;
stop)
  for f in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  ;;
esac
