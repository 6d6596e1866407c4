// Fully connected layer (oneDNN matmul), planned once per shape: y = x W^T + b with PyTorch's
// [out, in] weights, forward and backward in fp32 or bf16 mixed precision.
#pragma once

#include <cstdint>
#include <memory>

#include "ddpm/kernels/precision.h"

namespace ddpm::cpu {

// bf16 mode: x, W and dy are rounded to bf16 operands; y, dx and dW are fp32 (fp32 accumulation);
// db is summed in fp32 from the fp32 dy; master weights stay fp32 in the caller's buffer.
class Linear {
 public:
  Linear(int64_t rows, int64_t in_features, int64_t out_features, Precision precision);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;
  Linear(const Linear&) = delete;
  Linear& operator=(const Linear&) = delete;

  int64_t rows() const;
  int64_t in_features() const;
  int64_t out_features() const;
  Precision precision() const;

  // Copies (fp32) or rounds (bf16) the [out, in] row-major weights into the op's own buffer. Call
  // once after every change of the weights, before forward or backward.
  void set_weights(const float* weight);

  // y [rows, out] = x [rows, in] W^T + bias; bias may be null (no bias).
  void forward(const float* x, const float* bias, float* y);

  // Overwrites dx [rows, in] (skipped when null), dweight [out, in] and dbias [out] (skipped when
  // null) with the gradients of sum(dy * y) for y = forward(x, ...).
  void backward(const float* x, const float* dy, float* dx, float* dweight, float* dbias);

  double forward_flops() const;  // 2 * rows * in * out

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm::cpu
