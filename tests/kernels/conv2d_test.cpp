// Conv2d (oneDNN): finite differences, PyTorch, bf16 against fp32, and no reference kernels.
#include "ddpm/kernels/conv2d.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>

#include "ddpm/kernels/dnnl_info.h"
#include "test_support.h"

namespace ddpm {
namespace {

using cpu::Conv2d;
using cpu::Conv2dShape;

using test::kNaN;
using test::relative_norm_error;

struct Variant {
  const char* name;
  int kernel, stride, pad_before, pad_after;
};
constexpr Variant kVariants[] = {
    {"3x3 s1 p1", 3, 1, 1, 1}, {"3x3 s2 p(0,1)", 3, 2, 0, 1}, {"1x1 p0", 1, 1, 0, 0}};

Conv2dShape make_shape(int64_t n, int64_t h, int64_t w, int64_t cin, int64_t cout, const Variant& v) {
  return {n, h, w, cin, cout, v.kernel, v.stride, v.pad_before, v.pad_after};
}

size_t numel(const Shape& s) { return static_cast<size_t>(s.numel()); }

// Outputs start as NaN so that a gradient the op fails to overwrite shows up.
struct Grads {
  std::vector<float> dx, dweight, dbias;
  explicit Grads(const Conv2d& conv)
      : dx(numel(conv.input_shape()), kNaN), dweight(numel(conv.weight_shape()), kNaN),
        dbias(static_cast<size_t>(conv.shape().out_channels), kNaN) {}
};

TEST(Conv2d, ShapesAndFlops) {
  const Conv2d down(make_shape(3, 5, 7, 3, 4, kVariants[1]), Precision::fp32);
  EXPECT_EQ(down.input_shape(), (Shape{3, 5, 7, 3}));
  EXPECT_EQ(down.output_shape(), (Shape{3, 2, 3, 4}));  // (5+0+1-3)/2+1, (7+0+1-3)/2+1
  EXPECT_EQ(down.weight_shape(), (Shape{4, 3, 3, 3}));
  EXPECT_DOUBLE_EQ(down.forward_flops(), 2.0 * 3 * 2 * 3 * 4 * 3 * 9);
  const Conv2d even(make_shape(1, 6, 8, 3, 4, kVariants[1]), Precision::fp32);
  EXPECT_EQ(even.output_shape(), (Shape{1, 3, 4, 4}));
}

TEST(Conv2d, RejectsBadShapesNamingThem) {
  try {
    Conv2d bad(Conv2dShape{1, 1, 1, 3, 4, 3, 1, 0, 0}, Precision::fp32);
    FAIL() << "a 1x1 input with an unpadded 3x3 kernel was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d [N=1,H=1,W=1,C=3->4,k3s1p0,0]"), std::string::npos) << e.what();
  }
}

// Convolution is linear in each argument, so central differences are exact up to rounding and a
// large step keeps the rounding of the fp32 objective small relative to the difference.
TEST(Conv2d, GradientMatchesFiniteDifferences) {
  test::GradCheck opt;
  opt.eps = 0.5;
  opt.rtol = 1e-3;
  opt.atol = 1e-3;
  uint64_t seed = 100;
  for (const Variant& v : kVariants) {
    std::vector<std::array<int64_t, 3>> sizes = {{1, 5, 7}, {3, 5, 7}};
    if (v.stride == 2) sizes.push_back({1, 6, 8}), sizes.push_back({3, 6, 8});
    for (const auto& [n, h, w] : sizes) {
      const Conv2dShape s = make_shape(n, h, w, 3, 4, v);
      const std::string what = std::string("conv2d ") + v.name + " " + s.str();
      Conv2d conv(s, Precision::fp32);
      auto x = test::random_normal(numel(conv.input_shape()), ++seed);
      auto weight = test::random_normal(numel(conv.weight_shape()), ++seed, 0.5f);
      auto bias = test::random_normal(4, ++seed);
      const auto dy = test::random_normal(numel(conv.output_shape()), ++seed);
      std::vector<float> y(numel(conv.output_shape()));
      Grads g(conv);
      conv.set_weights(weight.data());
      conv.backward(x.data(), dy.data(), g.dx.data(), g.dweight.data(), g.dbias.data());
      const auto loss = [&] {
        conv.set_weights(weight.data());
        conv.forward(x.data(), bias.data(), y.data());
        return test::weighted_sum(y.data(), dy.data(), y.size());
      };
      test::expect_gradient(x, g.dx, loss, opt, what + " dx");
      test::expect_gradient(weight, g.dweight, loss, opt, what + " dweight");
      test::expect_gradient(bias, g.dbias, loss, opt, what + " dbias");
    }
  }
}

struct RefCase {
  Conv2dShape shape;
  std::vector<float> x, weight, bias, y, dy, dx, dweight, dbias;
};

