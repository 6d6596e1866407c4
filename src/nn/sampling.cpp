// Downsample2D (3x3 stride-2 conv; diffusers pads (0,1) when downsample_padding is 0, as TF's
// 'SAME') and Upsample2D (nearest x2, then 3x3 conv): forward and backward.
#include "nn/blocks.h"

namespace ddpm::nn {

namespace {
cpu::Conv2dShape down_shape(int64_t batch, int64_t height, int64_t width, int64_t channels, int64_t padding) {
  if (padding == 0) return {batch, height, width, channels, channels, 3, 2, 0, 1};
  return {batch, height, width, channels, channels, 3, 2, 1, 1};
}
}  // namespace

Downsample::Downsample(Planner& pl, const std::string& prefix, int64_t batch, int64_t height, int64_t width,
                       int64_t channels, int64_t padding, Precision precision)
    : conv_(pl, prefix + ".conv", down_shape(batch, height, width, channels, padding), precision) {
  y_.numel = conv_.op->output_shape().numel();  // placed by the U-Net
}

void Downsample::forward(const float* params, const float* x) { conv_.op->forward(x, params + conv_.bias, y_.p); }

void Downsample::backward(float* grads, const float* x, const float* dy, float* dx) {
  conv_.op->backward(x, dy, dx, grads + conv_.weight, grads + conv_.bias);
}

Upsample::Upsample(Planner& pl, const std::string& prefix, int64_t batch, int64_t height, int64_t width,
                   int64_t channels, Precision precision)
    : device_(pl.device()),
      batch_(batch),
      height_(height),
      width_(width),
      channels_(channels),
      conv_(pl, prefix + ".conv", {batch, 2 * height, 2 * width, channels, channels, 3, 1, 1, 1}, precision) {
  pl.next_block();
  pl.shared(up_, batch * 4 * height * width * channels);
  y_.numel = batch * 4 * height * width * channels;  // placed by the U-Net
}

void Upsample::forward(const float* params, const float* x) {
  dev::upsample_nearest2x_forward(device_, up_.p, x, batch_, height_, width_, channels_);
  conv_.op->forward(up_.p, params + conv_.bias, y_.p);
}

void Upsample::backward(float* grads, const float* dy, float* dx, Scratch& s) {
  conv_.op->backward(up_.p, dy, s.a.p, grads + conv_.weight, grads + conv_.bias);
  dev::upsample_nearest2x_backward(device_, dx, s.a.p, batch_, height_, width_, channels_);
}

}  // namespace ddpm::nn
