// `ddpm bench ops`: per-op forward/backward times and rates at the shapes of the built-in models,
// next to the machine's FMA ceiling measured by the same binary. Speed figures come from here,
// never from timed tests.
#include "bench_ops.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ddpm/bench/ceiling.h"
#include "ddpm/kernels/add.h"
#include "ddpm/kernels/attention.h"
#include "ddpm/kernels/concat.h"
#include "ddpm/kernels/conv2d.h"
#include "ddpm/kernels/dnnl_info.h"
#include "ddpm/kernels/dropout.h"
#include "ddpm/kernels/group_norm.h"
#include "ddpm/kernels/linear.h"
#include "ddpm/kernels/mse.h"
#include "ddpm/kernels/optimizer.h"
#include "ddpm/kernels/precision.h"
#include "ddpm/kernels/silu.h"
#include "ddpm/kernels/softmax.h"
#include "ddpm/kernels/upsample.h"
#include "ddpm/memory.h"

namespace ddpm::app {

namespace {

using Clock = std::chrono::steady_clock;

// Buffers of random values that live as long as the op being timed; 64-byte aligned like the
// planned buffers of a model (cache-line splits would slow the memory-bound ops).
struct Buffers {
  std::vector<AlignedBuffer> owned;
  std::mt19937 rng{1234};
  float* make(int64_t n, float scale = 1.0f) {
    owned.emplace_back(static_cast<size_t>(n) * sizeof(float));
    float* p = owned.back().as<float>();
    std::normal_distribution<float> normal(0.0f, scale);
    for (int64_t i = 0; i < n; ++i) p[i] = normal(rng);
    return p;
  }
};

// One row of the table: an op at one shape, with its work per call.
struct OpCase {
  std::string name, shape;
  bool precision_dependent = false;  // conv/matmul: timed per precision; the rest run in fp32
  double fwd_flops = 0, bwd_flops = 0;  // 0 for memory-bound ops
  double fwd_bytes = 0, bwd_bytes = 0;  // bytes moved, for memory-bound ops
  std::function<void()> forward, backward;
  std::shared_ptr<void> state;  // keeps op objects and buffers alive
};

// Median and best time of one call, in ms. On a shared machine other tenants only ever add time,
// so the best run shows what the kernel can do and the median what a user can expect.
struct Timing {
  double median = 0, best = 0;
};

Timing time_ms(const std::function<void()>& f, double seconds) {
  if (!f) return {};
  f();  // warm-up (first-touch, primitive caches)
  f();
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 5 ||
         (std::chrono::duration<double>(Clock::now() - start).count() < seconds && times.size() < 2000)) {
    const auto t0 = Clock::now();
    f();
    times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front()};
}

std::string nhwc(int64_t n, int64_t h, int64_t w, int64_t c) {
  return std::to_string(n) + "x" + std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c);
}

// input_gradient false: the first convolution of a model, whose input (the image) needs no gradient.
OpCase conv_case(const std::string& name, cpu::Conv2dShape s, Precision p, bool input_gradient = true) {
  auto state = std::make_shared<std::pair<cpu::Conv2d, Buffers>>(cpu::Conv2d(s, p), Buffers{});
  auto& [conv, buf] = *state;
  const int64_t in = conv.input_shape().numel(), out = conv.output_shape().numel();
  const int64_t wn = conv.weight_shape().numel();
  float *x = buf.make(in), *w = buf.make(wn, 0.05f), *b = buf.make(s.out_channels), *y = buf.make(out);
  float *dy = buf.make(out), *dx = buf.make(in), *dw = buf.make(wn), *db = buf.make(s.out_channels);
  conv.set_weights(w);
  OpCase c;
  c.name = name;
  c.shape = nhwc(s.batch, s.height, s.width, s.in_channels) + " k" + std::to_string(s.kernel) + "s" +
            std::to_string(s.stride) + " ->" + std::to_string(s.out_channels);
  c.precision_dependent = true;
  c.fwd_flops = conv.forward_flops();
  c.bwd_flops = (input_gradient ? 2 : 1) * conv.forward_flops();
  if (!input_gradient) {
    dx = nullptr;
    c.name += " (dw only)";
  }
  c.forward = [&conv, x, b, y] { conv.forward(x, b, y); };
  c.backward = [&conv, x, dy, dx, dw, db] { conv.backward(x, dy, dx, dw, db); };
  c.state = state;
  return c;
}

