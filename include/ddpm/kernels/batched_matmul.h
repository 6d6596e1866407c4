// Batched matrix product (oneDNN matmul), planned once per shape: C[b] = alpha * op(A[b]) op(B[b]),
// alpha fixed at construction (a runtime scale pushes oneDNN 2.6 onto its gemm:jit path, which
// allocates packing buffers on every call; a constant one keeps the scratchpad-only brgemm kernels),
// the products of attention (q k^T, P v) and of their backward passes.
#pragma once

#include <cstdint>
#include <memory>

#include "ddpm/kernels/precision.h"

namespace ddpm::cpu {

// A is [batch, m, k] row-major, or [batch, k, m] when transpose_a (op(A) = A^T); B is
// [batch, k, n], or [batch, n, k] when transpose_b; C is [batch, m, n] fp32, overwritten.
// bf16 mode rounds A and B to bf16 operands (planned copies) and accumulates in fp32.
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

  double flops() const;  // 2 * batch * m * k * n

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm::cpu
