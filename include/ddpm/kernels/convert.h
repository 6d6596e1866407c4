// fp32 <-> bf16 conversion (round to nearest even; NaN stays NaN).
#pragma once

#include <cstdint>
#include <cstring>

namespace ddpm::cpu {

inline uint16_t bf16_from_f32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f32_from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void convert_f32_to_bf16(uint16_t* out, const float* in, int64_t n);
void convert_bf16_to_f32(float* out, const uint16_t* in, int64_t n);

}  // namespace ddpm::cpu