OpCase linear_case(const std::string& name, int64_t rows, int64_t in, int64_t out, Precision p) {
  auto state = std::make_shared<std::pair<cpu::Linear, Buffers>>(cpu::Linear(rows, in, out, p), Buffers{});
  auto& [lin, buf] = *state;
  float *x = buf.make(rows * in), *w = buf.make(out * in, 0.05f), *b = buf.make(out), *y = buf.make(rows * out);
  float *dy = buf.make(rows * out), *dx = buf.make(rows * in), *dw = buf.make(out * in), *db = buf.make(out);
  lin.set_weights(w);
  OpCase c;
  c.name = name;
  c.shape = std::to_string(rows) + "x" + std::to_string(in) + " ->" + std::to_string(out);
  c.precision_dependent = true;
  c.fwd_flops = lin.forward_flops();
  c.bwd_flops = 2 * lin.forward_flops();
  c.forward = [&lin, x, b, y] { lin.forward(x, b, y); };
  c.backward = [&lin, x, dy, dx, dw, db] { lin.backward(x, dy, dx, dw, db); };
  c.state = state;
  return c;
}

OpCase attention_case(int64_t batch, int64_t hw, int64_t channels, Precision p) {
  auto state = std::make_shared<std::pair<cpu::Attention, Buffers>>(cpu::Attention(batch, hw, channels, p), Buffers{});
  auto& [att, buf] = *state;
  const int64_t n = batch * hw * channels;
  float* x = buf.make(n);
  float* params = buf.make(att.parameter_count(), 0.05f);
  float* residual = buf.make(n);
  float *dparams = buf.make(att.parameter_count()), *y = buf.make(n), *dy = buf.make(n), *dx = buf.make(n);
  att.set_weights(params);
  OpCase c;
  c.name = "attention";
  c.shape = std::to_string(batch) + "x" + std::to_string(hw) + "x" + std::to_string(channels);
  c.precision_dependent = true;
  c.fwd_flops = att.forward_flops();
  c.bwd_flops = 2 * att.forward_flops();
  c.forward = [&att, x, residual, y] { att.forward(x, residual, y); };
  c.backward = [&att, dy, dx, dparams] { att.backward(dy, dx, dparams); };
  c.state = state;
  return c;
}

OpCase group_norm_case(int64_t n, int64_t h, int64_t w, int64_t ch, int64_t groups) {
  auto buf = std::make_shared<Buffers>();
  const int64_t size = n * h * w * ch;
  cpu::GroupNormShape s{n, h * w, ch, groups, 1e-6f};
  float *x = buf->make(size), *y = buf->make(size), *dy = buf->make(size), *dx = buf->make(size);
  float *gamma = buf->make(ch), *beta = buf->make(ch), *dgamma = buf->make(ch), *dbeta = buf->make(ch);
  float *mean = buf->make(n * groups), *rstd = buf->make(n * groups);
  const size_t ws_floats = cpu::group_norm_workspace_floats(s);
  float* ws = buf->make(static_cast<int64_t>(ws_floats));
  OpCase c;
  c.name = "group_norm+silu";
  c.shape = nhwc(n, h, w, ch) + " g" + std::to_string(groups);
  c.fwd_bytes = 2.0 * 4 * size;  // read x (twice: statistics, then normalise) counted once; write y
  c.bwd_bytes = 3.0 * 4 * size;  // read x, dy; write dx
  c.forward = [=] { cpu::group_norm_forward(y, mean, rstd, x, gamma, beta, s, true, ws, ws_floats); };
  c.backward = [=] { cpu::group_norm_backward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, s, true, ws, ws_floats); };
  c.state = buf;
  return c;
}

