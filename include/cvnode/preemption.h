// Stopping a fit cleanly when the scheduler says so. Slurm sends SIGTERM when a job is cancelled
// or preempted (SIGKILL follows after KillWait, 30 s by default) and, with `sbatch --signal`,
// SIGUSR1 a chosen time before the time limit. After either, a fit finishes the optimizer step it
// is in, writes latest.h5 (mid-epoch state included) and exits with kPreemptedExitCode; a job
// requeued with `cvnode fit --resume latest.h5` then continues with the same bits as a run that
// was never stopped.
#pragma once

#include <stdexcept>
#include <string>

namespace cvnode {

// Thrown by a command that stopped on a signal after saving its state; main exits with
// kPreemptedExitCode on every rank (no MPI_Abort: the ranks stopped together).
struct Preempted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// EX_TEMPFAIL: "try again later"; the sbatch template requeues on it.
constexpr int kPreemptedExitCode = 75;

// Installs the SIGTERM and SIGUSR1 handlers (they only set a flag). Idempotent.
void install_stop_signals();
// The signal that asked to stop (0: none yet). Async-signal-safe to set, cheap to read.
int stop_signal();
// As if the signal had arrived (tests, a library user's own stop button).
void request_stop(int signal);
void clear_stop();
// "SIGTERM", "SIGUSR1" ...
const char* signal_name(int signal);

}  // namespace cvnode
