// Batched matrix product on oneDNN matmul: transposed operands are strided views of the caller's
// row-major buffers; alpha is a constant output scale (none at all when it is 1).
#include "ddpm/kernels/batched_matmul.h"

#include <stdexcept>
#include <string>

#include "ddpm/kernels/convert.h"
#include "ddpm/memory.h"
#include "ddpm/bench/profiler.h"
#include "kernels/cpu/dnnl_context.h"
#include "kernels/cpu/dnnl_plan.h"

namespace ddpm::cpu {

using dt = dnnl::memory::data_type;

struct BatchedMatmul::Impl {
  int64_t batch, m, k, n;
  Precision precision;
  std::string name;
  dnnl::matmul product;
  dnnl::memory a_user, b_user, c_user, a_op, b_op;
  AlignedBuffer a_bf16, b_bf16;
  SharedScratchpad scratchpad;
  DnnlArgs args;
};

BatchedMatmul::BatchedMatmul(int64_t batch, int64_t m, int64_t k, int64_t n, bool transpose_a, bool transpose_b,
                             Precision precision, float alpha)
    : impl_(std::make_unique<Impl>()) {
  Impl& p = *impl_;
  p.batch = batch, p.m = m, p.k = k, p.n = n, p.precision = precision;
  p.name = std::string("batched_matmul ") + precision_name(precision) + " [batch=" + std::to_string(batch) +
           ",m=" + std::to_string(m) + ",k=" + std::to_string(k) + ",n=" + std::to_string(n) +
           (transpose_a ? ",A^T" : "") + (transpose_b ? ",B^T" : "") + "]";
  if (batch <= 0 || m <= 0 || k <= 0 || n <= 0) throw std::invalid_argument(p.name + ": sizes must be positive");

  const dt op = precision == Precision::bf16 ? dt::bf16 : dt::f32;
  const dnnl::memory::dims a_dims{batch, m, k}, b_dims{batch, k, n};
  const dnnl::memory::dims a_strides = transpose_a ? dnnl::memory::dims{m * k, 1, m} : dnnl::memory::dims{m * k, k, 1};
  const dnnl::memory::dims b_strides = transpose_b ? dnnl::memory::dims{k * n, 1, k} : dnnl::memory::dims{k * n, n, 1};
  const dnnl::memory::desc a_md(a_dims, op, a_strides), b_md(b_dims, op, b_strides);
  const dnnl::memory::desc c_md({batch, m, n}, dt::f32, {m * n, n, 1});
  try {
    dnnl::primitive_attr attr = user_scratchpad_attr();
    if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, dnnl_engine());
    record_primitive(pd, p.name);
    p.product = dnnl::matmul(pd);

    p.a_user = unbound_memory(dnnl::memory::desc(a_dims, dt::f32, a_strides));
    p.b_user = unbound_memory(dnnl::memory::desc(b_dims, dt::f32, b_strides));
    p.c_user = unbound_memory(c_md);
    if (precision == Precision::bf16) {
      p.a_bf16 = AlignedBuffer(a_md.get_size());
      p.b_bf16 = AlignedBuffer(b_md.get_size());
      p.a_op = dnnl::memory(a_md, dnnl_engine(), p.a_bf16.data());
      p.b_op = dnnl::memory(b_md, dnnl_engine(), p.b_bf16.data());
    } else {
      p.a_op = p.a_user;
      p.b_op = p.b_user;
    }
    p.scratchpad.need(pd);
    p.scratchpad.allocate();
    p.args = {{DNNL_ARG_SRC, p.a_op},
              {DNNL_ARG_WEIGHTS, p.b_op},
              {DNNL_ARG_DST, p.c_user}};
    p.scratchpad.bind(pd, p.args);
  } catch (const dnnl::error& e) {
    throw_dnnl_error(e, p.name);
  }
}

BatchedMatmul::~BatchedMatmul() = default;
BatchedMatmul::BatchedMatmul(BatchedMatmul&&) noexcept = default;
BatchedMatmul& BatchedMatmul::operator=(BatchedMatmul&&) noexcept = default;

double BatchedMatmul::flops() const {
  const Impl& p = *impl_;
  return 2.0 * static_cast<double>(p.batch) * static_cast<double>(p.m) * static_cast<double>(p.k) *
         static_cast<double>(p.n);
}

void BatchedMatmul::run(const float* a, const float* b, float* c) {
  profile::Scope profile_scope(profile::Kind::op, "batched matmul");
  Impl& p = *impl_;
  if (!a || !b || !c) throw std::invalid_argument(p.name + ": run needs a, b and c buffers");
  if (p.precision == Precision::bf16) {
    convert_f32_to_bf16(p.a_bf16.as<uint16_t>(), a, p.batch * p.m * p.k);
    convert_f32_to_bf16(p.b_bf16.as<uint16_t>(), b, p.batch * p.k * p.n);
  } else {
    p.a_user.set_data_handle(const_cast<float*>(a));
    p.b_user.set_data_handle(const_cast<float*>(b));
  }
  p.c_user.set_data_handle(c);
  execute(p.product, p.args);
}

}  // namespace ddpm::cpu