// An elementwise op over `size` floats: reads `reads` arrays and writes one, each direction.
OpCase elementwise_case(const std::string& name, const std::string& shape, int64_t size, int reads_fwd,
                        int reads_bwd, std::function<void()> fwd, std::function<void()> bwd,
                        std::shared_ptr<void> state) {
  OpCase c;
  c.name = name;
  c.shape = shape;
  c.fwd_bytes = 4.0 * static_cast<double>(size) * (reads_fwd + 1);
  c.bwd_bytes = bwd ? 4.0 * static_cast<double>(size) * (reads_bwd + 1) : 0;
  c.forward = std::move(fwd);
  c.backward = std::move(bwd);
  c.state = std::move(state);
  return c;
}

std::vector<OpCase> memory_cases(int64_t n, int64_t h, int64_t w, int64_t ch, int64_t params, int64_t image_ch) {
  std::vector<OpCase> cases;
  const int64_t size = n * h * w * ch;
  const std::string shape = nhwc(n, h, w, ch);
  auto buf = std::make_shared<Buffers>();
  float *x = buf->make(size), *y = buf->make(size), *dy = buf->make(size), *dx = buf->make(size);
  float *big = buf->make(4 * size), *dbig = buf->make(4 * size), *cat = buf->make(2 * size);
  float *dcat = buf->make(2 * size), *other = buf->make(size);
  cases.push_back(elementwise_case("silu", shape, size, 1, 2,
      [=] { cpu::silu_forward(y, x, size); }, [=] { cpu::silu_backward(dx, dy, x, size); }, buf));
  cases.push_back(elementwise_case("add", shape, size, 2, 0,
      [=] { cpu::add_forward(y, x, other, size); }, nullptr, buf));
  cases.push_back(elementwise_case("dropout p=0.1", shape, size, 1, 1,
      [=] { cpu::dropout_forward(y, x, size, 0.1f, 42); }, [=] { cpu::dropout_backward(dx, dy, size, 0.1f, 42); }, buf));
  cases.push_back(elementwise_case("upsample2x", shape + " ->2x", 4 * size, 0, 0,
      [=] { cpu::upsample_nearest2x_forward(big, x, n, h, w, ch); },
      [=] { cpu::upsample_nearest2x_backward(dx, dbig, n, h, w, ch); }, buf));
  cases.push_back(elementwise_case("concat", shape + " +" + std::to_string(ch), 2 * size, 0, 0,
      [=] { cpu::concat_channels_forward(cat, x, ch, other, ch, n * h * w); },
      [=] { cpu::concat_channels_backward(dx, other, dcat, ch, ch, n * h * w); }, buf));
  const int64_t rows = n * 256, cols = 256;
  float *s_in = buf->make(rows * cols), *s_out = buf->make(rows * cols), *s_d = buf->make(rows * cols);
  cases.push_back(elementwise_case("softmax", std::to_string(rows) + "x" + std::to_string(cols), rows * cols, 1, 2,
      [=] { cpu::softmax_forward(s_out, s_in, rows, cols, 0.0625f); },
      [=] { cpu::softmax_backward(s_d, s_in, s_out, rows, cols, 0.0625f); }, buf));
  const int64_t img = n * 32 * 32 * image_ch;
  float *pred = buf->make(img), *target = buf->make(img), *dpred = buf->make(img);
  cases.push_back(elementwise_case("mse", std::to_string(img), img, 2, 2,
      [=] { volatile double l = cpu::mse_forward(pred, target, img); (void)l; },
      [=] { cpu::mse_backward(dpred, pred, target, img); }, buf));
  float *p = buf->make(params, 0.05f), *g = buf->make(params, 1e-3f), *m = buf->make(params, 0.0f);
  float *v = buf->make(params, 0.0f), *ema = buf->make(params, 0.05f);
  for (int64_t i = 0; i < params; ++i) v[i] = v[i] * v[i];
  const std::string pshape = std::to_string(params) + " params";
  cases.push_back(elementwise_case("adam", pshape, params, 4, 0,
      [=] { cpu::adam_step(p, g, m, v, params, cpu::AdamConfig{2e-4f}, 10); }, nullptr, buf));
  cases.back().fwd_bytes = 4.0 * params * 7;  // read p,g,m,v; write p,m,v
  cases.push_back(elementwise_case("ema", pshape, params, 2, 0,
      [=] { cpu::ema_update(ema, p, params, 0.9999f); }, nullptr, buf));
  cases.push_back(elementwise_case("grad_norm", pshape, params, 1, 0,
      [=] { volatile double norm = cpu::global_grad_norm(g, params); (void)norm; }, nullptr, buf));
  cases.back().fwd_bytes = 4.0 * params;
  return cases;
}

