// The U-Net's forward pass on CUDA as ε = f(x_t, t) over device pointers, captured once in a CUDA
// Graph and replayed at every sampling step (one launch instead of a few hundred).
#pragma once

#include <cstdint>
#include <memory>

#include "ddpm/nn/unet.h"

namespace ddpm {

// For a U-Net on Device::cuda. The first call runs the forward pass directly, the second captures
// it in a CUDA Graph (between a stable input and output buffer of its own), every later call
// replays it. DDPM_CUDA_GRAPHS=0 in the environment turns the graph off; a failed capture says so
// once on stderr and runs without one. Class labels are not taken (class-conditional models use
// UNet2D::forward).
class GraphForward {
 public:
  explicit GraphForward(UNet2D& net);
  ~GraphForward();
  GraphForward(const GraphForward&) = delete;
  GraphForward& operator=(const GraphForward&) = delete;
  void operator()(const float* x_t, int64_t t, float* eps);
  bool replaying() const;  // a graph is in use

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm
