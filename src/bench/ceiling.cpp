// FMA-loop ceiling: enough independent accumulators to hide FMA latency on both FMA ports.
#include "ddpm/bench/ceiling.h"

#include <omp.h>

#include <time.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/vec_math.h"

namespace ddpm::bench {

namespace {

volatile float sink = 0;  // a side effect, so the loop stays between the clock reads

// 12 independent chains of FMAs.
[[gnu::noinline]] void fma_chains(int64_t iterations) {
  using cpu::VecF;
  VecF acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = VecF(0.001f * static_cast<float>(i));
  const VecF a(0.999999f), b(1e-7f);
  for (int64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = xsimd::fma(acc[i], a, b);
  }
  VecF sum(0.0f);
  for (int i = 0; i < 12; ++i) sum += acc[i];
  sink = sink + xsimd::hadd(sum);
}

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

double measure_fma_peak_gflops(int threads, double seconds) {
  // Each thread times itself in CPU time (CLOCK_THREAD_CPUTIME_ID), so descheduled time does not
  // count; short trials over the whole window, keeping the best, ride out moments when a shared
  // core runs slower. The per-thread rates add up.
  const double flops_per_iteration = 12.0 * cpu::kVec * 2.0;
  double total = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    int64_t iterations = 1 << 12;
    while (true) {  // calibrate one trial to about 10 ms
      const double start = thread_cpu_seconds();
      fma_chains(iterations);
      if (thread_cpu_seconds() - start > 0.01) break;
      iterations *= 2;
    }
    double best = 0.0;
    const double window_end = thread_cpu_seconds() + seconds;
    do {
      const double start = thread_cpu_seconds();
      fma_chains(iterations);
      const double elapsed = thread_cpu_seconds() - start;
      best = std::max(best, flops_per_iteration * static_cast<double>(iterations) / elapsed * 1e-9);
    } while (thread_cpu_seconds() < window_end);
    total += best;
  }
  return total;
}

}  // namespace ddpm::bench
