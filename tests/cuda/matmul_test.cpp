// cuda::Linear and cuda::BatchedMatmul against cpu::Linear and cpu::BatchedMatmul on seeded random
// data: forward and every gradient, fp32 (TF32 off) and bf16, odd and aligned sizes, and buffers
// that are only float-aligned (as attention's parameters at odd channel counts).
#include "ddpm/kernels/cuda/matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "cuda_test_support.h"
#include "ddpm/kernels/batched_matmul.h"
#include "ddpm/kernels/cuda/runtime.h"
#include "ddpm/kernels/linear.h"

namespace ddpm {
namespace {

using test::kNaN;
using test::relative_norm_error;

// A device copy of host data starting `offset` floats into its allocation (offset 1: 4-byte
// aligned only); outputs start as NaN.
class OffsetArray {
 public:
  OffsetArray(const std::vector<float>& host, size_t offset) : offset_(offset), array_(with_prefix(host, offset)) {}
  OffsetArray(size_t n, size_t offset) : OffsetArray(std::vector<float>(n, kNaN), offset) {}
  float* data() const { return array_.data() + offset_; }
  std::vector<float> host() const {
    const std::vector<float> all = array_.host();
    return std::vector<float>(all.begin() + static_cast<std::ptrdiff_t>(offset_), all.end());
  }

