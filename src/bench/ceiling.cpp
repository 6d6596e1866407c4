// FMA-loop ceiling: enough independent accumulators to hide FMA latency on both FMA ports.
#include "ddpm/bench/ceiling.h"

#include <omp.h>

#include <chrono>
#include <cstdint>

#include "kernels/cpu/vec_math.h"

namespace ddpm::bench {

namespace {

// 12 independent chains of FMAs; returns a value so the work is not optimised away.
float fma_chains(int64_t iterations) {
  using cpu::VecF;
  VecF acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = VecF(0.001f * static_cast<float>(i));
  const VecF a(0.999999f), b(1e-7f);
  for (int64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = xsimd::fma(acc[i], a, b);
  }
  VecF sum(0.0f);
  for (int i = 0; i < 12; ++i) sum += acc[i];
  return xsimd::hadd(sum);
}

}  // namespace

double measure_fma_peak_gflops(int threads, double seconds) {
  const double flops_per_iteration = 12.0 * cpu::kVec * 2.0;
  int64_t iterations = 1 << 16;
  volatile float sink = 0;
  // Grow the loop until one run takes long enough to time reliably; keep the best of a few.
  double best = 0.0;
  for (int trial = 0; trial < 20; ++trial) {
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    { sink = sink + fma_chains(iterations); }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed < seconds / 4) {
      iterations *= 2;
      continue;
    }
    const double gflops = flops_per_iteration * static_cast<double>(iterations) * threads / elapsed * 1e-9;
    if (gflops > best) best = gflops;
    if (trial > 10) break;
  }
  return best;
}

}  // namespace ddpm::bench
