// The MPI ranks of a run, or this process alone. A program started by `mpirun` or `srun` is one
// rank of MPI_COMM_WORLD (when cvnode was built with MPI, CVNODE_MPI); otherwise it is the only
// rank and every collective below is a no-op, so the same code runs with and without MPI.
// mpi.h stays inside src/parallel/: nothing else in cvnode sees MPI.
#pragma once

#include <string>
#include <vector>

#include "cvnode/exact_sum.h"

namespace cvnode {

class Ranks {
 public:
  // Starts MPI (MPI_THREAD_SERIALIZED) if the environment says this process was started by
  // mpirun or srun as one of several tasks; call once, first thing in main. Returns world().
  static Ranks& init(int* argc, char*** argv);
  // Ends MPI if init started it (every rank must call it; main does, also after an error).
  static void finalize();
  // Ends every rank at once (an error on one rank would otherwise leave the others waiting in a
  // collective). Returns only without MPI.
  static void abort(int code);
  static Ranks& world();
  // Whether this build has MPI at all.
  static bool compiled_with_mpi();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  // Every rank ends with the sum of all ranks' terms, the same bits on each (ExactSum merges in
  // any order; MPI's reduction tree does not matter).
  void allreduce(ExactSum& sums) const;
  // Plain MPI_SUM: the fast path, NOT bit-reproducible across rank counts (the rounding of the
  // partial sums depends on how MPI groups them).
  void allreduce_sum(std::vector<double>& values) const;
  void allreduce_sum(std::vector<long>& values) const;
  long allreduce_max(long value) const;
  // Each rank's bytes, in rank order, on every rank.
  std::vector<std::string> allgather(const std::string& bytes) const;
  // The same when every rank already knows every rank's byte count (one collective, not two).
  std::vector<std::string> allgatherv(const std::string& bytes, const std::vector<long>& counts) const;
  void broadcast(std::string& bytes, int from = 0) const;
  void barrier() const;

  // A counter on rank 0 that any rank increments without rank 0 taking part (MPI one-sided
  // fetch-and-add): dynamic hand-out of work units. It starts at 0 and is never reset.
  long fetch_add(long increment) const;
  // The counter's value at the start of the current round of hand-outs (every rank moves it by
  // the same amount after each round; it belongs to the counter, not to one backend).
  long counter_base() const { return counter_base_; }
  void advance_counter(long n) const { counter_base_ += n; }

 private:
  Ranks() = default;
  int rank_ = 0, size_ = 1;
  mutable long counter_base_ = 0;
};

}  // namespace cvnode
