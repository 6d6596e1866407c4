// UNet2D: the diffusers parameter table (names, shapes, order, counts), the whole network's output
// and every parameter gradient against a float64 PyTorch reference, five Adam steps, config
// rejection, initialisation, and no heap allocation in forward/backward.
#include "ddpm/nn/unet.h"

#include <gtest/gtest.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "ddpm/kernels/mse.h"
#include "ddpm/kernels/optimizer.h"
#include "kernels/cpu/dnnl_context.h"
#include "heap_counter.h"
#include "test_support.h"

namespace ddpm {
namespace {

std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (int i = 0; i < s.rank(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// The configurations of tests/reference/ops/unet.py (CONFIGS), by case name.
UNet2DConfig reference_config(const std::string& name) {
  UNet2DConfig c;
  c.dropout = 0.0f;
  if (name == "sq28") {
    c.sample_height = c.sample_width = 28;
    c.in_channels = c.out_channels = 1;
    c.block_out_channels = {8, 16, 16};
    c.layers_per_block = 1;
    c.norm_num_groups = 4;
    c.norm_eps = 1e-6f;
    c.down_block_types = {"DownBlock2D", "AttnDownBlock2D", "DownBlock2D"};
    c.up_block_types = {"UpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
    c.downsample_padding = 0;
    c.flip_sin_to_cos = false;
    c.freq_shift = 1.0f;
  } else if (name == "rect8x12") {
    c.sample_height = 8;
    c.sample_width = 12;
    c.in_channels = 3;
    c.out_channels = 2;
    c.block_out_channels = {8, 16};
    c.layers_per_block = 2;
    c.norm_num_groups = 4;
    c.norm_eps = 1e-5f;
    c.down_block_types = {"AttnDownBlock2D", "DownBlock2D"};
    c.up_block_types = {"UpBlock2D", "AttnUpBlock2D"};
    c.downsample_padding = 1;
    c.flip_sin_to_cos = true;
    c.freq_shift = 0.0f;
    c.num_class_embeds = 5;
  } else {
    throw std::invalid_argument("no reference config " + name);
  }
  return c;
}

TEST(UNet2D, Cifar10ParameterTableIsDiffusers) {
  UNet2D net(named_unet_config("cifar10-ddpm"), 1, Precision::fp32, false);
  const auto path = std::filesystem::path(__FILE__).parent_path() / "cifar10_state_dict.txt";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::vector<std::string> expected;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) expected.push_back(line);
  const auto& params = net.parameters();
  ASSERT_EQ(expected.size(), 328u);
  ASSERT_EQ(params.size(), expected.size());
  int64_t offset = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].name + " " + shape_text(params[i].shape), expected[i]) << "tensor " << i;
    EXPECT_EQ(params[i].offset, offset) << params[i].name;
    offset += params[i].shape.numel();
  }
  EXPECT_EQ(net.parameter_count(), 35746307);
  EXPECT_EQ(offset, 35746307);
  EXPECT_EQ(net.parameter("mid_block.resnets.0.time_emb_proj.bias").shape, (Shape{256}));
  EXPECT_THROW(net.parameter("mid_block.resnets.2.conv1.weight"), std::out_of_range);
}

TEST(UNet2D, FashionMnistParameterCounts) {
  // The peer benchmark's diffusers UNet2DModel counts for the same configurations.
  EXPECT_EQ(UNet2D(named_unet_config("fmnist-small"), 1, Precision::fp32, false).parameter_count(), 1623169);
  EXPECT_EQ(UNet2D(named_unet_config("fmnist-64"), 1, Precision::fp32, false).parameter_count(), 6801409);
}

TEST(UNet2D, RejectsUnsupportedConfigsNamingTheKey) {
  auto message = [](const UNet2DConfig& c) -> std::string {
    try {
      UNet2D net(c, 1, Precision::fp32, false);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(accepted)";
  };
  UNet2DConfig c = reference_config("sq28");
  c.resnet_time_scale_shift = "scale_shift";
  EXPECT_NE(message(c).find("resnet_time_scale_shift"), std::string::npos) << message(c);
  c = reference_config("sq28");
  c.down_block_types[1] = "CrossAttnDownBlock2D";
  EXPECT_NE(message(c).find("down_block_types[1]"), std::string::npos) << message(c);
  c = reference_config("sq28");
  c.sample_height = 30;  // 30 -> 15 -> 8 would not come back to 30
  EXPECT_NE(message(c).find("sample_size"), std::string::npos) << message(c);
  EXPECT_NE(message(c).find("divisible by 4"), std::string::npos) << message(c);
  c = reference_config("sq28");
  c.block_out_channels = {8, 16, 18};
  EXPECT_NE(message(c).find("block_out_channels"), std::string::npos) << message(c);
}

double max_abs(const float* v, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(v[i])));
  return m;
}

