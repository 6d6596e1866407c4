// What oneDNN chose: every primitive we create is recorded with its implementation name, so a
// test can fail when one falls back to a slow reference ("ref:") implementation.
#pragma once

#include <string>
#include <vector>

namespace ddpm::cpu {

struct PrimitiveRecord {
  std::string what;            // e.g. "conv2d fwd [N=3,H=5,W=7,C=3->8,k3s1]"
  std::string implementation;  // oneDNN's impl_info_str(), e.g. "jit:avx512_core"
};

std::vector<PrimitiveRecord> created_primitives();

// The instruction set oneDNN dispatches to on this CPU, e.g. "avx512_core_amx".
std::string cpu_isa_name();
// Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Without it oneDNN emulates bf16
// and the bf16 mode is slower than fp32, though still correct.
bool native_bf16();
bool is_reference_implementation(const std::string& implementation);

}  // namespace ddpm::cpu
