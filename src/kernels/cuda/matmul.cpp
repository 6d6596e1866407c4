// cuda::Linear and cuda::BatchedMatmul on cuBLASLt, planned once per shape: descriptors, the
// heuristic's algorithm and the operand copies at construction; a product only queues work.
//
// Our matrices are row-major, cuBLASLt's column-major. A row-major [r, c] matrix is a column-major
// [c, r] one, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: B's memory as cuBLASLt's A,
// A's as its B, no copies. fp32: fp32 operands and CUBLAS_COMPUTE_32F (exact fp32 products), or
// CUBLAS_COMPUTE_32F_FAST_TF32 when cuda::allow_tf32() was set before planning. bf16: operands
// rounded into planned bf16 copies, fp32 accumulation and fp32 output (A/B bf16, C/D fp32).
//
// Alignment: the heuristic assumes 256-byte aligned buffers unless told otherwise, and an algorithm
// picked that way may refuse (or misread) a buffer that is not. Caller pointers are only float
// aligned in general (attention's parameters at odd channel counts), so each product plans two
// algorithms: one for 16-byte aligned buffers and one for any element-aligned buffer, picked per
// call from the pointers. The bias rides in cuBLASLt's BIAS epilogue when the pointers are
// aligned, else a small kernel adds it after the product.
#include "ddpm/kernels/cuda/matmul.h"

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ddpm/kernels/cuda/runtime.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/layout.h"

