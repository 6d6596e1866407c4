// 2-D convolution on cuDNN 9 (the legacy convolution API), planned once per shape: descriptors,
// algorithms, operand copies and workspace at construction; forward and backward only queue work.
//
// cuDNN sees NHWC activations and KRSC (CUDNN_TENSOR_NHWC) filters. Three things it cannot do
// directly are done around it by the small kernels of layout.cu, into buffers planned here:
//  - asymmetric padding (diffusers' Downsample2D pads (0, 1)): cuDNN pads both sides alike, and
//    padding (1, 1) instead changes the output of a stride-2 convolution on an even input, so x is
//    copied into a zero-bordered [N, H+pb+pa, W+pb+pa, C] buffer and convolved without padding; the
//    input gradient comes back in that geometry and is cropped;
//  - channel counts that are not a multiple of 16 bytes (3, 5, 7 channels): padded with zeros to a
//    multiple of 8 (bf16) or 4 (fp32), which every NHWC kernel accepts, zero weights making the
//    extra outputs zero and the extra gradients unused;
//  - bf16 mode: cuDNN's bf16 convolutions have bf16 inputs and outputs (fp32 accumulation), so x,
//    the weights and dy are rounded into bf16 copies and y, dx and dweight are widened back into
//    the caller's fp32 buffers (the gradients PyTorch autocast produces, rounded once to bf16).
// The bias add and the bias gradient (a deterministic column sum of the fp32 dy) are ours too.
//
// Algorithms: cuDNN's heuristic ranking (Get*Algorithm_v7), the first deterministic one whose
// workspace fits kWorkspaceBudget (results then repeat bit for bit, as on the CPU), else the first
// that fits. Strict fp32 (TF32 not allowed) asks for CUDNN_FMA_MATH and takes only FMA algorithms.
#include "ddpm/kernels/cuda/conv2d.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/kernels/cuda/runtime.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/layout.h"

namespace ddpm::cuda {

namespace {

using detail::Element;
using detail::Nhwc;

// The most workspace one convolution's algorithms may ask for (the workspace is shared by all ops).
constexpr size_t kWorkspaceBudget = size_t{256} << 20;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

int narrow(int64_t v, const std::string& name, const char* what) {
  if (v > 0x7fffffff) throw std::invalid_argument(name + ": " + what + " exceeds cuDNN's int range");
  return static_cast<int>(v);
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default";
    case CUDNN_TENSOR_OP_MATH: return "tensor-op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor-op-conv";
    case CUDNN_FMA_MATH: return "fma";
  }
  return "?";
}

// The first usable result of cuDNN's ranking (fastest first): deterministic preferred, workspace
// within budget, and in strict fp32 only FMA math (cuDNN answers a descriptor set to
// CUDNN_FMA_MATH with FMA results; PyTorch asserts the same).
template <class Perf>
const Perf* choose(const std::vector<Perf>& results, int count, bool strict_fp32) {
  const Perf* fallback = nullptr;
  for (int i = 0; i < count; ++i) {
    const Perf& p = results[static_cast<size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kWorkspaceBudget) continue;
    if (strict_fp32 && p.mathType != CUDNN_FMA_MATH) continue;
    if (p.determinism == CUDNN_DETERMINISTIC) return &p;
    if (fallback == nullptr) fallback = &p;
  }
  return fallback;
}

template <class Perf>
std::string ranking(const std::vector<Perf>& results, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    const Perf& p = results[static_cast<size_t>(i)];
    out += (i ? "; " : "") + std::to_string(static_cast<int>(p.algo)) + ": " + cudnnGetErrorString(p.status) +
           ", " + std::to_string(p.memory >> 20) + " MiB, " + math_name(p.mathType) +
           (p.determinism == CUDNN_DETERMINISTIC ? "" : ", non-deterministic");
  }
  return out.empty() ? "none returned" : out;
}

}  // namespace

struct Conv2d::Impl {
  cpu::Conv2dShape s;
  Precision precision = Precision::fp32;
  bool with_backward = true;
  std::string name;  // "cuda conv2d bf16 [N=..]" for errors

