// Shared test helpers: seeded random data, closeness checks, finite-difference gradient checks
// and PyTorch reference results produced at test time by tests/reference/make_reference.py.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ddpm::test {

// call() must throw an exception whose message names `file` and contains `needle`: the contract
// of every reader of outside data.
template <class F>
void expect_error(F&& call, const std::string& file, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one naming " << file << " and containing '" << needle << "'";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

// Seeded, platform-independent random data (splitmix64 + Box-Muller).
std::vector<float> random_normal(size_t n, uint64_t seed, float scale = 1.0f);
std::vector<float> random_uniform(size_t n, uint64_t seed, float lo, float hi);

// Fails the current test when |actual - expected| > atol + rtol * |expected| anywhere; reports the
// worst element. Returns true when all elements pass.
bool expect_close(const float* actual, const float* expected, size_t n, double rtol, double atol,
                  const std::string& what);
inline bool expect_close(const std::vector<float>& actual, const std::vector<float>& expected,
                         double rtol, double atol, const std::string& what) {
  if (actual.size() != expected.size()) {
    expect_close(nullptr, nullptr, 0, 0, 0, what + ": size mismatch " + std::to_string(actual.size()) +
                                                " vs " + std::to_string(expected.size()));
    return false;
  }
  return expect_close(actual.data(), expected.data(), actual.size(), rtol, atol, what);
}

// Outputs of an op under test start as NaN, so a value it fails to write shows up.
inline constexpr float kNaN = __builtin_nanf("");

// ||actual - expected|| / ||expected|| in double: the error measure for bf16 against fp32.
double relative_norm_error(const std::vector<float>& actual, const std::vector<float>& expected);

// sum_i w[i] * y[i] in double: the scalar objective of gradient checks (so dL/dy = w).
double weighted_sum(const float* y, const float* w, size_t n);

struct GradCheck {
  double eps = 1e-2;    // central-difference step
  double rtol = 2e-2;   // |fd - analytic| <= atol + rtol * |fd|
  double atol = 2e-3;
  size_t max_points = 200;  // checks every element of small inputs, a seeded sample of large ones
};

// Compares `analytic` (dL/dx) with central differences of `loss`, which must recompute the
// objective from the current contents of `x`. x is restored afterwards.
void expect_gradient(std::vector<float>& x, const std::vector<float>& analytic,
                     const std::function<double()>& loss, const GradCheck& opt, const std::string& what);

// One case of PyTorch reference data: named arrays (NHWC for activations).
class ReferenceCase {
 public:
  std::string name;
  std::vector<float> f32(const std::string& array) const;
  std::vector<int64_t> i64(const std::string& array) const;
  std::vector<int64_t> shape(const std::string& array) const;
  double scalar(const std::string& array) const { return f32(array).at(0); }
  std::string dir;
};

// Runs /usr/bin/python3 tests/reference/make_reference.py --op OP once per process and returns
// its cases in name order. Throws with the script's output when PyTorch is unavailable.
const std::vector<ReferenceCase>& reference_cases(const std::string& op);

}  // namespace ddpm::test
