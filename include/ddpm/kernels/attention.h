// Single-head self-attention over the H*W positions of an NHWC activation, as diffusers'
// Attention with one head (the DDPM attn_block):
//   q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv      (x: the group-normalised input)
//   y = residual + softmax(q k^T * C^-1/2) v Wo^T + bo
// The residual's gradient is dy itself; the caller adds it to the residual branch.
#pragma once

#include <cstdint>

#include "ddpm/kernels/batched_matmul.h"
#include "ddpm/kernels/linear.h"
#include "ddpm/kernels/precision.h"
#include "ddpm/memory.h"

namespace ddpm::cpu {

class Attention {
 public:
  // Parameters, flat in this order (diffusers' names): to_q.weight [C,C], to_q.bias [C],
  // to_k.weight, to_k.bias, to_v.weight, to_v.bias, to_out.0.weight, to_out.0.bias.
  // training = true: owns every buffer backward() needs. training = false (inference): owns no
  // activation memory; forward() works in a caller's workspace of inference_workspace_floats(),
  // which many attentions can share (at batch 256 and 14x14 positions one attention's buffers
  // are ~280 MB), and backward() throws.
  Attention(int64_t batch, int64_t positions, int64_t channels, Precision precision, bool training = true);
  static int64_t inference_workspace_floats(int64_t batch, int64_t positions, int64_t channels);

  static int64_t parameter_count(int64_t channels) { return 4 * (channels * channels + channels); }
  int64_t parameter_count() const { return parameter_count(channels_); }
  double forward_flops() const;

  void set_weights(const float* params);  // once after each optimizer step
  // x, residual, y: [batch, positions, channels]. Keeps q, k, v, the probabilities and the
  // attention output for backward().
  void forward(const float* x, const float* residual, float* y);
  void set_inference_workspace(float* workspace);  // inference: before forward(); 64-byte aligned
  size_t owned_bytes() const { return arena_.bytes(); }  // the buffers kept for backward()
  // Gradients of the last forward(): dx (w.r.t. x) and dparams (same layout as params), overwritten.
  void backward(const float* dy, float* dx, float* dparams);

 private:
  int64_t batch_, positions_, channels_;
  float scale_;
  Linear to_q_, to_k_, to_v_, to_out_;
  BatchedMatmul scores_;        // S = q k^T
  BatchedMatmul mix_;           // A = P v
  BatchedMatmul grad_probs_;    // dP = dA v^T
  BatchedMatmul grad_values_;   // dv = P^T dA
  BatchedMatmul grad_queries_;  // dq = dS k
  BatchedMatmul grad_keys_;     // dk = dS^T q
  const float* params_ = nullptr;  // set_weights() pointer, for the biases
  const float* input_ = nullptr;   // x of the last forward
  bool training_;
  float* workspace_ = nullptr;     // inference: q, k, v, mixed, probs
  Arena arena_;
  Arena::Slot q_, k_, v_, probs_, mixed_, dmixed_, dprobs_, dq_, dk_, dv_, dx_part_;
};

}  // namespace ddpm::cpu
