// Single-head self-attention on the GPU, forward and backward: src/kernels/cpu/attention.cpp step
// for step, with cuda::Linear for the projections, cuda::BatchedMatmul for the products and the
// backend's softmax and adds. Everything backward() needs lives in device buffers planned here.
#include "ddpm/kernels/cuda/attention.h"

#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "ddpm/kernels/cuda/matmul.h"
#include "ddpm/kernels/cuda/ops.h"
#include "ddpm/kernels/cuda/runtime.h"

namespace ddpm::cuda {

namespace {
// Offsets of to_q/to_k/to_v/to_out.0 in the flat parameter layout (weight then bias each).
int64_t weight_offset(int64_t channels, int which) { return which * (channels * channels + channels); }
int64_t bias_offset(int64_t channels, int which) { return weight_offset(channels, which) + channels * channels; }

std::string attention_name(int64_t batch, int64_t positions, int64_t channels, Precision p) {
  return std::string("cuda attention ") + precision_name(p) + " [N=" + std::to_string(batch) +
         ",P=" + std::to_string(positions) + ",C=" + std::to_string(channels) + "]";
}

// Checked before any member is planned, so a machine without a device gets this op's name.
int64_t checked_tokens(int64_t batch, int64_t positions, int64_t channels, Precision p) {
  const std::string name = attention_name(batch, positions, channels, p);
  if (batch <= 0 || positions <= 0 || channels <= 0)
    throw std::invalid_argument(name + ": every size must be positive");
  require_device("cuda::Attention");
  return batch * positions;
}

float* floats(const DeviceBuffer& b) { return b.as<float>(); }
}  // namespace

struct Attention::Impl {
  Impl(int64_t batch_, int64_t positions_, int64_t channels_, Precision precision, bool training_)
      : batch(batch_),
        positions(positions_),
        channels(channels_),
        tokens(checked_tokens(batch_, positions_, channels_, precision)),
        scale(1.0f / std::sqrt(static_cast<float>(channels_))),
        training(training_),
        name(attention_name(batch_, positions_, channels_, precision)),
        to_q(tokens, channels, channels, precision),
        to_k(tokens, channels, channels, precision),
        to_v(tokens, channels, channels, precision),
        to_out(tokens, channels, channels, precision),
        scores(batch, positions, channels, positions, false, true, precision),
        mix(batch, positions, positions, channels, false, false, precision) {
    const size_t token_bytes = static_cast<size_t>(tokens * channels) * sizeof(float);
    const size_t square_bytes = static_cast<size_t>(tokens * positions) * sizeof(float);
    q = DeviceBuffer(token_bytes);
    k = DeviceBuffer(token_bytes);
    v = DeviceBuffer(token_bytes);
    mixed = DeviceBuffer(token_bytes);
    probs = DeviceBuffer(square_bytes);
    if (!training) return;
    grad_probs.emplace(batch, positions, channels, positions, false, true, precision);
    grad_values.emplace(batch, positions, positions, channels, true, false, precision);
    grad_queries.emplace(batch, positions, positions, channels, false, false, precision);
    grad_keys.emplace(batch, positions, positions, channels, true, false, precision);
    dmixed = DeviceBuffer(token_bytes);
    dprobs = DeviceBuffer(square_bytes);
    dq = DeviceBuffer(token_bytes);
    dk = DeviceBuffer(token_bytes);
    dv = DeviceBuffer(token_bytes);
    dx_part = DeviceBuffer(token_bytes);
  }

