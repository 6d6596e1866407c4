// Single-head self-attention, forward and backward, composed of oneDNN matrix products and our
// softmax. Everything backward() needs is kept in buffers planned at construction.
#include "ddpm/kernels/attention.h"

#include <cmath>

#include "ddpm/kernels/add.h"
#include "ddpm/kernels/softmax.h"
#include "ddpm/bench/profiler.h"

namespace ddpm::cpu {

namespace {
// Offsets of to_q/to_k/to_v/to_out.0 in the flat parameter layout (weight then bias each).
int64_t weight_offset(int64_t channels, int which) { return which * (channels * channels + channels); }
int64_t bias_offset(int64_t channels, int which) { return weight_offset(channels, which) + channels * channels; }
}  // namespace

Attention::Attention(int64_t batch, int64_t positions, int64_t channels, Precision precision)
    : batch_(batch),
      positions_(positions),
      channels_(channels),
      scale_(1.0f / std::sqrt(static_cast<float>(channels))),
      to_q_(batch * positions, channels, channels, precision),
      to_k_(batch * positions, channels, channels, precision),
      to_v_(batch * positions, channels, channels, precision),
      to_out_(batch * positions, channels, channels, precision),
      scores_(batch, positions, channels, positions, false, true, precision),
      mix_(batch, positions, positions, channels, false, false, precision),
      grad_probs_(batch, positions, channels, positions, false, true, precision),
      grad_values_(batch, positions, positions, channels, true, false, precision),
      grad_queries_(batch, positions, positions, channels, false, false, precision),
      grad_keys_(batch, positions, positions, channels, true, false, precision) {
  const Shape tokens{batch, positions, channels}, square{batch, positions, positions};
  q_ = arena_.reserve(tokens);
  k_ = arena_.reserve(tokens);
  v_ = arena_.reserve(tokens);
  probs_ = arena_.reserve(square);
  mixed_ = arena_.reserve(tokens);
  dmixed_ = arena_.reserve(tokens);
  dprobs_ = arena_.reserve(square);
  dq_ = arena_.reserve(tokens);
  dk_ = arena_.reserve(tokens);
  dv_ = arena_.reserve(tokens);
  dx_part_ = arena_.reserve(tokens);
  arena_.allocate();
}

double Attention::forward_flops() const {
  const double tokens = static_cast<double>(batch_ * positions_);
  const double c = static_cast<double>(channels_);
  return 4 * 2 * tokens * c * c + 2 * 2 * tokens * static_cast<double>(positions_) * c;
}

void Attention::set_weights(const float* params) {
  to_q_.set_weights(params + weight_offset(channels_, 0));
  to_k_.set_weights(params + weight_offset(channels_, 1));
  to_v_.set_weights(params + weight_offset(channels_, 2));
  to_out_.set_weights(params + weight_offset(channels_, 3));
  params_ = params;
}

void Attention::forward(const float* x, const float* residual, float* y) {
  profile::Scope profile_scope(profile::Kind::op, "attention fwd (rest)");
  auto buf = [&](Arena::Slot s) { return arena_.tensor(s).f32(); };
  input_ = x;
  to_q_.forward(x, params_ + bias_offset(channels_, 0), buf(q_));
  to_k_.forward(x, params_ + bias_offset(channels_, 1), buf(k_));
  to_v_.forward(x, params_ + bias_offset(channels_, 2), buf(v_));
  // The raw scores go through the (for now unused) gradient buffer of the same shape.
  scores_.run(buf(q_), buf(k_), buf(dprobs_));
  softmax_forward(buf(probs_), buf(dprobs_), batch_ * positions_, positions_, scale_);
  mix_.run(buf(probs_), buf(v_), buf(mixed_));
  to_out_.forward(buf(mixed_), params_ + bias_offset(channels_, 3), y);
  add_inplace(y, residual, batch_ * positions_ * channels_);
}

void Attention::backward(const float* dy, float* dx, float* dparams) {
  profile::Scope profile_scope(profile::Kind::op, "attention bwd (rest)");
  auto buf = [&](Arena::Slot s) { return arena_.tensor(s).f32(); };
  const int64_t n = batch_ * positions_ * channels_;
  to_out_.backward(buf(mixed_), dy, buf(dmixed_), dparams + weight_offset(channels_, 3),
                   dparams + bias_offset(channels_, 3));
  grad_probs_.run(buf(dmixed_), buf(v_), buf(dprobs_));
  grad_values_.run(buf(probs_), buf(dmixed_), buf(dv_));
  softmax_backward(buf(dprobs_), buf(dprobs_), buf(probs_), batch_ * positions_, positions_, scale_);
  grad_queries_.run(buf(dprobs_), buf(k_), buf(dq_));
  grad_keys_.run(buf(dprobs_), buf(q_), buf(dk_));
  to_q_.backward(input_, buf(dq_), dx, dparams + weight_offset(channels_, 0), dparams + bias_offset(channels_, 0));
  to_k_.backward(input_, buf(dk_), buf(dx_part_), dparams + weight_offset(channels_, 1),
                 dparams + bias_offset(channels_, 1));
  add_inplace(dx, buf(dx_part_), n);
  to_v_.backward(input_, buf(dv_), buf(dx_part_), dparams + weight_offset(channels_, 2),
                 dparams + bias_offset(channels_, 2));
  add_inplace(dx, buf(dx_part_), n);
}

}  // namespace ddpm::cpu