// Per tensor: |ours - torch| <= 1e-4 |torch| + 1e-4 scale, scale = max|torch| over the tensor (fp32
// against float64 through the whole network). to_k.bias's gradient is zero in exact arithmetic (a
// key bias adds the same score to every key of a query, which the softmax removes), so ours is
// rounding noise; it is judged against the scale of the matching to_k.weight gradient.
void expect_tensor_close(const float* actual, const float* expected, int64_t n, double scale, const std::string& what) {
  test::expect_close(actual, expected, static_cast<size_t>(n), 1e-4, 1e-4 * scale, what);
}

TEST(UNet2D, OutputAndEveryGradientMatchPyTorch) {
  for (const auto& c : test::reference_cases("unet")) {
    SCOPED_TRACE(c.name);
    const UNet2DConfig cfg = reference_config(c.name);
    const auto x = c.f32("x"), t = c.f32("timesteps"), p = c.f32("params"), d_eps = c.f32("d_eps");
    const auto expected_eps = c.f32("eps"), expected_grads = c.f32("dparams");
    const auto names = c.i64("names"), shapes = c.i64("shapes");
    const int64_t batch = static_cast<int64_t>(t.size());
    UNet2D net(cfg, batch, Precision::fp32, true);
    const auto& table = net.parameters();
    ASSERT_EQ(static_cast<int64_t>(p.size()), net.parameter_count());
    ASSERT_EQ(table.size() * 5, shapes.size());
    for (size_t i = 0; i < table.size(); ++i) {
      std::string name;
      for (size_t k = 0; k < 96 && names[i * 96 + k]; ++k) name += static_cast<char>(names[i * 96 + k]);
      EXPECT_EQ(table[i].name, name) << "tensor " << i;
      const int64_t* s = &shapes[i * 5];
      ASSERT_EQ(table[i].shape.rank(), s[0]) << name;
      for (int d = 0; d < s[0]; ++d) EXPECT_EQ(table[i].shape[d], s[1 + d]) << name;
    }
    std::copy(p.begin(), p.end(), net.params());
    net.set_weights();
    std::vector<float> eps(expected_eps.size(), test::kNaN);
    std::fill(net.grads(), net.grads() + net.parameter_count(), test::kNaN);
    const auto labels64 = c.i64("labels");
    const std::vector<int32_t> labels(labels64.begin(), labels64.end());
    net.forward(x.data(), t.data(), eps.data(), 7, cfg.num_class_embeds ? labels.data() : nullptr);
    const int64_t n_eps = static_cast<int64_t>(eps.size());
    expect_tensor_close(eps.data(), expected_eps.data(), n_eps, max_abs(expected_eps.data(), n_eps), "eps");
    const double eps_err = test::relative_norm_error(eps, expected_eps);
    EXPECT_LT(eps_err, 1e-5);
    net.backward(d_eps.data());
    double worst = 0;
    std::string worst_name;
    for (size_t k = 0; k < table.size(); ++k) {
      const ParamInfo& info = table[k];
      const float* a = net.grads() + info.offset;
      const float* e = expected_grads.data() + info.offset;
      const bool key_bias = info.name.size() > 10 && info.name.substr(info.name.size() - 10) == ".to_k.bias";
      const ParamInfo& ref = key_bias ? table[k - 1] : info;  // to_k.weight precedes to_k.bias
      expect_tensor_close(a, e, info.shape.numel(), max_abs(expected_grads.data() + ref.offset, ref.shape.numel()),
                          "d " + info.name);
      if (key_bias) continue;
      double num = 0, den = 0;
      for (int64_t i = 0; i < info.shape.numel(); ++i) {
        num += (double(a[i]) - e[i]) * (double(a[i]) - e[i]);
        den += double(e[i]) * e[i];
      }
      const double rel = std::sqrt(num / std::max(den, 1e-300));
      if (rel > worst) worst = rel, worst_name = info.name;
    }
    std::printf("%s: eps relative norm error %.2e; %zu tensors, worst per-tensor relative norm error of a gradient "
                "(to_k.bias aside) %.2e (%s)\n", c.name.c_str(), eps_err, table.size(), worst, worst_name.c_str());
  }
}

