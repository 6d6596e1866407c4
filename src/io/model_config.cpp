// UNet2DModel config.json and DDPMScheduler scheduler_config.json: diffusers keys and defaults,
// every wrong type or unsupported value reported with the key and the file.
#include "ddpm/io/model_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "io/io_util.h"

namespace ddpm {

namespace {

using nlohmann::json;
using io_detail::json_type;

// Typed access to the keys of one config file; absent keys leave the target unchanged.
class Keys {
 public:
  Keys(const json& j, const std::string& path) : j_(j), path_(path) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw std::runtime_error(path_ + ": key \"" + key + "\" " + what);
  }
  // nullptr when the key is absent.
  const json* find(const std::string& key) const {
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  bool is_null(const std::string& key) const {
    const json* v = find(key);
    return v && v->is_null();
  }

  void get(const std::string& key, int64_t& out) const {
    if (const json* v = find(key)) out = as_int(key, *v);
  }
  void get(const std::string& key, bool& out) const {
    if (const json* v = find(key)) {
      if (!v->is_boolean()) fail(key, "must be true or false, got " + json_type(*v));
      out = v->get<bool>();
    }
  }
  void get(const std::string& key, double& out) const {
    if (const json* v = find(key)) {
      if (!v->is_number()) fail(key, "must be a number, got " + json_type(*v));
      out = v->get<double>();
    }
  }
  void get(const std::string& key, float& out) const {
    double d = out;
    get(key, d);
    if (!(std::fabs(d) <= std::numeric_limits<float>::max()))
      fail(key, "is " + std::to_string(d) + ", out of the range of a 32-bit float");
    out = static_cast<float>(d);
  }
  void get(const std::string& key, std::string& out) const {
    if (const json* v = find(key)) {
      if (!v->is_string()) fail(key, "must be a string, got " + json_type(*v));
      out = v->get<std::string>();
    }
  }
  void get(const std::string& key, std::vector<int64_t>& out) const {
    if (const json* v = find(key)) {
      if (!v->is_array()) fail(key, "must be a list of integers, got " + json_type(*v));
      out.clear();
      for (const json& e : *v) {
        if (!e.is_number_integer()) fail(key, "must be a list of integers, got an element " + json_type(e));
        out.push_back(e.get<int64_t>());
      }
    }
  }
  void get(const std::string& key, std::vector<std::string>& out) const {
    if (const json* v = find(key)) {
      if (!v->is_array()) fail(key, "must be a list of strings, got " + json_type(*v));
      out.clear();
      for (const json& e : *v) {
        if (!e.is_string()) fail(key, "must be a list of strings, got an element " + json_type(e));
        out.push_back(e.get<std::string>());
      }
    }
  }
  // An integer or null.
  void get(const std::string& key, std::optional<int64_t>& out) const {
    if (const json* v = find(key)) out = v->is_null() ? std::nullopt : std::optional<int64_t>(as_int(key, *v));
  }
  int64_t as_int(const std::string& key, const json& v) const {
    if (!v.is_number_integer()) fail(key, "must be an integer, got " + json_type(v));
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) fail(key, "is too large");
    return v.get<int64_t>();
  }

