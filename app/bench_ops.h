// `ddpm bench ops`: time every U-Net op at the shapes of the built-in models.
#pragma once

#include <string>
#include <vector>

namespace ddpm::app {

struct BenchOpsOptions {
  std::vector<std::string> configs{"fmnist-small", "cifar10-ddpm"};
  std::vector<std::string> precisions{"fp32", "bf16"};
  int threads = 0;           // 0: all cores
  double seconds = 0.15;     // minimum timing window per op and direction
  std::string filter;        // only ops whose name contains this
  bool json = false;         // one JSON object per line instead of a table
};

int run_bench_ops(const BenchOpsOptions& options);

}  // namespace ddpm::app