// A class-conditional U-Net needs a valid label per image, and the label changes only its image.
TEST(UNet2D, ClassLabelsAreCheckedAndConditionTheirImageOnly) {
  const UNet2DConfig cfg = reference_config("rect8x12");  // num_class_embeds 5
  UNet2D net(cfg, 2, Precision::fp32, false);
  net.init_weights(3);
  // Make the table matter at once (init keeps it small, conv_out near zero).
  const ParamInfo& table = net.parameter("class_embedding.weight");
  const auto big = test::random_normal(static_cast<size_t>(table.shape.numel()), 5);
  std::copy(big.begin(), big.end(), net.params() + table.offset);
  const ParamInfo& out = net.parameter("conv_out.weight");
  const auto w = test::random_normal(static_cast<size_t>(out.shape.numel()), 6, 0.1f);
  std::copy(w.begin(), w.end(), net.params() + out.offset);
  net.set_weights();
  const size_t per = 8 * 12 * 3, per_out = 8 * 12 * 2;
  const auto x = test::random_normal(2 * per, 7);
  const std::vector<float> t{10.0f, 10.0f};
  std::vector<float> a(2 * per_out), b(2 * per_out);
  const std::vector<int32_t> first{0, 1}, second{4, 1};
  net.forward(x.data(), t.data(), a.data(), 0, first.data());
  net.forward(x.data(), t.data(), b.data(), 0, second.data());
  EXPECT_FALSE(std::equal(a.begin(), a.begin() + per_out, b.begin())) << "the class did not change image 0";
  EXPECT_TRUE(std::equal(a.begin() + per_out, a.end(), b.begin() + per_out)) << "image 1 changed with image 0's class";
  EXPECT_THROW(net.forward(x.data(), t.data(), a.data(), 0), std::invalid_argument);
  const std::vector<int32_t> bad{0, 5};
  try {
    net.forward(x.data(), t.data(), a.data(), 0, bad.data());
    ADD_FAILURE() << "label 5 of 5 classes accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("class label 5 of image 1 is outside [0, 5)"), std::string::npos) << e.what();
  }
}

TEST(UNet2D, FiveAdamStepsMatchPyTorchLosses) {
  for (const auto& c : test::reference_cases("unet")) {
    if (c.name != "sq28") continue;
    const auto x = c.f32("x"), t = c.f32("timesteps"), p = c.f32("params"), noise = c.f32("noise");
    const auto losses = c.f32("losses");
    UNet2D net(reference_config(c.name), static_cast<int64_t>(t.size()), Precision::fp32, true);
    const int64_t n = net.parameter_count();
    std::copy(p.begin(), p.end(), net.params());
    std::vector<float> eps(noise.size()), d_eps(noise.size()), m(static_cast<size_t>(n)), v(static_cast<size_t>(n));
    const int64_t count = static_cast<int64_t>(eps.size());
    for (int step = 1; step <= 6; ++step) {
      net.set_weights();
      net.forward(x.data(), t.data(), eps.data(), static_cast<uint64_t>(step));
      const double loss = cpu::mse_forward(eps.data(), noise.data(), count);
      EXPECT_NEAR(loss, losses[static_cast<size_t>(step - 1)], 1e-4 * losses[static_cast<size_t>(step - 1)])
          << "loss before step " << step;
      std::printf("step %d: loss %.8f (torch %.8f)\n", step, loss, losses[static_cast<size_t>(step - 1)]);
      if (step == 6) break;
      cpu::mse_backward(d_eps.data(), eps.data(), noise.data(), count);
      net.backward(d_eps.data());
      cpu::adam_step(net.params(), net.grads(), m.data(), v.data(), n, cpu::AdamConfig{}, step);
    }
  }
}

TEST(UNet2D, ForwardAndBackwardAllocateNothing) {
  UNet2DConfig cfg = reference_config("sq28");
  cfg.dropout = 0.1f;
  const int64_t batch = 3;
  UNet2D net(cfg, batch, Precision::fp32, true);
  net.init_weights(5);
  const auto x = test::random_normal(static_cast<size_t>(batch * 28 * 28), 1);
  const std::vector<float> t{0, 500, 999};
  std::vector<float> eps(x.size()), d_eps = test::random_normal(x.size(), 2);
  net.forward(x.data(), t.data(), eps.data(), 1);
  net.backward(d_eps.data());
  test::start_heap_count();
  for (uint64_t s = 2; s < 5; ++s) {
    net.set_weights();
    net.forward(x.data(), t.data(), eps.data(), s);
    net.backward(d_eps.data());
  }
  const test::HeapCount heap = test::stop_heap_count();
  EXPECT_EQ(heap.ours, 0) << "heap allocations outside oneDNN's execute() in forward/backward";
  EXPECT_LE(heap.dnnl_max_bytes, 4096) << "oneDNN allocated a buffer";
}

