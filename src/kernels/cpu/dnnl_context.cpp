// oneDNN engine/stream singletons and the primitive implementation record.
#include "kernels/cpu/dnnl_context.h"

#include <atomic>
#include <mutex>
#include <vector>

#include "ddpm/kernels/dnnl_info.h"

namespace ddpm::cpu {

namespace {
std::mutex records_mutex;
// Process-wide, not per thread: oneDNN's OpenMP workers allocate on other threads than ours.
std::atomic<int> in_execute{0};

std::vector<PrimitiveRecord>& records() {
  static std::vector<PrimitiveRecord> r;
  return r;
}
}  // namespace

dnnl::engine& dnnl_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& dnnl_stream() {
  static dnnl::stream stream(dnnl_engine());
  return stream;
}

void record_primitive(const dnnl::primitive_desc_base& pd, const std::string& what) {
  std::lock_guard<std::mutex> lock(records_mutex);
  records().push_back({what, pd.impl_info_str()});
}

void execute(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args) {
  in_execute.fetch_add(1);
  try {
    primitive.execute(dnnl_stream(), args);
  } catch (...) {
    in_execute.fetch_sub(1);
    throw;
  }
  in_execute.fetch_sub(1);
}

bool inside_dnnl_execute() { return in_execute.load(std::memory_order_relaxed) > 0; }

std::vector<PrimitiveRecord> created_primitives() {
  std::lock_guard<std::mutex> lock(records_mutex);
  return records();
}

std::string cpu_isa_name() {
  using isa = dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case isa::sse41: return "sse41";
    case isa::avx: return "avx";
    case isa::avx2: return "avx2";
    case isa::avx2_vnni: return "avx2_vnni";
    case isa::avx512_core: return "avx512_core";
    case isa::avx512_core_vnni: return "avx512_core_vnni";
    case isa::avx512_core_bf16: return "avx512_core_bf16";
    case isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

bool native_bf16() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

bool is_reference_implementation(const std::string& implementation) {
  return implementation.rfind("ref", 0) == 0;
}

}  // namespace ddpm::cpu
