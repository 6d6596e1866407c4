// Fully connected layer on oneDNN matmul. The three products use strided (transposed) views of
// plain row-major buffers, which oneDNN's matmul handles without copies:
//   y  = x  W^T   x [rows,in],  W^T: W viewed as [in,out] (strides 1, in)
//   dx = dy W     dy [rows,out], W [out,in]
//   dW = dy^T x   dy^T: dy viewed as [out,rows] (strides 1, out), x [rows,in]
// The bias gradient is a column sum of the fp32 dy, our own loop.
#include "ddpm/kernels/linear.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ddpm/kernels/convert.h"
#include "ddpm/memory.h"
#include "ddpm/bench/profiler.h"
#include "kernels/cpu/dnnl_context.h"
#include "kernels/cpu/dnnl_plan.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {

using dt = dnnl::memory::data_type;

struct Linear::Impl {
  int64_t rows, in, out;
  Precision precision;
  std::string name;  // "linear fp32 [rows=..,in->out]"

  dnnl::matmul fwd, bwd_data, bwd_weights;
  dnnl::memory x_user, y_user, dy_user, dyt_user, dx_user, dw_user, bias_user;
  dnnl::memory x_op, dy_op, dyt_op, wt_op, w_op;  // operands: the caller's buffers (fp32) or bf16 copies
  AlignedBuffer weights, x_bf16, dy_bf16, zero_bias, partial_sums;
  SharedScratchpad scratchpad;
  DnnlArgs fwd_args, bwd_data_args, bwd_weights_args;
  bool weights_set = false;

  void bind_x(const float* x) {
    if (precision == Precision::bf16) {
      convert_f32_to_bf16(x_bf16.as<uint16_t>(), x, rows * in);
    } else {
      x_user.set_data_handle(const_cast<float*>(x));
    }
  }
  void bind_dy(const float* dy) {
    if (precision == Precision::bf16) {
      convert_f32_to_bf16(dy_bf16.as<uint16_t>(), dy, rows * out);
    } else {
      dy_user.set_data_handle(const_cast<float*>(dy));
      dyt_user.set_data_handle(const_cast<float*>(dy));
    }
  }

  // dbias[j] = sum_r dy[r, j] in fp32. Rows are cut into fixed bands summed in parallel, then the
  // bands are added in order, so the result does not depend on the thread count.
  static constexpr int64_t kBandRows = 256;
  int64_t bands() const { return (rows + kBandRows - 1) / kBandRows; }

  void column_sums(float* dbias, const float* dy) {
    float* partial = partial_sums.as<float>();
    const int64_t nb = bands();
    parallel_for(nb, rows * out >= kParallelGrain, [&](int64_t band) {
      float* acc = partial + band * out;
      std::fill(acc, acc + out, 0.0f);
      const int64_t r1 = std::min(rows, (band + 1) * kBandRows);
      for (int64_t r = band * kBandRows; r < r1; ++r) {
        const float* row = dy + r * out;
#pragma omp simd
        for (int64_t j = 0; j < out; ++j) acc[j] += row[j];
      }
    });
    std::memcpy(dbias, partial, static_cast<size_t>(out) * sizeof(float));
    for (int64_t band = 1; band < nb; ++band) {
      const float* p = partial + band * out;
#pragma omp simd
      for (int64_t j = 0; j < out; ++j) dbias[j] += p[j];
    }
  }
};