namespace ddpm::cuda {

namespace {

constexpr size_t kMaxWorkspace = size_t{32} << 20;  // NVIDIA's suggestion for Hopper
constexpr uint32_t kAligned = 16;

bool is_aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kAligned == 0; }

struct DescDeleter {
  void operator()(cublasLtMatmulDesc_t d) const { cublasLtMatmulDescDestroy(d); }
};
struct LayoutDeleter {
  void operator()(cublasLtMatrixLayout_t l) const { cublasLtMatrixLayoutDestroy(l); }
};
struct PreferenceDeleter {
  void operator()(cublasLtMatmulPreference_t p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using DescPtr = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>, DescDeleter>;
using LayoutPtr = std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>, LayoutDeleter>;
using PreferencePtr = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, PreferenceDeleter>;

void check_positive(const std::string& name, std::initializer_list<int64_t> sizes) {
  for (int64_t v : sizes)
    if (v <= 0) throw std::invalid_argument(name + ": every size must be positive");
}

// One planned product over row-major matrices: C[b] [m, n] fp32 = alpha op(A[b]) op(B[b]), plus
// bias[n] added to every row when run() gets one; A [m, k] ([k, m] when transpose_a), B [k, n]
// ([n, k] when transpose_b), in fp32 or bf16 (uint16_t) as planned.
class Gemm {
 public:
  Gemm(const std::string& name, int64_t batch, int64_t m, int64_t k, int64_t n, bool transpose_a, bool transpose_b,
       bool bf16, float alpha, bool bias_epilogue)
      : name_(name), batch_(batch), m_(m), n_(n), alpha_(alpha) {
    const cudaDataType_t ab = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    const cublasComputeType_t compute =
        (!bf16 && allow_tf32()) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    // cuBLASLt's A is our B (rows n, cols k after its op), its B our A, its D our C transposed.
    const cublasOperation_t op_a = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int64_t a_rows = transpose_b ? k : n, a_cols = transpose_b ? n : k;
    const int64_t b_rows = transpose_a ? m : k, b_cols = transpose_a ? k : m;
    a_ = make_layout(ab, a_rows, a_cols, k * n);
    b_ = make_layout(ab, b_rows, b_cols, m * k);
    d_ = make_layout(CUDA_R_32F, n, m, m * n);

    desc_ = make_desc(compute, op_a, op_b);
    // bf16 operands are always this op's own (cudaMalloc'd, 256-byte aligned) copies.
    const uint32_t ab_any = bf16 ? kAligned : 4;
    if (!heuristic(desc_.get(), ab_any, 4, &algo_any_)) {
      throw Error(name_ + ": cuBLASLt has no algorithm for this product (" + (bf16 ? "bf16" : "fp32") +
                  " operands, compute " + (compute == CUBLAS_COMPUTE_32F ? "32F" : "32F_FAST_TF32") + ")");
    }
    has_aligned_ = heuristic(desc_.get(), kAligned, kAligned, &algo_aligned_);
    if (bias_epilogue) {
      bias_desc_ = make_desc(compute, op_a, op_b);
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      DDPM_CUDA_CHECK(cublasLtMatmulDescSetAttribute(bias_desc_.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                     sizeof epilogue));
      // The heuristic judges the bias pointer's alignment from its value: show it one exactly
      // 16-byte aligned, the most run() asks of a bias it passes to the epilogue.
      alignment_probe_ = DeviceBuffer(2 * kAligned);
      const void* probe = static_cast<const char*>(alignment_probe_.data()) + kAligned;
      DDPM_CUDA_CHECK(cublasLtMatmulDescSetAttribute(bias_desc_.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &probe,
                                                     sizeof probe));
      has_bias_ = heuristic(bias_desc_.get(), kAligned, kAligned, &algo_bias_);
    }
    detail::reserve_workspace(workspace_needed_);
  }

  void run(const void* a, const void* b, float* c, const float* bias) const {
    const bool aligned = has_aligned_ && is_aligned(a) && is_aligned(b) && is_aligned(c);
    if (bias != nullptr && has_bias_ && aligned && is_aligned(bias)) {
      DDPM_CUDA_CHECK(cublasLtMatmulDescSetAttribute(bias_desc_.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                     sizeof bias));
      matmul(bias_desc_.get(), algo_bias_, a, b, c);
      return;
    }
    matmul(desc_.get(), aligned ? algo_aligned_ : algo_any_, a, b, c);
    if (bias != nullptr) detail::add_row_bias(c, bias, batch_ * m_, n_);
  }

 private:
  LayoutPtr make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t batch_stride) const {
    cublasLtMatrixLayout_t l = nullptr;
    DDPM_CUDA_CHECK(cublasLtMatrixLayoutCreate(&l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols),
                                               rows));
    LayoutPtr owned(l);
    if (batch_ > 1) {
      const auto count = static_cast<int32_t>(batch_);
      DDPM_CUDA_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
      DDPM_CUDA_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batch_stride,
                                                       sizeof batch_stride));
    }
    return owned;
  }

  static DescPtr make_desc(cublasComputeType_t compute, cublasOperation_t op_a, cublasOperation_t op_b) {
    cublasLtMatmulDesc_t d = nullptr;
    DDPM_CUDA_CHECK(cublasLtMatmulDescCreate(&d, compute, CUDA_R_32F));
    DescPtr owned(d);
    DDPM_CUDA_CHECK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    DDPM_CUDA_CHECK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    return owned;
  }

  // The heuristic's first choice for buffers aligned to align_ab (A, B) and align_cd (C, D) bytes;
  // false when it has none.
  bool heuristic(cublasLtMatmulDesc_t desc, uint32_t align_ab, uint32_t align_cd, cublasLtMatmulAlgo_t* algo) {
    cublasLtMatmulPreference_t p = nullptr;
    DDPM_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&p));
    PreferencePtr pref(p);
    const uint64_t max_workspace = kMaxWorkspace;
    DDPM_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace,
                                                         sizeof max_workspace));
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES})
      DDPM_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(p, attr, &align_ab, sizeof align_ab));
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      DDPM_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(p, attr, &align_cd, sizeof align_cd));
    cublasLtMatmulHeuristicResult_t results[8];
    std::memset(results, 0, sizeof results);
    int count = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(detail::blaslt(), desc, a_.get(), b_.get(), d_.get(),
                                                            d_.get(), p, 8, results, &count);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED) return false;
    DDPM_CUDA_CHECK(s);
    for (int i = 0; i < count; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
      *algo = results[i].algo;
      if (results[i].workspaceSize > workspace_needed_) workspace_needed_ = results[i].workspaceSize;
      return true;
    }
    return false;
  }

  void matmul(cublasLtMatmulDesc_t desc, const cublasLtMatmulAlgo_t& algo, const void* a, const void* b,
              float* c) const {
    const float beta = 0.0f;
    // cuBLASLt's A is our B and its B our A (see the top of the file).
    DDPM_CUDA_CHECK(cublasLtMatmul(detail::blaslt(), desc, &alpha_, b, a_.get(), a, b_.get(), &beta, c, d_.get(), c,
                                   d_.get(), &algo, detail::workspace(), detail::workspace_bytes(), detail::stream()));
  }

  std::string name_;
  int64_t batch_, m_, n_;
  float alpha_;
  LayoutPtr a_, b_, d_;
  DescPtr desc_, bias_desc_;
  cublasLtMatmulAlgo_t algo_any_{}, algo_aligned_{}, algo_bias_{};
  bool has_aligned_ = false, has_bias_ = false;
  size_t workspace_needed_ = 0;
  DeviceBuffer alignment_probe_;
};

