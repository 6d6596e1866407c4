// The one switch between fp32 compute and bf16 mixed precision (bf16 operands for convolutions
// and matrix products, fp32 accumulation, fp32 master weights, fp32 norm/softmax statistics).
#pragma once

#include <string>

namespace ddpm {

enum class Precision { fp32, bf16 };

inline const char* precision_name(Precision p) { return p == Precision::fp32 ? "fp32" : "bf16"; }
Precision parse_precision(const std::string& name);  // "fp32" | "bf16", else throws

}  // namespace ddpm
