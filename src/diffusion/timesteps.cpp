// Timestep lists for K-step samplers, with NumPy's arithmetic (np.round halves to even; the
// products are formed in float64 as in diffusers).
#include "ddpm/diffusion/timesteps.h"

#include <cmath>
#include <stdexcept>

namespace ddpm {

Spacing parse_spacing(const std::string& name) {
  if (name == "leading") return Spacing::leading;
  if (name == "trailing") return Spacing::trailing;
  if (name == "linspace") return Spacing::linspace;
  if (name == "quadratic") return Spacing::quadratic;
  throw std::invalid_argument("unknown timestep spacing '" + name + "': expected leading, trailing, linspace or quadratic");
}

const char* spacing_name(Spacing spacing) {
  switch (spacing) {
    case Spacing::leading: return "leading";
    case Spacing::trailing: return "trailing";
    case Spacing::linspace: return "linspace";
    case Spacing::quadratic: return "quadratic";
  }
  return "?";
}

namespace {

// The list as the formulas give it, unchecked.
std::vector<int64_t> spaced(int64_t T, int64_t K, Spacing spacing, int64_t steps_offset) {
  std::vector<int64_t> ts(static_cast<size_t>(K));
  const double t_d = static_cast<double>(T), k_d = static_cast<double>(K);
  for (int64_t i = 0; i < K; ++i) {  // i-th timestep visited
    const double j = static_cast<double>(K - 1 - i);  // its index in ascending order
    int64_t t = 0;
    switch (spacing) {
      case Spacing::leading: t = (T / K) * (K - 1 - i) + steps_offset; break;
      case Spacing::trailing: t = static_cast<int64_t>(std::nearbyint(t_d - static_cast<double>(i) * (t_d / k_d))) - 1; break;
      case Spacing::linspace:
        t = K == 1 ? 0 : static_cast<int64_t>(std::nearbyint(j * ((t_d - 1) / (k_d - 1))));
        break;
      case Spacing::quadratic: {
        // np.linspace sets its last point to the stop value exactly.
        const double stop = std::sqrt(t_d * 0.8);
        const double root = K == 1 ? 0.0 : j == k_d - 1 ? stop : j * (stop / (k_d - 1));
        t = static_cast<int64_t>(root * root);
        break;
      }
    }
    ts[static_cast<size_t>(i)] = t;
  }
  return ts;
}

bool strictly_decreasing(const std::vector<int64_t>& ts) {
  for (size_t i = 1; i < ts.size(); ++i)
    if (ts[i] >= ts[i - 1]) return false;
  return true;
}

}  // namespace

std::vector<int64_t> sampling_timesteps(int64_t T, int64_t K, Spacing spacing, int64_t steps_offset) {
  if (K < 1 || K > T)
    throw std::invalid_argument("sampling steps: " + std::to_string(K) + " steps asked of a model trained with T = " +
                                std::to_string(T) + " timesteps; use 1 to " + std::to_string(T));
  const std::vector<int64_t> ts = spaced(T, K, spacing, steps_offset);
  if (ts.front() > T - 1 || ts.back() < 0)
    throw std::invalid_argument("sampling steps: " + std::string(spacing_name(spacing)) + " spacing with steps_offset " +
                                std::to_string(steps_offset) + " reaches timestep " + std::to_string(ts.front()) +
                                ", outside [0, " + std::to_string(T) + ")");
  if (!strictly_decreasing(ts)) {
    int64_t most = K - 1;  // only quadratic spacing repeats a timestep, and fewer steps help it
    while (most > 1 && !strictly_decreasing(spaced(T, most, spacing, steps_offset))) --most;
    throw std::invalid_argument("sampling steps: " + std::string(spacing_name(spacing)) + " spacing with " +
                                std::to_string(K) + " steps visits a timestep twice; with T = " + std::to_string(T) +
                                " use at most " + std::to_string(most) + " steps, or another spacing");
  }
  return ts;
}

}  // namespace ddpm
