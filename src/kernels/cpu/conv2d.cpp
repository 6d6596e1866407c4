// 2-D convolution on oneDNN: forward, backward-data and backward-weights primitives planned once.
//
// Two oneDNN traps shape this file. Activations are NHWC (NCHW takes a gemm path 2-3x slower).
// Weights are created with format_tag::any and reordered from/to PyTorch's oihw: NHWC activations
// with plain oihw weights silently select a "ref:" implementation ~300x slower.
//
// The input gradient of a stride-1 convolution is itself a forward convolution of dy with the
// weights flipped in space and transposed in channels (padding k-1-p). oneDNN 2.6's forward kernels
// (brgconv) run 20-45% faster here than its backward-data ones (measured with
// dev/conv_backward_data_lab.cpp), so stride-1 convolutions take that route; the stride-2
// downsample keeps the backward-data primitive. Either way the backward weight copy is made
// lazily, once per set_weights.
#include "ddpm/kernels/conv2d.h"

#include <stdexcept>
#include <utility>

#include "ddpm/kernels/convert.h"
#include "ddpm/memory.h"
#include "ddpm/bench/profiler.h"
#include "kernels/cpu/dnnl_context.h"
#include "kernels/cpu/dnnl_plan.h"
#include "kernels/cpu/parallel.h"

namespace ddpm::cpu {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

std::string Conv2dShape::str() const {
  return "[N=" + std::to_string(batch) + ",H=" + std::to_string(height) + ",W=" + std::to_string(width) +
         ",C=" + std::to_string(in_channels) + "->" + std::to_string(out_channels) + ",k" +
         std::to_string(kernel) + "s" + std::to_string(stride) + "p" + std::to_string(pad_before) + "," +
         std::to_string(pad_after) + "]";
}

struct Conv2d::Impl {
  Conv2dShape s;
  Precision precision;
  std::string name;  // "conv2d fp32 [N=..]" for records and errors

  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;  // stride 2
  dnnl::convolution_forward bwd_data_as_fwd;   // stride 1: dx = conv(dy, flipped w^T)
  bool data_grad_by_forward = false;
  dnnl::convolution_backward_weights bwd_weights;
  dnnl::reorder weights_in;      // user oihw f32 -> forward layout (and dtype)
  dnnl::reorder weights_to_bwd;  // forward layout -> backward-data layout (when they differ), or
                                 // flipped oihw -> the layout of bwd_data_as_fwd
  dnnl::reorder dweights_out;    // backward-weights layout -> user oihw f32
  bool separate_bwd_weights = false;

  // Caller's buffers: pointers set per call.
  dnnl::memory x_user, y_user, dy_user, dx_user, w_user, dw_user, bias_user, dbias_user;
  // The operands the primitives read: the caller's buffers in fp32, planned bf16 copies in bf16.
  dnnl::memory x_op, dy_op;
  dnnl::memory w_fwd, w_bwd, dw_op;

  AlignedBuffer x_bf16, dy_bf16, zero_bias, dbias_discard;
  AlignedBuffer w_flipped;         // [in, out, k, k] fp32, for bwd_data_as_fwd
  const float* w_source = nullptr;  // the caller's oihw weights from set_weights
  SharedScratchpad scratchpad;
  DnnlArgs fwd_args, bwd_data_args, bwd_weights_args, weights_in_args, weights_to_bwd_args, dweights_out_args;

  bool with_backward = true;
  bool weights_set = false;
  bool bwd_weights_current = false;

