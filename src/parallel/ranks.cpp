#include "cvnode/ranks.h"

#include <cstdlib>
#include <stdexcept>

#ifdef CVNODE_HAVE_MPI
// The C API only (the deprecated C++ bindings would need libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace cvnode {

namespace {

Ranks* g_world = nullptr;

#ifdef CVNODE_HAVE_MPI
bool g_started = false;
MPI_Win g_counter_win = MPI_WIN_NULL;
long* g_counter = nullptr;
MPI_Datatype g_cell_type = MPI_DATATYPE_NULL;
MPI_Op g_cell_sum = MPI_OP_NULL;

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("MPI: ") + what + " failed");
}

void cell_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const ExactSum::Cell*>(in);
  auto* b = static_cast<ExactSum::Cell*>(inout);
  for (int i = 0; i < *len; ++i) ExactSum::merge_cell(b[i], a[i]);
}

// mpirun (OpenMPI), srun and other PMI launchers leave one of these in every task's environment.
bool launched_as_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}
#endif

// Several tasks started without a way for them to find each other would each run the whole job
// into the same output folder: refuse with the reason instead.
void refuse_lonely_tasks() {
  auto count = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? std::atol(v) : 0L;
  };
  if (count("OMPI_COMM_WORLD_SIZE") > 1 || count("PMI_SIZE") > 1)
    throw std::runtime_error("started as one of several MPI ranks, but this cvnode was built without MPI "
                             "(CVNODE_MPI=OFF): rebuild with an MPI, or run a single process");
  if (count("SLURM_STEP_NUM_TASKS") > 1 && std::getenv("SLURM_PROCID"))
    throw std::runtime_error("srun started " + std::to_string(count("SLURM_STEP_NUM_TASKS")) +
                             " tasks without an MPI launch (no PMI in the environment): use "
                             "`srun --mpi=pmix` (see `srun --mpi=list`), or one task");
}

}  // namespace

bool Ranks::compiled_with_mpi() {
#ifdef CVNODE_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Ranks& Ranks::world() {
  if (!g_world) g_world = new Ranks();
  return *g_world;
}

Ranks& Ranks::init(int* argc, char*** argv) {
  Ranks& w = world();
#ifdef CVNODE_HAVE_MPI
  if (g_started) return w;
  if (!launched_as_rank()) {
    refuse_lonely_tasks();
    return w;
  }
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  g_started = true;
  if (provided < MPI_THREAD_SERIALIZED) {
    // OpenMP threads call MPI one at a time (the work counter); without that support only
    // one thread per rank would be safe.
    MPI_Finalize();
    throw std::runtime_error("MPI: this MPI library does not support MPI_THREAD_SERIALIZED");
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size_);
  MPI_Type_contiguous(sizeof(ExactSum::Cell), MPI_BYTE, &g_cell_type);
  MPI_Type_commit(&g_cell_type);
  MPI_Op_create(&cell_sum, /*commute=*/1, &g_cell_sum);
  // The counter lives in rank 0's window; MPI_Win_allocate lets OpenMPI put it in shared memory
  // on one node (osc/sm) or use the network's atomics (osc/ucx, osc/rdma).
  const MPI_Aint bytes = w.rank_ == 0 ? static_cast<MPI_Aint>(sizeof(long)) : 0;
  check(MPI_Win_allocate(bytes, sizeof(long), MPI_INFO_NULL, MPI_COMM_WORLD, &g_counter, &g_counter_win),
        "MPI_Win_allocate");
  if (w.rank_ == 0) *g_counter = 0;
  MPI_Win_lock_all(0, g_counter_win);
  MPI_Barrier(MPI_COMM_WORLD);
#else
  (void)argc;
  (void)argv;
  refuse_lonely_tasks();
#endif
  return w;
}

void Ranks::finalize() {
#ifdef CVNODE_HAVE_MPI
  if (!g_started) return;
  MPI_Win_unlock_all(g_counter_win);
  MPI_Win_free(&g_counter_win);
  MPI_Op_free(&g_cell_sum);
  MPI_Type_free(&g_cell_type);
  MPI_Finalize();
  g_started = false;
#endif
}

void Ranks::abort(int code) {
#ifdef CVNODE_HAVE_MPI
  if (g_started) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  (void)code;
}