Linear::Linear(int64_t rows, int64_t in_features, int64_t out_features, Precision precision)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.rows = rows, m.in = in_features, m.out = out_features, m.precision = precision;
  m.name = std::string("linear ") + precision_name(precision) + " [rows=" + std::to_string(rows) + "," +
           std::to_string(in_features) + "->" + std::to_string(out_features) + "]";
  if (rows <= 0 || in_features <= 0 || out_features <= 0)
    throw std::invalid_argument(m.name + ": rows and feature counts must be positive");

  const dt op = precision == Precision::bf16 ? dt::bf16 : dt::f32;
  const int64_t r = rows, i = in_features, o = out_features;
  const dnnl::memory::desc x_md({r, i}, op, {i, 1}), x_user_md({r, i}, dt::f32, {i, 1});
  const dnnl::memory::desc wt_md({i, o}, op, {1, i}), w_md({o, i}, op, {i, 1});
  const dnnl::memory::desc bias_md({1, o}, dt::f32, {o, 1}), y_md({r, o}, dt::f32, {o, 1});
  const dnnl::memory::desc dy_md({r, o}, op, {o, 1}), dyt_md({o, r}, op, {1, o});
  const dnnl::memory::desc dy_user_md({r, o}, dt::f32, {o, 1}), dyt_user_md({o, r}, dt::f32, {1, o});
  const dnnl::memory::desc dx_md({r, i}, dt::f32, {i, 1}), dw_md({o, i}, dt::f32, {i, 1});

  try {
    const dnnl::primitive_attr attr = user_scratchpad_attr();
    const dnnl::matmul::primitive_desc fwd_pd(dnnl::matmul::desc(x_md, wt_md, bias_md, y_md), attr, dnnl_engine());
    const dnnl::matmul::primitive_desc bwd_data_pd(dnnl::matmul::desc(dy_md, w_md, dx_md), attr, dnnl_engine());
    const dnnl::matmul::primitive_desc bwd_weights_pd(dnnl::matmul::desc(dyt_md, x_md, dw_md), attr,
                                                      dnnl_engine());
    record_primitive(fwd_pd, m.name + " forward");
    record_primitive(bwd_data_pd, m.name + " backward data");
    record_primitive(bwd_weights_pd, m.name + " backward weights");
    m.fwd = dnnl::matmul(fwd_pd);
    m.bwd_data = dnnl::matmul(bwd_data_pd);
    m.bwd_weights = dnnl::matmul(bwd_weights_pd);

    m.weights = AlignedBuffer(w_md.get_size());
    m.wt_op = dnnl::memory(wt_md, dnnl_engine(), m.weights.data());
    m.w_op = dnnl::memory(w_md, dnnl_engine(), m.weights.data());
    m.x_user = unbound_memory(x_user_md);
    m.y_user = unbound_memory(y_md);
    m.dy_user = unbound_memory(dy_user_md);
    m.dyt_user = unbound_memory(dyt_user_md);
    m.dx_user = unbound_memory(dx_md);
    m.dw_user = unbound_memory(dw_md);
    m.bias_user = unbound_memory(bias_md);
    m.zero_bias = AlignedBuffer(static_cast<size_t>(o) * sizeof(float));
    if (precision == Precision::bf16) {
      m.x_bf16 = AlignedBuffer(x_md.get_size());
      m.dy_bf16 = AlignedBuffer(dy_md.get_size());
      m.x_op = dnnl::memory(x_md, dnnl_engine(), m.x_bf16.data());
      m.dy_op = dnnl::memory(dy_md, dnnl_engine(), m.dy_bf16.data());
      m.dyt_op = dnnl::memory(dyt_md, dnnl_engine(), m.dy_bf16.data());
    } else {
      m.x_op = m.x_user;
      m.dy_op = m.dy_user;
      m.dyt_op = m.dyt_user;
    }
    m.partial_sums = AlignedBuffer(static_cast<size_t>(m.bands()) * static_cast<size_t>(o) * sizeof(float));

    m.scratchpad.need(fwd_pd);
    m.scratchpad.need(bwd_data_pd);
    m.scratchpad.need(bwd_weights_pd);
    m.scratchpad.allocate();
    m.fwd_args = {{DNNL_ARG_SRC, m.x_op}, {DNNL_ARG_WEIGHTS, m.wt_op}, {DNNL_ARG_BIAS, m.bias_user},
                  {DNNL_ARG_DST, m.y_user}};
    m.scratchpad.bind(fwd_pd, m.fwd_args);
    m.bwd_data_args = {{DNNL_ARG_SRC, m.dy_op}, {DNNL_ARG_WEIGHTS, m.w_op}, {DNNL_ARG_DST, m.dx_user}};
    m.scratchpad.bind(bwd_data_pd, m.bwd_data_args);
    m.bwd_weights_args = {{DNNL_ARG_SRC, m.dyt_op}, {DNNL_ARG_WEIGHTS, m.x_op}, {DNNL_ARG_DST, m.dw_user}};
    m.scratchpad.bind(bwd_weights_pd, m.bwd_weights_args);
  } catch (const dnnl::error& e) {
    throw_dnnl_error(e, m.name);
  }
}

Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

int64_t Linear::rows() const { return impl_->rows; }
int64_t Linear::in_features() const { return impl_->in; }
int64_t Linear::out_features() const { return impl_->out; }
Precision Linear::precision() const { return impl_->precision; }
double Linear::forward_flops() const {
  return 2.0 * static_cast<double>(impl_->rows) * static_cast<double>(impl_->in) * static_cast<double>(impl_->out);
}

void Linear::set_weights(const float* weight) {
  Impl& m = *impl_;
  if (!weight) throw std::invalid_argument(m.name + ": set_weights needs a weight buffer");
  if (m.precision == Precision::bf16) {
    convert_f32_to_bf16(m.weights.as<uint16_t>(), weight, m.out * m.in);
  } else {
    std::memcpy(m.weights.data(), weight, static_cast<size_t>(m.out * m.in) * sizeof(float));
  }
  m.weights_set = true;
}

void Linear::forward(const float* x, const float* bias, float* y) {
  profile::Scope profile_scope(profile::Kind::op, "linear fwd");
  Impl& m = *impl_;
  if (!x || !y) throw std::invalid_argument(m.name + ": forward needs x and y buffers");
  if (!m.weights_set) throw std::logic_error(m.name + ": forward before set_weights");
  m.bind_x(x);
  m.bias_user.set_data_handle(bias ? const_cast<float*>(bias) : m.zero_bias.data());
  m.y_user.set_data_handle(y);
  execute(m.fwd, m.fwd_args);
}

void Linear::backward(const float* x, const float* dy, float* dx, float* dweight, float* dbias) {
  profile::Scope profile_scope(profile::Kind::op, "linear bwd");
  Impl& m = *impl_;
  if (!x || !dy || !dweight) throw std::invalid_argument(m.name + ": backward needs x, dy and dweight buffers");
  if (!m.weights_set) throw std::logic_error(m.name + ": backward before set_weights");
  m.bind_dy(dy);
  if (dx) {
    m.dx_user.set_data_handle(dx);
    execute(m.bwd_data, m.bwd_data_args);
  }
  m.bind_x(x);
  m.dw_user.set_data_handle(dweight);
  execute(m.bwd_weights, m.bwd_weights_args);
  if (dbias) m.column_sums(dbias, dy);
}

}  // namespace ddpm::cpu