 private:
  const json& j_;
  const std::string& path_;
};

json float_json(float f) { return io_detail::float_for_json(f); }

// Upper bounds on the sizes a config may ask for, checked before anything is computed from them
// (4 * block_out_channels[0] must not overflow) and before a U-Net is built from them: a corrupt
// or hostile config.json must not make us allocate absurd memory. Generous for every released
// UNet2DModel (google/ddpm-ema-church-256: 6 levels, 512 channels, 256x256).
constexpr int64_t kMaxSampleSide = 1 << 16;
constexpr int64_t kMaxSamplePixels = int64_t{1} << 24;  // 4096 x 4096
constexpr int64_t kMaxImageChannels = 1024;
constexpr int64_t kMaxLevels = 16;
constexpr int64_t kMaxBlockChannels = 1 << 16;
constexpr int64_t kMaxLayersPerBlock = 64;
constexpr double kMaxParameters = 4294967296.0;  // 2^32: 16 GB of fp32 weights

void check_sizes(const Keys& k, const UNet2DConfig& c) {
  auto in_range = [&](const char* key, int64_t v, int64_t hi) {
    if (v < 1 || v > hi) k.fail(key, "is " + std::to_string(v) + "; must be in 1.." + std::to_string(hi));
  };
  in_range("sample_size", c.sample_height, kMaxSampleSide);
  in_range("sample_size", c.sample_width, kMaxSampleSide);
  if (c.sample_height * c.sample_width > kMaxSamplePixels)
    k.fail("sample_size", "is " + std::to_string(c.sample_height) + "x" + std::to_string(c.sample_width) +
                              ", more than " + std::to_string(kMaxSamplePixels) + " pixels");
  in_range("in_channels", c.in_channels, kMaxImageChannels);
  in_range("out_channels", c.out_channels, kMaxImageChannels);
  in_range("layers_per_block", c.layers_per_block, kMaxLayersPerBlock);
  in_range("norm_num_groups", c.norm_num_groups, kMaxBlockChannels);
  if (c.block_out_channels.empty() || c.levels() > kMaxLevels)
    k.fail("block_out_channels", "has " + std::to_string(c.levels()) + " entries; must have 1.." +
                                     std::to_string(kMaxLevels));
  for (int64_t ch : c.block_out_channels) in_range("block_out_channels", ch, kMaxBlockChannels);
  // Roughly the U-Net's 3x3 convolution weights: per level, layers_per_block resnets down and
  // layers_per_block + 1 up (whose inputs are concatenations), two convolutions each, plus the
  // resampling convolutions; the exact count is larger only by biases, norms and attention.
  double params = 0;
  int64_t prev = c.block_out_channels[0];
  for (int64_t ch : c.block_out_channels) {
    const double widest = static_cast<double>(std::max(ch, prev));
    params += static_cast<double>(5 * c.layers_per_block + 5) * 9.0 * widest * widest;
    prev = ch;
  }
  if (params > kMaxParameters) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", params);
    k.fail("block_out_channels", std::string("and layers_per_block ask for a U-Net of about ") + text +
                                     " parameters; more than 2^32 is refused");
  }
}

// Schedules hold a few arrays of num_train_timesteps doubles.
constexpr int64_t kMaxTrainTimesteps = 1'000'000;

}  // namespace

