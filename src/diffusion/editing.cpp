// Image-to-image noising, RePaint inpainting and spherical interpolation (editing.h).
#include "ddpm/diffusion/editing.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>

#include "diffusion/per_item.h"

namespace ddpm {

void noise_to_timestep(float* x_t, const float* x0, int64_t t, int64_t n, const NoiseSchedule& schedule,
                       NoiseRng& rng) {
  if (t < 0 || t >= schedule.num_timesteps())
    throw std::out_of_range("noise_to_timestep: t = " + std::to_string(t) + " outside [0, " +
                            std::to_string(schedule.num_timesteps()) + ")");
  rng.fill_normal(x_t, n);  // z, then scaled in place (so x_t must not alias x0)
  const double a = schedule.sqrt_alphas_cumprod()[static_cast<size_t>(t)];
  const double s = std::sqrt(1.0 - schedule.alphas_cumprod()[static_cast<size_t>(t)]);
  for (int64_t i = 0; i < n; ++i) x_t[i] = static_cast<float>(a * x0[i] + s * x_t[i]);
}

std::vector<int64_t> repaint_walk(int64_t K, int64_t jump_length, int64_t jump_n_sample) {
  if (K < 1 || jump_length < 1 || jump_n_sample < 1)
    throw std::invalid_argument("repaint: steps, jump length and jump count must be at least 1");
  std::map<int64_t, int64_t> jumps;  // level -> jumps still to take from it
  for (int64_t j = 0; j + jump_length < K; j += jump_length) jumps[j] = jump_n_sample - 1;
  std::vector<int64_t> walk{K};
  for (int64_t level = K; level >= 1;) {
    walk.push_back(--level);
    if (auto it = jumps.find(level); it != jumps.end() && it->second > 0) {
      --it->second;
      for (int64_t k = 0; k < jump_length; ++k) walk.push_back(++level);
    }
  }
  return walk;
}

int64_t repaint_model_calls(int64_t K, int64_t jump_length, int64_t jump_n_sample) {
  const std::vector<int64_t> walk = repaint_walk(K, jump_length, jump_n_sample);
  int64_t calls = 0;
  for (size_t i = 1; i < walk.size(); ++i) calls += walk[i] < walk[i - 1];
  return calls;
}

void sample_repaint(const EpsModel& model, float* x, const float* known, const float* keep, int64_t batch,
                    int64_t per_item, const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps,
                    const RepaintOptions& options, NoiseRng& rng, const SampleProgress& progress) {
  diffusion_detail::check_sizes(batch, per_item, "sample_repaint");
  if (!model) throw std::invalid_argument("sample_repaint: no model given");
  if (options.variance == Variance::learned_range)
    throw std::invalid_argument("sample_repaint: learned_range variance is not supported (use fixed_large/small)");
  // Level l holds x at respaced index l − 1 (level 0: x_0). Down from l: the model at index l − 1
  // (timestep timesteps[K − l]); up from l: q(x at index l | x at index l − 1) = N(sqrt(1 − β'_l) x, β'_l).
  const NoiseSchedule respaced = schedule.respaced(timesteps);
  const auto K = static_cast<int64_t>(timesteps.size());
  const int64_t n = batch * per_item;
  const std::vector<int64_t> walk = repaint_walk(K, options.jump_length, options.jump_n_sample);
  const int64_t total = repaint_model_calls(K, options.jump_length, options.jump_n_sample);
  std::vector<float> eps(static_cast<size_t>(n)), z(static_cast<size_t>(n)), noised(static_cast<size_t>(n));
  int64_t calls = 0;
  for (size_t i = 1; i < walk.size(); ++i) {
    const int64_t from = walk[i - 1], to = walk[i];
    if (to < from) {
      const int64_t index = from - 1;
      model(x, timesteps[static_cast<size_t>(K - from)], eps.data());
      if (index > 0) rng.fill_normal(z.data(), n);
      ddpm_step(x, x, eps.data(), index, z.data(), n, respaced, options.variance, options.clip_x0);
      // The known region at the same noise level (index − 1), or the image itself at level 0.
      const float* base = known;
      if (index > 0) {
        noise_to_timestep(noised.data(), known, index - 1, n, respaced, rng);
        base = noised.data();
      }
      for (int64_t k = 0; k < n; ++k) x[k] = keep[k] * base[k] + (1.0f - keep[k]) * x[k];
      if (progress) progress(++calls, total);
    } else {
      const double beta = respaced.betas()[static_cast<size_t>(from)];
      const double a = std::sqrt(1.0 - beta), s = std::sqrt(beta);
      rng.fill_normal(z.data(), n);
      for (int64_t k = 0; k < n; ++k) x[k] = static_cast<float>(a * x[k] + s * z[k]);
    }
  }
}

void slerp(float* out, const float* a, const float* b, double alpha, int64_t n) {
  double dot = 0, na = 0, nb = 0;
  for (int64_t i = 0; i < n; ++i) dot += double(a[i]) * b[i], na += double(a[i]) * a[i], nb += double(b[i]) * b[i];
  const double cos_theta = dot / std::sqrt(std::max(na * nb, 1e-300));
  double wa = 1 - alpha, wb = alpha;
  if (std::fabs(cos_theta) < 0.9995) {
    const double theta = std::acos(cos_theta);
    wa = std::sin((1 - alpha) * theta) / std::sin(theta);
    wb = std::sin(alpha * theta) / std::sin(theta);
  }
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(wa * a[i] + wb * b[i]);
}

}  // namespace ddpm
