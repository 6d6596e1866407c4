// Softmax cross-entropy: finite differences, PyTorch, stability, aliasing and label checks.
#include "ddpm/kernels/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

std::vector<int32_t> labels_for(int64_t batch, int64_t classes, uint64_t seed) {
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (int64_t r = 0; r < batch; ++r) labels[static_cast<size_t>(r)] = static_cast<int32_t>((seed * 7 + r * 5) % classes);
  return labels;
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  uint64_t seed = 1;
  for (const auto& [batch, classes] : std::vector<std::array<int64_t, 2>>{{1, 1}, {1, 3}, {3, 5}, {5, 10}, {7, 13}}) {
    for (float scale : {1.0f, -0.7f}) {
      const std::string what = "cross entropy batch " + std::to_string(batch) + " classes " + std::to_string(classes) +
                               " scale " + std::to_string(scale);
      auto logits = test::random_normal(static_cast<size_t>(batch * classes), seed++, 2.0f);
      const auto labels = labels_for(batch, classes, seed);
      std::vector<float> p(logits.size(), test::kNaN), dlogits(logits.size(), test::kNaN);
      cpu::cross_entropy_forward(logits.data(), labels.data(), batch, classes, p.data());
      cpu::cross_entropy_backward(dlogits.data(), p.data(), labels.data(), batch, classes, scale);
      test::expect_gradient(logits, dlogits, [&] {
        return scale * cpu::cross_entropy_forward(logits.data(), labels.data(), batch, classes);
      }, {1e-2, 1e-3, 1e-6, 200}, what);
    }
  }
}

// The loss is summed in double from float inputs: against the float64 reference (carried as two
// float32 parts) it agrees to 1e-12 relative. Probabilities are rounded once from double to float:
// rtol 1e-6, and atol 1e-12 for the tiny probabilities of the wide cases. The gradient starts from
// those float probabilities, so p - 1 for the label of a near-certain row carries p's rounding
// (up to 2^-24 absolute): atol 2^-23 * |scale| / batch.
TEST(CrossEntropy, MatchesPyTorch) {
  int count = 0;
  for (const auto& c : test::reference_cases("cross_entropy")) {
    const auto shape = c.shape("logits");
    ASSERT_EQ(shape.size(), 2u) << c.name;
    const int64_t batch = shape[0], classes = shape[1];
    const auto logits = c.f32("logits");
    std::vector<int32_t> labels;
    for (int64_t v : c.i64("labels")) labels.push_back(static_cast<int32_t>(v));
    const double expected = c.scalar("loss_hi") + c.scalar("loss_lo");
    std::vector<float> p(logits.size(), test::kNaN), dlogits(logits.size(), test::kNaN);
    const double loss = cpu::cross_entropy_forward(logits.data(), labels.data(), batch, classes, p.data());
    EXPECT_NEAR(loss, expected, 1e-12 * std::max(1.0, expected)) << c.name;
    cpu::cross_entropy_backward(dlogits.data(), p.data(), labels.data(), batch, classes,
                                static_cast<float>(c.scalar("scale")));
    test::expect_close(p, c.f32("probabilities"), 1e-6, 1e-12, c.name + " probabilities");
    const double grad_atol = 0x1.0p-23 * std::fabs(c.scalar("scale")) / static_cast<double>(batch);
    test::expect_close(dlogits, c.f32("dlogits"), 1e-6, grad_atol, c.name + " dlogits");
    ++count;
  }
  EXPECT_EQ(count, 5);
}

TEST(CrossEntropy, StableForHugeLogits) {
  const std::vector<float> logits{3e4f, -3e4f, 2.999e4f, 88.0f, 89.0f, 90.0f};
  const std::vector<int32_t> labels{2, 0};
  std::vector<float> p(6);
  const double loss = cpu::cross_entropy_forward(logits.data(), labels.data(), 2, 3, p.data());
  ASSERT_TRUE(std::isfinite(loss));
  // row 0: log(1 + e^-10 + ...) + 10 ~ 10; row 1: logsumexp(88, 89, 90) - 88 = 2 + log(1 + e^-1 + e^-2)
  const double row1 = 2.0 + std::log(1.0 + std::exp(-1.0) + std::exp(-2.0));
  EXPECT_NEAR(loss, (10.0 + std::log1p(std::exp(-10.0)) + row1) / 2, 1e-3);  // 3e4 - 2.999e4 is 10 within fp32
  for (float v : p) EXPECT_TRUE(std::isfinite(v));
}

TEST(CrossEntropy, OutputsMayAliasInputs) {
  const int64_t batch = 4, classes = 10;
  const auto logits = test::random_normal(40, 3, 3.0f);
  const auto labels = labels_for(batch, classes, 2);
  std::vector<float> p(40), d(40);
  const double loss = cpu::cross_entropy_forward(logits.data(), labels.data(), batch, classes, p.data());
  cpu::cross_entropy_backward(d.data(), p.data(), labels.data(), batch, classes);
  auto inplace = logits;
  EXPECT_EQ(cpu::cross_entropy_forward(inplace.data(), labels.data(), batch, classes, inplace.data()), loss);
  EXPECT_EQ(inplace, p);
  cpu::cross_entropy_backward(inplace.data(), inplace.data(), labels.data(), batch, classes);
  EXPECT_EQ(inplace, d);
}

TEST(CrossEntropy, RejectsLabelsOutOfRangeNamingTheRow) {
  const std::vector<float> logits(6, 0.0f);
  std::vector<float> d(6);
  for (int32_t bad : {-1, 3}) {
    const std::vector<int32_t> labels{0, bad};
    try {
      cpu::cross_entropy_forward(logits.data(), labels.data(), 2, 3);
      ADD_FAILURE() << "label " << bad << " accepted";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("label " + std::to_string(bad) + " of row 1"), std::string::npos) << what;
      EXPECT_NE(what.find("[0, 3)"), std::string::npos) << what;
    }
    EXPECT_THROW(cpu::cross_entropy_backward(d.data(), logits.data(), labels.data(), 2, 3), std::invalid_argument);
  }
  const std::vector<int32_t> ok{0, 0};
  EXPECT_THROW(cpu::cross_entropy_forward(logits.data(), ok.data(), 0, 3), std::invalid_argument);
  EXPECT_THROW(cpu::cross_entropy_forward(logits.data(), ok.data(), 2, 0), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
