// The oneDNN engine and stream shared by all CPU ops, and the record of created primitives.
#pragma once

#include <dnnl.hpp>

#include <string>

namespace ddpm::cpu {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

// Records pd's implementation name under `what` (see dnnl_info.h). Call for every primitive.
void record_primitive(const dnnl::primitive_desc_base& pd, const std::string& what);

}  // namespace ddpm::cpu
