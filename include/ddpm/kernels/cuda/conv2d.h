// 2-D convolution on the GPU (cuDNN 9), planned once per shape: the interface and meaning of
// cpu::Conv2d (NHWC fp32 activations, PyTorch [O,I,k,k] fp32 weights), over device pointers.
#pragma once

#include <memory>

#include "ddpm/kernels/conv2d.h"
#include "ddpm/kernels/precision.h"
#include "ddpm/tensor.h"

namespace ddpm::cuda {

// fp32 mode: fp32 operands and math (TF32 only when cuda::allow_tf32() was set before planning).
// bf16 mode: x, the weights and dy are rounded to bf16 operands (planned copies), the products run
// on bf16 tensor cores with fp32 accumulation, and y, dx, dweight, dbias come back as fp32.
// Construction picks cuDNN's algorithms (the fastest that needs no more workspace than planned)
// and allocates every buffer; forward/backward only queue work.
class Conv2d {
 public:
  Conv2d(const cpu::Conv2dShape& shape, Precision precision, bool with_backward = true);
  ~Conv2d();
  Conv2d(Conv2d&&) noexcept;
  Conv2d& operator=(Conv2d&&) noexcept;
  Conv2d(const Conv2d&) = delete;
  Conv2d& operator=(const Conv2d&) = delete;

  const cpu::Conv2dShape& shape() const;
  Precision precision() const;
  Shape input_shape() const;   // [N,H,W,Cin]
  Shape output_shape() const;  // [N,Ho,Wo,Cout]
  Shape weight_shape() const;  // [Cout,Cin,k,k]

  void set_weights(const float* weight_oihw);  // device pointer; after every change of the weights
  void forward(const float* x_nhwc, const float* bias, float* y_nhwc);
  void backward(const float* x_nhwc, const float* dy_nhwc, float* dx_nhwc, float* dweight_oihw, float* dbias);

  double forward_flops() const;
  std::string algorithms() const;  // cuDNN's chosen algorithms, e.g. "fwd 1, bwd-data 1, bwd-filter 0"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm::cuda