UNet2DConfig read_unet_config(const std::string& path) {
  const json j = io_detail::read_json_object(path);
  const Keys k(j, path);
  // Absent keys take diffusers' UNet2DModel defaults, which are not UNet2DConfig's (ours follow
  // google/ddpm-cifar10-32), so start from diffusers' values.
  UNet2DConfig c;
  c.in_channels = c.out_channels = 3;
  c.block_out_channels = {224, 448, 672, 896};
  c.down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"};
  c.up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
  c.layers_per_block = 2;
  c.norm_num_groups = 32;
  c.norm_eps = 1e-5f;
  c.flip_sin_to_cos = true;
  c.freq_shift = 0.0f;
  c.downsample_padding = 1;
  c.dropout = 0.0f;
  c.attention_head_dim = 8;
  c.mid_block_scale_factor = 1.0f;

  std::string class_name = "UNet2DModel";
  k.get("_class_name", class_name);
  if (class_name != "UNet2DModel") k.fail("_class_name", "is \"" + class_name + "\"; expected \"UNet2DModel\"");

  if (const json* s = k.find("sample_size")) {
    if (s->is_number_integer()) {
      c.sample_height = c.sample_width = k.as_int("sample_size", *s);
    } else if (s->is_array() && s->size() == 2) {
      c.sample_height = k.as_int("sample_size", (*s)[0]);
      c.sample_width = k.as_int("sample_size", (*s)[1]);
    } else {
      k.fail("sample_size", "must be an integer or [height, width], got " + json_type(*s));
    }
  } else {
    k.fail("sample_size", "is missing (diffusers' default is null, which fixes no image size)");
  }
  k.get("in_channels", c.in_channels);
  k.get("out_channels", c.out_channels);
  k.get("block_out_channels", c.block_out_channels);
  k.get("layers_per_block", c.layers_per_block);
  k.get("down_block_types", c.down_block_types);
  k.get("up_block_types", c.up_block_types);
  if (k.is_null("mid_block_type")) k.fail("mid_block_type", "is null (a U-Net without a middle block is not supported)");
  k.get("mid_block_type", c.mid_block_type);
  k.get("norm_num_groups", c.norm_num_groups);
  k.get("norm_eps", c.norm_eps);
  k.get("act_fn", c.act_fn);
  k.get("flip_sin_to_cos", c.flip_sin_to_cos);
  k.get("freq_shift", c.freq_shift);
  k.get("downsample_padding", c.downsample_padding);
  k.get("dropout", c.dropout);
  k.get("attention_head_dim", c.attention_head_dim);
  k.get("time_embedding_type", c.time_embedding_type);
  k.get("mid_block_scale_factor", c.mid_block_scale_factor);
  k.get("center_input_sample", c.center_input_sample);
  k.get("resnet_time_scale_shift", c.resnet_time_scale_shift);
  k.get("add_attention", c.add_attention);
  k.get("num_class_embeds", c.num_class_embeds);

  check_sizes(k, c);

  // Keys without a UNet2DConfig member: only their default meaning is implemented.
  if (const json* v = k.find("class_embed_type"); v && !v->is_null())
    k.fail("class_embed_type", "is " + json_type(*v) + "; only null is supported (num_class_embeds gives a class embedding table)");
  for (const char* key : {"downsample_type", "upsample_type"}) {
    std::string type = "conv";
    k.get(key, type);
    if (type != "conv") k.fail(key, "is \"" + type + "\"; supported: conv");
  }
  if (!c.block_out_channels.empty()) {
    std::optional<int64_t> ted;
    k.get("time_embedding_dim", ted);
    if (ted && *ted != c.time_embedding_dim())
      k.fail("time_embedding_dim", "is " + std::to_string(*ted) + "; supported: null or 4 * block_out_channels[0] = " +
                                       std::to_string(c.time_embedding_dim()));
    std::optional<int64_t> attn_groups;
    k.get("attn_norm_num_groups", attn_groups);
    if (attn_groups && *attn_groups != c.norm_num_groups)
      k.fail("attn_norm_num_groups", "is " + std::to_string(*attn_groups) + "; supported: null or norm_num_groups (" +
                                         std::to_string(c.norm_num_groups) + ")");
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return c;
}

void write_unet_config(const std::string& path, const UNet2DConfig& c) {
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": not writing an invalid config: " + e.what());
  }
  json j;
  j["_class_name"] = "UNet2DModel";
  j["_diffusers_version"] = kDiffusersVersion;
  j["sample_size"] = c.sample_height == c.sample_width ? json(c.sample_height) : json({c.sample_height, c.sample_width});
  j["in_channels"] = c.in_channels;
  j["out_channels"] = c.out_channels;
  j["block_out_channels"] = c.block_out_channels;
  j["layers_per_block"] = c.layers_per_block;
  j["down_block_types"] = c.down_block_types;
  j["up_block_types"] = c.up_block_types;
  j["mid_block_type"] = c.mid_block_type;
  j["norm_num_groups"] = c.norm_num_groups;
  j["norm_eps"] = float_json(c.norm_eps);
  j["act_fn"] = c.act_fn;
  j["flip_sin_to_cos"] = c.flip_sin_to_cos;
  // diffusers declares freq_shift an int; keep it one when it is integral.
  j["freq_shift"] = c.freq_shift == std::round(c.freq_shift) ? json(static_cast<int64_t>(c.freq_shift)) : float_json(c.freq_shift);
  j["downsample_padding"] = c.downsample_padding;
  j["downsample_type"] = "conv";
  j["upsample_type"] = "conv";
  j["dropout"] = float_json(c.dropout);
  j["attention_head_dim"] = c.attention_head_dim ? json(*c.attention_head_dim) : json(nullptr);
  j["attn_norm_num_groups"] = nullptr;
  j["time_embedding_type"] = c.time_embedding_type;
  j["time_embedding_dim"] = nullptr;
  j["mid_block_scale_factor"] = float_json(c.mid_block_scale_factor);
  j["center_input_sample"] = c.center_input_sample;
  j["resnet_time_scale_shift"] = c.resnet_time_scale_shift;
  j["add_attention"] = c.add_attention;
  j["class_embed_type"] = nullptr;
  j["num_class_embeds"] = c.num_class_embeds ? json(*c.num_class_embeds) : json(nullptr);
  io_detail::write_json_file(path, j);
}