  // The geometry cuDNN sees.
  Element elem = Element::f32;
  bool pad_by_copy = false;  // asymmetric padding: x copied with its zero border, cuDNN pads nothing
  int cudnn_pad = 0;
  int64_t ho = 0, wo = 0;
  Nhwc x_user, x_op, y_user, y_op;  // caller's and cuDNN's shapes of x (and dx), y (and dy)
  int64_t cin_op = 0, cout_op = 0;
  bool stage_x = false, stage_y = false;  // whether cuDNN reads/writes planned copies

  cudnnTensorDescriptor_t x_desc = nullptr, y_desc = nullptr;
  cudnnFilterDescriptor_t w_desc = nullptr;
  cudnnConvolutionDescriptor_t fwd_conv = nullptr, data_conv = nullptr, filter_conv = nullptr;
  cudnnConvolutionFwdAlgo_t fwd_algo{};
  cudnnConvolutionBwdDataAlgo_t data_algo{};
  cudnnConvolutionBwdFilterAlgo_t filter_algo{};
  size_t workspace_needed = 0;
  std::string algorithms;

  DeviceBuffer w_op, x_copy, y_copy, dy_copy, dx_copy, dw_op, partials;
  bool weights_set = false;

  ~Impl() {
    if (x_desc) cudnnDestroyTensorDescriptor(x_desc);
    if (y_desc) cudnnDestroyTensorDescriptor(y_desc);
    if (w_desc) cudnnDestroyFilterDescriptor(w_desc);
    if (fwd_conv) cudnnDestroyConvolutionDescriptor(fwd_conv);
    if (data_conv) cudnnDestroyConvolutionDescriptor(data_conv);
    if (filter_conv) cudnnDestroyConvolutionDescriptor(filter_conv);
  }