  void bind_x(const float* x) {
    if (precision == Precision::bf16) {
      convert_f32_to_bf16(x_bf16.as<uint16_t>(), x, s.batch * s.height * s.width * s.in_channels);
    } else {
      x_user.set_data_handle(const_cast<float*>(x));
    }
  }
  // w_flipped[i][o][kh][kw] = w[o][i][k-1-kh][k-1-kw]
  void flip_weights() {
    const int64_t k = s.kernel, kk = k * k, in = s.in_channels, out = s.out_channels;
    float* dst = w_flipped.as<float>();
    parallel_for(in, in * out * kk >= kParallelGrain, [&](int64_t i) {
      for (int64_t o = 0; o < out; ++o) {
        const float* src = w_source + (o * in + i) * kk;
        float* d = dst + (i * out + o) * kk;
        for (int64_t t = 0; t < kk; ++t) d[t] = src[kk - 1 - t];
      }
    });
  }
  void bind_dy(const float* dy) {
    if (precision == Precision::bf16) {
      convert_f32_to_bf16(dy_bf16.as<uint16_t>(), dy, s.batch * s.out_height() * s.out_width() * s.out_channels);
    } else {
      dy_user.set_data_handle(const_cast<float*>(dy));
    }
  }
};

namespace {

void validate(const Conv2dShape& s) {
  const bool ok = s.batch > 0 && s.height > 0 && s.width > 0 && s.in_channels > 0 && s.out_channels > 0 &&
                  s.kernel > 0 && s.stride > 0 && s.pad_before >= 0 && s.pad_after >= 0 &&
                  s.height + s.pad_before + s.pad_after >= s.kernel &&
                  s.width + s.pad_before + s.pad_after >= s.kernel;
  if (!ok)
    throw std::invalid_argument("conv2d " + s.str() +
                                ": needs positive sizes, kernel and stride, non-negative padding, and a "
                                "padded input at least as large as the kernel");
}

}  // namespace

Conv2d::Conv2d(const Conv2dShape& shape, Precision precision, bool with_backward)
    : impl_(std::make_unique<Impl>()) {
  validate(shape);
  Impl& m = *impl_;
  m.s = shape;
  m.precision = precision;
  m.with_backward = with_backward;
  m.name = std::string("conv2d ") + precision_name(precision) + " " + shape.str();

  const int64_t n = shape.batch, c = shape.in_channels, o = shape.out_channels, k = shape.kernel;
  const int64_t ho = shape.out_height(), wo = shape.out_width();
  const dt op = precision == Precision::bf16 ? dt::bf16 : dt::f32;
  const dnnl::memory::dims x_dims{n, c, shape.height, shape.width}, y_dims{n, o, ho, wo}, w_dims{o, c, k, k};
  const dnnl::memory::dims strides{shape.stride, shape.stride};
  const dnnl::memory::dims pad_l{shape.pad_before, shape.pad_before}, pad_r{shape.pad_after, shape.pad_after};

  const dnnl::memory::desc x_user_md(x_dims, dt::f32, tag::nhwc), y_md(y_dims, dt::f32, tag::nhwc);
  const dnnl::memory::desc w_user_md(w_dims, dt::f32, tag::oihw), bias_md({o}, dt::f32, tag::x);
  const dnnl::memory::desc x_op_md(x_dims, op, tag::nhwc), dy_op_md(y_dims, op, tag::nhwc);
  const dnnl::memory::desc w_any_md(w_dims, op, tag::any), dw_any_md(w_dims, dt::f32, tag::any);

  try {
    const dnnl::primitive_attr attr = user_scratchpad_attr();
    const auto algo = dnnl::algorithm::convolution_direct;
    const dnnl::convolution_forward::primitive_desc fwd_pd(
        dnnl::convolution_forward::desc(with_backward ? dnnl::prop_kind::forward_training
                                                      : dnnl::prop_kind::forward_inference,
                                        algo, x_op_md, w_any_md, bias_md, y_md, strides, pad_l, pad_r),
        attr, dnnl_engine());
    record_primitive(fwd_pd, m.name + " forward");
    const dnnl::reorder::primitive_desc weights_in_pd(dnnl_engine(), w_user_md, dnnl_engine(),
                                                      fwd_pd.weights_desc(), attr);
    record_primitive(weights_in_pd, m.name + " reorder weights oihw->forward");
    m.fwd = dnnl::convolution_forward(fwd_pd);
    m.weights_in = dnnl::reorder(weights_in_pd);
    m.x_user = unbound_memory(x_user_md);
    m.y_user = unbound_memory(y_md);
    m.w_user = unbound_memory(w_user_md);
    m.bias_user = unbound_memory(bias_md);
    m.zero_bias = AlignedBuffer(static_cast<size_t>(o) * sizeof(float));
    if (precision == Precision::bf16) {
      m.x_bf16 = AlignedBuffer(x_op_md.get_size());
      m.x_op = dnnl::memory(x_op_md, dnnl_engine(), m.x_bf16.data());
    } else {
      m.x_op = m.x_user;
    }
    m.w_fwd = owned_memory(fwd_pd.weights_desc());
    m.scratchpad.need(fwd_pd);
    m.scratchpad.need(weights_in_pd);
    const auto bind_forward = [&] {  // after scratchpad.allocate()
      m.fwd_args = {{DNNL_ARG_SRC, m.x_op}, {DNNL_ARG_WEIGHTS, m.w_fwd}, {DNNL_ARG_BIAS, m.bias_user},
                    {DNNL_ARG_DST, m.y_user}};
      m.scratchpad.bind(fwd_pd, m.fwd_args);
      m.weights_in_args = {{DNNL_ARG_FROM, m.w_user}, {DNNL_ARG_TO, m.w_fwd}};
      m.scratchpad.bind(weights_in_pd, m.weights_in_args);
    };
    if (!with_backward) {
      m.scratchpad.allocate();
      bind_forward();
      return;
    }
    m.data_grad_by_forward = shape.stride == 1 && shape.pad_before < k && shape.pad_after < k;
    dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
    dnnl::convolution_forward::primitive_desc bwd_data_as_fwd_pd;
    if (m.data_grad_by_forward) {
      const dnnl::memory::desc w_t_any_md({c, o, k, k}, op, tag::any);
      const dnnl::memory::dims t_pad_l{k - 1 - shape.pad_before, k - 1 - shape.pad_before};
      const dnnl::memory::dims t_pad_r{k - 1 - shape.pad_after, k - 1 - shape.pad_after};
      bwd_data_as_fwd_pd = dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algo, dy_op_md, w_t_any_md,
                                          x_user_md, strides, t_pad_l, t_pad_r),
          attr, dnnl_engine());
      record_primitive(bwd_data_as_fwd_pd, m.name + " backward data (as forward)");
    } else {
      bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(
          dnnl::convolution_backward_data::desc(algo, x_user_md, w_any_md, dy_op_md, strides, pad_l, pad_r), attr,
          dnnl_engine(), fwd_pd);
      record_primitive(bwd_data_pd, m.name + " backward data");
    }
    const dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd(
        dnnl::convolution_backward_weights::desc(algo, x_op_md, dw_any_md, bias_md, dy_op_md, strides, pad_l,
                                                 pad_r),
        attr, dnnl_engine(), fwd_pd);
    record_primitive(bwd_weights_pd, m.name + " backward weights");