std::string linear_name(int64_t rows, int64_t in, int64_t out, Precision p) {
  return std::string("cuda linear ") + precision_name(p) + " [" + std::to_string(rows) + "x" + std::to_string(in) +
         "->" + std::to_string(out) + "]";
}

}  // namespace

// ---- Linear ----

struct Linear::Impl {
  Impl(int64_t r, int64_t i, int64_t o, Precision p, const std::string& n)
      : rows(r),
        in(i),
        out(o),
        precision(p),
        bf16(p == Precision::bf16),
        name(n),
        // y [rows, out] = x [rows, in] W^T
        fwd(n, 1, r, i, o, false, true, bf16, 1.0f, true),
        // dx [rows, in] = dy [rows, out] W [out, in]
        grad_x(n, 1, r, o, i, false, false, bf16, 1.0f, false),
        // dW [out, in] = dy^T x: dy is [rows, out] = [k, m], transposed
        grad_w(n, 1, o, r, i, true, false, bf16, 1.0f, false) {
    const size_t e = bf16 ? 2 : 4;
    weight = DeviceBuffer(static_cast<size_t>(out * in) * e);
    if (bf16) {
      x16 = DeviceBuffer(static_cast<size_t>(rows * in) * e);
      dy16 = DeviceBuffer(static_cast<size_t>(rows * out) * e);
    }
    partials = DeviceBuffer(static_cast<size_t>(detail::column_sum_partials(rows, out)) * sizeof(double));
  }

  const void* operand(const float* x, const DeviceBuffer& copy, int64_t n) const {
    if (!bf16) return x;
    detail::round_to_bf16(copy.as<uint16_t>(), x, n);
    return copy.data();
  }

  int64_t rows, in, out;
  Precision precision;
  bool bf16;
  std::string name;
  Gemm fwd, grad_x, grad_w;
  DeviceBuffer weight, x16, dy16, partials;  // weight: the op's own copy, fp32 or bf16
  bool weights_set = false;
};

Linear::Linear(int64_t rows, int64_t in_features, int64_t out_features, Precision precision) {
  const std::string name = linear_name(rows, in_features, out_features, precision);
  check_positive(name, {rows, in_features, out_features});
  require_device("cuda::Linear");
  impl_ = std::make_unique<Impl>(rows, in_features, out_features, precision, name);
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
  if (m.bf16) {
    detail::round_to_bf16(m.weight.as<uint16_t>(), weight, m.out * m.in);
  } else {
    DDPM_CUDA_CHECK(cudaMemcpyAsync(m.weight.data(), weight, static_cast<size_t>(m.out * m.in) * sizeof(float),
                                    cudaMemcpyDeviceToDevice, detail::stream()));
  }
  m.weights_set = true;
}

