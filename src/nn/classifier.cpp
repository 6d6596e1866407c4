// Classifier: the CNN of `ddpm eval fd` planned from a ClassifierConfig, with its forward and
// backward over the planned buffers (see include/ddpm/nn/classifier.h for the architecture).
#include "ddpm/nn/classifier.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "ddpm/kernels/pool.h"
#include "ddpm/kernels/silu.h"
#include "ddpm/kernels/softmax.h"
#include "nn/blocks.h"

namespace ddpm {

using nn::Buf;

void ClassifierConfig::validate() const {
  auto bad = [](const std::string& key, const std::string& why) {
    throw std::invalid_argument("classifier config: " + key + " " + why);
  };
  if (height < 1 || width < 1) bad("height/width", "must be positive");
  if (channels < 1) bad("channels", "must be positive");
  if (num_classes < 1) bad("num_classes", "must be positive");
  if (feature_dim < 1) bad("feature_dim", "must be positive");
  if (widths.empty()) bad("widths", "must list at least one width");
  if (groups < 1) bad("groups", "must be positive");
  if (!(norm_eps > 0)) bad("norm_eps", "must be positive");
  for (size_t i = 0; i < widths.size(); ++i)
    if (widths[i] < 1 || widths[i] % groups != 0)
      bad("widths[" + std::to_string(i) + "]", "= " + std::to_string(widths[i]) +
                                                   " must be a positive multiple of groups (" +
                                                   std::to_string(groups) + ")");
  // Each stride-2 step maps h to (h - 2) / 2 + 1: it needs h >= 2.
  int64_t h = height, w = width;
  for (size_t i = 1; i < widths.size(); ++i) {
    if (h < 2 || w < 2)
      bad("widths", "has " + std::to_string(widths.size()) + " entries, but " + std::to_string(height) + "x" +
                        std::to_string(width) + " images shrink below 2x2 before the stride-2 convolution " +
                        std::to_string(i));
    h = (h - 2) / 2 + 1;
    w = (w - 2) / 2 + 1;
  }
}

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// conv -> GN+SiLU at one resolution. `in` is set by forward().
struct ConvLayer {
  nn::Conv conv;
  nn::Norm norm;
  Buf pre, act;  // conv output, SiLU(GN(conv output))
  const float* in = nullptr;
};

}  // namespace

struct Classifier::Impl {
  ClassifierConfig cfg;
  int64_t batch;
  bool training;
  std::vector<ParamInfo> table;
  Arena arena;
  nn::Planner pl{table, arena};
  AlignedBuffer params, grads;

  std::vector<std::unique_ptr<ConvLayer>> layers;
  int64_t top_pixels = 0, top_channels = 0;
  nn::Lin feature_proj, head;
  Buf x, pooled, feature_pre, features, gn;
  Buf g0, g1, d_pooled, d_features;  // training only
  size_t gn_floats = 0;

  Impl(const ClassifierConfig& c, int64_t b, bool t);
  void add_layer(const cpu::Conv2dShape& s);
};

void Classifier::Impl::add_layer(const cpu::Conv2dShape& s) {
  const std::string index = std::to_string(layers.size());
  auto l = std::make_unique<ConvLayer>();
  l->conv = nn::Conv(pl, "convs." + index, s, Precision::fp32);
  const int64_t pixels = s.out_height() * s.out_width();
  l->norm = nn::Norm(pl, "norms." + index, batch, pixels, s.out_channels, cfg.groups, cfg.norm_eps);
  l->norm.reserve_stats(pl);
  pl.buffer(l->pre, batch * pixels * s.out_channels);
  pl.buffer(l->act, batch * pixels * s.out_channels);
  layers.push_back(std::move(l));
}

