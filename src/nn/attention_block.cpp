// diffusers' Attention as UNet2DModel builds it (one head, group norm, residual): y = x + Attn(GN(x)).
// Its state-dict order (group_norm, to_q, to_k, to_v, to_out.0; weight before bias) puts the eight
// projection tensors contiguously in the order the attention op takes them, so the op reads the flat
// buffer directly and writes its gradients straight into grads().
#include "nn/blocks.h"


namespace ddpm::nn {

AttentionBlock::AttentionBlock(Planner& pl, const std::string& prefix, int64_t batch, int64_t pixels,
                               int64_t channels, int64_t groups, float eps, Precision precision, bool training)
    : device_(pl.device()), numel_(batch * pixels * channels) {
  norm_ = Norm(pl, prefix + ".group_norm", batch, pixels, channels, groups, eps);
  attn_params_ = pl.param(prefix + ".to_q.weight", {channels, channels});
  pl.param(prefix + ".to_q.bias", {channels});
  pl.param(prefix + ".to_k.weight", {channels, channels});
  pl.param(prefix + ".to_k.bias", {channels});
  pl.param(prefix + ".to_v.weight", {channels, channels});
  pl.param(prefix + ".to_v.bias", {channels});
  pl.param(prefix + ".to_out.0.weight", {channels, channels});
  pl.param(prefix + ".to_out.0.bias", {channels});
  op_ = dev::AttentionOp::make(device_, batch, pixels, channels, precision, training);
  norm_.reserve_stats(pl);
  pl.next_block();
  pl.shared(n_, numel_);
  if (const int64_t floats = dev::AttentionOp::inference_workspace_floats(device_, batch, pixels, channels);
      !training && floats > 0)
    pl.shared(workspace_, floats);
  y_.numel = numel_;  // placed by the U-Net (Planner::place_output)
}

void AttentionBlock::set_weights(const float* params) { op_->set_weights(params + attn_params_); }

void AttentionBlock::forward(const float* params, const float* x, Scratch& s) {
  dev::group_norm_forward(device_, n_.p, norm_.mean.p, norm_.rstd.p, x, params + norm_.weight, params + norm_.bias,
                          norm_.shape, false, s.gn.p, s.gn_floats);
  if (workspace_.p) op_->set_inference_workspace(workspace_.p);
  op_->forward(n_.p, x, y_.p);
}

void AttentionBlock::backward(const float* params, float* grads, const float* x, const float* dy, float* dx,
                              Scratch& s) {
  float* gn = s.a.p;
  op_->backward(dy, gn, grads + attn_params_);
  dev::group_norm_backward(device_, dx, grads + norm_.weight, grads + norm_.bias, gn, x, norm_.mean.p, norm_.rstd.p,
                           params + norm_.weight, params + norm_.bias, norm_.shape, false, s.gn.p, s.gn_floats);
  dev::add_inplace(device_, dx, dy, numel_);  // the residual
}

}  // namespace ddpm::nn
