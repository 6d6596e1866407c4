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

std::string join_problems(const std::string& path, const std::vector<std::string>& problems) {
  if (problems.size() == 1) return path + ": " + problems[0];
  constexpr size_t kMaxListed = 40;
  std::string msg = path + ": " + std::to_string(problems.size()) + " problems with the U-Net weights:";
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
  for (const std::string& p : {unet_config_path(model_dir), scheduler_config_path(model_dir)})
    if (!fs::exists(p)) throw std::runtime_error(p + ": missing (a model directory holds unet/config.json, "
                                                     "unet/diffusion_pytorch_model.safetensors and "
                                                     "scheduler/scheduler_config.json)");
  ModelDir dir{read_unet_config(unet_config_path(model_dir)), read_scheduler_config(scheduler_config_path(model_dir))};
  // The U-Net predicts ε (C channels), and with a learned variance also v (C more channels).
  const bool learned = dir.scheduler.variance_type == "learned_range";
  const int64_t in = dir.unet.in_channels, out = dir.unet.out_channels;
  if (out != (learned ? 2 * in : in))
    throw std::runtime_error(model_dir + ": the U-Net has in_channels " + std::to_string(in) + " and out_channels " +
                             std::to_string(out) + ", but scheduler variance_type \"" + dir.scheduler.variance_type +
                             "\" needs out_channels = " + (learned ? "2 x in_channels (ε and the variance)" : "in_channels"));
  return dir;
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
  if (!problems.empty()) throw std::runtime_error(join_problems(path, problems));

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
