// Learning-rate and EMA-decay schedules.
#include "ddpm/train/schedules.h"

#include <algorithm>
#include <stdexcept>

namespace ddpm {

double warmed_up_lr(double lr, int64_t step, int64_t warmup_steps) {
  if (step < 1) throw std::invalid_argument("warmed_up_lr: step counts from 1");
  if (warmup_steps <= 0) return lr;
  return lr * std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup_steps));
}

double ema_decay_at(double decay, int64_t step, bool ema_warmup) {
  if (step < 1) throw std::invalid_argument("ema_decay_at: step counts from 1");
  if (!ema_warmup) return decay;
  const double s = static_cast<double>(step);
  return std::min(decay, (1.0 + s) / (10.0 + s));
}

}  // namespace ddpm
