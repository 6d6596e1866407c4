// Single-head self-attention on the GPU: cpu::Attention's interface and meaning (diffusers'
// Attention with one head, parameters flat as to_q.weight, to_q.bias, ..., to_out.0.bias), over
// device pointers; the projections through cuda::Linear, the two products through
// cuda::BatchedMatmul, the softmax through cuda::softmax_forward.
#pragma once

#include <cstdint>
#include <memory>

#include "ddpm/kernels/precision.h"

namespace ddpm::cuda {

class Attention {
 public:
  Attention(int64_t batch, int64_t positions, int64_t channels, Precision precision, bool training = true);
  ~Attention();
  Attention(Attention&&) noexcept;
  Attention& operator=(Attention&&) noexcept;
  Attention(const Attention&) = delete;
  Attention& operator=(const Attention&) = delete;

  static int64_t parameter_count(int64_t channels) { return 4 * (channels * channels + channels); }
  double forward_flops() const;
  void set_weights(const float* params);  // device pointer; once after each optimizer step
  void forward(const float* x, const float* residual, float* y);
  void backward(const float* dy, float* dx, float* dparams);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm::cuda
