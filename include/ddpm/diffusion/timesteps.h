// Which timesteps a K-step sampler visits out of the T the model was trained with. The names and
// formulas are diffusers' DDIMScheduler.set_timesteps (timestep_spacing) plus DDIM's quadratic
// sub-sequence (Song et al. 2020, App. D.2). A sampler steps from each timestep in the list to the
// next one in the list, and from the last one to the end of the chain (ᾱ = 1), never to t − T/K.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

enum class Spacing {
  leading,    // (T // K)·i + steps_offset for i = K−1..0 (DDIM's linear "uniform" skip; diffusers' default)
  trailing,   // round(T − i·T/K) − 1 for i = 0..K−1: always starts at T − 1
  linspace,   // round(linspace(0, T − 1, K)), descending: starts at T − 1 and ends at 0
  quadratic,  // int(linspace(0, sqrt(0.8·T), K)²), descending (DDIM's CIFAR-10 choice)
};

// "leading" | "trailing" | "linspace" | "quadratic"; std::invalid_argument naming them otherwise.
Spacing parse_spacing(const std::string& name);
const char* spacing_name(Spacing spacing);

// The K timesteps, strictly decreasing, all in [0, T). Throws std::invalid_argument naming the
// problem unless 1 <= K <= T, when the offset pushes a leading timestep past T − 1, or when the
// spacing would visit a timestep twice (quadratic spacing with K close to T).
std::vector<int64_t> sampling_timesteps(int64_t T, int64_t K, Spacing spacing, int64_t steps_offset = 0);

}  // namespace ddpm