void SchedulerConfig::validate() const {
  auto reject = [](const std::string& key, const std::string& why) {
    throw std::invalid_argument("scheduler config: key \"" + key + "\" " + why);
  };
  if (class_name != "DDPMScheduler" && class_name != "DDIMScheduler")
    reject("_class_name", "is \"" + class_name + "\"; supported: DDPMScheduler, DDIMScheduler");
  if (num_train_timesteps <= 0) reject("num_train_timesteps", "must be positive");
  if (beta_schedule != "linear" && beta_schedule != "squaredcos_cap_v2")
    reject("beta_schedule", "is \"" + beta_schedule + "\"; supported: linear, squaredcos_cap_v2");
  if (beta_schedule == "linear" && !(beta_start > 0 && beta_start <= beta_end && beta_end < 1))
    reject("beta_start/beta_end", "must satisfy 0 < beta_start <= beta_end < 1 for the linear schedule");
  if (variance_type != "fixed_large" && variance_type != "fixed_small" && variance_type != "learned_range")
    reject("variance_type", "is \"" + variance_type + "\"; supported: fixed_large, fixed_small, learned_range");
  if (!(clip_sample_range > 0)) reject("clip_sample_range", "must be positive");
  if (prediction_type != "epsilon") reject("prediction_type", "is \"" + prediction_type + "\"; supported: epsilon");
  if (timestep_spacing != "leading" && timestep_spacing != "trailing" && timestep_spacing != "linspace")
    reject("timestep_spacing", "is \"" + timestep_spacing + "\"; supported: leading, trailing, linspace");
  if (steps_offset < 0) reject("steps_offset", "must not be negative");
}

SchedulerConfig default_scheduler_config() {
  SchedulerConfig c;
  c.variance_type = "fixed_small";  // DDPMScheduler's default; ours (fixed_large) is the paper's CIFAR-10 choice
  return c;
}

std::string describe_scheduler(const SchedulerConfig& c) {
  char betas[96];
  if (c.beta_schedule == "linear")
    std::snprintf(betas, sizeof betas, "linear betas %g..%g", c.beta_start, c.beta_end);
  else
    std::snprintf(betas, sizeof betas, "%s betas", c.beta_schedule.c_str());
  char clip[48] = "x0 not clipped";
  if (c.clip_sample) std::snprintf(clip, sizeof clip, "x0 clipped to ±%g", c.clip_sample_range);
  return std::to_string(c.num_train_timesteps) + " timesteps, " + betas + ", " + c.variance_type + " variance, " +
         clip + ", " + c.prediction_type + " prediction, " + c.timestep_spacing + " spacing";
}

