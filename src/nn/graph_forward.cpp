// The U-Net's forward pass as a replayed CUDA Graph.
#include "ddpm/nn/graph_forward.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "ddpm/kernels/cuda/runtime.h"
#include "ddpm/log.h"

#ifdef DDPM_HAVE_CUDA
#include "ddpm/kernels/cuda/ops.h"
#endif

namespace ddpm {

struct GraphForward::Impl {
  UNet2D* net = nullptr;
  int64_t in_values = 0, out_values = 0;
  cuda::DeviceBuffer x, t, eps;  // the graph's fixed input, timesteps and output
  cuda::Graph graph;
  int calls = 0;
  bool graphs_allowed = true;
};

GraphForward::GraphForward(UNet2D& net) : impl_(std::make_unique<Impl>()) {
  if (net.device() != Device::cuda) throw std::logic_error("GraphForward: the U-Net is not on CUDA");
  Impl& m = *impl_;
  const UNet2DConfig& c = net.config();
  m.net = &net;
  m.in_values = net.batch() * c.sample_height * c.sample_width * c.in_channels;
  m.out_values = net.batch() * c.sample_height * c.sample_width * c.out_channels;
  m.x = cuda::DeviceBuffer(static_cast<size_t>(m.in_values) * sizeof(float));
  m.t = cuda::DeviceBuffer(static_cast<size_t>(net.batch()) * sizeof(float));
  m.eps = cuda::DeviceBuffer(static_cast<size_t>(m.out_values) * sizeof(float));
  const char* env = std::getenv("DDPM_CUDA_GRAPHS");
  m.graphs_allowed = !(env && std::strcmp(env, "0") == 0);
}

GraphForward::~GraphForward() = default;

bool GraphForward::replaying() const { return impl_->graph.captured(); }

void GraphForward::operator()(const float* x_t, int64_t t, float* eps) {
  Impl& m = *impl_;
#ifdef DDPM_HAVE_CUDA
  cuda::copy_on_device(m.x.data(), x_t, static_cast<size_t>(m.in_values) * sizeof(float));
  cuda::fill(m.t.as<float>(), static_cast<float>(t), m.net->batch());
  const auto forward = [&] { m.net->forward_device(m.x.as<float>(), m.t.as<float>(), m.eps.as<float>()); };
  ++m.calls;
  if (m.graph.captured()) {
    m.graph.replay();
  } else if (m.calls == 2 && m.graphs_allowed) {  // the first call ran every op once (lazy set-up)
    try {
      m.graph.capture(forward);
      m.graph.replay();
    } catch (const cuda::Error& e) {
      log_message(LogLevel::note, std::string("the U-Net's forward pass could not be captured in a CUDA Graph (") +
                                      e.what() + "); running without one");
      m.graphs_allowed = false;
      forward();
    }
  } else {
    forward();
  }
  cuda::copy_on_device(eps, m.eps.data(), static_cast<size_t>(m.out_values) * sizeof(float));
#else
  (void)m, (void)x_t, (void)t, (void)eps;
  cuda::require_device("sampling on --device cuda");
#endif
}

}  // namespace ddpm
