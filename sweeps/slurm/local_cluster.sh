#!/usr/bin/env bash
# A real one-machine SLURM cluster for the tests (tests/sweep/test_slurm.py) and for trying
# sweep.sbatch on a laptop: munged, slurmctld and slurmd as plain processes (no systemd), one node with
# this machine's CPUs, one partition, no accounting, no cgroups (proctrack/linuxproc).
#
#   sweeps/slurm/local_cluster.sh start DIR   # installs slurm-wlm and munge if missing (apt-get),
#                                             # writes DIR/slurm.conf, waits until the node is idle;
#                                             # then: export SLURM_CONF=DIR/slurm.conf
#   sweeps/slurm/local_cluster.sh stop DIR    # stops the daemons by their pids
#
# Everything lives under DIR (configs, keys, sockets, spool, logs, pids). Ports are chosen free.
set -euo pipefail

action=${1:?usage: local_cluster.sh start|stop DIR}
dir=${2:?usage: local_cluster.sh start|stop DIR}

stop() {
  for name in slurmd slurmctld munged; do
    if [ -f "$dir/$name.pid" ]; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
    fi
  done
  for name in slurmd slurmctld munged; do
    for _ in $(seq 50); do
      [ -f "$dir/$name.pid" ] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$dir/$name.pid"
  done
}

if [ "$action" = stop ]; then
  stop
  exit 0
fi
[ "$action" = start ] || { echo "usage: local_cluster.sh start|stop DIR" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  { timeout 600 $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive timeout 900 $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null; } ||
    { echo "could not install slurm-wlm and munge with apt-get" >&2; exit 3; }
fi
PATH=$PATH:/usr/sbin

dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
mkdir -p "$dir"/{state,spool,munge}
chmod 700 "$dir/munge"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
host=$(hostname -s)
cpus=$(nproc)
user=$(id -un)

# munge: its own key and socket (slurm reaches it through AuthInfo)
[ -f "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed"

cat >"$dir/slurm.conf" <<EOF
ClusterName=s2s-local
SlurmctldHost=$host
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=30
MinJobAge=600
SchedulerParameters=sched_interval=2
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 120); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
  if [ "$state" = idle ]; then
    echo "SLURM $(sinfo -V | cut -d' ' -f2): node $host idle with $cpus CPU(s); export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.25
done
echo "the node never became idle (state '${state:-none}'); see $dir/slurmctld.log and $dir/slurmd.log" >&2
stop
exit 4
