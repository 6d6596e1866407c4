// Matrix products on the GPU (cuBLASLt), planned once per shape: cpu::Linear and cpu::BatchedMatmul
// with the same interface and meaning, over device pointers.
#pragma once

#include <cstdint>
#include <memory>

#include "ddpm/kernels/precision.h"

namespace ddpm::cuda {

// y [rows, out] = x [rows, in] W^T + b, W [out, in] (PyTorch layout). Precision as cuda::Conv2d.
class Linear {
 public:
  Linear(int64_t rows, int64_t in_features, int64_t out_features, Precision precision);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;
  Linear(const Linear&) = delete;
  Linear& operator=(const Linear&) = delete;

  int64_t rows() const;
  int64_t in_features() const;
  int64_t out_features() const;
  Precision precision() const;
  void set_weights(const float* weight);  // device pointer
  void forward(const float* x, const float* bias, float* y);
  void backward(const float* x, const float* dy, float* dx, float* dweight, float* dbias);
  double forward_flops() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// C[b] = alpha * op(A[b]) op(B[b]); A [batch, m, k] ([batch, k, m] when transpose_a), B [batch, k, n]
// ([batch, n, k] when transpose_b), C [batch, m, n] fp32, overwritten.
class BatchedMatmul {
 public:
  BatchedMatmul(int64_t batch, int64_t m, int64_t k, int64_t n, bool transpose_a, bool transpose_b,
                Precision precision, float alpha = 1.0f);
  ~BatchedMatmul();
  BatchedMatmul(BatchedMatmul&&) noexcept;
  BatchedMatmul& operator=(BatchedMatmul&&) noexcept;
  BatchedMatmul(const BatchedMatmul&) = delete;
  BatchedMatmul& operator=(const BatchedMatmul&) = delete;

  void run(const float* a, const float* b, float* c);
  double flops() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm::cuda
