// Model directories (diffusers layout): config reading, weight loading with one report of every
// name/shape problem, and atomic saving (temp directory, then swapped into place).
#include "ddpm/io/model_dir.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include "ddpm/io/safetensors.h"
#include "io/io_util.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {

std::vector<int64_t> dims_of(const Shape& shape) {
  std::vector<int64_t> d;
  for (int i = 0; i < shape.rank(); ++i) d.push_back(shape[i]);
  return d;
}

// One line when there is one problem (or a headline that explains them all), then the list.
std::string join_problems(const std::string& path, const std::vector<std::string>& problems,
                          const std::string& headline = "") {
  if (problems.size() == 1 && headline.empty()) return path + ": " + problems[0];
  constexpr size_t kMaxListed = 40;
  std::string msg = path + ": " + (headline.empty() ? "" : headline + "\n") + std::to_string(problems.size()) +
                    " problem" + (problems.size() == 1 ? "" : "s") + " with the U-Net weights:";
  for (size_t i = 0; i < problems.size() && i < kMaxListed; ++i) msg += "\n  " + problems[i];
  if (problems.size() > kMaxListed) msg += "\n  ... and " + std::to_string(problems.size() - kMaxListed) + " more";
  return msg;
}

// Non-finite values in [p, p + n), counted.
size_t count_non_finite(const float* p, size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
  return bad;
}

// The architecture a set of U-Net tensors implies, read off diffusers' names: enough to say in
// one line why a checkpoint does not fit a config.
struct ImpliedArchitecture {
  int64_t in_channels = -1, out_channels = -1, layers_per_block = 0;
  std::vector<int64_t> block_out_channels;
  std::vector<int64_t> attention_levels;

  static ImpliedArchitecture of(const std::map<std::string, std::vector<int64_t>>& tensors) {
    ImpliedArchitecture a;
    const auto dims = [&](const std::string& name) -> const std::vector<int64_t>* {
      const auto it = tensors.find(name);
      return it == tensors.end() ? nullptr : &it->second;
    };
    if (const auto* w = dims("conv_in.weight"); w && w->size() == 4) a.in_channels = (*w)[1];
    if (const auto* w = dims("conv_out.weight"); w && w->size() == 4) a.out_channels = (*w)[0];
    for (int64_t level = 0;; ++level) {
      const std::string prefix = "down_blocks." + std::to_string(level) + ".";
      const auto* w = dims(prefix + "resnets.0.conv1.weight");
      if (!w || w->empty()) break;
      a.block_out_channels.push_back((*w)[0]);
      if (dims(prefix + "attentions.0.to_q.weight")) a.attention_levels.push_back(level);
    }
    while (dims("down_blocks.0.resnets." + std::to_string(a.layers_per_block) + ".conv1.weight")) ++a.layers_per_block;
    return a;
  }

  // "block_out_channels [32,64,64], attention at levels [1]" for the fields that differ from `other`.
  std::string differences(const ImpliedArchitecture& other) const {
    std::vector<std::string> parts;
    if (block_out_channels != other.block_out_channels) parts.push_back("block_out_channels " + dims_str(block_out_channels));
    if (layers_per_block != other.layers_per_block) parts.push_back("layers_per_block " + std::to_string(layers_per_block));
    if (in_channels != other.in_channels) parts.push_back("in_channels " + std::to_string(in_channels));
    if (out_channels != other.out_channels) parts.push_back("out_channels " + std::to_string(out_channels));
    if (attention_levels != other.attention_levels) parts.push_back("attention at levels " + dims_str(attention_levels));
    std::string out;
    for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
    return out;
  }
};

}  // namespace

std::string unet_config_path(const std::string& model_dir) { return (fs::path(model_dir) / "unet" / "config.json").string(); }
std::string unet_weights_path(const std::string& model_dir) {
  return (fs::path(model_dir) / "unet" / "diffusion_pytorch_model.safetensors").string();
}
std::string scheduler_config_path(const std::string& model_dir) {
  return (fs::path(model_dir) / "scheduler" / "scheduler_config.json").string();
}

ModelDir read_model_dir(const std::string& model_dir) {
  if (!fs::is_directory(model_dir)) throw std::runtime_error(model_dir + ": not a directory (expected a model directory)");
  const std::string unet_path = unet_config_path(model_dir), scheduler_path = scheduler_config_path(model_dir);
  if (!fs::exists(unet_path))
    throw std::runtime_error(unet_path + ": missing (a model directory holds unet/config.json, "
                                         "unet/diffusion_pytorch_model.safetensors and scheduler/scheduler_config.json)");
  ModelDir dir;
  dir.unet = read_unet_config(unet_path);
  if (fs::exists(scheduler_path)) {
    std::vector<std::string> absent;
    dir.scheduler = read_scheduler_config(scheduler_path, &absent);
    if (!absent.empty()) {
      std::string defaults;
      for (const std::string& a : absent) defaults += (defaults.empty() ? "" : ", ") + a;
      dir.assumed.push_back(scheduler_path + " leaves " + std::to_string(absent.size()) + " setting" +
                            (absent.size() == 1 ? "" : "s") + " out; assuming DDPMScheduler's defaults: " + defaults);
    }
  } else {
    dir.scheduler = default_scheduler_config();
    dir.assumed.push_back(scheduler_path + " is missing; assuming DDPMScheduler's defaults: " +
                          describe_scheduler(dir.scheduler));
  }
  // The U-Net predicts ε (C channels), and with a learned variance also v (C more channels); it
  // takes the C-channel image and, when image-conditioned, the condition's channels after it.
  const bool learned = dir.scheduler.variance_type == "learned_range";
  const int64_t in = dir.unet.in_channels, out = dir.unet.out_channels;
  if ((learned && out % 2 != 0) || dir.image_channels() > in)
    throw std::runtime_error(model_dir + ": the U-Net has in_channels " + std::to_string(in) + " and out_channels " +
                             std::to_string(out) + ", but scheduler variance_type \"" + dir.scheduler.variance_type +
                             "\" needs out_channels = " +
                             (learned ? "2 x the image channels (ε and the variance)" : "the image channels") +
                             " and in_channels = the image channels (+ the condition's, for an image-conditioned model)");
  return dir;
}