std::vector<OpCase> config_cases(const std::string& config, Precision p, bool with_memory_ops) {
  std::vector<OpCase> cases;
  using S = cpu::Conv2dShape;
  if (config == "cifar10-ddpm") {
    const int64_t n = 16;
    cases.push_back(conv_case("conv3x3", S{n, 32, 32, 128, 128}, p));
    cases.push_back(conv_case("conv3x3", S{n, 16, 16, 256, 256}, p));
    cases.push_back(conv_case("conv3x3", S{n, 8, 8, 256, 256}, p));
    cases.push_back(conv_case("conv3x3", S{n, 4, 4, 256, 256}, p));
    cases.push_back(conv_case("conv_in", S{n, 32, 32, 3, 128}, p, false));
    cases.push_back(conv_case("downsample", S{n, 32, 32, 128, 128, 3, 2, 0, 1}, p));
    cases.push_back(conv_case("conv1x1", S{n, 16, 16, 512, 256, 1, 1, 0, 0}, p));
    cases.push_back(linear_case("linear temb", n, 512, 256, p));
    cases.push_back(attention_case(n, 256, 256, p));
    if (with_memory_ops) {
      cases.push_back(group_norm_case(n, 32, 32, 128, 32));
      cases.push_back(group_norm_case(n, 16, 16, 256, 32));
      for (auto& c : memory_cases(n, 16, 16, 256, 35746307, 3)) cases.push_back(std::move(c));
    }
  } else {
    const int64_t n = 64;
    cases.push_back(conv_case("conv3x3", S{n, 28, 28, 32, 32}, p));
    cases.push_back(conv_case("conv3x3", S{n, 14, 14, 64, 64}, p));
    cases.push_back(conv_case("conv3x3", S{n, 7, 7, 64, 64}, p));
    cases.push_back(conv_case("conv_in", S{n, 28, 28, 1, 32}, p, false));
    cases.push_back(conv_case("downsample", S{n, 28, 28, 32, 32, 3, 2, 0, 1}, p));
    cases.push_back(conv_case("conv1x1", S{n, 14, 14, 128, 64, 1, 1, 0, 0}, p));
    cases.push_back(linear_case("linear temb", n, 128, 64, p));
    cases.push_back(attention_case(n, 49, 64, p));
    if (with_memory_ops) {
      cases.push_back(group_norm_case(n, 28, 28, 32, 32));
      cases.push_back(group_norm_case(n, 14, 14, 64, 32));
      for (auto& c : memory_cases(n, 14, 14, 64, 1623169, 1)) cases.push_back(std::move(c));
    }
  }
  return cases;
}

void print_json(const std::string& config, const std::string& precision, const OpCase& c, const char* dir,
                Timing t, double flops, double bytes, double ceiling) {
  std::printf("{\"config\":\"%s\",\"op\":\"%s\",\"shape\":\"%s\",\"precision\":\"%s\",\"direction\":\"%s\","
              "\"ms\":%.4f,\"ms_best\":%.4f,\"gflops\":%.2f,\"gflops_best\":%.2f,\"gbps\":%.2f,"
              "\"fma_ceiling_gflops\":%.1f}\n",
              config.c_str(), c.name.c_str(), c.shape.c_str(), precision.c_str(), dir, t.median, t.best,
              flops > 0 ? flops / t.median * 1e-6 : 0.0, flops > 0 ? flops / t.best * 1e-6 : 0.0,
              bytes > 0 ? bytes / t.median * 1e-6 : 0.0, ceiling);
}

