// Deterministic parallel work over images: fixed chunks of items on OpenMP threads, and the
// chunks' partial sums reduced in chunk order. Which thread takes which chunk never changes a
// result, so results do not depend on the number of threads. Also the bookkeeping of the
// workspaces and parameter vectors that such layers carve into consecutive buffers.
#pragma once

#include <algorithm>

#include <Eigen/Core>
#include <omp.h>

namespace cvnode::detail {

inline long pad8(long n) { return (n + 7) / 8 * 8; }

// Consecutive buffers in one array: take(n) returns the offset of the next n entries. With
// align 8, every buffer starts a multiple of 8 doubles (64 bytes) from the array's (aligned)
// start: Eigen's kernels round differently by an operand's alignment, and the bits must not
// depend on where a buffer sits.
struct Offsets {
  explicit Offsets(long align = 1) : align(align) {}
  long take(long n) {
    const long at = size;
    size += (n + align - 1) / align * align;
    return at;
  }
  long align, size = 0;
};

// Runs fn(chunk, first item, items, thread) for the chunks of `count` items, `chunk` items each
// (the last may be shorter), on up to `threads` threads: one when called inside another
// parallel region, so an outer loop over series is never oversubscribed. `thread` indexes
// per-thread scratch memory in [0, threads).
template <class Fn>
void parallel_chunks(int count, int chunk, int threads, Fn&& fn) {
  const int chunks = (count + chunk - 1) / chunk;
  const int team = omp_in_parallel() ? 1 : std::max(1, std::min(threads, chunks));
  if (team == 1) {
    // Not even a serialised OpenMP region: libgomp allocates a team descriptor for every region
    // entered with one thread (an `if` that is false, or a region nested in another), which put
    // a heap allocation into every right-hand side call.
    for (int c = 0; c < chunks; ++c) fn(c, c * chunk, std::min(chunk, count - c * chunk), 0);
    return;
  }
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
  for (int c = 0; c < chunks; ++c) {
    const int first = c * chunk;
    fn(c, first, std::min(chunk, count - first), omp_get_thread_num());
  }
}

// out = sum of the `parts` vectors of out.size() doubles at base, base + stride, ..., in order.
inline void sum_partials(const double* base, long stride, int parts, Eigen::Ref<Eigen::VectorXd> out) {
  out = Eigen::Map<const Eigen::VectorXd>(base, out.size());
  for (int c = 1; c < parts; ++c) out += Eigen::Map<const Eigen::VectorXd>(base + c * stride, out.size());
}

}  // namespace cvnode::detail
