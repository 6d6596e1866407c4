// `ddpm bench --config NAME --mode train|sample`: whole training and sampling steps of a model,
// timed as a user would run them, with the rate against the machine's ceiling and peak memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm::app {

struct BenchModelOptions {
  std::string config = "fmnist-small";  // a built-in name or a config.json path
  std::vector<std::string> modes{"train", "sample"};
  int64_t batch = 0;                    // 0: 64 for training, 256 for sampling
  std::string precision = "fp32";
  int threads = 0;                      // 0: all cores
  double seconds = 10;                  // minimum timing window per measurement (after warm-up)
  bool json = false;
  bool profile = false;                 // also print time per op type and per block
};

int run_bench_model(const BenchModelOptions& options);

}  // namespace ddpm::app
