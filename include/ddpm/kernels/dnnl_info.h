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
bool is_reference_implementation(const std::string& implementation);

}  // namespace ddpm::cpu