  cudnnConvolutionDescriptor_t make_conv(cudnnMathType_t math) const {
    cudnnConvolutionDescriptor_t d = nullptr;
    DDPM_CUDA_CHECK(cudnnCreateConvolutionDescriptor(&d));
    const cudnnStatus_t set = cudnnSetConvolution2dDescriptor(d, cudnn_pad, cudnn_pad, s.stride, s.stride, 1, 1,
                                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
    const cudnnStatus_t math_set = set == CUDNN_STATUS_SUCCESS ? cudnnSetConvolutionMathType(d, math) : set;
    if (math_set != CUDNN_STATUS_SUCCESS) {
      cudnnDestroyConvolutionDescriptor(d);
      DDPM_CUDA_CHECK(math_set);
    }
    return d;
  }

  void plan();
  void stage_input(const float* x) {
    detail::pad_nhwc(x_copy.data(), elem, x_op, x, x_user, pad_by_copy ? s.pad_before : 0,
                     pad_by_copy ? s.pad_before : 0);
  }
};

void Conv2d::Impl::plan() {
  const bool bf16 = precision == Precision::bf16;
  const bool strict_fp32 = !bf16 && !allow_tf32();
  elem = bf16 ? Element::bf16 : Element::f32;
  const cudnnDataType_t dtype = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;

  pad_by_copy = s.pad_before != s.pad_after;
  cudnn_pad = pad_by_copy ? 0 : s.pad_before;
  ho = s.out_height();
  wo = s.out_width();
  const int64_t align = bf16 ? 8 : 4;  // channels per 16 bytes
  cin_op = round_up(s.in_channels, align);
  cout_op = round_up(s.out_channels, align);
  const int64_t border = pad_by_copy ? s.pad_before + s.pad_after : 0;
  x_user = {s.batch, s.height, s.width, s.in_channels};
  x_op = {s.batch, s.height + border, s.width + border, cin_op};
  y_user = {s.batch, ho, wo, s.out_channels};
  y_op = {s.batch, ho, wo, cout_op};
  stage_x = bf16 || pad_by_copy || cin_op != s.in_channels;
  stage_y = bf16 || cout_op != s.out_channels;

  const int k = s.kernel;
  DDPM_CUDA_CHECK(cudnnCreateTensorDescriptor(&x_desc));
  DDPM_CUDA_CHECK(cudnnSetTensor4dDescriptor(x_desc, CUDNN_TENSOR_NHWC, dtype, narrow(x_op.n, name, "batch"),
                                             narrow(cin_op, name, "channels"), narrow(x_op.h, name, "height"),
                                             narrow(x_op.w, name, "width")));
  DDPM_CUDA_CHECK(cudnnCreateTensorDescriptor(&y_desc));
  DDPM_CUDA_CHECK(cudnnSetTensor4dDescriptor(y_desc, CUDNN_TENSOR_NHWC, dtype, narrow(y_op.n, name, "batch"),
                                             narrow(cout_op, name, "channels"), narrow(ho, name, "height"),
                                             narrow(wo, name, "width")));
  DDPM_CUDA_CHECK(cudnnCreateFilterDescriptor(&w_desc));
  DDPM_CUDA_CHECK(cudnnSetFilter4dDescriptor(w_desc, dtype, CUDNN_TENSOR_NHWC, narrow(cout_op, name, "channels"),
                                             narrow(cin_op, name, "channels"), k, k));

  // Each direction's descriptor then takes its chosen algorithm's math type (cuDNN picks a kernel
  // from the pair), as PyTorch does; in strict fp32 that is FMA.
  const cudnnMathType_t asked = bf16 ? CUDNN_TENSOR_OP_MATH : (strict_fp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH);
  fwd_conv = make_conv(asked);
  int on = 0, oc = 0, oh = 0, ow = 0;
  DDPM_CUDA_CHECK(cudnnGetConvolution2dForwardOutputDim(fwd_conv, x_desc, w_desc, &on, &oc, &oh, &ow));
  if (on != y_op.n || oc != cout_op || oh != ho || ow != wo)
    throw Error(name + ": cuDNN computes an output of [" + std::to_string(on) + "," + std::to_string(oh) + "," +
                std::to_string(ow) + "," + std::to_string(oc) + "], expected [" + std::to_string(y_op.n) + "," +
                std::to_string(ho) + "," + std::to_string(wo) + "," + std::to_string(cout_op) + "]");

  cudnnHandle_t h = detail::cudnn();
  char text[160];
  {
    int max = 0, count = 0;
    DDPM_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> r(static_cast<size_t>(std::max(max, 1)));
    DDPM_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, x_desc, w_desc, fwd_conv, y_desc, max, &count, r.data()));
    const auto* p = choose(r, count, strict_fp32);
    if (!p) throw Error(name + ": cuDNN offers no usable forward algorithm (" + ranking(r, count) + ")");
    fwd_algo = p->algo;
    DDPM_CUDA_CHECK(cudnnSetConvolutionMathType(fwd_conv, p->mathType));
    size_t bytes = 0;
    DDPM_CUDA_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, x_desc, w_desc, fwd_conv, y_desc, fwd_algo, &bytes));
    workspace_needed = std::max({workspace_needed, bytes, p->memory});
    std::snprintf(text, sizeof text, "fwd %d %s", static_cast<int>(fwd_algo), math_name(p->mathType));
    algorithms = text;
  }
  if (with_backward) {
    data_conv = make_conv(asked);
    int max = 0, count = 0;
    DDPM_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> r(static_cast<size_t>(std::max(max, 1)));
    DDPM_CUDA_CHECK(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w_desc, y_desc, data_conv, x_desc, max, &count, r.data()));
    const auto* p = choose(r, count, strict_fp32);
    if (!p) throw Error(name + ": cuDNN offers no usable backward-data algorithm (" + ranking(r, count) + ")");
    data_algo = p->algo;
    DDPM_CUDA_CHECK(cudnnSetConvolutionMathType(data_conv, p->mathType));
    size_t bytes = 0;
    DDPM_CUDA_CHECK(
        cudnnGetConvolutionBackwardDataWorkspaceSize(h, w_desc, y_desc, data_conv, x_desc, data_algo, &bytes));
    workspace_needed = std::max({workspace_needed, bytes, p->memory});
    std::snprintf(text, sizeof text, ", bwd-data %d %s", static_cast<int>(data_algo),
                  math_name(p->mathType));
    algorithms += text;
  }
  if (with_backward) {
    filter_conv = make_conv(asked);
    int max = 0, count = 0;
    DDPM_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> r(static_cast<size_t>(std::max(max, 1)));
    DDPM_CUDA_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, x_desc, y_desc, filter_conv, w_desc, max, &count, r.data()));
    const auto* p = choose(r, count, strict_fp32);
    if (!p) throw Error(name + ": cuDNN offers no usable backward-filter algorithm (" + ranking(r, count) + ")");
    filter_algo = p->algo;
    DDPM_CUDA_CHECK(cudnnSetConvolutionMathType(filter_conv, p->mathType));
    size_t bytes = 0;
    DDPM_CUDA_CHECK(
        cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x_desc, y_desc, filter_conv, w_desc, filter_algo, &bytes));
    workspace_needed = std::max({workspace_needed, bytes, p->memory});
    std::snprintf(text, sizeof text, ", bwd-filter %d %s", static_cast<int>(filter_algo),
                  math_name(p->mathType));
    algorithms += text;
  }
  std::snprintf(text, sizeof text, "; workspace %.1f MiB", static_cast<double>(workspace_needed) / (1 << 20));
  algorithms += text;
  if (pad_by_copy) algorithms += "; x zero-padded by copy";
  if (cin_op != s.in_channels || cout_op != s.out_channels)
    algorithms += "; channels padded to " + std::to_string(cin_op) + "->" + std::to_string(cout_op);
  detail::reserve_workspace(workspace_needed);

  const size_t eb = detail::element_bytes(elem);
  const auto bytes_of = [eb](int64_t elements) { return static_cast<size_t>(elements) * eb; };
  w_op = DeviceBuffer(bytes_of(cout_op * k * k * cin_op));
  if (stage_x) x_copy = DeviceBuffer(bytes_of(x_op.size()));
  if (stage_y) y_copy = DeviceBuffer(bytes_of(y_op.size()));
  if (with_backward) {
    if (stage_y) dy_copy = DeviceBuffer(bytes_of(y_op.size()));
    if (stage_x) dx_copy = DeviceBuffer(bytes_of(x_op.size()));
    dw_op = DeviceBuffer(bytes_of(cout_op * k * k * cin_op));
    partials = DeviceBuffer(static_cast<size_t>(detail::column_sum_partials(y_user.n * ho * wo, s.out_channels)) *
                            sizeof(double));
  }
}

