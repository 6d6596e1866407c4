// `ddpm bench ops --device cuda`: the CUDA backend's ops at cifar10-ddpm's shapes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm::app {

struct BenchCudaOpsOptions {
  std::vector<std::string> precisions{"bf16", "fp32"};
  int64_t batch = 128;
  int repeats = 20;
  std::string filter;
  bool json = false;
};

// Throws cuda::Error naming why when this binary has no CUDA backend or no device answers.
int run_bench_cuda_ops(const BenchCudaOpsOptions& options);

}  // namespace ddpm::app