// "231.4  76% 85%" for compute-bound ops (median rate, its share of the ceiling, the best run's
// share); "12.4 GB/s" for memory-bound ones.
std::string rate_text(Timing t, double flops, double bytes, double ceiling) {
  char text[40] = "-";
  if (t.median <= 0) return text;
  if (flops > 0) {
    const double g = flops / t.median * 1e-6;
    std::snprintf(text, sizeof text, "%6.1f %4.0f%% %4.0f%%", g, 100.0 * g / ceiling,
                  100.0 * flops / t.best * 1e-6 / ceiling);
  } else {
    std::snprintf(text, sizeof text, "%6.1f GB/s", bytes / t.median * 1e-6);
  }
  return text;
}

}  // namespace

int run_bench_ops(const BenchOpsOptions& options) {
  const int threads = options.threads > 0 ? options.threads : omp_get_num_procs();
  omp_set_num_threads(threads);
  const double ceiling = bench::measure_fma_peak_gflops(threads);
  if (!options.json) {
    std::printf("ddpm bench ops: %d thread%s; fp32 FMA-loop ceiling %.1f GFLOP/s (%.1f per thread)\n", threads,
                threads == 1 ? "" : "s", ceiling, ceiling / threads);
    std::printf("oneDNN ISA: %s%s\n", cpu::cpu_isa_name().c_str(),
                cpu::native_bf16() ? " (native bf16)" : " (no native bf16: oneDNN emulates it, slower than fp32)");
    std::printf("times: median ms per call. Rates: GFLOP/s of the median call, then the median and the best\n"
                "call as %% of the FMA ceiling (conv/matmul); GB/s for memory-bound ops, which run in fp32\n"
                "in both precisions\n\n");
  }
  for (const std::string& config : options.configs) {
    for (size_t pi = 0; pi < options.precisions.size(); ++pi) {
      const std::string& precision = options.precisions[pi];
      const bool with_memory_ops = precision == "fp32" || pi == 0;
      auto cases = config_cases(config, parse_precision(precision), with_memory_ops);
      if (!options.json) {
        std::printf("%s, %s\n%-18s %-28s %8s %8s  %-20s %-20s\n", config.c_str(), precision.c_str(), "op",
                    "shape", "fwd ms", "bwd ms", "fwd GF/s  med  best", "bwd GF/s  med  best");
      }
      for (auto& c : cases) {
        if (!options.filter.empty() && c.name.find(options.filter) == std::string::npos) continue;
        const std::string prec = c.precision_dependent ? precision : "fp32";
        const Timing fwd = time_ms(c.forward, options.seconds);
        const Timing bwd = time_ms(c.backward, options.seconds);
        if (options.json) {
          print_json(config, prec, c, "forward", fwd, c.fwd_flops, c.fwd_bytes, ceiling);
          if (c.backward) print_json(config, prec, c, "backward", bwd, c.bwd_flops, c.bwd_bytes, ceiling);
          continue;
        }
        char bwd_text[16] = "-";
        if (c.backward) std::snprintf(bwd_text, sizeof bwd_text, "%.3f", bwd.median);
        std::printf("%-18s %-28s %8.3f %8s  %-20s %-20s\n", c.name.c_str(), c.shape.c_str(), fwd.median, bwd_text,
                    rate_text(fwd, c.fwd_flops, c.fwd_bytes, ceiling).c_str(),
                    rate_text(bwd, c.bwd_flops, c.bwd_bytes, ceiling).c_str());
        std::fflush(stdout);
      }
      if (!options.json) std::printf("\n");
    }
  }
  return 0;
}

}  // namespace ddpm::app