 private:
  static std::vector<float> with_prefix(const std::vector<float>& host, size_t offset) {
    std::vector<float> v(offset, 0.0f);
    v.insert(v.end(), host.begin(), host.end());
    return v;
  }
  size_t offset_;
  test::DeviceArray array_;
};

struct LinearResults {
  std::vector<float> y, dx, dweight, dbias;
};

struct LinearCase {
  int64_t rows, in, out;
};
const LinearCase kLinearCases[] = {{37, 5, 7}, {64, 64, 128}, {300, 96, 33}, {1, 128, 512}};

struct LinearInputs {
  std::vector<float> x, weight, bias, dy;
  LinearInputs(const LinearCase& c, uint64_t seed)
      : x(test::random_normal(static_cast<size_t>(c.rows * c.in), seed)),
        weight(test::random_normal(static_cast<size_t>(c.out * c.in), seed + 1,
                                   1.0f / std::sqrt(static_cast<float>(c.in)))),
        bias(test::random_normal(static_cast<size_t>(c.out), seed + 2)),
        dy(test::random_normal(static_cast<size_t>(c.rows * c.out), seed + 3)) {}
};

LinearResults cpu_linear(const LinearCase& c, Precision p, const LinearInputs& in) {
  cpu::Linear op(c.rows, c.in, c.out, p);
  LinearResults r{std::vector<float>(in.dy.size(), kNaN), std::vector<float>(in.x.size(), kNaN),
                  std::vector<float>(in.weight.size(), kNaN), std::vector<float>(in.bias.size(), kNaN)};
  op.set_weights(in.weight.data());
  op.forward(in.x.data(), in.bias.data(), r.y.data());
  op.backward(in.x.data(), in.dy.data(), r.dx.data(), r.dweight.data(), r.dbias.data());
  return r;
}

LinearResults cuda_linear(const LinearCase& c, Precision p, const LinearInputs& in, size_t offset) {
  cuda::Linear op(c.rows, c.in, c.out, p);
  const OffsetArray x(in.x, offset), weight(in.weight, offset), bias(in.bias, offset), dy(in.dy, offset);
  OffsetArray y(in.dy.size(), offset), dx(in.x.size(), offset), dweight(in.weight.size(), offset),
      dbias(in.bias.size(), offset);
  op.set_weights(weight.data());
  op.forward(x.data(), bias.data(), y.data());
  op.backward(x.data(), dy.data(), dx.data(), dweight.data(), dbias.data());
  return {y.host(), dx.host(), dweight.host(), dbias.host()};
}

void expect_linear_matches_cpu(Precision p, double tolerance) {
  cuda::set_allow_tf32(false);
  uint64_t seed = 500;
  for (const LinearCase& c : kLinearCases) {
    for (size_t offset : {size_t{0}, size_t{1}}) {
      SCOPED_TRACE("rows " + std::to_string(c.rows) + ", " + std::to_string(c.in) + "->" + std::to_string(c.out) +
                   ", " + precision_name(p) + ", buffers offset by " + std::to_string(offset) + " floats");
      const LinearInputs in(c, seed += 10);
      const LinearResults want = cpu_linear(c, p, in);
      const LinearResults got = cuda_linear(c, p, in, offset);
      EXPECT_LE(relative_norm_error(got.y, want.y), tolerance) << "y";
      EXPECT_LE(relative_norm_error(got.dx, want.dx), tolerance) << "dx";
      EXPECT_LE(relative_norm_error(got.dweight, want.dweight), tolerance) << "dweight";
      EXPECT_LE(relative_norm_error(got.dbias, want.dbias), tolerance) << "dbias";
    }
  }
}

TEST(CudaLinear, Fp32MatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  expect_linear_matches_cpu(Precision::fp32, 1e-5);
}

TEST(CudaLinear, Bf16MatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  expect_linear_matches_cpu(Precision::bf16, 1e-2);
}

TEST(CudaLinear, NoBiasAndNoDx) {
  DDPM_REQUIRE_CUDA_DEVICE();
  cuda::set_allow_tf32(false);
  const LinearCase c{19, 6, 10};
  LinearInputs in(c, 77);
  std::fill(in.bias.begin(), in.bias.end(), 0.0f);
  const LinearResults want = cpu_linear(c, Precision::fp32, in);
  cuda::Linear op(c.rows, c.in, c.out, Precision::fp32);
  const test::DeviceArray x(in.x), weight(in.weight), dy(in.dy);
  test::DeviceArray y(in.dy.size()), dweight(in.weight.size());
  op.set_weights(weight.data());
  op.forward(x.data(), nullptr, y.data());
  op.backward(x.data(), dy.data(), nullptr, dweight.data(), nullptr);
  EXPECT_LE(relative_norm_error(y.host(), want.y), 1e-5);
  EXPECT_LE(relative_norm_error(dweight.host(), want.dweight), 1e-5);
}

struct BatchedCase {
  int64_t batch, m, k, n;
  bool transpose_a, transpose_b;
  float alpha;
};
const BatchedCase kBatchedCases[] = {
    {3, 5, 7, 9, false, false, 1.0f}, {3, 5, 7, 9, false, true, 0.37f},  {3, 5, 7, 9, true, false, 1.0f},
    {3, 5, 7, 9, true, true, -2.0f},  {4, 64, 32, 64, false, true, 0.125f}, {2, 64, 64, 32, true, false, 1.0f},
    {2, 49, 64, 49, false, true, 1.0f},
};

void expect_batched_matches_cpu(Precision p, double tolerance) {
  cuda::set_allow_tf32(false);
  uint64_t seed = 900;
  for (const BatchedCase& c : kBatchedCases) {
    for (size_t offset : {size_t{0}, size_t{1}}) {
      SCOPED_TRACE(std::to_string(c.batch) + "x" + std::to_string(c.m) + "x" + std::to_string(c.k) + "x" +
                   std::to_string(c.n) + (c.transpose_a ? " A^T" : "") + (c.transpose_b ? " B^T" : "") + " " +
                   precision_name(p) + ", offset " + std::to_string(offset));
      const std::vector<float> a = test::random_normal(static_cast<size_t>(c.batch * c.m * c.k), seed += 10);
      const std::vector<float> b = test::random_normal(static_cast<size_t>(c.batch * c.k * c.n), seed + 1);
      std::vector<float> want(static_cast<size_t>(c.batch * c.m * c.n), kNaN);
      cpu::BatchedMatmul ref(c.batch, c.m, c.k, c.n, c.transpose_a, c.transpose_b, p, c.alpha);
      ref.run(a.data(), b.data(), want.data());

      cuda::BatchedMatmul op(c.batch, c.m, c.k, c.n, c.transpose_a, c.transpose_b, p, c.alpha);
      const OffsetArray da(a, offset), db(b, offset);
      OffsetArray dc(want.size(), offset);
      op.run(da.data(), db.data(), dc.data());
      EXPECT_LE(relative_norm_error(dc.host(), want), tolerance);
      EXPECT_DOUBLE_EQ(op.flops(), 2.0 * static_cast<double>(c.batch * c.m * c.k * c.n));
    }
  }
}

TEST(CudaBatchedMatmul, Fp32MatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  expect_batched_matches_cpu(Precision::fp32, 1e-5);
}

TEST(CudaBatchedMatmul, Bf16MatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  expect_batched_matches_cpu(Precision::bf16, 1e-2);
}

TEST(CudaLinear, WithoutADeviceConstructionThrowsNamingTheReason) {
  if (cuda::device_info().usable) GTEST_SKIP() << "a device answers: nothing to refuse";
  try {
    cuda::Linear op(4, 8, 8, Precision::fp32);
    FAIL() << "planned a cuBLASLt product without a device";
  } catch (const cuda::Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a CUDA device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddpm
