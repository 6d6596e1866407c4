// Lab: oneDNN 2.6's backward-weights convolution with NHWC activations (what Conv2d uses) against
// letting oneDNN choose the activation layout (format_tag::any, usually nChw16c) and reordering
// x and dy into it on every call.
// Result (2026-11-26, this Cascade Lake VM): the same jit:avx512_core kernel either way, at most
// ~10% faster on blocked data, which the two reorders more than pay back; Conv2d stays NHWC.
// Build: g++ -O3 -march=native -std=c++20 -fopenmp dev/conv_backward_weights_lab.cpp -ldnnl -o /tmp/bwlab
#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

double median_ms(const std::function<void()>& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < 11; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main() {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  struct Case { int n, h, c, o; };
  for (Case cs : {Case{16, 32, 128, 128}, Case{16, 16, 256, 256}, Case{64, 28, 32, 32}, Case{64, 14, 64, 64}}) {
    const memory::dims x_d{cs.n, cs.c, cs.h, cs.h}, y_d{cs.n, cs.o, cs.h, cs.h}, w_d{cs.o, cs.c, 3, 3};
    const memory::dims st{1, 1}, pad{1, 1};
    memory::desc x_nhwc(x_d, dt::f32, tag::nhwc), y_nhwc(y_d, dt::f32, tag::nhwc), b_md({cs.o}, dt::f32, tag::x);
    const double gflop = 2e-9 * cs.n * cs.h * cs.h * cs.c * cs.o * 9;
    for (bool blocked : {false, true}) {
      memory::desc x_md = blocked ? memory::desc(x_d, dt::f32, tag::any) : x_nhwc;
      memory::desc y_md = blocked ? memory::desc(y_d, dt::f32, tag::any) : y_nhwc;
      convolution_forward::primitive_desc fwd_pd(
          {prop_kind::forward_training, algorithm::convolution_direct, x_md, memory::desc(w_d, dt::f32, tag::any), b_md,
           y_md, st, pad, pad},
          eng);
      convolution_backward_weights::primitive_desc bw_pd(
          {algorithm::convolution_direct, x_md, memory::desc(w_d, dt::f32, tag::any), b_md, y_md, st, pad, pad}, eng,
          fwd_pd);
      memory x_user(x_nhwc, eng), y_user(y_nhwc, eng);
      std::fill((float*)x_user.get_data_handle(), (float*)x_user.get_data_handle() + x_nhwc.get_size() / 4, 0.5f);
      std::fill((float*)y_user.get_data_handle(), (float*)y_user.get_data_handle() + y_nhwc.get_size() / 4, 0.25f);
      memory x_op = blocked ? memory(bw_pd.src_desc(), eng) : x_user;
      memory y_op = blocked ? memory(bw_pd.diff_dst_desc(), eng) : y_user;
      memory dw(bw_pd.diff_weights_desc(), eng), db(b_md, eng);
      convolution_backward_weights bw(bw_pd);
      reorder rx, ry;
      if (blocked) {
        rx = reorder(x_user, x_op);
        ry = reorder(y_user, y_op);
      }
      const double t_reorder = blocked ? median_ms([&] {
        rx.execute(s, x_user, x_op);
        ry.execute(s, y_user, y_op);
        s.wait();
      }) : 0.0;
      const double t = median_ms([&] {
        bw.execute(s, {{DNNL_ARG_SRC, x_op}, {DNNL_ARG_DIFF_DST, y_op}, {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_DIFF_BIAS, db}});
        s.wait();
      });
      std::printf("N%d %dx%d %d->%d %-7s %-22s bwd_w %.2f ms (%.0f GF/s) + reorders %.2f ms -> %.0f GF/s\n", cs.n, cs.h,
                  cs.h, cs.c, cs.o, blocked ? "blocked" : "nhwc", bw_pd.impl_info_str(), t, gflop / t * 1e3, t_reorder,
                  gflop / (t + t_reorder) * 1e3);
    }
  }
}
