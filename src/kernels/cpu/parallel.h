// OpenMP loops that stay serial when parallelism cannot pay. Beyond the overhead, libgomp
// allocates a fresh one-thread team for every parallel region that runs on one thread (an
// `if(false)` clause or OMP_NUM_THREADS=1), so small loops must not enter a region at all:
// a training step makes no heap allocation.
#pragma once

#include <omp.h>

#include <cstdint>

namespace ddpm::cpu {

// Below this many elements a parallel region costs more than it saves.
inline constexpr int64_t kParallelGrain = 1 << 14;

// body(i) for i in [0, count): statically scheduled over the threads when worth_it.
template <class Body>
void parallel_for(int64_t count, bool worth_it, Body body) {
  if (!worth_it || count <= 1 || omp_get_max_threads() == 1) {
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) body(i);
}

// body() on every thread of a region (it may hold orphaned `#pragma omp for` loops, which then
// share out their iterations), or once on this thread, where those loops run serially.
template <class Body>
void parallel_team(bool worth_it, Body body) {
  if (!worth_it || omp_get_max_threads() == 1) {
    body();
    return;
  }
#pragma omp parallel
  body();
}

// body(thread, threads) once per thread of a region, or once as (0, 1) when not worth it.
template <class Body>
void parallel_region(bool worth_it, Body body) {
  if (!worth_it || omp_get_max_threads() == 1) {
    body(0, 1);
    return;
  }
#pragma omp parallel
  body(omp_get_thread_num(), omp_get_num_threads());
}

}  // namespace ddpm::cpu
