// Classifier model directories: DIR/config.json + DIR/model.safetensors (+ DIR/README.md), written
// atomically (temporary sibling directory, then swapped into place) and read with errors that name
// the file, the key or the tensor.
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "ddpm/io/safetensors.h"
#include "ddpm/nn/classifier.h"
#include "io/io_util.h"

namespace ddpm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kConfigFile = "config.json";
constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kCardFile = "README.md";
constexpr const char* kClassName = "ddpm.cpp Classifier";

std::string config_path(const std::string& dir) { return (fs::path(dir) / kConfigFile).string(); }
std::string weights_path(const std::string& dir) { return (fs::path(dir) / kWeightsFile).string(); }

std::vector<int64_t> dims_of(const Shape& shape) {
  std::vector<int64_t> d;
  for (int i = 0; i < shape.rank(); ++i) d.push_back(shape[i]);
  return d;
}

size_t count_non_finite(const float* p, int64_t n) {
  size_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
  return bad;
}

json config_to_json(const ClassifierConfig& c) {
  return {{"_class_name", kClassName}, {"height", c.height}, {"width", c.width}, {"channels", c.channels},
          {"num_classes", c.num_classes}, {"feature_dim", c.feature_dim}, {"widths", c.widths},
          {"groups", c.groups}, {"norm_eps", io_detail::float_for_json(c.norm_eps)}};
}

}  // namespace

void save_classifier(const std::string& dir, const Classifier& net, const std::string& model_card) {
  const std::string where = fs::path(dir).lexically_normal().string();
  std::vector<NamedTensor> named;
  for (const ParamInfo& p : net.parameters()) {
    const float* data = net.params() + p.offset;
    if (const size_t bad = count_non_finite(data, p.shape.numel()))
      throw std::invalid_argument(where + ": not saving tensor " + p.name + ": it has " + std::to_string(bad) +
                                  " non-finite values (NaN or Inf)");
    named.push_back({p.name, dims_of(p.shape), data});
  }
  io_detail::write_directory_atomic(dir, kConfigFile, "classifier directory", [&](const fs::path& tmp) {
    io_detail::write_json_file((tmp / kConfigFile).string(), config_to_json(net.config()));
    write_safetensors((tmp / kWeightsFile).string(), named, {{"format", "pt"}});
    if (!model_card.empty()) {
      const std::string card = (tmp / kCardFile).string();
      io_detail::write_file_atomic(card, [&](std::FILE* f) {
        io_detail::write_bytes(f, model_card.data(), model_card.size(), card);
      });
    }
  });
}

ClassifierConfig read_classifier_config(const std::string& dir) {
  const std::string path = config_path(dir);
  if (!fs::exists(path))
    throw std::runtime_error(path + ": missing (a classifier directory holds " + kConfigFile + " and " +
                             kWeightsFile + "; train one with `ddpm train-classifier`)");
  const json j = io_detail::read_json_object(path);
  auto fail = [&](const std::string& key, const std::string& what) {
    throw std::runtime_error(path + ": key \"" + key + "\" " + what);
  };
  auto integer = [&](const std::string& key) -> int64_t {
    const auto it = j.find(key);
    if (it == j.end()) fail(key, "is missing");
    if (!it->is_number_integer()) fail(key, "must be an integer, got " + io_detail::json_type(*it));
    return it->get<int64_t>();
  };
  const std::set<std::string> known{"height", "width", "channels", "num_classes", "feature_dim",
                                    "widths", "groups", "norm_eps"};
  for (const auto& [key, value] : j.items())
    if (!known.count(key) && key.rfind('_', 0) != 0) fail(key, "is not a classifier config key");
  if (const auto it = j.find("_class_name"); it != j.end() && *it != kClassName)
    fail("_class_name", "is " + it->dump() + ", expected \"" + kClassName + "\"");

  ClassifierConfig c;
  c.height = integer("height");
  c.width = integer("width");
  c.channels = integer("channels");
  c.num_classes = integer("num_classes");
  c.feature_dim = integer("feature_dim");
  c.groups = integer("groups");
  const auto widths = j.find("widths");
  if (widths == j.end()) fail("widths", "is missing");
  if (!widths->is_array()) fail("widths", "must be a list of integers, got " + io_detail::json_type(*widths));
  c.widths.clear();
  for (const json& e : *widths) {
    if (!e.is_number_integer()) fail("widths", "must be a list of integers, got an element " + io_detail::json_type(e));
    c.widths.push_back(e.get<int64_t>());
  }
  if (const auto eps = j.find("norm_eps"); eps != j.end()) {
    if (!eps->is_number()) fail("norm_eps", "must be a number, got " + io_detail::json_type(*eps));
    c.norm_eps = eps->get<float>();
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return c;
}

void load_classifier_weights(const std::string& dir, Classifier& net) {
  const std::string path = weights_path(dir);
  SafetensorsFile file = SafetensorsFile::open(path);
  const std::string expected_from = kConfigFile + std::string(" (widths ") + dims_str(net.config().widths) +
                                    ", feature_dim " + std::to_string(net.config().feature_dim) + ")";
  std::vector<std::string> problems;
  std::set<std::string> wanted;
  for (const ParamInfo& p : net.parameters()) {
    wanted.insert(p.name);
    const SafeTensor* t = file.find(p.name);
    if (!t)
      problems.push_back("tensor " + p.name + " is missing, but " + expected_from + " needs it with shape " +
                         p.shape.str());
    else if (t->shape != dims_of(p.shape))
      problems.push_back("tensor " + p.name + " has shape " + dims_str(t->shape) + ", but " + expected_from +
                         " needs " + p.shape.str());
  }
  for (const SafeTensor& t : file.tensors())
    if (!wanted.count(t.name))
      problems.push_back("tensor " + t.name + " " + dims_str(t.shape) + " is unexpected: the classifier has no such parameter");
  if (problems.empty()) {
    for (const ParamInfo& p : net.parameters()) {
      float* out = net.params() + p.offset;
      file.read_f32(p.name, out, static_cast<size_t>(p.shape.numel()));
      if (const size_t bad = count_non_finite(out, p.shape.numel()))
        problems.push_back("tensor " + p.name + " has " + std::to_string(bad) + " non-finite value" +
                           (bad == 1 ? "" : "s") + " (NaN or Inf)");
    }
  }
  if (!problems.empty()) {
    std::string msg = path + ": ";
    if (problems.size() > 1) msg += std::to_string(problems.size()) + " problems with the classifier weights:\n  ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "\n  " : "") + problems[i];
    throw std::runtime_error(msg);
  }
  net.set_weights();
}

std::unique_ptr<Classifier> load_classifier(const std::string& dir, int64_t batch) {
  auto net = std::make_unique<Classifier>(read_classifier_config(dir), batch, false);
  load_classifier_weights(dir, *net);
  return net;
}

}  // namespace ddpm
