// The U-Net's building blocks (ResnetBlock2D, Attention, Downsample2D, Upsample2D,
// TimestepEmbedding), each with forward and backward over views into planned memory. Internal to
// src/nn: UNet2D (unet.cpp) plans them and wires the skips.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ddpm/kernels/conv2d.h"
#include "ddpm/kernels/group_norm.h"
#include "ddpm/memory.h"
#include "ddpm/nn/unet.h"
#include "nn/device_ops.h"

namespace ddpm::nn {

// A planned float buffer: reserved in the arena at construction, resolved to a pointer after the
// arena is allocated. Blocks are heap-held (unique_ptr), so these addresses stay put.
struct Buf {
  Arena::Slot slot = 0;
  int64_t numel = 0;
  float* p = nullptr;
};

// What every block shares while it is planned: the parameter table and the arena.
//
// Buffers come in two lifetimes. buffer(): kept for the model's life (block outputs, skips,
// everything a training backward reads). shared(): needed only while one block runs its forward.
// A training U-Net keeps those too (its backward reads them); an inference U-Net overlays them, so
// its activation memory is the kept outputs plus the largest single block, not the sum of all.
enum class Pool {
  block_internal,  // a block's intermediates: distinct within a block, overlaid across blocks
  layer_input,     // an up layer's cat([hidden, skip]): one at a time, overlaid with the next
  chain_even,      // block outputs read only by the next block (mid and up paths): each of the
  chain_odd,       // two holds one at a time, and consecutive outputs alternate between them
};
inline constexpr size_t kPools = 4;

class Planner {
 public:
  // overlay_shared = true for inference (no backward): shared() buffers are overlaid. device: where
  // the arena and every op live (blocks dispatch their ops through nn/device_ops.h).
  Planner(std::vector<ParamInfo>& table, Arena& arena, bool overlay_shared = false, Device device = Device::cpu)
      : table_(table), arena_(arena), overlay_(overlay_shared), device_(device) {}

  int64_t param(const std::string& name, Shape shape);  // appends to the table; returns the offset
  void buffer(Buf& b, int64_t numel);                   // reserves; pointer set by allocate()
  void shared(Buf& b, int64_t numel, Pool pool = Pool::block_internal);
  void next_block();  // the block_internal buffers reserved so far may be overlaid from now on
  void allocate();    // allocates the arena and resolves every buffer's pointer
  bool training() const { return !overlay_; }  // false: inference, ops need no backward
  Device device() const { return device_; }
  int64_t parameter_count() const { return total_; }
  int64_t largest_buffer() const { return largest_; }
  size_t group_norm_workspace = 0;  // the largest any planned group norm needs, in floats

 private:
  struct Overlaid {
    Buf* buf;
    Pool pool;
    size_t offset;  // in floats, within the pool
  };
  std::vector<ParamInfo>& table_;
  Arena& arena_;
  bool overlay_;
  Device device_;
  std::vector<Buf*> bufs_;
  std::vector<Overlaid> overlaid_;
  size_t pool_used_[kPools] = {}, pool_size_[kPools] = {};  // floats, per Pool
  int64_t total_ = 0;
  int64_t largest_ = 0;
};

// Shared scratch: two activation-sized buffers for a block's internal gradients, the group-norm
// workspace, and one [batch, temb] row block. Sized to the largest use by the UNet.
struct Scratch {
  Buf a, b, gn, temb;
  size_t gn_floats = 0;
};

// A group norm's parameters (offsets) and saved statistics.
struct Norm {
  int64_t weight = 0, bias = 0;
  cpu::GroupNormShape shape{};
  Buf mean, rstd;
  Norm() = default;
  // Registers the two parameters; reserve_stats() must then be called on the Norm's final home
  // (the planner keeps the buffers' addresses).
  Norm(Planner& pl, const std::string& prefix, int64_t batch, int64_t pixels, int64_t channels, int64_t groups,
       float eps);
  void reserve_stats(Planner& pl);
};

// A convolution with its two parameters.
struct Conv {
  std::unique_ptr<dev::ConvOp> op;
  int64_t weight = 0, bias = 0;
  Conv() = default;
  // With backward primitives only when pl.training().
  Conv(Planner& pl, const std::string& prefix, const cpu::Conv2dShape& s, Precision precision);
  void set_weights(const float* params) const { op->set_weights(params + weight); }
};

struct Lin {
  std::unique_ptr<dev::LinearOp> op;
  int64_t weight = 0, bias = 0;
  Lin() = default;
  Lin(Planner& pl, const std::string& prefix, int64_t rows, int64_t in, int64_t out, Precision precision);
  void set_weights(const float* params) const { op->set_weights(params + weight); }
};

// ResnetBlock2D (time_embedding_norm "default", output scale 1):
//   h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb)); h = conv2(dropout(SiLU(norm2(h))));
//   y = (conv_shortcut(x) if in != out else x) + h.
class ResnetBlock {
 public:
  ResnetBlock(Planner& pl, const std::string& prefix, int64_t batch, int64_t height, int64_t width, int64_t in_ch,
              int64_t out_ch, int64_t temb_ch, int64_t groups, float eps, Precision precision);
  void set_weights(const float* params);
  // silu_temb: SiLU(temb) [batch, temb_ch], shared by all blocks. Output in out(). first_image:
  // this batch is images [first_image, ...) of a larger one (data-parallel), whose dropout mask
  // it takes.
  void forward(const float* params, const float* x, const float* silu_temb, float dropout, uint64_t seed,
               int64_t first_image, Scratch& s);
  // dy -> dx (overwritten); the gradient w.r.t. silu_temb is ADDED to d_silu_temb.
  void backward(const float* params, float* grads, const float* x, const float* dy, float* dx, const float* silu_temb,
                float* d_silu_temb, Scratch& s);
  float* out() const { return y_.p; }
  Buf& out_buf() { return y_; }  // sized by the constructor, placed by the U-Net
  int64_t in_numel() const { return batch_ * pixels_ * in_; }
  int64_t out_numel() const { return batch_ * pixels_ * out_; }
  double flops() const;

