// MPI_COMM_WORLD as a Communicator (compiled only when CMake found MPI).
#include "parallel/mpi/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <stdexcept>

namespace ddpm::detail {

namespace {

// MPI counts are int: larger buffers go in chunks.
constexpr int64_t kMaxCount = INT_MAX / 2;

class MpiWorld final : public Communicator {
 public:
  MpiWorld() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;  // MPI is called from the main thread only (OpenMP threads never call it)
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiWorld() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "MPI (" + mpi_library_version() + ")"; }

  void allreduce_sum(float* data, int64_t n) override { allreduce(data, n, MPI_FLOAT); }
  void allreduce_sum(double* data, int64_t n) override { allreduce(data, n, MPI_DOUBLE); }

  void broadcast(void* data, int64_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (int64_t off = 0; off < bytes; off += kMaxCount)
      MPI_Bcast(p + off, static_cast<int>(std::min(kMaxCount, bytes - off)), MPI_BYTE, root, MPI_COMM_WORLD);
  }

  void gather_to_root(const float* mine, float* all, const std::vector<int64_t>& counts) override {
    gather(mine, all, counts, MPI_FLOAT);
  }
  void gather_to_root(const double* mine, double* all, const std::vector<int64_t>& counts) override {
    gather(mine, all, counts, MPI_DOUBLE);
  }

  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  void allreduce(void* data, int64_t n, MPI_Datatype type) {
    int bytes = 0;
    MPI_Type_size(type, &bytes);
    auto* p = static_cast<char*>(data);
    for (int64_t off = 0; off < n; off += kMaxCount)
      MPI_Allreduce(MPI_IN_PLACE, p + off * bytes, static_cast<int>(std::min(kMaxCount, n - off)), type, MPI_SUM,
                    MPI_COMM_WORLD);
  }

  void gather(const void* mine, void* all, const std::vector<int64_t>& counts, MPI_Datatype type) {
    if (static_cast<int>(counts.size()) != size_)
      throw std::invalid_argument("gather_to_root: " + std::to_string(counts.size()) + " counts for " +
                                  std::to_string(size_) + " processes");
    std::vector<int> recv(counts.size()), displs(counts.size());
    int64_t total = 0;
    for (size_t r = 0; r < counts.size(); ++r) {
      if (total + counts[r] > INT_MAX) throw std::invalid_argument("gather_to_root: over 2^31 values");
      recv[r] = static_cast<int>(counts[r]);
      displs[r] = static_cast<int>(total);
      total += counts[r];
    }
    MPI_Gatherv(mine, recv[static_cast<size_t>(rank_)], type, all, recv.data(), displs.data(), type, 0,
                MPI_COMM_WORLD);
  }

  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_built() { return true; }

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string s(text, static_cast<size_t>(length));
  const size_t comma = s.find(',');  // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
  return comma == std::string::npos ? s : s.substr(0, comma);
}

Communicator& mpi_world() {
  static MpiWorld world;
  return world;
}

}  // namespace ddpm::detail
