// Implementation of the shared test helpers.
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "ddpm/io/npy.h"

namespace ddpm::test {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double uniform01(uint64_t& state) { return (static_cast<double>(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53; }

}  // namespace

std::vector<float> random_normal(size_t n, uint64_t seed, float scale) {
  std::vector<float> v(n);
  uint64_t state = seed * 0x2545F4914F6CDD1Dull + 1;
  for (size_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform01(state)));
    const double a = 2.0 * M_PI * uniform01(state);
    v[i] = static_cast<float>(scale * r * std::cos(a));
    if (i + 1 < n) v[i + 1] = static_cast<float>(scale * r * std::sin(a));
  }
  return v;
}

std::vector<float> random_uniform(size_t n, uint64_t seed, float lo, float hi) {
  std::vector<float> v(n);
  uint64_t state = seed * 0x2545F4914F6CDD1Dull + 7;
  for (auto& x : v) x = static_cast<float>(lo + (hi - lo) * uniform01(state));
  return v;
}

bool expect_close(const float* actual, const float* expected, size_t n, double rtol, double atol,
                  const std::string& what) {
  if (!actual || !expected) {
    ADD_FAILURE() << what;
    return false;
  }
  size_t bad = 0, worst = 0;
  double worst_excess = -1.0, max_abs = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double a = actual[i], e = expected[i];
    const double err = std::fabs(a - e);
    const double excess = err - (atol + rtol * std::fabs(e));
    max_abs = std::max(max_abs, err);
    if (!(excess <= 0.0)) ++bad;  // NaN counts as bad
    if (!(excess <= worst_excess)) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (bad) {
    ADD_FAILURE() << what << ": " << bad << " of " << n << " elements outside atol " << atol
                  << " + rtol " << rtol << "; worst at [" << worst << "]: got " << actual[worst]
                  << ", expected " << expected[worst] << " (max abs error " << max_abs << ")";
  }
  return bad == 0;
}

double relative_norm_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
    const double d = static_cast<double>(actual[i]) - expected[i];
    err += d * d;
    ref += static_cast<double>(expected[i]) * expected[i];
  }
  if (actual.size() != expected.size()) return std::numeric_limits<double>::infinity();
  return std::sqrt(err / ref);
}

double weighted_sum(const float* y, const float* w, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(y[i]) * w[i];
  return s;
}

void expect_gradient(std::vector<float>& x, const std::vector<float>& analytic,
                     const std::function<double()>& loss, const GradCheck& opt, const std::string& what) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  std::vector<size_t> idx(x.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  if (idx.size() > opt.max_points) {
    uint64_t state = 12345;
    for (size_t i = idx.size() - 1; i > 0; --i) std::swap(idx[i], idx[splitmix64(state) % (i + 1)]);
    idx.resize(opt.max_points);
  }
  size_t bad = 0;
  std::ostringstream first;
  for (size_t i : idx) {
    const float saved = x[i];
    x[i] = static_cast<float>(saved + opt.eps);
    const double up = loss();
    x[i] = static_cast<float>(saved - opt.eps);
    const double down = loss();
    x[i] = saved;
    const double fd = (up - down) / (2 * opt.eps);
    const double err = std::fabs(fd - analytic[i]);
    if (!(err <= opt.atol + opt.rtol * std::fabs(fd))) {
      if (bad++ == 0) first << "[" << i << "] finite difference " << fd << ", analytic " << analytic[i];
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << idx.size()
                     << " gradient entries disagree with central differences; first " << first.str();
}

std::vector<float> ReferenceCase::f32(const std::string& array) const {
  return read_npy(dir + "/" + array + ".npy").to_f32();
}
std::vector<int64_t> ReferenceCase::i64(const std::string& array) const {
  return read_npy(dir + "/" + array + ".npy").to_i64();
}
std::vector<int64_t> ReferenceCase::shape(const std::string& array) const {
  return read_npy(dir + "/" + array + ".npy").shape;
}

const std::vector<ReferenceCase>& reference_cases(const std::string& op) {
  static std::map<std::string, std::vector<ReferenceCase>> cache;
  if (auto it = cache.find(op); it != cache.end()) return it->second;

  namespace fs = std::filesystem;
  const fs::path out = fs::path(DDPM_BINARY_DIR) / "reference" / op;
  fs::remove_all(out);
  fs::create_directories(out);
  const std::string log = (out / "make_reference.log").string();
  const std::string cmd = std::string("/usr/bin/python3 ") + DDPM_SOURCE_DIR +
                          "/tests/reference/make_reference.py --op " + op + " --out " + out.string() +
                          " > " + log + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    throw std::runtime_error("PyTorch reference for '" + op + "' failed (" + cmd + "):\n" + text.str() +
                             "\nInstall it with scripts/setup (needs Debian's python3-torch).");
  }
  std::vector<ReferenceCase> cases;
  for (const auto& entry : fs::directory_iterator(out))
    if (entry.is_directory()) cases.push_back({entry.path().filename().string(), entry.path().string()});
  std::sort(cases.begin(), cases.end(), [](auto& a, auto& b) { return a.name < b.name; });
  if (cases.empty()) throw std::runtime_error("PyTorch reference for '" + op + "' produced no cases");
  return cache[op] = std::move(cases);
}

}  // namespace ddpm::test