Conv2d::Conv2d(const cpu::Conv2dShape& shape, Precision precision, bool with_backward)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.s = shape;
  m.precision = precision;
  m.with_backward = with_backward;
  m.name = std::string("cuda conv2d ") + precision_name(precision) + " " + shape.str();
  const auto& s = shape;
  const bool ok = s.batch > 0 && s.height > 0 && s.width > 0 && s.in_channels > 0 && s.out_channels > 0 &&
                  s.kernel > 0 && s.stride > 0 && s.pad_before >= 0 && s.pad_after >= 0 &&
                  s.height + s.pad_before + s.pad_after >= s.kernel &&
                  s.width + s.pad_before + s.pad_after >= s.kernel;
  if (!ok)
    throw std::invalid_argument(m.name +
                                ": needs positive sizes, kernel and stride, non-negative padding, and a "
                                "padded input at least as large as the kernel");
  require_device("cuda::Conv2d");
  m.plan();
}

Conv2d::~Conv2d() = default;
Conv2d::Conv2d(Conv2d&&) noexcept = default;
Conv2d& Conv2d::operator=(Conv2d&&) noexcept = default;

const cpu::Conv2dShape& Conv2d::shape() const { return impl_->s; }
Precision Conv2d::precision() const { return impl_->precision; }
Shape Conv2d::input_shape() const { return impl_->s.input_shape(); }
Shape Conv2d::output_shape() const { return impl_->s.output_shape(); }
Shape Conv2d::weight_shape() const { return impl_->s.weight_shape(); }

double Conv2d::forward_flops() const { return impl_->s.forward_flops(); }

std::string Conv2d::algorithms() const { return impl_->algorithms; }

