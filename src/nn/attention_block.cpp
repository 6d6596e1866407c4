// diffusers' Attention as UNet2DModel builds it (one head, group norm, residual): y = x + Attn(GN(x)).
// Its state-dict order (group_norm, to_q, to_k, to_v, to_out.0; weight before bias) puts the eight
// projection tensors contiguously in the order cpu::Attention takes them, so the op reads the flat
// buffer directly and writes its gradients straight into grads().
#include "nn/blocks.h"

#include "ddpm/kernels/add.h"

namespace ddpm::nn {

AttentionBlock::AttentionBlock(Planner& pl, const std::string& prefix, int64_t batch, int64_t pixels,
                               int64_t channels, int64_t groups, float eps, Precision precision, bool training)
    : numel_(batch * pixels * channels) {
  norm_ = Norm(pl, prefix + ".group_norm", batch, pixels, channels, groups, eps);
  attn_params_ = pl.param(prefix + ".to_q.weight", {channels, channels});
  pl.param(prefix + ".to_q.bias", {channels});
  pl.param(prefix + ".to_k.weight", {channels, channels});
  pl.param(prefix + ".to_k.bias", {channels});
  pl.param(prefix + ".to_v.weight", {channels, channels});
  pl.param(prefix + ".to_v.bias", {channels});
  pl.param(prefix + ".to_out.0.weight", {channels, channels});
  pl.param(prefix + ".to_out.0.bias", {channels});
  op_ = std::make_unique<cpu::Attention>(batch, pixels, channels, precision, training);
  norm_.reserve_stats(pl);
  pl.next_block();
  pl.shared(n_, numel_);
  if (!training) pl.shared(workspace_, cpu::Attention::inference_workspace_floats(batch, pixels, channels));
  y_.numel = numel_;  // placed by the U-Net (Planner::place_output)
}

void AttentionBlock::set_weights(const float* params) { op_->set_weights(params + attn_params_); }

void AttentionBlock::forward(const float* params, const float* x, Scratch& s) {
  cpu::group_norm_forward(n_.p, norm_.mean.p, norm_.rstd.p, x, params + norm_.weight, params + norm_.bias,
                          norm_.shape, false, s.gn.p, s.gn_floats);
  if (workspace_.p) op_->set_inference_workspace(workspace_.p);
  op_->forward(n_.p, x, y_.p);
}

void AttentionBlock::backward(const float* params, float* grads, const float* x, const float* dy, float* dx,
                              Scratch& s) {
  float* gn = s.a.p;
  op_->backward(dy, gn, grads + attn_params_);
  cpu::group_norm_backward(dx, grads + norm_.weight, grads + norm_.bias, gn, x, norm_.mean.p, norm_.rstd.p,
                           params + norm_.weight, params + norm_.bias, norm_.shape, false, s.gn.p, s.gn_floats);
  cpu::add_inplace(dx, dy, numel_);  // the residual
}

}  // namespace ddpm::nn