void Linear::forward(const float* x, const float* bias, float* y) {
  Impl& m = *impl_;
  if (!x || !y) throw std::invalid_argument(m.name + ": forward needs x and y buffers");
  if (!m.weights_set) throw std::logic_error(m.name + ": forward before set_weights");
  m.fwd.run(m.operand(x, m.x16, m.rows * m.in), m.weight.data(), y, bias);
}

void Linear::backward(const float* x, const float* dy, float* dx, float* dweight, float* dbias) {
  Impl& m = *impl_;
  if (!x || !dy || !dweight) throw std::invalid_argument(m.name + ": backward needs x, dy and dweight buffers");
  if (!m.weights_set) throw std::logic_error(m.name + ": backward before set_weights");
  if (dbias) detail::column_sums(dbias, dy, m.rows, m.out, m.partials.as<double>());
  const void* dy_op = m.operand(dy, m.dy16, m.rows * m.out);
  if (dx) m.grad_x.run(dy_op, m.weight.data(), dx, nullptr);
  m.grad_w.run(dy_op, m.operand(x, m.x16, m.rows * m.in), dweight, nullptr);
}

// ---- BatchedMatmul ----

struct BatchedMatmul::Impl {
  Impl(const std::string& name, int64_t b, int64_t m_, int64_t k_, int64_t n_, bool ta, bool tb, Precision p,
       float alpha)
      : batch(b), m(m_), k(k_), n(n_), bf16(p == Precision::bf16), gemm(name, b, m_, k_, n_, ta, tb, bf16, alpha, false) {
    if (bf16) {
      a16 = DeviceBuffer(static_cast<size_t>(batch * m * k) * 2);
      b16 = DeviceBuffer(static_cast<size_t>(batch * k * n) * 2);
    }
  }
  int64_t batch, m, k, n;
  bool bf16;
  Gemm gemm;
  DeviceBuffer a16, b16;
};

BatchedMatmul::BatchedMatmul(int64_t batch, int64_t m, int64_t k, int64_t n, bool transpose_a, bool transpose_b,
                             Precision precision, float alpha) {
  const std::string name = std::string("cuda batched matmul ") + precision_name(precision) + " [" +
                           std::to_string(batch) + "x" + std::to_string(m) + "x" + std::to_string(k) + "x" +
                           std::to_string(n) + (transpose_a ? ",A^T" : "") + (transpose_b ? ",B^T" : "") + "]";
  check_positive(name, {batch, m, k, n});
  require_device("cuda::BatchedMatmul");
  impl_ = std::make_unique<Impl>(name, batch, m, k, n, transpose_a, transpose_b, precision, alpha);
}

BatchedMatmul::~BatchedMatmul() = default;
BatchedMatmul::BatchedMatmul(BatchedMatmul&&) noexcept = default;
BatchedMatmul& BatchedMatmul::operator=(BatchedMatmul&&) noexcept = default;

void BatchedMatmul::run(const float* a, const float* b, float* c) {
  Impl& p = *impl_;
  if (!a || !b || !c) throw std::invalid_argument("cuda::BatchedMatmul::run needs a, b and c buffers");
  if (!p.bf16) {
    p.gemm.run(a, b, c, nullptr);
    return;
  }
  detail::round_to_bf16(p.a16.as<uint16_t>(), a, p.batch * p.m * p.k);
  detail::round_to_bf16(p.b16.as<uint16_t>(), b, p.batch * p.k * p.n);
  p.gemm.run(p.a16.data(), p.b16.data(), c, nullptr);
}

double BatchedMatmul::flops() const {
  const Impl& p = *impl_;
  return 2.0 * static_cast<double>(p.batch) * static_cast<double>(p.m) * static_cast<double>(p.k) *
         static_cast<double>(p.n);
}

}  // namespace ddpm::cuda
