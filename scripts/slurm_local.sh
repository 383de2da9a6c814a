#!/usr/bin/env bash
# A real single-node Slurm on this machine (Debian's slurm-wlm and munge): munged, slurmctld and
# slurmd from a generated slurm.conf in a temporary folder, then through it
#   1. a 4-run array sweep (`cvnode sweep` -> sbatch --wait sweep.sbatch -> `cvnode sweep collect`),
#   2. a 2-rank `srun --mpi=pmix cvnode fit`, whose parameters must equal a 1-process fit's bits,
#   3. a 2-rank sweep job preempted with SIGUSR1: saved, requeued by its script, resumed, the same
#      final parameters as an uninterrupted fit,
# and everything stopped again. Run by the test suite (CTest test slurm_local); exits 77 (CTest:
# skipped) with the reason when Slurm cannot start here (not installed, not root, no daemons).
#   scripts/slurm_local.sh [BUILD_DIR]          (default: build)
#   KEEP=1 scripts/slurm_local.sh               keeps the folder with the logs
set -uo pipefail
cd "$(dirname "$0")/.."
src="$PWD"
build="${1:-build}"
cvnode="$(cd "$build" && pwd)/apps/cvnode"
skip() { echo "slurm_local: SKIPPED: $*" >&2; exit 77; }
fail() { echo "slurm_local: FAILED: $*" >&2; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2; exit 1; }

[ -x "$cvnode" ] || skip "no cvnode program at $cvnode (build first)"
for p in slurmctld slurmd munged sbatch srun scontrol sinfo; do
  command -v "$p" >/dev/null || skip "$p is not installed (scripts/setup.sh installs slurm-wlm and munge)"
done
[ "$(id -u)" -eq 0 ] || skip "slurmd must run as root to start jobs as their user"

