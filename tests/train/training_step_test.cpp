// A miniature U-Net built from every op (conv in/out, ResNet block with time embedding and dropout,
// stride-2 downsample, attention, upsample, skip concat, 1x1 conv, MSE, clipping, Adam, EMA):
// a training step allocates nothing on the heap after the first, and it learns a fixed batch.
#include <gtest/gtest.h>


#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "ddpm/kernels/add.h"
#include "ddpm/kernels/attention.h"
#include "ddpm/kernels/concat.h"
#include "ddpm/kernels/conv2d.h"
#include "ddpm/kernels/dropout.h"
#include "ddpm/kernels/group_norm.h"
#include "ddpm/kernels/linear.h"
#include "ddpm/kernels/mse.h"
#include "ddpm/kernels/optimizer.h"
#include "ddpm/kernels/silu.h"
#include "ddpm/kernels/timestep_embedding.h"
#include "ddpm/kernels/upsample.h"
#include "ddpm/memory.h"
#include "kernels/cpu/dnnl_context.h"
#include "heap_counter.h"
#include "test_support.h"

namespace ddpm {
namespace {

using cpu::Conv2dShape;
constexpr int64_t B = 2, H = 8, W = 8, C = 16, IMG = 3, TEMB = 64, GROUPS = 4;
constexpr int64_t P = H * W, P2 = (H / 2) * (W / 2);

// Flat parameters and gradients; each layer holds an offset into both.
struct Flat {
  std::vector<float> values, grads;
  int64_t add(int64_t n, float scale, uint64_t seed, float offset = 0.0f) {
    const auto v = test::random_normal(static_cast<size_t>(n), seed, scale);
    const int64_t at = static_cast<int64_t>(values.size());
    for (float x : v) values.push_back(x + offset);
    grads.resize(values.size());
    return at;
  }
};

struct ConvLayer {
  cpu::Conv2d op;
  int64_t w, b;
  ConvLayer(Flat& f, Conv2dShape s, uint64_t seed)
      : op(s, Precision::fp32),
        w(f.add(s.out_channels * s.in_channels * s.kernel * s.kernel,
                1.0f / std::sqrt(float(s.in_channels * s.kernel * s.kernel)), seed)),
        b(f.add(s.out_channels, 0.01f, seed + 1)) {}
};

struct Norm {
  int64_t gamma, beta;
  cpu::GroupNormShape shape;
  Norm(Flat& f, int64_t pixels, uint64_t seed)
      : gamma(f.add(C, 0.1f, seed, 1.0f)), beta(f.add(C, 0.1f, seed + 1)), shape{B, pixels, C, GROUPS, 1e-6f} {}
};

// Activations and their gradients, planned once.
struct Net {
  Flat f;
  ConvLayer conv_in{f, {B, H, W, IMG, C}, 10};
  Norm norm1{f, P, 20};
  ConvLayer conv1{f, {B, H, W, C, C}, 30};
  cpu::Linear temb1{B, C, TEMB, Precision::fp32};
  int64_t temb1_w = f.add(TEMB * C, 0.25f, 40), temb1_b = f.add(TEMB, 0.01f, 41);
  cpu::Linear temb2{B, TEMB, C, Precision::fp32};
  int64_t temb2_w = f.add(C * TEMB, 0.125f, 50), temb2_b = f.add(C, 0.01f, 51);
  Norm norm2{f, P, 60};
  ConvLayer conv2{f, {B, H, W, C, C}, 70};
  ConvLayer down{f, {B, H, W, C, C, 3, 2, 0, 1}, 80};
  Norm norm_attn{f, P2, 90};
  cpu::Attention attn{B, P2, C, Precision::fp32};
  int64_t attn_p = f.add(cpu::Attention::parameter_count(C), 0.25f, 100);
  ConvLayer up_conv{f, {B, H, W, C, C}, 110};
  ConvLayer shortcut{f, {B, H, W, 2 * C, C, 1, 1, 0, 0}, 120};
  Norm norm_out{f, P, 130};
  ConvLayer conv_out{f, {B, H, W, C, IMG}, 140};