 private:
  Device device_;
  int64_t batch_, pixels_, in_, out_, temb_;
  Norm norm1_, norm2_;
  Conv conv1_, conv2_, shortcut_;
  Lin temb_proj_;
  bool has_shortcut_;
  float dropout_ = 0;
  uint64_t seed_ = 0;
  int64_t first_element_ = 0;  // of the dropout mask
  Buf a1_, c1_, a2_, tproj_, y_;  // SiLU(norm1(x)), conv1 + temb, dropout(SiLU(norm2)), proj, out
};

// Attention with one head and its group norm (no SiLU): y = x + Attn(GN(x)).
class AttentionBlock {
 public:
  AttentionBlock(Planner& pl, const std::string& prefix, int64_t batch, int64_t pixels, int64_t channels,
                 int64_t groups, float eps, Precision precision, bool training);
  void set_weights(const float* params);
  void forward(const float* params, const float* x, Scratch& s);
  void backward(const float* params, float* grads, const float* x, const float* dy, float* dx, Scratch& s);
  float* out() const { return y_.p; }
  Buf& out_buf() { return y_; }  // sized by the constructor, placed by the U-Net
  double flops() const { return op_->forward_flops(); }
  size_t owned_bytes() const { return op_->owned_bytes(); }  // outside the planner's arena

 private:
  Device device_;
  int64_t numel_;
  Norm norm_;
  int64_t attn_params_;  // to_q.weight ... to_out.0.bias, contiguous, as the attention op wants
  std::unique_ptr<dev::AttentionOp> op_;
  Buf n_, y_, workspace_;  // workspace_: inference on the CPU only (q, k, v, scores of cpu::Attention)
};

// Downsample2D: 3x3 stride-2 convolution, padding (0,1) (downsample_padding 0) or 1.
class Downsample {
 public:
  Downsample(Planner& pl, const std::string& prefix, int64_t batch, int64_t height, int64_t width, int64_t channels,
             int64_t padding, Precision precision);
  void set_weights(const float* params) { conv_.set_weights(params); }
  void forward(const float* params, const float* x);
  void backward(float* grads, const float* x, const float* dy, float* dx);
  float* out() const { return y_.p; }
  Buf& out_buf() { return y_; }  // sized by the constructor, placed by the U-Net
  double flops() const { return conv_.op->forward_flops(); }

 private:
  Conv conv_;
  Buf y_;
};

// Upsample2D: nearest x2, then 3x3 convolution.
class Upsample {
 public:
  Upsample(Planner& pl, const std::string& prefix, int64_t batch, int64_t height, int64_t width, int64_t channels,
           Precision precision);
  void set_weights(const float* params) { conv_.set_weights(params); }
  void forward(const float* params, const float* x);
  void backward(float* grads, const float* dy, float* dx, Scratch& s);
  float* out() const { return y_.p; }
  Buf& out_buf() { return y_; }  // sized by the constructor, placed by the U-Net
  double flops() const { return conv_.op->forward_flops(); }

 private:
  Device device_;
  int64_t batch_, height_, width_, channels_;
  Conv conv_;
  Buf up_, y_;
};

// Timesteps + TimestepEmbedding: sinusoid(dim) -> linear_1 -> SiLU -> linear_2, plus, for a
// class-conditional U-Net (num_classes > 0), class_embedding.weight[label] (diffusers'
// num_class_embeds: an nn.Embedding added to the time embedding); also keeps SiLU(temb), the input
// of every resnet's time_emb_proj.
class TimeEmbedding {
 public:
  TimeEmbedding(Planner& pl, int64_t batch, int64_t dim, int64_t temb, bool flip_sin_to_cos, float freq_shift,
                int64_t num_classes, Precision precision);
  void set_weights(const float* params);
  // labels: [batch] in [0, num_classes) when num_classes > 0 (checked by the U-Net), else ignored.
  void forward(const float* params, const float* timesteps, const int32_t* labels);
  // d_silu_temb: the summed gradient from all resnets.
  void backward(float* grads, const float* d_silu_temb, Scratch& s);
  const float* silu_temb() const { return st_.p; }
  float* d_silu_temb() const { return dst_.p; }
  double flops() const { return linear_1_.op->forward_flops() + linear_2_.op->forward_flops(); }

 private:
  Device device_;
  int64_t batch_, dim_, temb_;
  bool flip_;
  float shift_;
  Lin linear_1_, linear_2_;
  int64_t num_classes_ = 0, class_table_ = 0;  // class_embedding.weight [num_classes, temb]
  std::vector<int32_t> labels_;                // of the last forward, for the backward
  Buf emb_, e1_, s1_, t_, st_, dst_, dt_;
};

}  // namespace ddpm::nn