SchedulerConfig read_scheduler_config(const std::string& path, std::vector<std::string>* absent) {
  const json j = io_detail::read_json_object(path);
  const Keys k(j, path);
  SchedulerConfig c = default_scheduler_config();
  if (absent) {
    // The keys that change what sampling computes; the rest (class name, offsets) are cosmetic here.
    const SchedulerConfig d = c;
    const std::pair<const char*, std::string> shaping[] = {
        {"num_train_timesteps", std::to_string(d.num_train_timesteps)},
        {"beta_schedule", d.beta_schedule},
        {"beta_start", json(d.beta_start).dump()},
        {"beta_end", json(d.beta_end).dump()},
        {"variance_type", d.variance_type},
        {"clip_sample", d.clip_sample ? "true" : "false"},
        {"prediction_type", d.prediction_type},
        {"timestep_spacing", d.timestep_spacing}};
    for (const auto& [key, value] : shaping)
      if (!k.find(key)) absent->push_back(std::string(key) + " " + value);
  }
  k.get("_class_name", c.class_name);
  if (c.class_name != "DDPMScheduler" && c.class_name != "DDIMScheduler")
    k.fail("_class_name", "is \"" + c.class_name + "\"; supported: DDPMScheduler, DDIMScheduler");
  k.get("num_train_timesteps", c.num_train_timesteps);
  k.get("beta_schedule", c.beta_schedule);
  k.get("beta_start", c.beta_start);
  k.get("beta_end", c.beta_end);
  if (const json* v = k.find("trained_betas"); v && !v->is_null())
    k.fail("trained_betas", "is set; only null is supported (use beta_schedule)");
  k.get("variance_type", c.variance_type);
  k.get("clip_sample", c.clip_sample);
  k.get("clip_sample_range", c.clip_sample_range);
  k.get("prediction_type", c.prediction_type);
  k.get("timestep_spacing", c.timestep_spacing);
  k.get("steps_offset", c.steps_offset);
  k.get("set_alpha_to_one", c.set_alpha_to_one);
  if (c.num_train_timesteps > kMaxTrainTimesteps)
    k.fail("num_train_timesteps", "is " + std::to_string(c.num_train_timesteps) + "; at most " +
                                      std::to_string(kMaxTrainTimesteps) + " are supported");
  if (c.num_train_timesteps > 0 && c.steps_offset >= c.num_train_timesteps)
    k.fail("steps_offset", "is " + std::to_string(c.steps_offset) + "; must be less than num_train_timesteps (" +
                               std::to_string(c.num_train_timesteps) + ")");
  for (const char* key : {"thresholding", "rescale_betas_zero_snr"}) {
    bool on = false;
    k.get(key, on);
    if (on) k.fail(key, "is true; only false is supported");
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return c;
}

void write_scheduler_config(const std::string& path, const SchedulerConfig& c) {
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": not writing an invalid config: " + e.what());
  }
  json j;
  j["_class_name"] = c.class_name;
  j["_diffusers_version"] = kDiffusersVersion;
  j["num_train_timesteps"] = c.num_train_timesteps;
  j["beta_schedule"] = c.beta_schedule;
  j["beta_start"] = c.beta_start;
  j["beta_end"] = c.beta_end;
  j["trained_betas"] = nullptr;
  j["variance_type"] = c.variance_type;
  j["clip_sample"] = c.clip_sample;
  j["clip_sample_range"] = c.clip_sample_range;
  j["prediction_type"] = c.prediction_type;
  j["thresholding"] = false;
  j["dynamic_thresholding_ratio"] = 0.995;
  j["sample_max_value"] = 1.0;
  j["timestep_spacing"] = c.timestep_spacing;
  j["steps_offset"] = c.steps_offset;
  j["rescale_betas_zero_snr"] = false;
  j["set_alpha_to_one"] = c.set_alpha_to_one;
  io_detail::write_json_file(path, j);
}

}  // namespace ddpm
