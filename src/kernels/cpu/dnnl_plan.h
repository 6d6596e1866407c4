// Plan-time helpers for the oneDNN-backed ops: user-mode scratchpads shared by an op's primitives,
// memory objects whose pointers are set per call, and error messages that name the op.
#pragma once

#include <dnnl.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "ddpm/memory.h"
#include "kernels/cpu/dnnl_context.h"

namespace ddpm::cpu {

using DnnlArgs = std::unordered_map<int, dnnl::memory>;

// Every primitive takes its scratchpad from us (one planned buffer), never from oneDNN's allocator.
inline dnnl::primitive_attr user_scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A memory object without data; the pointer is set with set_data_handle before each execution.
inline dnnl::memory unbound_memory(const dnnl::memory::desc& md) {
  return dnnl::memory(md, dnnl_engine(), DNNL_MEMORY_NONE);
}

// A memory object with its own buffer, allocated now (plan time).
inline dnnl::memory owned_memory(const dnnl::memory::desc& md) { return dnnl::memory(md, dnnl_engine()); }

// One scratchpad buffer for all primitives of an op: they run one after another, so the largest
// requirement is enough. need() every primitive first, then allocate(), then bind().
class SharedScratchpad {
 public:
  void need(const dnnl::primitive_desc_base& pd) { bytes_ = std::max(bytes_, pd.scratchpad_desc().get_size()); }
  void allocate() { buffer_ = AlignedBuffer(std::max<size_t>(bytes_, kAlignment)); }
  void bind(const dnnl::primitive_desc_base& pd, DnnlArgs& args) const {
    const dnnl::memory::desc md = pd.scratchpad_desc();
    if (md.get_size() > 0) args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(md, dnnl_engine(), buffer_.data());
  }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_ = 0;
  AlignedBuffer buffer_;
};

[[noreturn]] inline void throw_dnnl_error(const dnnl::error& e, const std::string& what) {
  throw std::runtime_error(what + ": oneDNN could not create or run a primitive: " + e.what() +
                           " (status " + std::to_string(static_cast<int>(e.status)) + ")");
}

}  // namespace ddpm::cpu