Classifier::Impl::Impl(const ClassifierConfig& c, int64_t b, bool t) : cfg(c), batch(b), training(t) {
  cfg.validate();
  if (batch < 1) throw std::invalid_argument("Classifier: batch must be positive, got " + std::to_string(batch));
  int64_t h = cfg.height, w = cfg.width;
  pl.buffer(x, batch * h * w * cfg.channels);
  add_layer({batch, h, w, cfg.channels, cfg.widths[0], 3, 1, 1, 1});
  for (size_t i = 1; i < cfg.widths.size(); ++i) {
    const cpu::Conv2dShape down{batch, h, w, cfg.widths[i - 1], cfg.widths[i], 3, 2, 0, 1};
    add_layer(down);
    h = down.out_height();
    w = down.out_width();
    add_layer({batch, h, w, cfg.widths[i], cfg.widths[i], 3, 1, 1, 1});
  }
  top_pixels = h * w;
  top_channels = cfg.widths.back();
  feature_proj = nn::Lin(pl, "feature_proj", batch, top_channels, cfg.feature_dim, Precision::fp32);
  head = nn::Lin(pl, "head", batch, cfg.feature_dim, cfg.num_classes, Precision::fp32);
  pl.buffer(pooled, batch * top_channels);
  pl.buffer(feature_pre, batch * cfg.feature_dim);
  pl.buffer(features, batch * cfg.feature_dim);
  if (training) {
    const int64_t largest = pl.largest_buffer();
    pl.buffer(g0, largest);
    pl.buffer(g1, largest);
    pl.buffer(d_pooled, batch * top_channels);
    pl.buffer(d_features, batch * cfg.feature_dim);
  }
  gn_floats = pl.group_norm_workspace;
  pl.buffer(gn, static_cast<int64_t>(gn_floats));
  pl.allocate();
  params = AlignedBuffer(static_cast<size_t>(pl.parameter_count()) * sizeof(float));
  if (training) grads = AlignedBuffer(static_cast<size_t>(pl.parameter_count()) * sizeof(float));
}

Classifier::Classifier(const ClassifierConfig& cfg, int64_t batch, bool training)
    : impl_(std::make_unique<Impl>(cfg, batch, training)) {}
Classifier::~Classifier() = default;

const ClassifierConfig& Classifier::config() const { return impl_->cfg; }
int64_t Classifier::batch() const { return impl_->batch; }
bool Classifier::training() const { return impl_->training; }
float* Classifier::params() { return impl_->params.as<float>(); }
const float* Classifier::params() const { return impl_->params.as<float>(); }
float* Classifier::grads() { return impl_->grads.as<float>(); }
const float* Classifier::grads() const { return impl_->grads.as<float>(); }
int64_t Classifier::num_params() const { return impl_->pl.parameter_count(); }
const std::vector<ParamInfo>& Classifier::parameters() const { return impl_->table; }
const float* Classifier::features() const { return impl_->features.p; }