RefCase load(const test::ReferenceCase& c) {
  const auto xs = c.shape("x"), ws = c.shape("weight");
  const auto cfg = c.i64("config");
  RefCase r;
  r.shape = {xs[0], xs[1], xs[2], xs[3], ws[0], static_cast<int>(cfg[0]), static_cast<int>(cfg[1]),
             static_cast<int>(cfg[2]), static_cast<int>(cfg[3])};
  r.x = c.f32("x"), r.weight = c.f32("weight"), r.bias = c.f32("bias"), r.y = c.f32("y");
  r.dy = c.f32("dy"), r.dx = c.f32("dx"), r.dweight = c.f32("dweight"), r.dbias = c.f32("dbias");
  return r;
}

// fp32 tolerance: rtol 1e-5, plus atol 1e-7 * (terms in the reduction) + 1e-6 for cancellation:
// inputs are O(1) (weights scaled by 1/sqrt(fan_in)), so fp32 sums of n terms carry absolute
// errors of a few 6e-8*sqrt(n), which 1e-7*n bounds for every n >= 9.
TEST(Conv2d, MatchesPyTorch) {
  for (const auto& c : test::reference_cases("conv2d")) {
    const RefCase r = load(c);
    const Conv2dShape& s = r.shape;
    Conv2d conv(s, Precision::fp32);
    ASSERT_EQ(numel(conv.output_shape()), r.y.size()) << c.name;
    std::vector<float> y(r.y.size(), kNaN);
    Grads g(conv);
    conv.set_weights(r.weight.data());
    conv.forward(r.x.data(), r.bias.data(), y.data());
    conv.backward(r.x.data(), r.dy.data(), g.dx.data(), g.dweight.data(), g.dbias.data());
    const double k2 = static_cast<double>(s.kernel) * s.kernel;
    const double n_y = s.in_channels * k2, n_dx = s.out_channels * k2;
    const double n_dw = static_cast<double>(s.batch) * s.out_height() * s.out_width();
    test::expect_close(y, r.y, 1e-5, 1e-7 * n_y + 1e-6, c.name + " y");
    test::expect_close(g.dx, r.dx, 1e-5, 1e-7 * n_dx + 1e-6, c.name + " dx");
    test::expect_close(g.dweight, r.dweight, 1e-5, 1e-7 * n_dw + 1e-6, c.name + " dweight");
    test::expect_close(g.dbias, r.dbias, 1e-5, 1e-7 * n_dw + 1e-6, c.name + " dbias");
  }
}

// bf16 rounds x, weight and dy to 8 significant bits (relative error 2^-9 each) and accumulates in
// fp32: the relative error of each result's norm is a few 1e-3; we require 1e-2.
TEST(Conv2d, Bf16MatchesFp32) {
  for (const auto& c : test::reference_cases("conv2d")) {
    const RefCase r = load(c);
    Conv2d conv(r.shape, Precision::bf16);
    std::vector<float> y(r.y.size(), kNaN);
    Grads g(conv);
    conv.set_weights(r.weight.data());
    conv.forward(r.x.data(), r.bias.data(), y.data());
    conv.backward(r.x.data(), r.dy.data(), g.dx.data(), g.dweight.data(), g.dbias.data());
    EXPECT_LT(relative_norm_error(y, r.y), 1e-2) << c.name << " y";
    EXPECT_LT(relative_norm_error(g.dx, r.dx), 1e-2) << c.name << " dx";
    EXPECT_LT(relative_norm_error(g.dweight, r.dweight), 1e-2) << c.name << " dweight";
    EXPECT_LT(relative_norm_error(g.dbias, r.dbias), 1e-2) << c.name << " dbias";
    // And it is really bf16: the results differ from fp32 by more than fp32 rounding.
    EXPECT_GT(relative_norm_error(y, r.y), 1e-5) << c.name << " y";
  }
}

TEST(Conv2d, NullBiasAndSkippedGradients) {
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    const Conv2dShape s = make_shape(2, 5, 7, 3, 4, kVariants[0]);
    Conv2d conv(s, p);
    const auto x = test::random_normal(numel(conv.input_shape()), 7);
    const auto weight = test::random_normal(numel(conv.weight_shape()), 8);
    const auto dy = test::random_normal(numel(conv.output_shape()), 9);
    const std::vector<float> zeros(4, 0.0f);
    std::vector<float> y0(dy.size()), y1(dy.size());
    conv.set_weights(weight.data());
    conv.forward(x.data(), nullptr, y0.data());
    conv.forward(x.data(), zeros.data(), y1.data());
    EXPECT_EQ(y0, y1) << precision_name(p);
    Grads all(conv), some(conv);
    conv.backward(x.data(), dy.data(), all.dx.data(), all.dweight.data(), all.dbias.data());
    conv.backward(x.data(), dy.data(), nullptr, some.dweight.data(), nullptr);
    EXPECT_EQ(all.dweight, some.dweight) << precision_name(p);
  }
}