work="$(mktemp -d /tmp/cvnode_slurm_XXXXXX)"
# Every daemon started is recorded in $work/pids. Nothing may outlive the script: munged
# daemonizes, slurmctld and slurmd run in the background, and job steps run under slurmstepd,
# which survives slurmd by design. So the cleanup cancels the cluster's jobs (their slurmstepd
# and tasks end with them), then stops the daemons. It runs on exit, on SIGTERM and SIGHUP (bash
# runs the EXIT trap for them at once) and on SIGINT; a ctest timeout sends SIGKILL to the script
# and every process below it (no trap runs), so a watchdog outside that tree does the same when
# the script is gone (`pgrep munged slurmctld slurmd slurmstepd` is empty after a kill -9 or a
# ctest timeout at any moment).
stop_cluster() {
  # (The watchdog was forked before SLURM_CONF was exported.)
  export SLURM_CONF="$work/slurm.conf"
  if [ -f "$SLURM_CONF" ] && timeout 5 scontrol ping > /dev/null 2>&1; then
    timeout 5 scancel --quiet --user="$(id -un)" 2>/dev/null
    for i in $(seq 1 40); do
      [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
  local p
  for p in $(cat "$work/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done
  for i in $(seq 1 20); do
    alive=0
    for p in $(cat "$work/pids" 2>/dev/null); do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.25
  done
  for p in $(cat "$work/pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  [ "${KEEP:-0}" = 1 ] && echo "slurm_local: logs in $work" >&2 || rm -rf "$work"
}
# stop_clients PID...: stops the given processes but the daemons (stop_cluster cancels the jobs
# through slurmctld first).
stop_clients() {
  local p
  for p in "$@"; do grep -qx "$p" "$work/pids" 2>/dev/null || kill "$p" 2>/dev/null; done
}
script_pid=$$
# The watchdog: detached (a ctest timeout kills the script's whole process tree with SIGKILL,
# watchdog included if it were a child; munged, daemonized, is not in that tree and was left
# running), with its own streams (ctest waits for a test's output pipes to close), deaf to the
# signals meant for the script, polling for the script's end. It keeps the list of the script's
# children (sbatch --wait, srun, timeout, fits: orphaned when only the script is killed, and
# sbatch --wait would poll the stopped controller for up to 300 s) to stop them too.
( ( trap '' INT TERM HUP
    echo "$BASHPID" > "$work/watchdog.pid"
    children=
    while kill -0 "$script_pid" 2>/dev/null; do
      children="$(pgrep -P "$script_pid")"
      sleep 0.5
    done
    stop_clients $children
    stop_cluster ) < /dev/null > /dev/null 2>&1 & )
cleanup() {
  trap - EXIT INT TERM HUP
  kill -9 "$(cat "$work/watchdog.pid" 2>/dev/null)" 2>/dev/null
  stop_clients $(pgrep -P $$)
  stop_cluster
}
trap cleanup EXIT
trap 'exit 130' INT

host="$(hostname -s)"
cpus="$(nproc)"
# Free ports for this cluster only (a system Slurm may use 6817/6818).
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/state" "$work/spool" "$work/munge"
chmod 700 "$work/munge"

# munge: a private key and socket, so that nothing of the machine's own setup is touched.
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$work/munge/munge.key"
munged --key-file="$work/munge/munge.key" --socket="$work/munge/socket" --pid-file="$work/munge/munged.pid" \
  --log-file="$work/munged.log" --seed-file="$work/munge/seed" --force 2>"$work/munged.err" ||
  skip "munged did not start: $(cat "$work/munged.err")"
cat "$work/munge/munged.pid" >> "$work/pids"

cat > "$work/slurm.conf" <<EOF
ClusterName=cvnode-local
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/socket
CryptoType=crypto/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=pmix
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=30
MaxArraySize=1000
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$work/slurm.conf"

# Outside the script's process tree (started from a subshell that ends at once), so that a ctest
# timeout, which kills the tree, leaves slurmctld up for the watchdog to cancel the jobs with.
( slurmctld -D -i -f "$SLURM_CONF" < /dev/null > "$work/slurmctld.out" 2>&1 & echo $! >> "$work/pids" )
( slurmd -D -f "$SLURM_CONF" < /dev/null > "$work/slurmd.out" 2>&1 & echo $! >> "$work/pids" )
for i in $(seq 1 60); do
  state="$(sinfo -h -N -o '%T' 2>/dev/null | head -1)"
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "${state:-}" = idle ] || skip "the local Slurm did not come up (node state '${state:-none}'): $(tail -3 "$work/slurmctld.log" "$work/slurmd.log" 2>/dev/null | tr '\n' ' ')"
echo "slurm_local: slurmctld + slurmd up on $host ($cpus CPUs, port $port)"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# A small fit: 16 Lotka-Volterra series, 3 epochs.
"$cvnode" data generate --system lotka_volterra --series 16 --observations 12 --t-end 5 --seed 3 \
  --out "$work/lv.h5" > "$work/generate.log" 2>&1 || fail "cvnode data generate"
cat > "$work/fit.toml" <<EOF
[data]
file = "lv.h5"
[model]
hidden = [16, 16]
[solver]
rtol = 1e-6
atol = 1e-8
[optimizer]
lr = 0.01
[run]
epochs = 3
batch_size = 4
threads = 1
EOF

# 1. The array sweep: 2 learning rates x 2 seeds.
"$cvnode" sweep "$work/fit.toml" --grid optimizer.lr=0.005,0.01 --seeds 2 --out "$work/sweep" \
  --time 00:05:00 > "$work/sweep.log" 2>&1 || fail "cvnode sweep"
start=$(date +%s)
timeout 300 sbatch --wait "$work/sweep/sweep.sbatch" > "$work/sbatch.log" 2>&1 || fail "sbatch --wait sweep.sbatch ($(cat "$work/sbatch.log"))"
"$cvnode" sweep collect "$work/sweep" > "$work/collect.log" 2>&1 || fail "cvnode sweep collect"
rows=$(grep -c ',done,3,' "$work/sweep/results.csv")
[ "$rows" -eq 4 ] || fail "results.csv has $rows finished runs, expected 4: $(cat "$work/sweep/results.csv")"
[ -s "$work/sweep/results.png" ] || fail "no results.png"
echo "slurm_local: array sweep of 4 runs done in $(( $(date +%s) - start )) s; results.csv:"
cat "$work/sweep/results.csv"

# 2. srun with 2 MPI ranks against one process: the same parameters, bit for bit.
"$cvnode" fit --config "$work/fit.toml" --out "$work/one" --quiet --no-plots > "$work/one.log" 2>&1 || fail "1-process fit"
timeout 300 srun --mpi=pmix --ntasks=2 --cpus-per-task=1 "$cvnode" fit --config "$work/fit.toml" --out "$work/two" \
  --no-plots > "$work/srun.log" 2>&1 || fail "srun -n 2 cvnode fit"
grep -q "2 MPI ranks" "$work/srun.log" || fail "the srun fit did not run on 2 ranks: $(head -5 "$work/srun.log")"
# Every metric but the wall time (last column), and the parameters as printed with 17 digits.
cut -d, -f1-9 "$work/one/metrics.csv" > "$work/one.csv"
cut -d, -f1-9 "$work/two/metrics.csv" > "$work/two.csv"
cmp -s "$work/one.csv" "$work/two.csv" || fail "metrics of the 2-rank srun fit differ: $(diff "$work/one.csv" "$work/two.csv")"
h5dump -m %.17g -d /parameters "$work/one/latest.h5" | tail -n +3 > "$work/one.par"
h5dump -m %.17g -d /parameters "$work/two/latest.h5" | tail -n +3 > "$work/two.par"
cmp -s "$work/one.par" "$work/two.par" || fail "parameters of the 2-rank srun fit differ"
echo "slurm_local: srun --ntasks=2 fit: metrics and parameters identical to the 1-process fit"

# 3. Preemption: SIGUSR1 to the running tasks of a 2-rank sweep job (what --signal=USR1@S does
#    before the time limit): the fit saves and exits 75, the job requeues itself, resumes from
#    latest.h5 and ends with the parameters of an uninterrupted fit.
# 100 epochs: the signal goes out up to 0.1 s after the first checkpoint, through slurmctld; the
# whole 12-epoch fit of before took 0.12 s of CPU, so on a quiet machine it could end first.
sed -e 's/^epochs = 3/epochs = 100/' -e 's/^batch_size = 4/batch_size = 2/' "$work/fit.toml" > "$work/long.toml"
"$cvnode" fit --config "$work/long.toml" --out "$work/long_ref" --quiet --no-plots > "$work/long_ref.log" 2>&1 ||
  fail "uninterrupted reference fit"
"$cvnode" sweep "$work/long.toml" --ranks 2 --out "$work/preempt" --time 00:05:00 > "$work/preempt_sweep.log" 2>&1 ||
  fail "cvnode sweep (preemption run)"
job=$(sbatch --parsable "$work/preempt/sweep.sbatch") || fail "sbatch of the preemption run"
job="${job%%;*}"
latest="$work/preempt/runs/000/latest.h5"
for i in $(seq 1 600); do [ -f "$latest" ] && break; sleep 0.1; done
[ -f "$latest" ] || fail "the preemption run wrote no checkpoint"
scancel --signal=USR1 "$job" || fail "scancel --signal=USR1"
log="$work/preempt/runs/000/fit.log"
# Until the resumed fit has printed its summary (and its job has left the queue).
for i in $(seq 1 1200); do
  state="$(squeue -h -j "$job" -o '%T' 2>/dev/null)"
  grep -q "^fit: 100 epochs" "$log" 2>/dev/null && [ -z "$state" ] && break
  # Slurm holds a requeued job back for a while (BeginTime); a test need not wait for that.
  [ "$state" = PENDING ] && scontrol update JobId="${job}_0" StartTime=now > /dev/null 2>&1
  sleep 0.25
done
grep -q "^fit: 100 epochs" "$log" || fail "the preempted job did not finish its fit: $(squeue -j "$job"; tail -3 "$log")"
grep -q "SIGUSR1: stopping after epoch" "$log" || fail "the run was not stopped by SIGUSR1: $(tail -5 "$log")"
grep -q "resumed from" "$log" || fail "the requeued run did not resume: $(tail -5 "$log")"
grep -q "requeueing" "$work"/preempt/runs/slurm-*.out || fail "the job did not requeue itself"
h5dump -m %.17g -d /parameters "$work/long_ref/latest.h5" | tail -n +3 > "$work/ref.par"
h5dump -m %.17g -d /parameters "$latest" | tail -n +3 > "$work/pre.par"
cmp -s "$work/ref.par" "$work/pre.par" || fail "parameters after preemption and requeue differ from the uninterrupted fit"
echo "slurm_local: SIGUSR1 -> saved, exit 75, requeued, resumed: final parameters identical to the uninterrupted fit"
echo "slurm_local: 3 passed, 0 failed"
