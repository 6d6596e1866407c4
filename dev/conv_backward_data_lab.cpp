// Lab: is oneDNN 2.6's backward-data convolution slower than a forward convolution of the same
// size? For stride 1, dx = conv(dy, flipped and transposed w), so the forward kernel could serve.
// Build: g++ -O3 -march=native -std=c++20 -fopenmp -Iinclude -Isrc dev/conv_backward_data_lab.cpp build/libddpm.a -ldnnl -o /tmp/lab
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "ddpm/kernels/conv2d.h"

using namespace ddpm;

double median_ms(const std::function<void()>& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < 15; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main() {
  struct Case { int64_t n, h, c, o; int k, pad; };
  for (Case cs : {Case{16, 32, 128, 128, 3, 1}, Case{16, 16, 256, 256, 3, 1}, Case{64, 28, 32, 32, 3, 1},
                  Case{64, 14, 64, 64, 3, 1}, Case{16, 16, 512, 256, 1, 0}, Case{16, 16, 256, 512, 1, 0}}) {
    cpu::Conv2dShape s{cs.n, cs.h, cs.h, cs.c, cs.o, cs.k, 1, cs.pad, cs.pad};
    cpu::Conv2dShape swapped{cs.n, cs.h, cs.h, cs.o, cs.c, cs.k, 1, cs.pad, cs.pad};
    cpu::Conv2d conv(s, Precision::fp32), back(swapped, Precision::fp32);
    std::vector<float> x(s.batch * s.height * s.width * s.in_channels, 0.5f), y(s.batch * s.height * s.width * s.out_channels, 0.25f);
    std::vector<float> w(s.out_channels * s.in_channels * s.kernel * s.kernel, 0.01f), dw(w.size()), db(s.out_channels);
    std::vector<float> dx(x.size());
    conv.set_weights(w.data());
    back.set_weights(w.data());
    const double full = median_ms([&] { conv.backward(x.data(), y.data(), dx.data(), dw.data(), db.data()); });
    const double weights_only = median_ms([&] { conv.backward(x.data(), y.data(), nullptr, dw.data(), db.data()); });
    const double as_forward = median_ms([&] { back.forward(y.data(), nullptr, dx.data()); });
    const double gflop = 2e-9 * s.batch * s.height * s.width * s.in_channels * s.out_channels * s.kernel * s.kernel;
    std::printf("%s  threads %d: bwd data %.2f ms (%.0f GF/s), as forward %.2f ms (%.0f GF/s), bwd weights %.2f ms (%.0f GF/s)\n",
                s.str().c_str(), omp_get_max_threads(), full - weights_only, gflop / (full - weights_only) * 1e3,
                as_forward, gflop / as_forward * 1e3, weights_only, gflop / weights_only * 1e3);
  }
}