  Arena arena;
  // activations
  Arena::Slot x = arena.reserve({B, H, W, IMG}), target = arena.reserve({B, H, W, IMG}), t = arena.reserve({B});
  Arena::Slot emb = arena.reserve({B, C}), e1 = arena.reserve({B, TEMB}), e1s = arena.reserve({B, TEMB});
  Arena::Slot tproj = arena.reserve({B, C});
  Arena::Slot h0 = arena.reserve({B, P, C}), a1 = arena.reserve({B, P, C}), c1 = arena.reserve({B, P, C});
  Arena::Slot a2 = arena.reserve({B, P, C}), d2 = arena.reserve({B, P, C}), h1 = arena.reserve({B, P, C});
  Arena::Slot dn = arena.reserve({B, P2, C}), n3 = arena.reserve({B, P2, C}), h2 = arena.reserve({B, P2, C});
  Arena::Slot up = arena.reserve({B, P, C}), u = arena.reserve({B, P, C}), cat = arena.reserve({B, P, 2 * C});
  Arena::Slot h3 = arena.reserve({B, P, C}), o = arena.reserve({B, P, C}), out = arena.reserve({B, P, IMG});
  Arena::Slot stats = arena.reserve({8, B * GROUPS});  // mean/rstd of the four norms
  size_t gn_ws_floats = std::max(cpu::group_norm_workspace_floats(norm1.shape),
                                 cpu::group_norm_workspace_floats(norm_attn.shape));
  Arena::Slot gn_ws = arena.reserve({static_cast<int64_t>(gn_ws_floats)});
  // gradients
  Arena::Slot g_out = arena.reserve({B, P, IMG}), g_o = arena.reserve({B, P, C}), g_h3 = arena.reserve({B, P, C});
  Arena::Slot g_cat = arena.reserve({B, P, 2 * C}), g_u = arena.reserve({B, P, C}), g_up = arena.reserve({B, P, C});
  Arena::Slot g_h2 = arena.reserve({B, P2, C}), g_n3 = arena.reserve({B, P2, C}), g_dn = arena.reserve({B, P2, C});
  Arena::Slot g_h1 = arena.reserve({B, P, C}), g_tmp = arena.reserve({B, P, C}), g_d2 = arena.reserve({B, P, C});
  Arena::Slot g_c1 = arena.reserve({B, P, C}), g_a1 = arena.reserve({B, P, C}), g_h0 = arena.reserve({B, P, C});
  Arena::Slot g_tproj = arena.reserve({B, C}), g_e1s = arena.reserve({B, TEMB}), g_e1 = arena.reserve({B, TEMB});
  Arena::Slot g_x = arena.reserve({B, H, W, IMG});
  Arena::Slot adam_m = arena.reserve({static_cast<int64_t>(f.values.size())});
  Arena::Slot adam_v = arena.reserve({static_cast<int64_t>(f.values.size())});
  Arena::Slot ema = arena.reserve({static_cast<int64_t>(f.values.size())});

  Net() {
    arena.allocate();
    auto fill = [&](Arena::Slot s, uint64_t seed) {
      auto v = test::random_normal(static_cast<size_t>(a(s).numel()), seed);
      std::copy(v.begin(), v.end(), p(s));
    };
    fill(x, 1);
    fill(target, 2);
    p(t)[0] = 3;
    p(t)[1] = 811;
    std::copy(f.values.begin(), f.values.end(), p(ema));
  }
  Tensor a(Arena::Slot s) const { return arena.tensor(s); }
  float* p(Arena::Slot s) const { return arena.tensor(s).f32(); }
  float* w(int64_t at) { return f.values.data() + at; }
  float* g(int64_t at) { return f.grads.data() + at; }
  float* mean(int i) const { return p(stats) + (2 * i) * B * GROUPS; }
  float* rstd(int i) const { return p(stats) + (2 * i + 1) * B * GROUPS; }