// An inference convolution (no backward primitives) computes the same forward within rounding
// (oneDNN may pick another kernel for forward_inference) and refuses a backward.
TEST(Conv2d, InferenceOnlyMatchesAndRefusesBackward) {
  for (const auto& variant : kVariants) {
    const Conv2dShape s = make_shape(2, 6, 8, 5, 7, variant);
    Conv2d train(s, Precision::fp32), infer(s, Precision::fp32, /*with_backward=*/false);
    const auto x = test::random_normal(numel(train.input_shape()), 1);
    const auto weight = test::random_normal(numel(train.weight_shape()), 2);
    const auto bias = test::random_normal(7, 3);
    std::vector<float> a(numel(train.output_shape())), b(a.size());
    train.set_weights(weight.data());
    infer.set_weights(weight.data());
    train.forward(x.data(), bias.data(), a.data());
    infer.forward(x.data(), bias.data(), b.data());
    EXPECT_LT(test::relative_norm_error(b, a), 1e-6) << s.str();
    Grads g(infer);
    EXPECT_THROW(infer.backward(x.data(), a.data(), g.dx.data(), g.dweight.data(), g.dbias.data()),
                 std::logic_error);
  }
}

// backward-data keeps its own weight layout, refreshed after set_weights: a second set_weights must
// reach both forward and backward.
TEST(Conv2d, SetWeightsReachesForwardAndBackward) {
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    for (const Variant& v : kVariants) {
      const Conv2dShape s = make_shape(2, 6, 5, 8, 16, v);
      Conv2d reused(s, p), fresh(s, p);
      const auto x = test::random_normal(numel(reused.input_shape()), 1);
      const auto w1 = test::random_normal(numel(reused.weight_shape()), 2);
      const auto w2 = test::random_normal(numel(reused.weight_shape()), 3);
      const auto dy = test::random_normal(numel(reused.output_shape()), 4);
      std::vector<float> y_reused(dy.size()), y_fresh(dy.size());
      Grads g_reused(reused), g_fresh(fresh);
      reused.set_weights(w1.data());
      reused.backward(x.data(), dy.data(), g_reused.dx.data(), g_reused.dweight.data(), nullptr);
      reused.set_weights(w2.data());
      reused.forward(x.data(), nullptr, y_reused.data());
      reused.backward(x.data(), dy.data(), g_reused.dx.data(), g_reused.dweight.data(), nullptr);
      fresh.set_weights(w2.data());
      fresh.forward(x.data(), nullptr, y_fresh.data());
      fresh.backward(x.data(), dy.data(), g_fresh.dx.data(), g_fresh.dweight.data(), nullptr);
      EXPECT_EQ(y_reused, y_fresh) << precision_name(p) << " " << v.name;
      EXPECT_EQ(g_reused.dx, g_fresh.dx) << precision_name(p) << " " << v.name;
    }
  }
}

// The shapes of the real models (CIFAR-10 DDPM at 32x32, Fashion-MNIST at 28x28) must all get
// optimised kernels; a "ref:" implementation is ~300x slower and would go unnoticed otherwise.
TEST(Conv2d, RealModelShapesUseNoReferenceKernels) {
  const Variant s1 = kVariants[0], s2 = kVariants[1], k1 = kVariants[2];
  const std::vector<Conv2dShape> shapes = {
      make_shape(2, 32, 32, 3, 128, s1),   make_shape(2, 32, 32, 128, 128, s1),
      make_shape(2, 32, 32, 128, 3, s1),   make_shape(2, 32, 32, 128, 128, s2),
      make_shape(2, 16, 16, 256, 256, s1), make_shape(2, 16, 16, 256, 256, s2),
      make_shape(2, 32, 32, 128, 256, k1), make_shape(2, 16, 16, 512, 256, k1),
      make_shape(2, 28, 28, 1, 32, s1),    make_shape(2, 28, 28, 32, 32, s1),
      make_shape(2, 28, 28, 32, 1, s1),    make_shape(2, 28, 28, 32, 32, s2),
      make_shape(2, 14, 14, 64, 64, s2),   make_shape(2, 7, 7, 64, 64, s1),
      make_shape(2, 7, 7, 128, 64, k1)};
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    for (const Conv2dShape& s : shapes) {
      Conv2d conv(s, p);
      const auto x = test::random_normal(numel(conv.input_shape()), 1);
      const auto weight = test::random_normal(numel(conv.weight_shape()), 2, 0.05f);
      const auto bias = test::random_normal(static_cast<size_t>(s.out_channels), 3);
      std::vector<float> y(numel(conv.output_shape()));
      Grads g(conv);
      conv.set_weights(weight.data());
      conv.forward(x.data(), bias.data(), y.data());
      conv.backward(x.data(), y.data(), g.dx.data(), g.dweight.data(), g.dbias.data());
      EXPECT_TRUE(std::isfinite(test::weighted_sum(g.dx.data(), g.dx.data(), g.dx.size()))) << conv.shape().str();
    }
  }
  size_t count = 0;
  for (const auto& r : cpu::created_primitives()) {
    if (r.what.rfind("conv2d", 0) != 0) continue;
    ++count;
    std::cout << "  " << r.implementation << "  " << r.what << "\n";
    EXPECT_FALSE(cpu::is_reference_implementation(r.implementation)) << r.what << " uses " << r.implementation;
  }
  EXPECT_GE(count, shapes.size() * 2 * 5);
}

}  // namespace
}  // namespace ddpm