int64_t ModelDir::image_channels() const {
  return scheduler.variance_type == "learned_range" ? unet.out_channels / 2 : unet.out_channels;
}

std::string current_unet_tensor_name(const std::string& stored_name) {
  static const std::pair<const char*, const char*> kLegacy[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  for (const char* suffix : {"weight", "bias"}) {
    for (const auto& [old_part, new_part] : kLegacy) {
      const std::string tail = std::string(old_part) + suffix;
      if (stored_name.size() > tail.size() && stored_name.compare(stored_name.size() - tail.size(), tail.size(), tail) == 0)
        return stored_name.substr(0, stored_name.size() - tail.size()) + new_part + suffix;
    }
  }
  return stored_name;
}

void load_unet_weights(const std::string& path, const TensorList& expected, float* flat, const std::string& expected_from) {
  SafetensorsFile file = SafetensorsFile::open(path);
  std::vector<std::string> problems;

  std::map<std::string, const SafeTensor*> by_name;  // current name -> stored tensor
  for (const SafeTensor& t : file.tensors()) {
    const std::string name = current_unet_tensor_name(t.name);
    const auto [it, inserted] = by_name.emplace(name, &t);
    if (!inserted)
      problems.push_back("tensors " + it->second->name + " and " + t.name + " are both " + name +
                         " (legacy and current attention names)");
  }
  auto stored = [](const SafeTensor& t, const std::string& name) {
    return t.name == name ? name : t.name + " (read as " + name + ")";
  };

  std::set<std::string> wanted;
  for (const auto& [name, shape] : expected) {
    if (!wanted.insert(name).second)
      throw std::invalid_argument("load_unet_weights: the expected tensor list names " + name + " twice");
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      problems.push_back("tensor " + name + " is missing, but " + expected_from + " needs it with shape " + shape.str());
    } else if (it->second->shape != dims_of(shape)) {
      problems.push_back("tensor " + stored(*it->second, name) + " has shape " + dims_str(it->second->shape) + ", but " +
                         expected_from + " needs " + shape.str());
    }
  }
  for (const SafeTensor& t : file.tensors()) {
    const std::string name = current_unet_tensor_name(t.name);
    if (!wanted.count(name))
      problems.push_back("tensor " + stored(t, name) + " " + dims_str(t.shape) + " is unexpected: " + expected_from +
                         " has no such parameter");
  }
  if (!problems.empty()) {
    // Many problems usually mean one cause: weights of another architecture. Say that first.
    std::map<std::string, std::vector<int64_t>> stored_dims, wanted_dims;
    for (const SafeTensor& t : file.tensors()) stored_dims[current_unet_tensor_name(t.name)] = t.shape;
    for (const auto& [name, shape] : expected) wanted_dims[name] = dims_of(shape);
    const ImpliedArchitecture have = ImpliedArchitecture::of(stored_dims), want = ImpliedArchitecture::of(wanted_dims);
    std::string headline;
    if (const std::string diff = have.differences(want); !diff.empty())
      headline = "these weights belong to a different U-Net: they have " + diff + ", but " + expected_from + " has " +
                 want.differences(have);
    throw std::runtime_error(join_problems(path, problems, headline));
  }

  size_t offset = 0;
  for (const auto& [name, shape] : expected) {
    const auto n = static_cast<size_t>(shape.numel());
    const SafeTensor* t = by_name.at(name);
    file.read_f32(t->name, flat + offset, n);
    if (const size_t bad = count_non_finite(flat + offset, n))
      problems.push_back("tensor " + stored(*t, name) + " has " + std::to_string(bad) + " non-finite value" +
                         (bad == 1 ? "" : "s") + " (NaN or Inf)");
    offset += n;
  }
  if (!problems.empty()) throw std::runtime_error(join_problems(path, problems));
}

void load_model_dir_weights(const std::string& model_dir, const UNet2DConfig& unet, const TensorList& expected, float* flat) {
  load_unet_weights(unet_weights_path(model_dir), expected, flat,
                    "unet/config.json (block_out_channels " + dims_str(unet.block_out_channels) + ")");
}

void save_model_dir(const std::string& model_dir, const UNet2DConfig& unet, const SchedulerConfig& scheduler,
                    const TensorList& tensors, const float* flat) {
  const std::string where = fs::path(model_dir).lexically_normal().string();
  std::vector<NamedTensor> named;
  size_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    const auto n = static_cast<size_t>(shape.numel());
    if (const size_t bad = count_non_finite(flat + offset, n))
      throw std::invalid_argument(where + ": not saving tensor " + name + ": it has " + std::to_string(bad) +
                                  " non-finite values (NaN or Inf)");
    named.push_back({name, dims_of(shape), flat + offset});
    offset += n;
  }
  io_detail::write_directory_atomic(model_dir, "unet/config.json", "model directory", [&](const fs::path& tmp) {
    fs::create_directories(tmp / "unet");
    fs::create_directories(tmp / "scheduler");
    write_unet_config(unet_config_path(tmp.string()), unet);
    write_scheduler_config(scheduler_config_path(tmp.string()), scheduler);
    write_safetensors(unet_weights_path(tmp.string()), named, {{"format", "pt"}});
  });
}

}  // namespace ddpm
