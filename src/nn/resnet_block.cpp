// ResnetBlock2D (diffusers resnet.py, time_embedding_norm "default"): forward and backward.
#include "nn/blocks.h"


namespace ddpm::nn {

ResnetBlock::ResnetBlock(Planner& pl, const std::string& prefix, int64_t batch, int64_t height, int64_t width,
                         int64_t in_ch, int64_t out_ch, int64_t temb_ch, int64_t groups, float eps,
                         Precision precision)
    : device_(pl.device()), batch_(batch), pixels_(height * width), in_(in_ch), out_(out_ch), temb_(temb_ch), has_shortcut_(in_ch != out_ch) {
  // diffusers' registration order: norm1, conv1, time_emb_proj, norm2, (dropout), conv2, conv_shortcut
  norm1_ = Norm(pl, prefix + ".norm1", batch, pixels_, in_ch, groups, eps);
  conv1_ = Conv(pl, prefix + ".conv1", {batch, height, width, in_ch, out_ch, 3, 1, 1, 1}, precision);
  temb_proj_ = Lin(pl, prefix + ".time_emb_proj", batch, temb_ch, out_ch, precision);
  norm2_ = Norm(pl, prefix + ".norm2", batch, pixels_, out_ch, groups, eps);
  conv2_ = Conv(pl, prefix + ".conv2", {batch, height, width, out_ch, out_ch, 3, 1, 1, 1}, precision);
  if (has_shortcut_)
    shortcut_ = Conv(pl, prefix + ".conv_shortcut", {batch, height, width, in_ch, out_ch, 1, 1, 0, 0}, precision);
  norm1_.reserve_stats(pl);
  norm2_.reserve_stats(pl);
  pl.next_block();
  pl.shared(a1_, in_numel());
  pl.shared(c1_, out_numel());
  pl.shared(a2_, out_numel());
  pl.shared(tproj_, batch * out_ch);
  y_.numel = out_numel();  // placed by the U-Net (Planner::place_output)
}

void ResnetBlock::set_weights(const float* params) {
  conv1_.set_weights(params);
  conv2_.set_weights(params);
  temb_proj_.set_weights(params);
  if (has_shortcut_) shortcut_.set_weights(params);
}

double ResnetBlock::flops() const {
  return conv1_.op->forward_flops() + conv2_.op->forward_flops() + temb_proj_.op->forward_flops() +
         (has_shortcut_ ? shortcut_.op->forward_flops() : 0.0);
}

void ResnetBlock::forward(const float* params, const float* x, const float* silu_temb, float dropout, uint64_t seed,
                          int64_t first_image, Scratch& s) {
  dropout_ = dropout;
  seed_ = seed;
  first_element_ = first_image * pixels_ * out_;
  const float* w = params;
  dev::group_norm_forward(device_, a1_.p, norm1_.mean.p, norm1_.rstd.p, x, w + norm1_.weight, w + norm1_.bias, norm1_.shape,
                          true, s.gn.p, s.gn_floats);
  conv1_.op->forward(a1_.p, w + conv1_.bias, c1_.p);
  temb_proj_.op->forward(silu_temb, w + temb_proj_.bias, tproj_.p);
  dev::add_channel_bias_forward(device_, c1_.p, tproj_.p, batch_, pixels_, out_);
  dev::group_norm_forward(device_, a2_.p, norm2_.mean.p, norm2_.rstd.p, c1_.p, w + norm2_.weight, w + norm2_.bias,
                          norm2_.shape, true, s.gn.p, s.gn_floats);
  if (dropout > 0) dev::dropout_forward(device_, a2_.p, a2_.p, out_numel(), dropout, seed, first_element_);
  conv2_.op->forward(a2_.p, w + conv2_.bias, y_.p);
  if (has_shortcut_) {
    shortcut_.op->forward(x, w + shortcut_.bias, s.a.p);
    dev::add_inplace(device_, y_.p, s.a.p, out_numel());
  } else {
    dev::add_inplace(device_, y_.p, x, out_numel());
  }
}

void ResnetBlock::backward(const float* params, float* grads, const float* x, const float* dy, float* dx,
                           const float* silu_temb, float* d_silu_temb, Scratch& s) {
  const float* w = params;
  float* g = grads;
  float* gh = s.a.p;  // d(conv2 input), then d(conv1 output) in place
  conv2_.op->backward(a2_.p, dy, gh, g + conv2_.weight, g + conv2_.bias);
  if (dropout_ > 0) dev::dropout_backward(device_, gh, gh, out_numel(), dropout_, seed_, first_element_);
  dev::group_norm_backward(device_, gh, g + norm2_.weight, g + norm2_.bias, gh, c1_.p, norm2_.mean.p, norm2_.rstd.p,
                           w + norm2_.weight, w + norm2_.bias, norm2_.shape, true, s.gn.p, s.gn_floats);
  dev::add_channel_bias_backward(device_, tproj_.p, gh, batch_, pixels_, out_);  // tproj_ now holds its gradient
  temb_proj_.op->backward(silu_temb, tproj_.p, s.temb.p, g + temb_proj_.weight, g + temb_proj_.bias);
  dev::add_inplace(device_, d_silu_temb, s.temb.p, batch_ * temb_);
  float* ga1 = s.b.p;
  conv1_.op->backward(a1_.p, gh, ga1, g + conv1_.weight, g + conv1_.bias);
  dev::group_norm_backward(device_, dx, g + norm1_.weight, g + norm1_.bias, ga1, x, norm1_.mean.p, norm1_.rstd.p,
                           w + norm1_.weight, w + norm1_.bias, norm1_.shape, true, s.gn.p, s.gn_floats);
  if (has_shortcut_) {
    shortcut_.op->backward(x, dy, s.a.p, g + shortcut_.weight, g + shortcut_.bias);
    dev::add_inplace(device_, dx, s.a.p, in_numel());
  } else {
    dev::add_inplace(device_, dx, dy, in_numel());
  }
}

}  // namespace ddpm::nn