    const dnnl::memory::desc w_fwd_md = fwd_pd.weights_desc();
    const dnnl::memory::desc w_bwd_md =
        m.data_grad_by_forward ? bwd_data_as_fwd_pd.weights_desc() : bwd_data_pd.weights_desc();
    const dnnl::memory::desc dw_md = bwd_weights_pd.diff_weights_desc();
    m.separate_bwd_weights = m.data_grad_by_forward || w_bwd_md != w_fwd_md;
    const dnnl::memory::desc w_flipped_md({c, o, k, k}, dt::f32, tag::oihw);
    const dnnl::reorder::primitive_desc dweights_out_pd(dnnl_engine(), dw_md, dnnl_engine(), w_user_md, attr);
    record_primitive(dweights_out_pd, m.name + " reorder weight gradient ->oihw");
    dnnl::reorder::primitive_desc weights_to_bwd_pd;
    if (m.separate_bwd_weights) {
      weights_to_bwd_pd = dnnl::reorder::primitive_desc(
          dnnl_engine(), m.data_grad_by_forward ? w_flipped_md : w_fwd_md, dnnl_engine(), w_bwd_md, attr);
      record_primitive(weights_to_bwd_pd, m.name + " reorder weights forward->backward data");
    }

    if (m.data_grad_by_forward)
      m.bwd_data_as_fwd = dnnl::convolution_forward(bwd_data_as_fwd_pd);
    else
      m.bwd_data = dnnl::convolution_backward_data(bwd_data_pd);
    m.bwd_weights = dnnl::convolution_backward_weights(bwd_weights_pd);
    m.dweights_out = dnnl::reorder(dweights_out_pd);
    if (m.separate_bwd_weights) m.weights_to_bwd = dnnl::reorder(weights_to_bwd_pd);