void Classifier::init_weights(uint64_t seed) {
  float* w = params();
  const auto& table = impl_->table;
  for (size_t i = 0; i < table.size(); ++i) {
    const ParamInfo& p = table[i];
    float* t = w + p.offset;
    const int64_t n = p.shape.numel();
    if (p.name.rfind("norms.", 0) == 0) {
      std::fill(t, t + n, p.name.ends_with(".weight") ? 1.0f : 0.0f);
      continue;
    }
    // A bias shares its weight's fan-in (the weight precedes it in the table).
    const Shape& ws = p.name.ends_with(".bias") ? table[i - 1].shape : p.shape;
    const int64_t fan_in = ws.rank() == 4 ? ws[1] * ws[2] * ws[3] : ws[1];
    const double limit = 1.0 / std::sqrt(static_cast<double>(fan_in));
    uint64_t state = seed * 0x100000001B3ull + i;
    for (int64_t k = 0; k < n; ++k) {
      const double u = (static_cast<double>(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53;
      t[k] = static_cast<float>((2.0 * u - 1.0) * limit);
    }
  }
  set_weights();
}

void Classifier::set_weights() {
  const float* w = params();
  for (auto& l : impl_->layers) l->conv.set_weights(w);
  impl_->feature_proj.set_weights(w);
  impl_->head.set_weights(w);
}

void Classifier::forward(const float* x_nhwc, float* logits) {
  Impl& m = *impl_;
  const float* w = m.params.as<float>();
  std::memcpy(m.x.p, x_nhwc, static_cast<size_t>(m.x.numel) * sizeof(float));
  const float* cur = m.x.p;
  for (auto& l : m.layers) {
    l->in = cur;
    l->conv.op->forward(cur, w + l->conv.bias, l->pre.p);
    cpu::group_norm_forward(l->act.p, l->norm.mean.p, l->norm.rstd.p, l->pre.p, w + l->norm.weight,
                            w + l->norm.bias, l->norm.shape, true, m.gn.p, m.gn_floats);
    cur = l->act.p;
  }
  cpu::global_avg_pool_forward(m.pooled.p, cur, m.batch, m.top_pixels, m.top_channels);
  m.feature_proj.op->forward(m.pooled.p, w + m.feature_proj.bias, m.feature_pre.p);
  cpu::silu_forward(m.features.p, m.feature_pre.p, m.features.numel);
  m.head.op->forward(m.features.p, w + m.head.bias, logits);
}

void Classifier::backward(const float* dlogits) {
  Impl& m = *impl_;
  if (!m.training) throw std::logic_error("Classifier: backward() on a classifier built for inference (training = false)");
  const float* w = m.params.as<float>();
  float* g = m.grads.as<float>();
  m.head.op->backward(m.features.p, dlogits, m.d_features.p, g + m.head.weight, g + m.head.bias);
  cpu::silu_backward(m.d_features.p, m.d_features.p, m.feature_pre.p, m.d_features.numel);
  m.feature_proj.op->backward(m.pooled.p, m.d_features.p, m.d_pooled.p, g + m.feature_proj.weight,
                              g + m.feature_proj.bias);
  float* dy = m.g0.p;  // d(layer output), then d(its conv output) in place
  float* dx = m.g1.p;
  cpu::global_avg_pool_backward(dy, m.d_pooled.p, m.batch, m.top_pixels, m.top_channels);
  for (auto it = m.layers.rbegin(); it != m.layers.rend(); ++it) {
    ConvLayer& l = **it;
    cpu::group_norm_backward(dy, g + l.norm.weight, g + l.norm.bias, dy, l.pre.p, l.norm.mean.p, l.norm.rstd.p,
                             w + l.norm.weight, w + l.norm.bias, l.norm.shape, true, m.gn.p, m.gn_floats);
    const bool first = it + 1 == m.layers.rend();  // the image needs no gradient
    l.conv.op->backward(l.in, dy, first ? nullptr : dx, g + l.conv.weight, g + l.conv.bias);
    std::swap(dx, dy);
  }
}

double Classifier::forward_flops() const {
  double f = impl_->feature_proj.op->forward_flops() + impl_->head.op->forward_flops();
  for (const auto& l : impl_->layers) f += l->conv.op->forward_flops();
  return f;
}

void classify(Classifier& net, const float* images, int64_t n, float* features, float* probabilities) {
  const ClassifierConfig& c = net.config();
  const int64_t B = net.batch(), image_size = c.height * c.width * c.channels;
  if (n < 0) throw std::invalid_argument("classify: negative image count " + std::to_string(n));
  std::vector<float> padded(static_cast<size_t>(B * image_size), 0.0f);
  std::vector<float> logits(static_cast<size_t>(B * c.num_classes));
  for (int64_t first = 0; first < n; first += B) {
    const int64_t count = std::min(B, n - first);
    const float* x = images + first * image_size;
    if (count < B) {  // pad the last batch with zeros (mid-grey), its outputs dropped
      std::memcpy(padded.data(), x, static_cast<size_t>(count * image_size) * sizeof(float));
      x = padded.data();
    }
    net.forward(x, logits.data());
    if (features)
      std::memcpy(features + first * c.feature_dim, net.features(),
                  static_cast<size_t>(count * c.feature_dim) * sizeof(float));
    if (probabilities) cpu::softmax_forward(probabilities + first * c.num_classes, logits.data(), count, c.num_classes, 1.0f);
  }
}

}  // namespace ddpm
