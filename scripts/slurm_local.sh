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
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ "${KEEP:-0}" = 1 ] && echo "slurm_local: logs in $work" || rm -rf "$work"
}
trap cleanup EXIT

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
pids+=("$(cat "$work/munge/munged.pid")")

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

slurmctld -D -i -f "$SLURM_CONF" > "$work/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" > "$work/slurmd.out" 2>&1 &
pids+=($!)
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
