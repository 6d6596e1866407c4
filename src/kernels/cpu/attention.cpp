// Single-head self-attention, forward and backward, composed of oneDNN matrix products and our
// softmax. Everything backward() needs is kept in buffers planned at construction.
#include "ddpm/kernels/attention.h"

#include <cmath>
#include <stdexcept>

#include "ddpm/kernels/add.h"
#include "ddpm/kernels/softmax.h"
#include "ddpm/bench/profiler.h"

namespace ddpm::cpu {

namespace {
// Offsets of to_q/to_k/to_v/to_out.0 in the flat parameter layout (weight then bias each).
int64_t weight_offset(int64_t channels, int which) { return which * (channels * channels + channels); }
int64_t bias_offset(int64_t channels, int which) { return weight_offset(channels, which) + channels * channels; }
}  // namespace

Attention::Attention(int64_t batch, int64_t positions, int64_t channels, Precision precision, bool training)
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
      grad_keys_(batch, positions, positions, channels, true, false, precision),
      training_(training) {
  if (!training) return;
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

int64_t Attention::inference_workspace_floats(int64_t batch, int64_t positions, int64_t channels) {
  const auto round = [](int64_t n) { return (n + 15) / 16 * 16; };  // keeps every part 64-byte aligned
  return 4 * round(batch * positions * channels) + round(batch * positions * positions);
}

void Attention::set_inference_workspace(float* workspace) { workspace_ = workspace; }

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
  input_ = x;
  float *q, *k, *v, *mixed, *scores, *probs;
  if (training_) {
    auto buf = [&](Arena::Slot s) { return arena_.tensor(s).f32(); };
    q = buf(q_), k = buf(k_), v = buf(v_), mixed = buf(mixed_), probs = buf(probs_);
    scores = buf(dprobs_);  // the raw scores go through the (not yet used) gradient buffer
  } else {
    if (!workspace_) throw std::logic_error("Attention::forward: an inference attention needs set_inference_workspace()");
    const int64_t t = (batch_ * positions_ * channels_ + 15) / 16 * 16;
    q = workspace_, k = q + t, v = k + t, mixed = v + t, probs = mixed + t;
    scores = probs;  // softmax in place
  }
  to_q_.forward(x, params_ + bias_offset(channels_, 0), q);
  to_k_.forward(x, params_ + bias_offset(channels_, 1), k);
  to_v_.forward(x, params_ + bias_offset(channels_, 2), v);
  scores_.run(q, k, scores);
  softmax_forward(probs, scores, batch_ * positions_, positions_, scale_);
  mix_.run(probs, v, mixed);
  to_out_.forward(mixed, params_ + bias_offset(channels_, 3), y);
  add_inplace(y, residual, batch_ * positions_ * channels_);
}

void Attention::backward(const float* dy, float* dx, float* dparams) {
  profile::Scope profile_scope(profile::Kind::op, "attention bwd (rest)");
  if (!training_) throw std::logic_error("Attention::backward: this attention was built for inference (training = false)");
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