TEST(UNet2D, DropoutFollowsTheSeedAndIsOffInInference) {
  UNet2DConfig cfg = reference_config("sq28");
  cfg.dropout = 0.3f;
  const auto x = test::random_normal(2 * 28 * 28, 1);
  const std::vector<float> t{10, 20};
  std::vector<float> a(x.size()), b(x.size()), c(x.size()), d(x.size());
  UNet2D train(cfg, 2, Precision::fp32, true), infer(cfg, 2, Precision::fp32, false);
  train.init_weights(3);
  std::copy(train.params(), train.params() + train.parameter_count(), infer.params());
  // init makes conv2 ~0, which would hide dropout; use O(1) weights instead.
  auto w = test::random_normal(static_cast<size_t>(train.parameter_count()), 9, 0.2f);
  std::copy(w.begin(), w.end(), train.params());
  std::copy(w.begin(), w.end(), infer.params());
  train.set_weights();
  infer.set_weights();
  train.forward(x.data(), t.data(), a.data(), 1);
  train.forward(x.data(), t.data(), b.data(), 1);
  train.forward(x.data(), t.data(), c.data(), 2);
  infer.forward(x.data(), t.data(), d.data(), 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<float> e(x.size());
  infer.forward(x.data(), t.data(), e.data(), 2);
  EXPECT_EQ(d, e);
}

// An inference U-Net overlays each block's intermediates: it must compute exactly what a training
// U-Net without dropout computes (the same kernels on the same inputs), in much less memory, and
// refuse a backward it can no longer do.
TEST(UNet2D, InferencePlanOverlaysBuffersAndComputesTheSame) {
  for (const char* name : {"sq28", "rect8x12"}) {
    UNet2DConfig cfg = reference_config(name);
    cfg.dropout = 0.0f;
    const int64_t batch = 3, in = batch * cfg.sample_height * cfg.sample_width * cfg.in_channels;
    const int64_t out = batch * cfg.sample_height * cfg.sample_width * cfg.out_channels;
    const auto x = test::random_normal(static_cast<size_t>(in), 1);
    const std::vector<float> t{3, 400, 999};
    UNet2D train(cfg, batch, Precision::fp32, true), infer(cfg, batch, Precision::fp32, false);
    const auto w = test::random_normal(static_cast<size_t>(train.parameter_count()), 5, 0.2f);
    std::copy(w.begin(), w.end(), train.params());
    std::copy(w.begin(), w.end(), infer.params());
    train.set_weights();
    infer.set_weights();
    std::vector<float> a(static_cast<size_t>(out)), b(a.size()), c(a.size());
    const std::vector<int32_t> classes{4, 0, 4};  // rect8x12 is class-conditional; sq28 ignores them
    train.forward(x.data(), t.data(), a.data(), 1, classes.data());
    infer.forward(x.data(), t.data(), b.data(), 1, classes.data());
    infer.forward(x.data(), t.data(), c.data(), 1, classes.data());  // a second pass reads no stale overlay
    EXPECT_EQ(a, b) << name;
    EXPECT_EQ(b, c) << name;
    EXPECT_LT(infer.activation_bytes() * 2, train.activation_bytes()) << name;
    std::printf("%s: activation memory %zu (inference) vs %zu bytes (training)\n", name, infer.activation_bytes(),
                train.activation_bytes());
    const std::vector<float> d_eps(a.size(), 1.0f);
    EXPECT_THROW(infer.backward(d_eps.data()), std::logic_error);
  }
}

// bf16 operands with fp32 accumulation through the whole network: output and gradient norms within
// a few bf16 roundings of fp32.
TEST(UNet2D, Bf16MatchesFp32) {
  const UNet2DConfig cfg = reference_config("rect8x12");
  const int64_t batch = 2, n = batch * 8 * 12;
  const auto x = test::random_normal(static_cast<size_t>(n * 3), 1), d_eps = test::random_normal(static_cast<size_t>(n * 2), 2);
  const std::vector<float> t{5, 700};
  std::vector<std::vector<float>> eps(2, std::vector<float>(d_eps.size())), grads;
  for (int i = 0; i < 2; ++i) {
    UNet2D net(cfg, batch, i == 0 ? Precision::fp32 : Precision::bf16, true);
    const auto w = test::random_normal(static_cast<size_t>(net.parameter_count()), 3, 0.2f);
    std::copy(w.begin(), w.end(), net.params());
    net.set_weights();
    const std::vector<int32_t> classes{1, 3};  // rect8x12 is class-conditional
    net.forward(x.data(), t.data(), eps[static_cast<size_t>(i)].data(), 1, classes.data());
    net.backward(d_eps.data());
    grads.emplace_back(net.grads(), net.grads() + net.parameter_count());
  }
  EXPECT_LT(test::relative_norm_error(eps[1], eps[0]), 2e-2);
  EXPECT_LT(test::relative_norm_error(grads[1], grads[0]), 5e-2);
  EXPECT_GT(test::relative_norm_error(eps[1], eps[0]), 0.0) << "bf16 mode did not change the arithmetic";
  std::printf("bf16 vs fp32: eps %.2e, grads %.2e (relative norm error)\n", test::relative_norm_error(eps[1], eps[0]),
              test::relative_norm_error(grads[1], grads[0]));
}

TEST(UNet2D, InitWeightsFollowsDdpm) {
  UNet2D net(named_unet_config("fmnist-small"), 1, Precision::fp32, false);
  net.init_weights(1);
  for (const ParamInfo& p : net.parameters()) {
    const float* v = net.params() + p.offset;
    const int64_t n = p.shape.numel();
    double max_abs = 0, sum_sq = 0;
    for (int64_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::fabs(double(v[i]))), sum_sq += double(v[i]) * v[i];
    const std::string& s = p.name;
    auto ends = [&](const std::string& suf) { return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0; };
    if (ends(".bias")) {
      EXPECT_EQ(max_abs, 0.0) << s;
    } else if (p.shape.rank() == 1) {
      EXPECT_EQ(sum_sq, double(n)) << s;  // all ones
    } else {
      const int64_t area = p.shape.rank() == 4 ? p.shape[2] * p.shape[3] : 1;
      const double limit = std::sqrt(3.0 / (0.5 * double((p.shape[0] + p.shape[1]) * area)));
      if (ends(".conv2.weight") || ends(".to_out.0.weight") || s == "conv_out.weight") {
        EXPECT_LE(max_abs, 1e-5 * limit) << s;
      } else {
        EXPECT_LE(max_abs, limit) << s;
        EXPECT_NEAR(std::sqrt(sum_sq / double(n)), limit / std::sqrt(3.0), 0.2 * limit) << s;  // uniform's rms
      }
    }
  }
}

// Rough speed of one training step's forward and backward (not run by ctest):
//   OMP_NUM_THREADS=2 build/tests/test_nn_unet --gtest_also_run_disabled_tests --gtest_filter='*Timing*'
TEST(UNet2D, DISABLED_Timing) {
  for (auto [name, batch] : {std::pair<const char*, int64_t>{"fmnist-small", 64}, {"cifar10-ddpm", 16}}) {
    const UNet2DConfig cfg = named_unet_config(name);
    UNet2D net(cfg, batch, Precision::fp32, true);
    net.init_weights(1);
    const size_t n = static_cast<size_t>(batch * cfg.sample_height * cfg.sample_width * cfg.in_channels);
    const auto x = test::random_normal(n, 1), d_eps = test::random_normal(n, 2);
    std::vector<float> t(static_cast<size_t>(batch)), eps(n);
    for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>((i * 37) % 1000);
    // Process CPU time as well as wall time: on a shared machine CPU seconds / threads is the
    // better estimate of the uncontended wall time.
    auto cpu_now = [] {
      timespec ts;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
    };
    double fwd = 1e30, bwd = 1e30, cfwd = 1e30, cbwd = 1e30;
    for (int it = 0; it < 4; ++it) {
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_now();
      net.forward(x.data(), t.data(), eps.data(), static_cast<uint64_t>(it));
      const auto t1 = std::chrono::steady_clock::now();
      const double c1 = cpu_now();
      net.backward(d_eps.data());
      const auto t2 = std::chrono::steady_clock::now();
      const double c2 = cpu_now();
      if (it == 0) continue;  // warm-up
      fwd = std::min(fwd, std::chrono::duration<double>(t1 - t0).count());
      bwd = std::min(bwd, std::chrono::duration<double>(t2 - t1).count());
      cfwd = std::min(cfwd, c1 - c0);
      cbwd = std::min(cbwd, c2 - c1);
    }
    std::printf("%s batch %ld fp32: wall forward %.3f s, backward %.3f s (best of 3), %.1f img/s; CPU forward %.3f s, "
                "backward %.3f s; forward %.2f GFLOP\n",
                name, static_cast<long>(batch), fwd, bwd, static_cast<double>(batch) / (fwd + bwd), cfwd, cbwd,
                net.forward_flops() * 1e-9);
  }
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM", 0) == 0) std::printf("%s\n", line.c_str());
}

}  // namespace
}  // namespace ddpm
