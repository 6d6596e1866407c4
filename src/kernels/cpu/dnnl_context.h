// The oneDNN engine and stream shared by all CPU ops, and the record of created primitives.
#pragma once

#include <dnnl.hpp>

#include <string>
#include <unordered_map>

namespace ddpm::cpu {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

// Records pd's implementation name under `what` (see dnnl_info.h). Call for every primitive.
void record_primitive(const dnnl::primitive_desc_base& pd, const std::string& what);

// Runs a primitive with arguments prepared at plan time (update pointers with set_data_handle;
// never build memory objects or argument maps inside a step). oneDNN converts the argument map
// into its own small per-call structures; the call is marked so that the allocation test can tell
// that bookkeeping apart from allocations of ours (see inside_dnnl_execute()).
void execute(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args);

// True, on any thread, while execute() runs a primitive (ops run one at a time).
bool inside_dnnl_execute();

}  // namespace ddpm::cpu