void Ranks::allreduce(ExactSum& sums) const {
#ifdef CVNODE_HAVE_MPI
  if (!distributed()) return;
  std::vector<ExactSum::Cell> cells = sums.cells();
  check(MPI_Allreduce(MPI_IN_PLACE, cells.data(), static_cast<int>(cells.size()), g_cell_type, g_cell_sum,
                      MPI_COMM_WORLD),
        "MPI_Allreduce (exact sums)");
  sums.assign(cells);
#else
  (void)sums;
#endif
}

#ifdef CVNODE_HAVE_MPI
namespace {
void sum_in_place(void* data, std::size_t count, MPI_Datatype type) {
  check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
}
}  // namespace
#endif

void Ranks::allreduce_sum(std::vector<double>& v) const {
#ifdef CVNODE_HAVE_MPI
  if (distributed()) sum_in_place(v.data(), v.size(), MPI_DOUBLE);
#else
  (void)v;
#endif
}

void Ranks::allreduce_sum(std::vector<long>& v) const {
#ifdef CVNODE_HAVE_MPI
  if (distributed()) sum_in_place(v.data(), v.size(), MPI_LONG);
#else
  (void)v;
#endif
}

long Ranks::allreduce_max(long value) const {
#ifdef CVNODE_HAVE_MPI
  if (!distributed()) return value;
  check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
  return value;
}

std::vector<std::string> Ranks::allgather(const std::string& bytes) const {
#ifdef CVNODE_HAVE_MPI
  if (distributed()) {
    int mine = static_cast<int>(bytes.size());
    std::vector<int> counts(size_), displs(size_);
    check(MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    int total = 0;
    for (int r = 0; r < size_; ++r) {
      displs[r] = total;
      total += counts[r];
    }
    std::string all(static_cast<std::size_t>(total), '\0');
    check(MPI_Allgatherv(bytes.data(), mine, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE,
                         MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::vector<std::string> out(size_);
    for (int r = 0; r < size_; ++r) out[r] = all.substr(displs[r], counts[r]);
    return out;
  }
#endif
  return {bytes};
}

std::vector<std::string> Ranks::allgatherv(const std::string& bytes, const std::vector<long>& counts) const {
#ifdef CVNODE_HAVE_MPI
  if (distributed()) {
    std::vector<int> c(size_), displs(size_);
    int total = 0;
    for (int r = 0; r < size_; ++r) {
      c[r] = static_cast<int>(counts.at(r));
      displs[r] = total;
      total += c[r];
    }
    if (c[rank_] != static_cast<int>(bytes.size())) throw std::logic_error("Ranks::allgatherv: own count differs");
    std::string all(static_cast<std::size_t>(total), '\0');
    check(MPI_Allgatherv(bytes.data(), c[rank_], MPI_BYTE, all.data(), c.data(), displs.data(), MPI_BYTE,
                         MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::vector<std::string> out(size_);
    for (int r = 0; r < size_; ++r) out[r] = all.substr(displs[r], c[r]);
    return out;
  }
#endif
  (void)counts;
  return {bytes};
}

void Ranks::broadcast(std::string& bytes, int from) const {
#ifdef CVNODE_HAVE_MPI
  if (!distributed()) return;
  long n = static_cast<long>(bytes.size());
  check(MPI_Bcast(&n, 1, MPI_LONG, from, MPI_COMM_WORLD), "MPI_Bcast");
  bytes.resize(static_cast<std::size_t>(n));
  check(MPI_Bcast(bytes.data(), static_cast<int>(n), MPI_BYTE, from, MPI_COMM_WORLD), "MPI_Bcast");
#else
  (void)bytes;
  (void)from;
#endif
}

void Ranks::barrier() const {
#ifdef CVNODE_HAVE_MPI
  if (distributed()) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

long Ranks::fetch_add(long increment) const {
#ifdef CVNODE_HAVE_MPI
  if (distributed()) {
    long old = 0;
    check(MPI_Fetch_and_op(&increment, &old, MPI_LONG, 0, 0, MPI_SUM, g_counter_win), "MPI_Fetch_and_op");
    check(MPI_Win_flush(0, g_counter_win), "MPI_Win_flush");
    return old;
  }
#endif
  (void)increment;
  throw std::logic_error("Ranks::fetch_add needs several ranks");
}

}  // namespace cvnode
