// Sampling with the reverse chain on the GPU: the U-Net's forward pass replayed as a CUDA Graph
// (nn/graph_forward.h), the noise and the DDPM update on the device (diffusion/device_sampler.h).
#pragma once

#include <cstdint>
#include <memory>

#include "ddpm/diffusion/sampler.h"
#include "ddpm/nn/graph_forward.h"
#include "ddpm/pipeline/diffusion_model.h"

namespace ddpm {

// True when generate_images samples `model` on the device: its U-Net is on CUDA and the sampler is
// DDPM with a fixed variance on an unguided, unconditioned model (anything else runs the host
// samplers, with the U-Net on the GPU).
bool samples_on_device(const DiffusionModel& model, const SamplerOptions& sampler);
// One batch, x_T -> x_0 in x (host, [batch, per_item]), drawing the noise from rng as run_sampler
// does; eps: a GraphForward of model.net, kept across batches so its graph is captured once.
void sample_batch_on_device(DiffusionModel& model, GraphForward& eps, float* x, const SamplerOptions& sampler,
                            NoiseRng& rng, const SampleProgress& progress);

}  // namespace ddpm
