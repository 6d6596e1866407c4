// diffusers' Timesteps + TimestepEmbedding: sinusoid -> linear_1 -> SiLU -> linear_2, plus the
// class embedding of a class-conditional U-Net. The SiLU every ResnetBlock2D applies to temb
// before its time_emb_proj is computed once here.
#include <algorithm>

#include "nn/blocks.h"

namespace ddpm::nn {

TimeEmbedding::TimeEmbedding(Planner& pl, int64_t batch, int64_t dim, int64_t temb, bool flip_sin_to_cos,
                             float freq_shift, int64_t num_classes, Precision precision)
    : device_(pl.device()), batch_(batch), dim_(dim), temb_(temb), flip_(flip_sin_to_cos), shift_(freq_shift), num_classes_(num_classes) {
  linear_1_ = Lin(pl, "time_embedding.linear_1", batch, dim, temb, precision);
  linear_2_ = Lin(pl, "time_embedding.linear_2", batch, temb, temb, precision);
  if (num_classes > 0) {  // registered right after time_embedding, as diffusers does
    class_table_ = pl.param("class_embedding.weight", Shape{num_classes, temb});
    labels_.resize(static_cast<size_t>(batch));
  }
  pl.buffer(emb_, batch * dim);
  for (Buf* b : {&e1_, &s1_, &t_, &st_, &dst_, &dt_}) pl.buffer(*b, batch * temb);
}

void TimeEmbedding::set_weights(const float* params) {
  linear_1_.set_weights(params);
  linear_2_.set_weights(params);
}

void TimeEmbedding::forward(const float* params, const float* timesteps, const int32_t* labels) {
  dev::timestep_embedding_forward(device_, emb_.p, timesteps, batch_, dim_, flip_, shift_);
  linear_1_.op->forward(emb_.p, params + linear_1_.bias, e1_.p);
  dev::silu_forward(device_, s1_.p, e1_.p, batch_ * temb_);
  linear_2_.op->forward(s1_.p, params + linear_2_.bias, t_.p);
  if (num_classes_ > 0) {
    std::copy(labels, labels + batch_, labels_.begin());
    for (int64_t b = 0; b < batch_; ++b)
      dev::add_inplace(device_, t_.p + b * temb_, params + class_table_ + labels_[static_cast<size_t>(b)] * temb_, temb_);
  }
  dev::silu_forward(device_, st_.p, t_.p, batch_ * temb_);
}

void TimeEmbedding::backward(float* grads, const float* d_silu_temb, Scratch& s) {
  dev::silu_backward(device_, dt_.p, d_silu_temb, t_.p, batch_ * temb_);
  if (num_classes_ > 0) {  // each row's gradient is the sum over the batch items of that class
    dev::fill_zero(device_, grads + class_table_, num_classes_ * temb_);
    for (int64_t b = 0; b < batch_; ++b)
      dev::add_inplace(device_, grads + class_table_ + labels_[static_cast<size_t>(b)] * temb_, dt_.p + b * temb_, temb_);
  }
  linear_2_.op->backward(s1_.p, dt_.p, s.temb.p, grads + linear_2_.weight, grads + linear_2_.bias);
  dev::silu_backward(device_, s.temb.p, s.temb.p, e1_.p, batch_ * temb_);
  linear_1_.op->backward(emb_.p, s.temb.p, nullptr, grads + linear_1_.weight, grads + linear_1_.bias);
}

}  // namespace ddpm::nn