    // Memory: the caller's buffers are bound per call; everything else is allocated here.
    m.dy_user = unbound_memory(y_md);
    m.dx_user = unbound_memory(x_user_md);
    m.dw_user = unbound_memory(w_user_md);
    m.dbias_user = unbound_memory(bias_md);
    m.dbias_discard = AlignedBuffer(static_cast<size_t>(o) * sizeof(float));
    if (precision == Precision::bf16) {
      m.dy_bf16 = AlignedBuffer(dy_op_md.get_size());
      m.dy_op = dnnl::memory(dy_op_md, dnnl_engine(), m.dy_bf16.data());
    } else {
      m.dy_op = m.dy_user;
    }
    m.w_bwd = m.separate_bwd_weights ? owned_memory(w_bwd_md) : m.w_fwd;
    m.dw_op = owned_memory(dw_md);

    m.scratchpad.need(m.data_grad_by_forward ? dnnl::primitive_desc_base(bwd_data_as_fwd_pd)
                                             : dnnl::primitive_desc_base(bwd_data_pd));
    m.scratchpad.need(bwd_weights_pd);
    m.scratchpad.need(dweights_out_pd);
    if (m.separate_bwd_weights) m.scratchpad.need(weights_to_bwd_pd);
    m.scratchpad.allocate();
    bind_forward();
    if (m.data_grad_by_forward) {
      m.bwd_data_args = {{DNNL_ARG_SRC, m.dy_op}, {DNNL_ARG_WEIGHTS, m.w_bwd}, {DNNL_ARG_DST, m.dx_user}};
      m.scratchpad.bind(bwd_data_as_fwd_pd, m.bwd_data_args);
      m.w_flipped = AlignedBuffer(w_flipped_md.get_size());
    } else {
      m.bwd_data_args = {{DNNL_ARG_DIFF_DST, m.dy_op}, {DNNL_ARG_WEIGHTS, m.w_bwd}, {DNNL_ARG_DIFF_SRC, m.dx_user}};
      m.scratchpad.bind(bwd_data_pd, m.bwd_data_args);
    }
    m.bwd_weights_args = {{DNNL_ARG_SRC, m.x_op},
                          {DNNL_ARG_DIFF_DST, m.dy_op},
                          {DNNL_ARG_DIFF_WEIGHTS, m.dw_op},
                          {DNNL_ARG_DIFF_BIAS, m.dbias_user}};
    m.scratchpad.bind(bwd_weights_pd, m.bwd_weights_args);
    m.dweights_out_args = {{DNNL_ARG_FROM, m.dw_op}, {DNNL_ARG_TO, m.dw_user}};
    m.scratchpad.bind(dweights_out_pd, m.dweights_out_args);
    if (m.separate_bwd_weights) {
      const dnnl::memory from =
          m.data_grad_by_forward ? dnnl::memory(w_flipped_md, dnnl_engine(), m.w_flipped.data()) : m.w_fwd;
      m.weights_to_bwd_args = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, m.w_bwd}};
      m.scratchpad.bind(weights_to_bwd_pd, m.weights_to_bwd_args);
    }
  } catch (const dnnl::error& e) {
    throw_dnnl_error(e, m.name);
  }
}