  int64_t batch, positions, channels, tokens;
  float scale;
  bool training;
  std::string name;
  Linear to_q, to_k, to_v, to_out;
  BatchedMatmul scores;  // S = q k^T
  BatchedMatmul mix;     // A = P v
  // Planned for training only.
  std::optional<BatchedMatmul> grad_probs;    // dP = dA v^T
  std::optional<BatchedMatmul> grad_values;   // dv = P^T dA
  std::optional<BatchedMatmul> grad_queries;  // dq = dS k
  std::optional<BatchedMatmul> grad_keys;     // dk = dS^T q
  const float* params = nullptr;  // set_weights() pointer, for the biases
  const float* input = nullptr;   // x of the last forward
  DeviceBuffer q, k, v, probs, mixed, dmixed, dprobs, dq, dk, dv, dx_part;
};

Attention::Attention(int64_t batch, int64_t positions, int64_t channels, Precision precision, bool training)
    : impl_(std::make_unique<Impl>(batch, positions, channels, precision, training)) {}

Attention::~Attention() = default;
Attention::Attention(Attention&&) noexcept = default;
Attention& Attention::operator=(Attention&&) noexcept = default;

double Attention::forward_flops() const {
  const Impl& m = *impl_;
  const double tokens = static_cast<double>(m.tokens);
  const double c = static_cast<double>(m.channels);
  return 4 * 2 * tokens * c * c + 2 * 2 * tokens * static_cast<double>(m.positions) * c;
}

void Attention::set_weights(const float* params) {
  Impl& m = *impl_;
  if (!params) throw std::invalid_argument(m.name + ": set_weights needs a parameter buffer");
  m.to_q.set_weights(params + weight_offset(m.channels, 0));
  m.to_k.set_weights(params + weight_offset(m.channels, 1));
  m.to_v.set_weights(params + weight_offset(m.channels, 2));
  m.to_out.set_weights(params + weight_offset(m.channels, 3));
  m.params = params;
}

void Attention::forward(const float* x, const float* residual, float* y) {
  Impl& m = *impl_;
  if (!x || !residual || !y) throw std::invalid_argument(m.name + ": forward needs x, residual and y buffers");
  if (!m.params) throw std::logic_error(m.name + ": forward before set_weights");
  m.input = x;
  const int64_t c = m.channels;
  // Training: the raw scores go through the (not yet used) gradient buffer; inference: softmax in
  // place (each element is read and written by the same thread).
  float* raw_scores = m.training ? floats(m.dprobs) : floats(m.probs);
  m.to_q.forward(x, m.params + bias_offset(c, 0), floats(m.q));
  m.to_k.forward(x, m.params + bias_offset(c, 1), floats(m.k));
  m.to_v.forward(x, m.params + bias_offset(c, 2), floats(m.v));
  m.scores.run(floats(m.q), floats(m.k), raw_scores);
  softmax_forward(floats(m.probs), raw_scores, m.tokens, m.positions, m.scale);
  m.mix.run(floats(m.probs), floats(m.v), floats(m.mixed));
  m.to_out.forward(floats(m.mixed), m.params + bias_offset(c, 3), y);
  add_inplace(y, residual, m.tokens * c);
}

void Attention::backward(const float* dy, float* dx, float* dparams) {
  Impl& m = *impl_;
  if (!m.training) throw std::logic_error(m.name + ": backward of an attention built for inference (training = false)");
  if (!dy || !dx || !dparams) throw std::invalid_argument(m.name + ": backward needs dy, dx and dparams buffers");
  if (!m.input) throw std::logic_error(m.name + ": backward before forward");
  const int64_t c = m.channels, n = m.tokens * c;
  m.to_out.backward(floats(m.mixed), dy, floats(m.dmixed), dparams + weight_offset(c, 3), dparams + bias_offset(c, 3));
  m.grad_probs->run(floats(m.dmixed), floats(m.v), floats(m.dprobs));
  m.grad_values->run(floats(m.probs), floats(m.dmixed), floats(m.dv));
  softmax_backward(floats(m.dprobs), floats(m.dprobs), floats(m.probs), m.tokens, m.positions, m.scale);
  m.grad_queries->run(floats(m.dprobs), floats(m.k), floats(m.dq));
  m.grad_keys->run(floats(m.dprobs), floats(m.q), floats(m.dk));
  m.to_q.backward(m.input, floats(m.dq), dx, dparams + weight_offset(c, 0), dparams + bias_offset(c, 0));
  m.to_k.backward(m.input, floats(m.dk), floats(m.dx_part), dparams + weight_offset(c, 1), dparams + bias_offset(c, 1));
  add_inplace(dx, floats(m.dx_part), n);
  m.to_v.backward(m.input, floats(m.dv), floats(m.dx_part), dparams + weight_offset(c, 2), dparams + bias_offset(c, 2));
  add_inplace(dx, floats(m.dx_part), n);
}

}  // namespace ddpm::cuda
