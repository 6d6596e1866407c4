// Data-parallel workers: which of P processes this one is, and the few collectives that training,
// evaluation and sampling need. A plain run is one process (rank 0 of 1, every collective a no-op);
// under `mpirun -np P` the world is MPI_COMM_WORLD (when built with MPI). Callers never include
// MPI: its code lives in src/parallel/ alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "single process" | "MPI (Open MPI 4.1.4)" ...
  bool is_root() const { return rank() == 0; }

  // In place: every rank ends with the element-wise sum over ranks (MPI_SUM; its summation order
  // is the library's, identical on every rank).
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  // Root's bytes to every rank.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // Rank r's counts[r] values from `mine` into `all` on rank 0, in rank order (all may be null
  // on other ranks).
  virtual void gather_to_root(const float* mine, float* all, const std::vector<int64_t>& counts) = 0;
  virtual void gather_to_root(const double* mine, double* all, const std::vector<int64_t>& counts) = 0;
  virtual void barrier() = 0;
  // Ends every process of the job now (after an error on this one, so the others do not wait in a
  // collective forever).
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

// The processes of this job: MPI_COMM_WORLD when launched by mpirun (and built with MPI), else
// one process. The first call initialises MPI; it is finalised at exit. Throws, saying what to do,
// when mpirun launched several processes but this build has no MPI.
Communicator& world();

// A one-process communicator (rank 0 of 1), for library users and tests.
Communicator& single_process();

// Whether this build can run data-parallel over MPI, and the MPI library's version.
bool mpi_available();
std::string mpi_version();

// The images [first, first + count) that `rank` of `size` takes of n: contiguous, sizes differing
// by at most one, lower ranks taking the larger shares.
struct Shard {
  int64_t first = 0, count = 0;
};
Shard shard_of(int64_t n, int rank, int size);
std::vector<int64_t> shard_counts(int64_t n, int size);
// The items each rank holds when n items go in batches of `batch` (the last may be short) and each
// rank takes shard_of(batches) of the batches: what sampling and evaluation gather on rank 0.
std::vector<int64_t> batched_shard_counts(int64_t n, int64_t batch, int size);

// An FNV-1a 64-bit hash of a float buffer's bytes: equal buffers hash equal on every rank.
uint64_t checksum(const float* data, int64_t n);

}  // namespace ddpm
