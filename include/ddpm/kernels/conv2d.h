// 2-D convolution (oneDNN), planned once per shape: NHWC activations, PyTorch [O,I,k,k] weights,
// forward and backward in fp32 or bf16 mixed precision.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ddpm/kernels/precision.h"
#include "ddpm/tensor.h"

namespace ddpm::cpu {

// Output size = (H + pad_before + pad_after - kernel) / stride + 1 (the same for W). diffusers'
// Downsample2D pads (0, 1) then convolves 3x3 stride 2 without padding: pad_before 0, pad_after 1.
struct Conv2dShape {
  int64_t batch = 1, height = 1, width = 1, in_channels = 1, out_channels = 1;
  int kernel = 3;
  int stride = 1;
  int pad_before = 1;
  int pad_after = 1;

  int64_t out_height() const { return (height + pad_before + pad_after - kernel) / stride + 1; }
  int64_t out_width() const { return (width + pad_before + pad_after - kernel) / stride + 1; }
  Shape input_shape() const { return {batch, height, width, in_channels}; }               // NHWC
  Shape output_shape() const { return {batch, out_height(), out_width(), out_channels}; }  // NHWC
  Shape weight_shape() const { return {out_channels, in_channels, kernel, kernel}; }       // OIHW
  double forward_flops() const {  // 2*N*Ho*Wo*Cout*Cin*k*k
    return 2.0 * static_cast<double>(batch) * static_cast<double>(out_height()) * static_cast<double>(out_width()) *
           static_cast<double>(out_channels) * static_cast<double>(in_channels) * kernel * kernel;
  }
  std::string str() const;  // "[N=3,H=5,W=7,C=3->4,k3s2p0,1]"
};

// One convolution layer's primitives and workspaces. Construction does every allocation; forward,
// backward and set_weights only run planned primitives on the caller's buffers.
//
// bf16 mode: the input, the weights and the output gradient are rounded to bf16 operands; the
// output, the input gradient, and the weight and bias gradients are fp32 (fp32 accumulation);
// master weights stay fp32 in the caller's buffer.
class Conv2d {
 public:
  // with_backward = false (inference): no backward primitives and no backward weight copies
  // (three weight-sized buffers fewer); backward() then throws std::logic_error.
  Conv2d(const Conv2dShape& shape, Precision precision, bool with_backward = true);
  ~Conv2d();
  Conv2d(Conv2d&&) noexcept;
  Conv2d& operator=(Conv2d&&) noexcept;
  Conv2d(const Conv2d&) = delete;
  Conv2d& operator=(const Conv2d&) = delete;

  const Conv2dShape& shape() const;
  Precision precision() const;
  Shape input_shape() const;   // [N,H,W,Cin]
  Shape output_shape() const;  // [N,Ho,Wo,Cout]
  Shape weight_shape() const;  // [Cout,Cin,k,k]

  // Reorders PyTorch-layout weights into the primitives' layout. Call once after every change of
  // the weights (e.g. after each optimizer step), before forward or backward.
  void set_weights(const float* weight_oihw);

  // y = conv(x, weight) + bias; bias may be null (no bias).
  void forward(const float* x_nhwc, const float* bias, float* y_nhwc);

  // Overwrites dx (skipped when null), dweight and dbias (skipped when null) with the gradients of
  // sum(dy * y) for y = forward(x, ...). Uses the weights of the last set_weights.
  void backward(const float* x_nhwc, const float* dy_nhwc, float* dx_nhwc, float* dweight_oihw,
                float* dbias);

  double forward_flops() const;  // 2*N*Ho*Wo*Cout*Cin*k*k

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm::cpu
