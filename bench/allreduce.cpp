// The gradient all-reduce alone: the median time of world().allreduce_sum over a buffer of a
// model's parameter count (run under mpirun; prints one line per size on rank 0).
//   mpirun -np 2 build/bench/bench_allreduce [REPEATS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ddpm/parallel/communicator.h"

int main(int argc, char** argv) {
  ddpm::Communicator& comm = ddpm::world();
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 30;
  const std::pair<const char*, int64_t> sizes[] = {{"fmnist-small", 1623457}, {"cifar10-ddpm", 35746307}};
  if (comm.is_root())
    std::printf("all-reduce (sum, in place) over %d processes, %s; median of %d\n", comm.size(),
                comm.backend().c_str(), repeats);
  for (const auto& [name, n] : sizes) {
    std::vector<float> g(static_cast<size_t>(n), 1.0f);
    std::vector<double> ms;
    for (int r = 0; r < repeats + 3; ++r) {
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm.allreduce_sum(g.data(), n);
      const auto t1 = std::chrono::steady_clock::now();
      if (r >= 3) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    if (comm.is_root())
      std::printf("  %-14s %10lld floats  %8.2f ms  %6.2f GB/s (buffer size / time)\n", name,
                  static_cast<long long>(n), ms[ms.size() / 2], 4.0 * n / (ms[ms.size() / 2] * 1e6));
  }
  return 0;
}
