// Softmax cross-entropy forward and backward. Rows are short (the number of classes) and few (the
// batch), so plain loops in double are cheap and exact enough to match a float64 reference.
#include "ddpm/kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ddpm::cpu {
namespace {

void check_arguments(const char* op, const int32_t* labels, int64_t batch, int64_t classes) {
  if (batch <= 0 || classes <= 0)
    throw std::invalid_argument(std::string(op) + ": batch and classes must be positive, got batch " +
                                std::to_string(batch) + ", classes " + std::to_string(classes));
  for (int64_t r = 0; r < batch; ++r)
    if (labels[r] < 0 || labels[r] >= classes)
      throw std::invalid_argument(std::string(op) + ": label " + std::to_string(labels[r]) + " of row " +
                                  std::to_string(r) + " is outside [0, " + std::to_string(classes) + ")");
}

}  // namespace

double cross_entropy_forward(const float* logits, const int32_t* labels, int64_t batch, int64_t classes,
                             float* probabilities) {
  check_arguments("cross_entropy_forward", labels, batch, classes);
  double total = 0.0;
  for (int64_t r = 0; r < batch; ++r) {
    const float* row = logits + r * classes;
    const double shift = *std::max_element(row, row + classes);
    double sum = 0.0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(static_cast<double>(row[j]) - shift);
    const double log_sum = std::log(sum);
    total += log_sum - (static_cast<double>(row[labels[r]]) - shift);
    if (probabilities) {
      float* p = probabilities + r * classes;  // may be row itself: each element is read first
      for (int64_t j = 0; j < classes; ++j)
        p[j] = static_cast<float>(std::exp(static_cast<double>(row[j]) - shift - log_sum));
    }
  }
  return total / static_cast<double>(batch);
}

void cross_entropy_backward(float* dlogits, const float* probabilities, const int32_t* labels, int64_t batch,
                            int64_t classes, float scale) {
  check_arguments("cross_entropy_backward", labels, batch, classes);
  const double coef = static_cast<double>(scale) / static_cast<double>(batch);
  for (int64_t r = 0; r < batch; ++r) {
    const float* p = probabilities + r * classes;
    float* d = dlogits + r * classes;
    for (int64_t j = 0; j < classes; ++j)
      d[j] = static_cast<float>(coef * (static_cast<double>(p[j]) - (j == labels[r] ? 1.0 : 0.0)));
  }
}

}  // namespace ddpm::cpu
