// Classifier: the parameter table, logits, features and every parameter gradient against a float64
// PyTorch reference, five Adam steps, finite differences, save/load with its errors, classify(),
// training on real data, no heap allocation and no oneDNN reference kernels.
#include "ddpm/nn/classifier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "ddpm/data/batcher.h"
#include "ddpm/data/idx.h"
#include "ddpm/io/safetensors.h"
#include "ddpm/kernels/cross_entropy.h"
#include "ddpm/kernels/dnnl_info.h"
#include "ddpm/kernels/optimizer.h"
#include "heap_counter.h"
#include "test_support.h"

namespace ddpm {
namespace {

namespace fs = std::filesystem;

ClassifierConfig tiny_config() {
  ClassifierConfig c;
  c.height = 7;
  c.width = 5;
  c.channels = 1;
  c.num_classes = 3;
  c.feature_dim = 3;
  c.widths = {4, 4};
  c.groups = 2;
  return c;
}

// tests/reference/ops/classifier.py's config array: [H, W, C, classes, feature_dim, groups, eps,
// batch] + widths.
ClassifierConfig reference_config(const std::vector<float>& a, int64_t& batch) {
  ClassifierConfig c;
  c.height = static_cast<int64_t>(a[0]);
  c.width = static_cast<int64_t>(a[1]);
  c.channels = static_cast<int64_t>(a[2]);
  c.num_classes = static_cast<int64_t>(a[3]);
  c.feature_dim = static_cast<int64_t>(a[4]);
  c.groups = static_cast<int64_t>(a[5]);
  c.norm_eps = a[6];
  batch = static_cast<int64_t>(a[7]);
  c.widths.assign(a.begin() + 8, a.end());
  return c;
}

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_classifier_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

double max_abs(const float* v, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(v[i])));
  return m;
}

TEST(Classifier, FashionMnistParameterTable) {
  Classifier net(ClassifierConfig{}, 1, false);
  const auto& t = net.parameters();
  ASSERT_EQ(t.size(), 24u);  // 5 convs and 5 norms (2 tensors each), feature_proj, head
  EXPECT_EQ(t.front().name, "convs.0.weight");
  EXPECT_EQ(t.front().shape, (Shape{32, 1, 3, 3}));
  EXPECT_EQ(t[4].name, "convs.1.weight");
  EXPECT_EQ(t[4].shape, (Shape{64, 32, 3, 3}));
  EXPECT_EQ(t[21].name, "feature_proj.bias");
  EXPECT_EQ(t.back().name, "head.bias");
  EXPECT_EQ(t.back().shape, (Shape{10}));
  int64_t offset = 0;
  for (const ParamInfo& p : t) {
    EXPECT_EQ(p.offset, offset) << p.name;
    offset += p.shape.numel();
  }
  // convs 320 + 18496 + 36928 + 73856 + 147584, norms 2 * (32 + 64 + 64 + 128 + 128), linears 16512 + 1290
  EXPECT_EQ(net.num_params(), 295818);
  EXPECT_EQ(offset, net.num_params());
  EXPECT_EQ(net.grads(), nullptr);
  EXPECT_THROW(net.backward(nullptr), std::logic_error);
}

