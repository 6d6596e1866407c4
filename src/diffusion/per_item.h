// Elementwise loops over [batch, per_item] arrays whose coefficients change per batch item:
// parallel over (item, chunk) pairs when the whole array is large, serial (no OpenMP region,
// hence no allocation) when small.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/diffusion/schedule.h"
#include "kernels/cpu/parallel.h"

namespace ddpm::diffusion_detail {

inline void check_sizes(int64_t batch, int64_t per_item, const char* what) {
  if (batch < 0 || per_item < 0)
    throw std::invalid_argument(std::string(what) + ": negative size (batch " + std::to_string(batch) +
                                ", per_item " + std::to_string(per_item) + ")");
}

inline void check_timesteps(const int64_t* t, int64_t batch, const NoiseSchedule& schedule, const char* what) {
  for (int64_t b = 0; b < batch; ++b)
    if (t[b] < 0 || t[b] >= schedule.num_timesteps())
      throw std::out_of_range(std::string(what) + ": t[" + std::to_string(b) + "] = " + std::to_string(t[b]) +
                              " is outside [0, " + std::to_string(schedule.num_timesteps()) + ")");
}

// A sampler's timestep list: non-empty, strictly decreasing, within [0, T).
inline void check_timestep_list(const std::vector<int64_t>& timesteps, const NoiseSchedule& schedule,
                                const char* what) {
  if (timesteps.empty()) throw std::invalid_argument(std::string(what) + ": no timesteps to visit");
  for (size_t i = 0; i < timesteps.size(); ++i) {
    schedule.check_timestep(timesteps[i], what);
    if (i > 0 && timesteps[i] >= timesteps[i - 1])
      throw std::invalid_argument(std::string(what) + ": timesteps must be strictly decreasing, got " +
                                  std::to_string(timesteps[i - 1]) + " then " + std::to_string(timesteps[i]));
  }
}

// These loops cost ~1 ns per element, so a parallel region (and, on a busy machine, a barrier
// waiting for a descheduled thread) pays only from ~10^5 elements: 8x the kernels' grain.
inline constexpr int64_t kElementwiseGrain = cpu::kParallelGrain * 8;

// body(b, begin, end) covers every element index [b·per_item + begin, b·per_item + end).
template <class Body>
void for_each_item_chunk(int64_t batch, int64_t per_item, Body body) {
  constexpr int64_t kChunk = 1 << 13;
  if (batch == 0 || per_item == 0) return;
  const int64_t chunks = (per_item + kChunk - 1) / kChunk;
  cpu::parallel_for(batch * chunks, batch * per_item >= kElementwiseGrain, [&](int64_t i) {
    const int64_t b = i / chunks, begin = (i % chunks) * kChunk;
    body(b, begin, std::min(per_item, begin + kChunk));
  });
}

}  // namespace ddpm::diffusion_detail
