// UNet2D: diffusers' UNet2DModel planned from a config, its skip wiring, and the whole-network
// forward and backward.
#include "ddpm/nn/unet.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "ddpm/bench/profiler.h"
#include "ddpm/kernels/cuda/runtime.h"
#include "nn/blocks.h"
#include "nn/device_ops.h"

namespace ddpm {

using nn::Buf;

namespace {

// One layer of a block: a resnet, its optional attention, and (up blocks) the concatenated input.
struct Layer {
  std::unique_ptr<nn::ResnetBlock> resnet;
  std::unique_ptr<nn::AttentionBlock> attn;
  int64_t height = 0, width = 0;
  int64_t hidden_channels = 0, skip_channels = 0;  // up layers: the two halves of cat([hidden, skip])
  int64_t skip = -1;      // up layers: the skip consumed; down layers: the skip produced
  Buf cat;                // up layers only
  const float* in = nullptr;  // recorded by forward(): the resnet's input
  float* out() const { return attn ? attn->out() : resnet->out(); }
};

struct Level {
  std::string profile_forward, profile_backward;  // "down_blocks.1 fwd", for `ddpm bench --profile`
  std::vector<std::unique_ptr<Layer>> layers;
  std::unique_ptr<nn::Downsample> down;
  std::unique_ptr<nn::Upsample> up;
  int64_t down_skip = -1;
  const float* down_in = nullptr;
};

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

struct UNet2D::Impl {
  UNet2DConfig cfg;
  int64_t batch;
  Precision precision;
  bool training;
  Device device;
  int64_t first_image = 0;  // set_shard()
  bool gradients_stay_on_device = false;
  std::vector<ParamInfo> table;
  Arena arena;
  nn::Planner pl;
  AlignedBuffer params, grads;              // host: what callers read and write
  cuda::DeviceBuffer device_params, device_grads;  // Device::cuda: what the ops read and write
  nn::Scratch scratch;

  nn::Conv conv_in;
  std::unique_ptr<nn::TimeEmbedding> time;
  std::vector<Level> down, up;
  std::vector<std::unique_ptr<Layer>> mid;  // resnets.0 + attentions.0, resnets.1
  nn::Norm norm_out;
  nn::Conv conv_out;

  Buf x, steps, e, h0, o, g0, g1;  // steps: the timesteps; e: eps on the way out, d_eps in (CUDA)
  std::vector<std::unique_ptr<Buf>> dskip;
  std::vector<int64_t> skip_channels;
  std::vector<const float*> skips;  // filled by forward()
  int64_t height = 0, width = 0, top_channels = 0;
  size_t activation_bytes = 0;