  void set_weights() {
    for (ConvLayer* c : {&conv_in, &conv1, &conv2, &down, &up_conv, &shortcut, &conv_out}) c->op.set_weights(w(c->w));
    temb1.set_weights(w(temb1_w));
    temb2.set_weights(w(temb2_w));
    attn.set_weights(w(attn_p));
  }

  double step(int64_t step_number) {
    set_weights();
    // time embedding: sinusoidal -> linear -> SiLU -> linear, then the block's SiLU+projection is
    // folded into temb2 here for brevity (SiLU(e1) -> Linear)
    cpu::timestep_embedding_forward(p(emb), p(t), B, C, false, 1.0f);
    temb1.forward(p(emb), w(temb1_b), p(e1));
    cpu::silu_forward(p(e1s), p(e1), B * TEMB);
    temb2.forward(p(e1s), w(temb2_b), p(tproj));
    // ResNet block
    conv_in.op.forward(p(x), w(conv_in.b), p(h0));
    cpu::group_norm_forward(p(a1), mean(0), rstd(0), p(h0), w(norm1.gamma), w(norm1.beta), norm1.shape, true, p(gn_ws), gn_ws_floats);
    conv1.op.forward(p(a1), w(conv1.b), p(c1));
    cpu::add_channel_bias_forward(p(c1), p(tproj), B, P, C);
    cpu::group_norm_forward(p(a2), mean(1), rstd(1), p(c1), w(norm2.gamma), w(norm2.beta), norm2.shape, true, p(gn_ws), gn_ws_floats);
    const uint64_t seed = 1000 + static_cast<uint64_t>(step_number);
    cpu::dropout_forward(p(d2), p(a2), B * P * C, 0.1f, seed);
    conv2.op.forward(p(d2), w(conv2.b), p(h1));
    cpu::add_inplace(p(h1), p(h0), B * P * C);
    // down, attention, up
    down.op.forward(p(h1), w(down.b), p(dn));
    cpu::group_norm_forward(p(n3), mean(2), rstd(2), p(dn), w(norm_attn.gamma), w(norm_attn.beta), norm_attn.shape, false, p(gn_ws), gn_ws_floats);
    attn.forward(p(n3), p(dn), p(h2));
    cpu::upsample_nearest2x_forward(p(up), p(h2), B, H / 2, W / 2, C);
    up_conv.op.forward(p(up), w(up_conv.b), p(u));
    cpu::concat_channels_forward(p(cat), p(u), C, p(h1), C, B * P);
    shortcut.op.forward(p(cat), w(shortcut.b), p(h3));
    cpu::group_norm_forward(p(o), mean(3), rstd(3), p(h3), w(norm_out.gamma), w(norm_out.beta), norm_out.shape, true, p(gn_ws), gn_ws_floats);
    conv_out.op.forward(p(o), w(conv_out.b), p(out));
    const double loss = cpu::mse_forward(p(out), p(target), B * P * IMG);

    // backward
    cpu::mse_backward(p(g_out), p(out), p(target), B * P * IMG);
    conv_out.op.backward(p(o), p(g_out), p(g_o), g(conv_out.w), g(conv_out.b));
    cpu::group_norm_backward(p(g_h3), g(norm_out.gamma), g(norm_out.beta), p(g_o), p(h3), mean(3), rstd(3),
                             w(norm_out.gamma), w(norm_out.beta), norm_out.shape, true, p(gn_ws), gn_ws_floats);
    shortcut.op.backward(p(cat), p(g_h3), p(g_cat), g(shortcut.w), g(shortcut.b));
    cpu::concat_channels_backward(p(g_u), p(g_h1), p(g_cat), C, C, B * P);
    up_conv.op.backward(p(up), p(g_u), p(g_up), g(up_conv.w), g(up_conv.b));
    cpu::upsample_nearest2x_backward(p(g_h2), p(g_up), B, H / 2, W / 2, C);
    attn.backward(p(g_h2), p(g_n3), g(attn_p));
    cpu::group_norm_backward(p(g_dn), g(norm_attn.gamma), g(norm_attn.beta), p(g_n3), p(dn), mean(2), rstd(2),
                             w(norm_attn.gamma), w(norm_attn.beta), norm_attn.shape, false, p(gn_ws), gn_ws_floats);
    cpu::add_inplace(p(g_dn), p(g_h2), B * P2 * C);  // attention residual
    down.op.backward(p(h1), p(g_dn), p(g_tmp), g(down.w), g(down.b));
    cpu::add_inplace(p(g_h1), p(g_tmp), B * P * C);
    conv2.op.backward(p(d2), p(g_h1), p(g_d2), g(conv2.w), g(conv2.b));
    cpu::dropout_backward(p(g_d2), p(g_d2), B * P * C, 0.1f, seed);
    cpu::group_norm_backward(p(g_c1), g(norm2.gamma), g(norm2.beta), p(g_d2), p(c1), mean(1), rstd(1),
                             w(norm2.gamma), w(norm2.beta), norm2.shape, true, p(gn_ws), gn_ws_floats);
    cpu::add_channel_bias_backward(p(g_tproj), p(g_c1), B, P, C);
    conv1.op.backward(p(a1), p(g_c1), p(g_a1), g(conv1.w), g(conv1.b));
    cpu::group_norm_backward(p(g_h0), g(norm1.gamma), g(norm1.beta), p(g_a1), p(h0), mean(0), rstd(0),
                             w(norm1.gamma), w(norm1.beta), norm1.shape, true, p(gn_ws), gn_ws_floats);
    cpu::add_inplace(p(g_h0), p(g_h1), B * P * C);  // block residual
    conv_in.op.backward(p(x), p(g_h0), p(g_x), g(conv_in.w), g(conv_in.b));
    temb2.backward(p(e1s), p(g_tproj), p(g_e1s), g(temb2_w), g(temb2_b));
    cpu::silu_backward(p(g_e1), p(g_e1s), p(e1), B * TEMB);
    temb1.backward(p(emb), p(g_e1), nullptr, g(temb1_w), g(temb1_b));

    // update
    const int64_t n = static_cast<int64_t>(f.values.size());
    cpu::clip_grad_norm(f.grads.data(), n, 1.0f);
    cpu::adam_step(f.values.data(), f.grads.data(), p(adam_m), p(adam_v), n, cpu::AdamConfig{2e-3f}, step_number);
    cpu::ema_update(p(ema), f.values.data(), n, 0.99f);
    return loss;
  }
};

TEST(TrainingStep, AllocatesNothingAfterTheFirstStepAndLearns) {
  Net net;
  const double first = net.step(1);
  test::start_heap_count();
  double last = first;
  for (int64_t s = 2; s <= 60; ++s) last = net.step(s);
  const test::HeapCount heap = test::stop_heap_count();
  EXPECT_EQ(heap.ours, 0) << "heap allocations outside oneDNN's execute() during steps 2..60";
  // oneDNN builds a small argument table per primitive call; it must never allocate a buffer.
  EXPECT_LE(heap.dnnl_max_bytes, 4096) << "oneDNN allocated a buffer inside a step";
  std::printf("steps 2..60: %ld allocations of ours; oneDNN bookkeeping %ld allocations (largest %ld bytes)\n",
              heap.ours, heap.in_dnnl, heap.dnnl_max_bytes);
  std::printf("loss: step 1 %.4f, step 60 %.4f\n", first, last);
  EXPECT_TRUE(std::isfinite(last));
  EXPECT_LT(last, 0.5 * first) << "the miniature U-Net did not learn a fixed batch";
}

}  // namespace
}  // namespace ddpm
