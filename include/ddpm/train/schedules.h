// Training-time schedules: the learning-rate warm-up of the DDPM code and an EMA decay warm-up.
#pragma once

#include <cstdint>

namespace ddpm {

// lr * min(step / warmup_steps, 1), step counted from 1 (HO-REPO utils.get_warmed_up_lr);
// warmup_steps 0 means no warm-up.
double warmed_up_lr(double lr, int64_t step, int64_t warmup_steps);

// The EMA decay used at `step` (1-based). The paper uses a fixed 0.9999 (with the average starting
// equal to the weights); with ema_warmup the decay follows min(decay, (1 + step) / (10 + step)), as
// TF's ExponentialMovingAverage with num_updates does, so that short runs get a usable average.
double ema_decay_at(double decay, int64_t step, bool ema_warmup);

}  // namespace ddpm