  Impl(const UNet2DConfig& c, int64_t b, Precision p, bool t, Device d);
  // The parameters and gradients the ops use: the host buffers on the CPU, their device copies on CUDA.
  const float* w() const { return device == Device::cuda ? device_params.as<float>() : params.as<float>(); }
  float* g() const { return device == Device::cuda ? device_grads.as<float>() : grads.as<float>(); }
  void add_skip(int64_t numel, int64_t channels) {
    dskip.push_back(std::make_unique<Buf>());
    if (training) pl.buffer(*dskip.back(), numel);  // the skip's gradient
    skip_channels.push_back(channels);
  }
  float* other(const float* g) const { return g == g0.p ? g1.p : g0.p; }
  void layer_forward(Layer& l, const float* in, const float* w, uint64_t seed);
  void check_labels(const int32_t* class_labels) const;
  void forward_from_inputs(const float* x, const float* timesteps, float* eps, uint64_t dropout_seed,
                           const int32_t* class_labels);
  const float* layer_backward(Layer& l, const float* dy);
};

UNet2D::Impl::Impl(const UNet2DConfig& c, int64_t b, Precision p, bool t, Device d)
    : cfg(c), batch(b), precision(p), training(t), device(d), pl(table, arena, /*overlay_shared=*/!t, d) {
  if (device == Device::cuda) cuda::require_device("a U-Net on --device cuda");
  cfg.validate();
  if (batch < 1) throw std::invalid_argument("UNet2D: batch must be positive, got " + std::to_string(batch));
  const int64_t L = cfg.levels();
  {
    const int64_t factor = int64_t{1} << (L - 1);
    if (cfg.sample_height % factor != 0 || cfg.sample_width % factor != 0)
      throw std::invalid_argument(
          "UNet2DModel config: sample_size " + std::to_string(cfg.sample_height) + "x" +
          std::to_string(cfg.sample_width) + " cannot pass " + std::to_string(L - 1) +
          " stride-2 downsamplings and come back to the same size: height and width must be divisible by " +
          std::to_string(factor) + " (2^(levels-1), levels = len(block_out_channels) = " + std::to_string(L) + ")");
  }
  const int64_t G = cfg.norm_num_groups;
  const float eps = cfg.norm_eps;
  const int64_t C0 = cfg.block_out_channels[0];
  const int64_t T = cfg.time_embedding_dim();
  const int64_t H = cfg.sample_height, W = cfg.sample_width;
  height = H;
  width = W;
  std::vector<int64_t> hs(static_cast<size_t>(L)), ws(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    hs[static_cast<size_t>(l)] = H >> l;
    ws[static_cast<size_t>(l)] = W >> l;
  }
  auto ch = [&](int64_t i) { return cfg.block_out_channels[static_cast<size_t>(i)]; };

  pl.buffer(x, batch * H * W * cfg.in_channels);
  pl.buffer(steps, batch);
  if (device == Device::cuda) pl.buffer(e, batch * H * W * cfg.out_channels);
  // Registration order (facts §5.4): conv_in, time_embedding, down_blocks, up_blocks, mid_block,
  // conv_norm_out, conv_out.
  conv_in = nn::Conv(pl, "conv_in", {batch, H, W, cfg.in_channels, C0, 3, 1, 1, 1}, precision);
  pl.buffer(h0, batch * H * W * C0);
  add_skip(batch * H * W * C0, C0);
  time = std::make_unique<nn::TimeEmbedding>(pl, batch, C0, T, cfg.flip_sin_to_cos, cfg.freq_shift, cfg.class_count(),
                                             precision);

  for (int64_t l = 0; l < L; ++l) {
    const std::string prefix = "down_blocks." + std::to_string(l);
    const int64_t h = hs[static_cast<size_t>(l)], w = ws[static_cast<size_t>(l)], out = ch(l);
    const int64_t in = l == 0 ? C0 : ch(l - 1);
    Level level;
    level.profile_forward = prefix + " fwd", level.profile_backward = prefix + " bwd";
    for (int64_t j = 0; j < cfg.layers_per_block; ++j) level.layers.push_back(std::make_unique<Layer>());
    if (cfg.level_has_attention(l))  // Attn* blocks register their attentions before their resnets
      for (int64_t j = 0; j < cfg.layers_per_block; ++j)
        level.layers[static_cast<size_t>(j)]->attn = std::make_unique<nn::AttentionBlock>(
            pl, prefix + ".attentions." + std::to_string(j), batch, h * w, out, G, eps, precision,
            training);
    for (int64_t j = 0; j < cfg.layers_per_block; ++j) {
      Layer& layer = *level.layers[static_cast<size_t>(j)];
      layer.resnet = std::make_unique<nn::ResnetBlock>(pl, prefix + ".resnets." + std::to_string(j), batch, h, w,
                                                      j == 0 ? in : out, out, T, G, eps, precision);
      layer.height = h;
      layer.width = w;
      layer.skip = static_cast<int64_t>(dskip.size());
      add_skip(batch * h * w * out, out);
    }
    if (l + 1 < L) {
      level.down = std::make_unique<nn::Downsample>(pl, prefix + ".downsamplers.0", batch, h, w, out,
                                                    cfg.downsample_padding, precision);
      level.down_skip = static_cast<int64_t>(dskip.size());
      add_skip(batch * (h / 2) * (w / 2) * out, out);
    }
    down.push_back(std::move(level));
  }

  // Up blocks: layers_per_block + 1 resnets on cat([hidden, skip]), popping the last skip.
  int64_t next_skip = static_cast<int64_t>(dskip.size()) - 1;
  for (int64_t i = 0; i < L; ++i) {
    const std::string prefix = "up_blocks." + std::to_string(i);
    const int64_t lev = L - 1 - i;
    const int64_t h = hs[static_cast<size_t>(lev)], w = ws[static_cast<size_t>(lev)];
    const int64_t prev_out = ch(L - 1 - std::max<int64_t>(i - 1, 0));
    const int64_t out = ch(L - 1 - i);
    const int64_t input = ch(L - 1 - std::min(i + 1, L - 1));
    const int64_t n = cfg.layers_per_block + 1;
    const bool attn = cfg.up_block_types[static_cast<size_t>(i)] == "AttnUpBlock2D";
    Level level;
    level.profile_forward = prefix + " fwd", level.profile_backward = prefix + " bwd";
    for (int64_t j = 0; j < n; ++j) level.layers.push_back(std::make_unique<Layer>());
    if (attn)
      for (int64_t j = 0; j < n; ++j)
        level.layers[static_cast<size_t>(j)]->attn = std::make_unique<nn::AttentionBlock>(
            pl, prefix + ".attentions." + std::to_string(j), batch, h * w, out, G, eps, precision,
            training);
    for (int64_t j = 0; j < n; ++j) {
      Layer& layer = *level.layers[static_cast<size_t>(j)];
      layer.hidden_channels = j == 0 ? prev_out : out;
      layer.skip_channels = j == n - 1 ? input : out;
      layer.skip = next_skip--;
      if (layer.skip < 0 || skip_channels[static_cast<size_t>(layer.skip)] != layer.skip_channels)
        throw std::logic_error("UNet2D: skip wiring mismatch at " + prefix);  // a planning bug, not a config error
      layer.height = h;
      layer.width = w;
      const int64_t cat_ch = layer.hidden_channels + layer.skip_channels;
      layer.resnet = std::make_unique<nn::ResnetBlock>(pl, prefix + ".resnets." + std::to_string(j), batch, h, w,
                                                      cat_ch, out, T, G, eps, precision);
      pl.shared(layer.cat, batch * h * w * cat_ch, nn::Pool::layer_input);
    }
    if (i + 1 < L)
      level.up = std::make_unique<nn::Upsample>(pl, prefix + ".upsamplers.0", batch, h, w, out, precision);
    up.push_back(std::move(level));
  }

  {
    const int64_t lev = L - 1, h = hs[static_cast<size_t>(lev)], w = ws[static_cast<size_t>(lev)], c_mid = ch(L - 1);
    mid.push_back(std::make_unique<Layer>());
    mid.push_back(std::make_unique<Layer>());
    mid[0]->attn = std::make_unique<nn::AttentionBlock>(pl, "mid_block.attentions.0", batch, h * w, c_mid, G, eps,
                                                        precision, training);
    for (int j = 0; j < 2; ++j) {
      mid[static_cast<size_t>(j)]->resnet = std::make_unique<nn::ResnetBlock>(
          pl, "mid_block.resnets." + std::to_string(j), batch, h, w, c_mid, c_mid, T, G, eps, precision);
      mid[static_cast<size_t>(j)]->height = h;
      mid[static_cast<size_t>(j)]->width = w;
    }
  }

  // Block outputs. The down path's are skips, kept to the end; in the mid and up paths each output
  // is read only by the next block, so an inference U-Net alternates them between two overlaid
  // pools, in execution order (mid, then up).
  const auto keep = [&](Buf& out) { pl.buffer(out, out.numel); };
  for (Level& level : down) {
    for (auto& l : level.layers) {
      keep(l->resnet->out_buf());
      if (l->attn) keep(l->attn->out_buf());
    }
    if (level.down) keep(level.down->out_buf());
  }
  bool odd = false;
  const auto chain = [&](Buf& out) {
    if (training) return keep(out);
    pl.shared(out, out.numel, odd ? nn::Pool::chain_odd : nn::Pool::chain_even);
    odd = !odd;
  };
  for (auto& l : mid) {
    chain(l->resnet->out_buf());
    if (l->attn) chain(l->attn->out_buf());
  }
  for (Level& level : up) {
    for (auto& l : level.layers) {
      chain(l->resnet->out_buf());
      if (l->attn) chain(l->attn->out_buf());
    }
    if (level.up) chain(level.up->out_buf());
  }

  norm_out = nn::Norm(pl, "conv_norm_out", batch, H * W, C0, G, eps);
  norm_out.reserve_stats(pl);
  conv_out = nn::Conv(pl, "conv_out", {batch, H, W, C0, cfg.out_channels, 3, 1, 1, 1}, precision);
  pl.next_block();
  pl.shared(o, batch * H * W * C0);

  // Backward-only buffers: two ping-pong gradients and a second scratch. The forward uses
  // scratch.a (a resnet's shortcut convolution).
  const int64_t largest = pl.largest_buffer();
  for (Buf* s : {&g0, &g1, &scratch.b})
    if (training) pl.buffer(*s, largest);
  pl.buffer(scratch.a, largest);
  scratch.gn_floats = pl.group_norm_workspace;
  pl.buffer(scratch.gn, static_cast<int64_t>(scratch.gn_floats));
  pl.buffer(scratch.temb, batch * T);
  pl.allocate();
  activation_bytes = arena.bytes();
  for (auto* levels : {&down, &up})
    for (Level& level : *levels)
      for (auto& l : level.layers)
        if (l->attn) activation_bytes += l->attn->owned_bytes();
  activation_bytes += mid[0]->attn->owned_bytes();
  skips.assign(dskip.size(), nullptr);
  const size_t param_bytes = static_cast<size_t>(pl.parameter_count()) * sizeof(float);
  params = AlignedBuffer(param_bytes);
  if (training) grads = AlignedBuffer(param_bytes);
  if (device == Device::cuda) {
    device_params = cuda::DeviceBuffer(param_bytes);
    if (training) device_grads = cuda::DeviceBuffer(param_bytes);
  }
}

void UNet2D::Impl::layer_forward(Layer& l, const float* in, const float* w, uint64_t seed) {
  l.in = in;
  l.resnet->forward(w, in, time->silu_temb(), training ? cfg.dropout : 0.0f, seed, first_image, scratch);
  if (l.attn) l.attn->forward(w, l.resnet->out(), scratch);
}

// Returns the gradient w.r.t. the layer's input, in g0 or g1 (whichever dy is not).
const float* UNet2D::Impl::layer_backward(Layer& l, const float* dy) {
  const float* w = this->w();
  float* g = this->g();
  if (l.attn) {
    float* dx = other(dy);
    l.attn->backward(w, g, l.resnet->out(), dy, dx, scratch);
    dy = dx;
  }
  float* dx = other(dy);
  l.resnet->backward(w, g, l.in, dy, dx, time->silu_temb(), time->d_silu_temb(), scratch);
  return dx;
}

UNet2D::UNet2D(const UNet2DConfig& config, int64_t batch, Precision precision, bool training, Device device)
    : impl_(std::make_unique<Impl>(config, batch, precision, training, device)) {}
UNet2D::~UNet2D() = default;

const UNet2DConfig& UNet2D::config() const { return impl_->cfg; }
int64_t UNet2D::batch() const { return impl_->batch; }
Precision UNet2D::precision() const { return impl_->precision; }
bool UNet2D::training() const { return impl_->training; }
Device UNet2D::device() const { return impl_->device; }
const std::vector<ParamInfo>& UNet2D::parameters() const { return impl_->table; }
int64_t UNet2D::parameter_count() const { return impl_->pl.parameter_count(); }
float* UNet2D::params() { return impl_->params.as<float>(); }
const float* UNet2D::params() const { return impl_->params.as<float>(); }
float* UNet2D::grads() { return impl_->grads.as<float>(); }
const float* UNet2D::grads() const { return impl_->grads.as<float>(); }

const ParamInfo& UNet2D::parameter(const std::string& name) const {
  for (const ParamInfo& p : impl_->table)
    if (p.name == name) return p;
  throw std::out_of_range("UNet2D: no parameter named '" + name + "'");
}

void UNet2D::set_weights() {
  Impl& m = *impl_;
  if (m.device == Device::cuda)
    cuda::upload(m.device_params.data(), m.params.data(), static_cast<size_t>(parameter_count()) * sizeof(float));
  set_weights_from_device();
}

float* UNet2D::device_params() { return impl_->device == Device::cuda ? impl_->device_params.as<float>() : nullptr; }
float* UNet2D::device_grads() { return impl_->device == Device::cuda ? impl_->device_grads.as<float>() : nullptr; }
void UNet2D::keep_gradients_on_device(bool keep) { impl_->gradients_stay_on_device = keep; }

void UNet2D::download_params() {
  if (impl_->device == Device::cuda)
    nn::dev::copy_out(Device::cuda, params(), impl_->device_params.as<float>(), parameter_count());
}

void UNet2D::set_weights_from_device() {
  Impl& m = *impl_;
  profile::Scope scope(profile::Kind::op, "weight reorder (set_weights)");
  const float* w = m.w();
  m.conv_in.set_weights(w);
  m.time->set_weights(w);
  for (auto* levels : {&m.down, &m.up})
    for (Level& level : *levels) {
      for (auto& l : level.layers) {
        l->resnet->set_weights(w);
        if (l->attn) l->attn->set_weights(w);
      }
      if (level.down) level.down->set_weights(w);
      if (level.up) level.up->set_weights(w);
    }
  for (auto& l : m.mid) {
    l->resnet->set_weights(w);
    if (l->attn) l->attn->set_weights(w);
  }
  m.conv_out.set_weights(w);
}

void UNet2D::set_shard(int64_t first_image) {
  if (first_image < 0) throw std::invalid_argument("UNet2D::set_shard: negative first image " + std::to_string(first_image));
  impl_->first_image = first_image;
}

void UNet2D::init_weights(uint64_t seed) {
  float* w = params();
  for (size_t i = 0; i < impl_->table.size(); ++i) {
    const ParamInfo& p = impl_->table[i];
    float* t = w + p.offset;
    const int64_t n = p.shape.numel();
    if (ends_with(p.name, ".bias")) {
      std::fill(t, t + n, 0.0f);
    } else if (p.shape.rank() == 1) {  // group-norm scale
      std::fill(t, t + n, 1.0f);
    } else {  // conv and linear weights, and class_embedding.weight as a linear layer's (not
              // PyTorch's N(0, 1)): it then starts at the scale of the time embedding it joins
      const int64_t area = p.shape.rank() == 4 ? p.shape[2] * p.shape[3] : 1;
      const double fan_avg = 0.5 * static_cast<double>((p.shape[0] + p.shape[1]) * area);
      const bool near_zero = ends_with(p.name, ".conv2.weight") || ends_with(p.name, ".to_out.0.weight") ||
                             p.name == "conv_out.weight";
      const double limit = std::sqrt(3.0 * (near_zero ? 1e-10 : 1.0) / fan_avg);
      uint64_t state = seed * 0x100000001B3ull + i;
      for (int64_t k = 0; k < n; ++k) {
        const double u = (static_cast<double>(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53;
        t[k] = static_cast<float>((2.0 * u - 1.0) * limit);
      }
    }
  }
  set_weights();
}

void UNet2D::forward(const float* x, const float* timesteps, float* eps, uint64_t dropout_seed,
                     const int32_t* class_labels) {
  Impl& m = *impl_;
  m.check_labels(class_labels);
  nn::dev::copy_in(m.device, m.x.p, x, m.x.numel);
  nn::dev::copy_in(m.device, m.steps.p, timesteps, m.batch);
  if (m.device == Device::cuda) {
    m.forward_from_inputs(m.x.p, m.steps.p, m.e.p, dropout_seed, class_labels);
    nn::dev::copy_out(m.device, eps, m.e.p, m.e.numel);
  } else {
    m.forward_from_inputs(m.x.p, m.steps.p, eps, dropout_seed, class_labels);
  }
}

void UNet2D::forward_device(const float* x, const float* timesteps, float* eps, uint64_t dropout_seed,
                            const int32_t* class_labels) {
  Impl& m = *impl_;
  if (m.device != Device::cuda)
    throw std::logic_error("UNet2D::forward_device: this U-Net runs on the CPU; call forward()");
  m.check_labels(class_labels);
  // Only a training U-Net keeps x (conv_in's backward reads it); the timesteps are read at once.
  if (m.training) {
    cuda::copy_on_device(m.x.p, x, static_cast<size_t>(m.x.numel) * sizeof(float));
    x = m.x.p;
  }
  m.forward_from_inputs(x, timesteps, eps, dropout_seed, class_labels);
}

void UNet2D::Impl::check_labels(const int32_t* class_labels) const {
  if (const int64_t classes = cfg.class_count(); classes > 0) {
    if (!class_labels)
      throw std::invalid_argument("UNet2D::forward: this U-Net is class-conditional (num_class_embeds " +
                                  std::to_string(classes) + "): give a class label per image");
    for (int64_t b = 0; b < batch; ++b)
      if (class_labels[b] < 0 || class_labels[b] >= classes)
        throw std::invalid_argument("UNet2D::forward: class label " + std::to_string(class_labels[b]) + " of image " +
                                    std::to_string(b) + " is outside [0, " + std::to_string(classes) + ")");
  }
}

// x, the timesteps and eps are on the U-Net's device.
void UNet2D::Impl::forward_from_inputs(const float* x_in, const float* timesteps, float* eps, uint64_t dropout_seed,
                                       const int32_t* class_labels) {
  Impl& m = *this;
  const float* w = m.w();
  const int64_t B = m.batch;
  using profile::Kind;
  {
    profile::Scope scope(Kind::block, "time_embedding + conv_in fwd");
    m.time->forward(w, timesteps, class_labels);
    m.conv_in.op->forward(x_in, w + m.conv_in.bias, m.h0.p);
  }
  m.skips[0] = m.h0.p;
  const float* cur = m.h0.p;
  uint64_t block = 0;
  auto seed = [&] { return dropout_seed * 1000 + block++; };
  for (Level& level : m.down) {
    profile::Scope scope(Kind::block, level.profile_forward.c_str());
    for (auto& l : level.layers) {
      m.layer_forward(*l, cur, w, seed());
      cur = l->out();
      m.skips[static_cast<size_t>(l->skip)] = cur;
    }
    if (level.down) {
      level.down_in = cur;
      level.down->forward(w, cur);
      cur = level.down->out();
      m.skips[static_cast<size_t>(level.down_skip)] = cur;
    }
  }
  {
    profile::Scope scope(Kind::block, "mid_block fwd");
    for (auto& l : m.mid) {
      m.layer_forward(*l, cur, w, seed());
      cur = l->out();
    }
  }
  for (Level& level : m.up) {
    profile::Scope scope(Kind::block, level.profile_forward.c_str());
    for (auto& l : level.layers) {
      nn::dev::concat_channels_forward(m.device, l->cat.p, cur, l->hidden_channels, m.skips[static_cast<size_t>(l->skip)],
                                   l->skip_channels, B * l->height * l->width);
      m.layer_forward(*l, l->cat.p, w, seed());
      cur = l->out();
    }
    if (level.up) {
      level.up->forward(w, cur);
      cur = level.up->out();
    }
  }
  profile::Scope scope(Kind::block, "norm_out + conv_out fwd");
  nn::dev::group_norm_forward(m.device, m.o.p, m.norm_out.mean.p, m.norm_out.rstd.p, cur, w + m.norm_out.weight,
                              w + m.norm_out.bias, m.norm_out.shape, true, m.scratch.gn.p, m.scratch.gn_floats);
  m.conv_out.op->forward(m.o.p, w + m.conv_out.bias, eps);
}

void UNet2D::backward(const float* d_eps) {
  Impl& m = *impl_;
  if (!m.training)
    throw std::logic_error("UNet2D::backward: this U-Net was planned for inference (training = false), which "
                           "overlays the activations a backward needs; construct it with training = true");
  const float* w = m.w();
  float* g = m.g();
  const int64_t B = m.batch;
  using profile::Kind;
  if (m.device == Device::cuda) {  // d_eps to the device, into the buffer eps left by
    nn::dev::copy_in(m.device, m.e.p, d_eps, m.e.numel);
    d_eps = m.e.p;
  }
  nn::dev::fill_zero(m.device, m.time->d_silu_temb(), B * m.cfg.time_embedding_dim());
  {
    profile::Scope scope(Kind::block, "norm_out + conv_out bwd");
    m.conv_out.op->backward(m.o.p, d_eps, m.g0.p, g + m.conv_out.weight, g + m.conv_out.bias);
    const float* top = m.up.back().layers.back()->out();
    nn::dev::group_norm_backward(m.device, m.g1.p, g + m.norm_out.weight, g + m.norm_out.bias, m.g0.p, top,
                                 m.norm_out.mean.p, m.norm_out.rstd.p, w + m.norm_out.weight, w + m.norm_out.bias,
                                 m.norm_out.shape, true, m.scratch.gn.p, m.scratch.gn_floats);
  }
  const float* dy = m.g1.p;
  for (auto level = m.up.rbegin(); level != m.up.rend(); ++level) {
    profile::Scope scope(Kind::block, level->profile_backward.c_str());
    if (level->up) {
      float* dx = m.other(dy);
      level->up->backward(g, dy, dx, m.scratch);
      dy = dx;
    }
    for (auto l = level->layers.rbegin(); l != level->layers.rend(); ++l) {
      const float* dcat = m.layer_backward(**l, dy);
      float* dh = m.other(dcat);
      nn::dev::concat_channels_backward(m.device, dh, m.dskip[static_cast<size_t>((*l)->skip)]->p, dcat, (*l)->hidden_channels,
                                    (*l)->skip_channels, B * (*l)->height * (*l)->width);
      dy = dh;
    }
  }
  {
    profile::Scope scope(Kind::block, "mid_block bwd");
    for (auto l = m.mid.rbegin(); l != m.mid.rend(); ++l) dy = m.layer_backward(**l, dy);
  }
  // Every down-path output is also a skip: its gradient is the downstream one plus the skip's.
  auto add_skip_grad = [&](int64_t k, const float* grad) {
    float* d = const_cast<float*>(grad);  // grad is g0 or g1, owned here
    const Buf& s = *m.dskip[static_cast<size_t>(k)];
    nn::dev::add_inplace(m.device, d, s.p, s.numel);
  };
  for (auto level = m.down.rbegin(); level != m.down.rend(); ++level) {
    profile::Scope scope(Kind::block, level->profile_backward.c_str());
    if (level->down) {
      add_skip_grad(level->down_skip, dy);
      float* dx = m.other(dy);
      level->down->backward(g, level->down_in, dy, dx);
      dy = dx;
    }
    for (auto l = level->layers.rbegin(); l != level->layers.rend(); ++l) {
      add_skip_grad((*l)->skip, dy);
      dy = m.layer_backward(**l, dy);
    }
  }
  add_skip_grad(0, dy);
  profile::Scope scope(Kind::block, "time_embedding + conv_in bwd");
  m.conv_in.op->backward(m.x.p, dy, nullptr, g + m.conv_in.weight, g + m.conv_in.bias);
  m.time->backward(g, m.time->d_silu_temb(), m.scratch);
  if (m.device == Device::cuda && !m.gradients_stay_on_device)
    nn::dev::copy_out(m.device, m.grads.as<float>(), g, parameter_count());
}

size_t UNet2D::activation_bytes() const { return impl_->activation_bytes; }

double UNet2D::forward_flops() const {
  const Impl& m = *impl_;
  double f = m.conv_in.op->forward_flops() + m.conv_out.op->forward_flops() + m.time->flops();
  for (auto* levels : {&m.down, &m.up})
    for (const Level& level : *levels) {
      for (auto& l : level.layers) f += l->resnet->flops() + (l->attn ? l->attn->flops() : 0.0);
      if (level.down) f += level.down->flops();
      if (level.up) f += level.up->flops();
    }
  for (auto& l : m.mid) f += l->resnet->flops() + (l->attn ? l->attn->flops() : 0.0);
  return f;
}

}  // namespace ddpm