Conv2d::~Conv2d() = default;
Conv2d::Conv2d(Conv2d&&) noexcept = default;
Conv2d& Conv2d::operator=(Conv2d&&) noexcept = default;

const Conv2dShape& Conv2d::shape() const { return impl_->s; }
Precision Conv2d::precision() const { return impl_->precision; }
Shape Conv2d::input_shape() const { return impl_->s.input_shape(); }
Shape Conv2d::output_shape() const { return impl_->s.output_shape(); }
Shape Conv2d::weight_shape() const { return impl_->s.weight_shape(); }

double Conv2d::forward_flops() const { return impl_->s.forward_flops(); }

void Conv2d::set_weights(const float* weight_oihw) {
  Impl& m = *impl_;
  if (!weight_oihw) throw std::invalid_argument(m.name + ": set_weights needs a weight buffer");
  m.w_source = weight_oihw;
  m.w_user.set_data_handle(const_cast<float*>(weight_oihw));
  execute(m.weights_in, m.weights_in_args);
  m.weights_set = true;
  m.bwd_weights_current = !m.separate_bwd_weights || !m.with_backward;
}

namespace {
const char* profile_name(const Conv2dShape& s, bool backward) {
  if (s.kernel == 1) return backward ? "conv1x1 bwd" : "conv1x1 fwd";
  if (s.stride == 2) return backward ? "conv3x3 stride 2 bwd" : "conv3x3 stride 2 fwd";
  return backward ? "conv3x3 bwd" : "conv3x3 fwd";
}
}  // namespace

void Conv2d::forward(const float* x_nhwc, const float* bias, float* y_nhwc) {
  Impl& m = *impl_;
  profile::Scope profile_scope(profile::Kind::op, profile_name(m.s, false));
  if (!x_nhwc || !y_nhwc) throw std::invalid_argument(m.name + ": forward needs x and y buffers");
  if (!m.weights_set) throw std::logic_error(m.name + ": forward before set_weights");
  m.bind_x(x_nhwc);
  m.bias_user.set_data_handle(bias ? const_cast<float*>(bias) : m.zero_bias.data());
  m.y_user.set_data_handle(y_nhwc);
  execute(m.fwd, m.fwd_args);
}

void Conv2d::backward(const float* x_nhwc, const float* dy_nhwc, float* dx_nhwc, float* dweight_oihw,
                      float* dbias) {
  Impl& m = *impl_;
  profile::Scope profile_scope(profile::Kind::op, profile_name(m.s, true));
  if (!x_nhwc || !dy_nhwc || !dweight_oihw)
    throw std::invalid_argument(m.name + ": backward needs x, dy and dweight buffers");
  if (!m.weights_set) throw std::logic_error(m.name + ": backward before set_weights");
  if (!m.with_backward) throw std::logic_error(m.name + ": backward of a convolution built for inference");
  m.bind_dy(dy_nhwc);
  if (dx_nhwc) {
    if (!m.bwd_weights_current) {
      if (m.data_grad_by_forward) m.flip_weights();
      execute(m.weights_to_bwd, m.weights_to_bwd_args);
      m.bwd_weights_current = true;
    }
    m.dx_user.set_data_handle(dx_nhwc);
    execute(m.data_grad_by_forward ? dnnl::primitive(m.bwd_data_as_fwd) : dnnl::primitive(m.bwd_data),
            m.bwd_data_args);
  }
  m.bind_x(x_nhwc);
  m.dbias_user.set_data_handle(dbias ? dbias : m.dbias_discard.data());
  execute(m.bwd_weights, m.bwd_weights_args);
  m.dw_user.set_data_handle(dweight_oihw);
  execute(m.dweights_out, m.dweights_out_args);
}

}  // namespace ddpm::cpu