TEST(Classifier, RejectsBadConfigsNamingTheKey) {
  auto message = [](const ClassifierConfig& c) -> std::string {
    try {
      Classifier net(c, 2, true);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(accepted)";
  };
  ClassifierConfig c;
  c.widths = {32, 60, 128};
  EXPECT_NE(message(c).find("widths[1]"), std::string::npos) << message(c);
  c = ClassifierConfig{};
  c.widths = {8, 8, 8, 8, 8, 8};  // 28 -> 14 -> 7 -> 3 -> 1: no room for a fifth stride-2 step
  EXPECT_NE(message(c).find("widths"), std::string::npos) << message(c);
  c = ClassifierConfig{};
  c.num_classes = 0;
  EXPECT_NE(message(c).find("num_classes"), std::string::npos) << message(c);
  EXPECT_THROW(Classifier(ClassifierConfig{}, 0, true), std::invalid_argument);
}

// Per tensor: |ours - torch| <= 1e-4 |torch| + 1e-4 max|torch| (fp32 through the whole network
// against float64); the logits and features also within 1e-5 relative norm error.
TEST(Classifier, LogitsFeaturesAndEveryGradientMatchPyTorch) {
  int count = 0;
  for (const auto& c : test::reference_cases("classifier")) {
    SCOPED_TRACE(c.name);
    int64_t batch = 0;
    const ClassifierConfig cfg = reference_config(c.f32("config"), batch);
    Classifier net(cfg, batch, true);
    const auto p = c.f32("params"), x = c.f32("x"), dlogits = c.f32("dlogits");
    const auto expected_logits = c.f32("logits"), expected_features = c.f32("features");
    const auto expected_grads = c.f32("dparams");
    const auto names = c.i64("names"), shapes = c.i64("shapes");
    const auto& table = net.parameters();
    ASSERT_EQ(static_cast<int64_t>(p.size()), net.num_params());
    ASSERT_EQ(table.size() * 5, shapes.size());
    for (size_t i = 0; i < table.size(); ++i) {
      std::string name;
      for (size_t k = 0; k < 64 && names[i * 64 + k]; ++k) name += static_cast<char>(names[i * 64 + k]);
      EXPECT_EQ(table[i].name, name) << "tensor " << i;
      const int64_t* s = &shapes[i * 5];
      ASSERT_EQ(table[i].shape.rank(), s[0]) << name;
      for (int d = 0; d < s[0]; ++d) EXPECT_EQ(table[i].shape[d], s[1 + d]) << name;
    }
    std::copy(p.begin(), p.end(), net.params());
    net.set_weights();
    std::fill(net.grads(), net.grads() + net.num_params(), test::kNaN);
    std::vector<float> logits(expected_logits.size(), test::kNaN);
    net.forward(x.data(), logits.data());
    const std::vector<float> features(net.features(), net.features() + expected_features.size());
    test::expect_close(logits, expected_logits, 1e-4, 1e-4 * max_abs(expected_logits.data(), std::ssize(logits)),
                       "logits");
    test::expect_close(features, expected_features, 1e-4,
                       1e-4 * max_abs(expected_features.data(), std::ssize(features)), "features");
    EXPECT_LT(test::relative_norm_error(logits, expected_logits), 1e-5);
    EXPECT_LT(test::relative_norm_error(features, expected_features), 1e-5);
    net.backward(dlogits.data());
    double worst = 0;
    std::string worst_name;
    for (const ParamInfo& info : table) {
      const int64_t n = info.shape.numel();
      const float* a = net.grads() + info.offset;
      const float* e = expected_grads.data() + info.offset;
      test::expect_close(a, e, static_cast<size_t>(n), 1e-4, 1e-4 * max_abs(e, n), "d " + info.name);
      const double rel = test::relative_norm_error(std::vector<float>(a, a + n), std::vector<float>(e, e + n));
      if (rel > worst) worst = rel, worst_name = info.name;
    }
    std::printf("%s: %zu tensors, worst relative norm error of a gradient %.2e (%s)\n", c.name.c_str(), table.size(),
                worst, worst_name.c_str());
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST(Classifier, FiveAdamStepsMatchPyTorchLosses) {
  for (const auto& c : test::reference_cases("classifier")) {
    if (c.name != "tiny") continue;
    int64_t batch = 0;
    const ClassifierConfig cfg = reference_config(c.f32("config"), batch);
    Classifier net(cfg, batch, true);
    const auto p = c.f32("params"), x = c.f32("x"), losses = c.f32("losses");
    std::vector<int32_t> labels;
    for (int64_t v : c.i64("labels")) labels.push_back(static_cast<int32_t>(v));
    const int64_t n = net.num_params(), classes = net.config().num_classes;
    std::copy(p.begin(), p.end(), net.params());
    std::vector<float> logits(static_cast<size_t>(batch * classes)), probs(logits.size());
    std::vector<float> m(static_cast<size_t>(n)), v(static_cast<size_t>(n));
    cpu::AdamConfig adam;
    adam.lr = 1e-2f;
    for (int step = 1; step <= 6; ++step) {
      net.set_weights();
      net.forward(x.data(), logits.data());
      const double loss = cpu::cross_entropy_forward(logits.data(), labels.data(), batch, classes, probs.data());
      const double expected = losses[static_cast<size_t>(step - 1)];
      EXPECT_NEAR(loss, expected, 1e-4 * expected) << "loss before step " << step;
      if (step == 6) break;
      cpu::cross_entropy_backward(probs.data(), probs.data(), labels.data(), batch, classes);
      net.backward(probs.data());
      cpu::adam_step(net.params(), net.grads(), m.data(), v.data(), n, adam, step);
    }
  }
}

// Central differences of the mean cross-entropy with respect to every parameter of a tiny network.
TEST(Classifier, GradientMatchesFiniteDifferences) {
  const ClassifierConfig cfg = tiny_config();
  const int64_t batch = 2;
  Classifier net(cfg, batch, true);
  net.init_weights(3);
  const auto x = test::random_uniform(static_cast<size_t>(batch * 7 * 5), 4, -1.0f, 1.0f);
  const std::vector<int32_t> labels{2, 0};
  std::vector<float> logits(static_cast<size_t>(batch * cfg.num_classes)), probs(logits.size());
  std::vector<float> params(net.params(), net.params() + net.num_params());
  auto loss = [&] {
    std::copy(params.begin(), params.end(), net.params());
    net.set_weights();
    net.forward(x.data(), logits.data());
    return cpu::cross_entropy_forward(logits.data(), labels.data(), batch, cfg.num_classes, probs.data());
  };
  loss();
  cpu::cross_entropy_backward(probs.data(), probs.data(), labels.data(), batch, cfg.num_classes);
  net.backward(probs.data());
  const std::vector<float> analytic(net.grads(), net.grads() + net.num_params());
  test::GradCheck opt;
  opt.eps = 1e-2;
  opt.rtol = 3e-2;
  opt.atol = 1e-3;
  opt.max_points = 400;  // every one of the tiny network's parameters
  ASSERT_LE(net.num_params(), 400);
  test::expect_gradient(params, analytic, loss, opt, "classifier parameters");
}

TEST(Classifier, SaveAndLoadRoundTrip) {
  const fs::path dir = temp_dir("model");
  Classifier net(tiny_config(), 3, true);
  net.init_weights(11);
  save_classifier(dir.string(), net, "# tiny\n");
  for (const char* f : {"config.json", "model.safetensors", "README.md"}) EXPECT_TRUE(fs::exists(dir / f)) << f;
  const ClassifierConfig read = read_classifier_config(dir.string());
  EXPECT_EQ(read.widths, tiny_config().widths);
  EXPECT_EQ(read.height, 7);
  EXPECT_EQ(read.width, 5);
  EXPECT_EQ(read.groups, 2);
  EXPECT_EQ(read.feature_dim, 3);
  EXPECT_EQ(read.norm_eps, tiny_config().norm_eps);
  auto loaded = load_classifier(dir.string(), 3);
  ASSERT_EQ(loaded->num_params(), net.num_params());
  EXPECT_TRUE(std::equal(net.params(), net.params() + net.num_params(), loaded->params()));
  const auto x = test::random_uniform(3 * 35, 5, -1.0f, 1.0f);
  std::vector<float> a(9), b(9);
  net.forward(x.data(), a.data());
  loaded->forward(x.data(), b.data());
  EXPECT_EQ(a, b);
  // Saving again replaces the directory and leaves nothing temporary beside it.
  net.init_weights(12);
  save_classifier(dir.string(), net);
  EXPECT_FALSE(fs::exists(dir / "README.md"));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.parent_path())) ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST(Classifier, BrokenOrMismatchedFilesGiveClearErrors) {
  const fs::path dir = temp_dir("broken");
  Classifier net(tiny_config(), 1, true);
  net.init_weights(1);
  save_classifier(dir.string(), net);
  const std::string config = (dir / "config.json").string(), weights = (dir / "model.safetensors").string();

  // A config whose widths do not match the stored tensors: every mismatch named.
  ClassifierConfig wider = tiny_config();
  wider.widths = {4, 8};
  Classifier other(wider, 1, false);
  test::expect_error([&] { load_classifier_weights(dir.string(), other); }, weights,
                     "tensor convs.1.weight has shape [4,4,3,3], but config.json (widths [4,8]");
  ClassifierConfig deeper = tiny_config();
  deeper.widths = {4, 4, 4};
  Classifier deep(deeper, 1, false);
  test::expect_error([&] { load_classifier_weights(dir.string(), deep); }, weights, "tensor convs.3.weight is missing");

  std::string text;
  {
    std::ifstream in(config);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [](const std::string& path, const std::string& s) { std::ofstream(path, std::ios::binary) << s; };
  write(config, "{\"height\": 7,");
  test::expect_error([&] { read_classifier_config(dir.string()); }, config, "not valid JSON");
  write(config, "{\"height\": 7, \"width\": 5}");
  test::expect_error([&] { read_classifier_config(dir.string()); }, config, "key \"channels\" is missing");
  std::string bad = text;
  bad.replace(bad.find("\"groups\": 2"), 11, "\"groups\": 3");
  write(config, bad);
  test::expect_error([&] { read_classifier_config(dir.string()); }, config, "widths[0]");
  bad = text;
  bad.replace(bad.find("\"groups\""), 8, "\"groupz\"");
  write(config, bad);
  test::expect_error([&] { read_classifier_config(dir.string()); }, config, "key \"groupz\" is not a classifier config key");
  fs::remove(config);
  test::expect_error([&] { read_classifier_config(dir.string()); }, config, "missing");

  // A truncated weights file.
  const auto size = fs::file_size(weights);
  fs::resize_file(weights, size - 5);
  test::expect_error([&] { load_classifier_weights(dir.string(), net); }, weights, "not a valid safetensors file");

  // Non-finite weights are refused when saving; a file that is not a classifier directory is kept.
  net.params()[3] = NAN;
  test::expect_error([&] { save_classifier(temp_dir("nan").string(), net); }, "nan", "convs.0.weight");
  const fs::path foreign = temp_dir("foreign");
  fs::create_directories(foreign);
  write((foreign / "notes.txt").string(), "keep me");
  net.params()[3] = 0.0f;
  test::expect_error([&] { save_classifier(foreign.string(), net); }, foreign.string(), "refusing to replace");
  EXPECT_TRUE(fs::exists(foreign / "notes.txt"));
}

TEST(Classifier, ClassifyPadsTheLastBatch) {
  const ClassifierConfig cfg = tiny_config();
  Classifier net(cfg, 4, false);
  net.init_weights(9);
  const int64_t n = 10, image = 35;
  const auto images = test::random_uniform(static_cast<size_t>(n * image), 6, -1.0f, 1.0f);
  std::vector<float> features(static_cast<size_t>(n * cfg.feature_dim), test::kNaN);
  std::vector<float> probs(static_cast<size_t>(n * cfg.num_classes), test::kNaN);
  classify(net, images.data(), n, features.data(), probs.data());
  // Image by image through a batch-1 network with the same weights.
  Classifier one(cfg, 1, false);
  std::copy(net.params(), net.params() + net.num_params(), one.params());
  one.set_weights();
  std::vector<float> logits(static_cast<size_t>(cfg.num_classes));
  for (int64_t i = 0; i < n; ++i) {
    one.forward(images.data() + i * image, logits.data());
    double sum = 0;
    float top = -1e30f;
    for (int64_t k = 0; k < cfg.num_classes; ++k) {
      sum += probs[static_cast<size_t>(i * cfg.num_classes + k)];
      top = std::max(top, logits[static_cast<size_t>(k)]);
    }
    EXPECT_NEAR(sum, 1.0, 1e-6) << "image " << i;
    for (int64_t k = 0; k < cfg.feature_dim; ++k)
      EXPECT_NEAR(features[static_cast<size_t>(i * cfg.feature_dim + k)], one.features()[k], 1e-5) << "image " << i;
  }
  classify(net, images.data(), n, nullptr, nullptr);  // nothing requested: allowed
}

TEST(Classifier, AdamStepsReduceTheLossOnFashionMnist) {
  const Dataset data = load_fashion_mnist(kFashionMnistDir, Split::train);
  const int64_t batch = 64, subset = 256, steps = 40;
  Dataset small = data;
  small.n = subset;
  small.images.resize(static_cast<size_t>(subset * data.image_size()));
  small.labels.resize(static_cast<size_t>(subset));
  Classifier net(ClassifierConfig{}, batch, true);
  net.init_weights(1);
  const int64_t n = net.num_params();
  std::vector<float> x(static_cast<size_t>(batch * data.image_size())), logits(static_cast<size_t>(batch * 10));
  std::vector<float> m(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  Batcher batcher(small, batch, 7, false);
  cpu::AdamConfig adam;
  adam.lr = 2e-3f;
  double first = 0, last = 0;
  for (int64_t step = 1; step <= steps; ++step) {
    batcher.next(x.data(), labels.data());
    net.forward(x.data(), logits.data());
    const double loss = cpu::cross_entropy_forward(logits.data(), labels.data(), batch, 10, logits.data());
    if (step <= 4) first += loss / 4;
    if (step > steps - 4) last += loss / 4;
    cpu::cross_entropy_backward(logits.data(), logits.data(), labels.data(), batch, 10);
    net.backward(logits.data());
    cpu::adam_step(net.params(), net.grads(), m.data(), v.data(), n, adam, step);
    net.set_weights();
  }
  std::printf("mean loss of the first 4 steps %.4f, of the last 4 %.4f\n", first, last);
  EXPECT_GT(first, 1.8);  // about log(10) at the start
  EXPECT_LT(last, 0.6 * first);
}

TEST(Classifier, ForwardAndBackwardAllocateNothing) {
  const int64_t batch = 3;
  Classifier net(ClassifierConfig{}, batch, true);
  net.init_weights(5);
  const auto x = test::random_uniform(static_cast<size_t>(batch * 28 * 28), 1, -1.0f, 1.0f);
  const auto dlogits = test::random_normal(static_cast<size_t>(batch * 10), 2);
  std::vector<float> logits(dlogits.size());
  net.forward(x.data(), logits.data());
  net.backward(dlogits.data());
  test::start_heap_count();
  for (int i = 0; i < 3; ++i) {
    net.set_weights();
    net.forward(x.data(), logits.data());
    net.backward(dlogits.data());
  }
  const test::HeapCount heap = test::stop_heap_count();
  EXPECT_EQ(heap.ours, 0) << "heap allocations outside oneDNN's execute() in forward/backward";
  EXPECT_LE(heap.dnnl_max_bytes, 4096) << "oneDNN allocated a buffer";
}

TEST(Classifier, TrainingShapesUseNoReferenceKernels) {
  Classifier net(ClassifierConfig{}, 128, true);
  size_t n = 0;
  for (const auto& r : cpu::created_primitives()) {
    ++n;
    EXPECT_FALSE(cpu::is_reference_implementation(r.implementation)) << r.what << " uses " << r.implementation;
  }
  EXPECT_GE(n, 5u * 3 + 2u * 3);  // every conv and linear, forward and both backwards
}

}  // namespace
}  // namespace ddpm
