// The one-process communicator, the choice between it and MPI, and the sharding helpers.
#include "ddpm/parallel/communicator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "parallel/mpi/mpi_communicator.h"

namespace ddpm {

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single process"; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void broadcast(void*, int64_t, int) override {}
  void gather_to_root(const float* mine, float* all, const std::vector<int64_t>& counts) override {
    if (all != mine) std::memcpy(all, mine, static_cast<size_t>(counts.at(0)) * sizeof(float));
  }
  void gather_to_root(const double* mine, double* all, const std::vector<int64_t>& counts) override {
    if (all != mine) std::memcpy(all, mine, static_cast<size_t>(counts.at(0)) * sizeof(double));
  }
  void barrier() override {}
  [[noreturn]] void abort(int exit_code) override { std::exit(exit_code); }
};

// The number of processes a launcher started, from its environment (Open MPI, then the PMI of
// MPICH/Hydra and Slurm); 0 when none did.
int launched_processes() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

}  // namespace

Communicator& single_process() {
  static SingleProcess one;
  return one;
}

bool mpi_available() { return detail::mpi_built(); }
std::string mpi_version() { return detail::mpi_built() ? detail::mpi_library_version() : ""; }

Communicator& world() {
  static Communicator* chosen = [] {
    const int launched = launched_processes();
    if (launched == 0) return &single_process();
    if (!detail::mpi_built()) {
      if (launched == 1) return &single_process();
      throw std::runtime_error(
          "this process is one of " + std::to_string(launched) +
          " started by mpirun, but this ddpm was built without MPI, so the processes would train separately. "
          "Install Open MPI (apt-get install libopenmpi-dev openmpi-bin; scripts/setup does) and rebuild "
          "(cmake -S . -B build && cmake --build build), or run one process without mpirun.");
    }
    return &detail::mpi_world();
  }();
  return *chosen;
}

Shard shard_of(int64_t n, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size || n < 0)
    throw std::invalid_argument("shard_of: rank " + std::to_string(rank) + " of " + std::to_string(size) +
                                " processes, " + std::to_string(n) + " items");
  const int64_t base = n / size, extra = n % size;
  Shard s;
  s.first = rank * base + std::min<int64_t>(rank, extra);
  s.count = base + (rank < extra ? 1 : 0);
  return s;
}

std::vector<int64_t> shard_counts(int64_t n, int size) {
  std::vector<int64_t> counts(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) counts[static_cast<size_t>(r)] = shard_of(n, r, size).count;
  return counts;
}

std::vector<int64_t> batched_shard_counts(int64_t n, int64_t batch, int size) {
  const int64_t batches = (n + batch - 1) / batch;
  std::vector<int64_t> counts(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) {
    const Shard s = shard_of(batches, r, size);
    counts[static_cast<size_t>(r)] = std::min(n, (s.first + s.count) * batch) - std::min(n, s.first * batch);
  }
  return counts;
}

uint64_t checksum(const float* data, int64_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  for (int64_t i = 0; i < n * static_cast<int64_t>(sizeof(float)); ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace ddpm
