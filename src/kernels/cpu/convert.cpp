// Vectorised fp32 <-> bf16 conversion (the bf16 operands of convolutions and matmuls).
#include "ddpm/kernels/convert.h"

#include <stdexcept>
#include <string>

#include "ddpm/kernels/precision.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw std::invalid_argument("precision '" + name + "' is not one of fp32, bf16");
}

namespace cpu {

void convert_f32_to_bf16(uint16_t* out, const float* in, int64_t n) {
  // The scalar form is branch-free apart from NaN; the compiler vectorises this loop.
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = bf16_from_f32(in[i]);
  });
}

void convert_bf16_to_f32(float* out, const uint16_t* in, int64_t n) {
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = f32_from_bf16(in[i]);
  });
}

}  // namespace cpu
}  // namespace ddpm