void Conv2d::set_weights(const float* weight_oihw) {
  Impl& m = *impl_;
  if (!weight_oihw) throw std::invalid_argument(m.name + ": set_weights needs a weight buffer");
  detail::oihw_to_ohwi(m.w_op.data(), m.elem, weight_oihw, m.s.out_channels, m.s.in_channels, m.s.kernel, m.cout_op,
                       m.cin_op);
  m.weights_set = true;
}

void Conv2d::forward(const float* x_nhwc, const float* bias, float* y_nhwc) {
  Impl& m = *impl_;
  if (!x_nhwc || !y_nhwc) throw std::invalid_argument(m.name + ": forward needs x and y buffers");
  if (!m.weights_set) throw std::logic_error(m.name + ": forward before set_weights");
  const void* x = x_nhwc;
  if (m.stage_x) {
    m.stage_input(x_nhwc);
    x = m.x_copy.data();
  }
  void* y = m.stage_y ? m.y_copy.data() : static_cast<void*>(y_nhwc);
  const float one = 1.0f, zero = 0.0f;
  DDPM_CUDA_CHECK(cudnnConvolutionForward(detail::cudnn(), &one, m.x_desc, x, m.w_desc, m.w_op.data(), m.fwd_conv,
                                          m.fwd_algo, detail::workspace(), detail::workspace_bytes(), &zero, m.y_desc,
                                          y));
  if (m.stage_y) {
    detail::crop_nhwc(y_nhwc, m.y_user, m.y_copy.data(), m.elem, m.y_op, 0, 0, bias);
  } else if (bias) {
    detail::add_row_bias(y_nhwc, bias, m.y_user.n * m.ho * m.wo, m.s.out_channels);
  }
}

void Conv2d::backward(const float* x_nhwc, const float* dy_nhwc, float* dx_nhwc, float* dweight_oihw,
                      float* dbias) {
  Impl& m = *impl_;
  if (!m.with_backward) throw std::logic_error(m.name + ": backward of a convolution built for inference");
  if (!x_nhwc || !dy_nhwc || !dweight_oihw)
    throw std::invalid_argument(m.name + ": backward needs x, dy and dweight buffers");
  if (!m.weights_set) throw std::logic_error(m.name + ": backward before set_weights");
  cudnnHandle_t h = detail::cudnn();
  const float one = 1.0f, zero = 0.0f;

  if (dbias) detail::column_sums(dbias, dy_nhwc, m.y_user.n * m.ho * m.wo, m.s.out_channels, m.partials.as<double>());
  const void* dy = dy_nhwc;
  if (m.stage_y) {
    detail::pad_nhwc(m.dy_copy.data(), m.elem, m.y_op, dy_nhwc, m.y_user, 0, 0);
    dy = m.dy_copy.data();
  }
  if (dx_nhwc) {
    void* dx = m.stage_x ? m.dx_copy.data() : static_cast<void*>(dx_nhwc);
    DDPM_CUDA_CHECK(cudnnConvolutionBackwardData(h, &one, m.w_desc, m.w_op.data(), m.y_desc, dy, m.data_conv,
                                                 m.data_algo, detail::workspace(), detail::workspace_bytes(), &zero,
                                                 m.x_desc, dx));
    if (m.stage_x) {
      const int64_t offset = m.pad_by_copy ? m.s.pad_before : 0;
      detail::crop_nhwc(dx_nhwc, m.x_user, m.dx_copy.data(), m.elem, m.x_op, offset, offset, nullptr);
    }
  }
  const void* x = x_nhwc;
  if (m.stage_x) {
    m.stage_input(x_nhwc);
    x = m.x_copy.data();
  }
  DDPM_CUDA_CHECK(cudnnConvolutionBackwardFilter(h, &one, m.x_desc, x, m.y_desc, dy, m.filter_conv, m.filter_algo,
                                                 detail::workspace(), detail::workspace_bytes(), &zero, m.w_desc,
                                                 m.dw_op.data()));
  detail::ohwi_to_oihw(dweight_oihw, m.dw_op.data(), m.elem, m.s.out_channels, m.s.in_channels, m.s.kernel,
                       m.cout_op, m.cin_op);
}

}  // namespace ddpm::cuda
