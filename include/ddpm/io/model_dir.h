// A model directory in diffusers' layout, so models move between ddpm.cpp and Python:
//   MODEL/unet/config.json, MODEL/unet/diffusion_pytorch_model.safetensors,
//   MODEL/scheduler/scheduler_config.json
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ddpm/io/model_config.h"
#include "ddpm/nn/unet_config.h"
#include "ddpm/tensor.h"

namespace ddpm {

struct ModelDir {
  UNet2DConfig unet;
  SchedulerConfig scheduler;
  // What read_model_dir had to assume, one line each (a missing scheduler config, absent keys);
  // commands print these as warnings.
  std::vector<std::string> assumed;

  // The channels of the images the model denoises (out_channels, halved for a learned variance),
  // and of the condition image an image-conditioned model takes beside them (0 otherwise).
  int64_t image_channels() const;
  int64_t condition_channels() const { return unet.in_channels - image_channels(); }
};

// Parameter names and shapes in the order of the flat parameter buffer.
using TensorList = std::vector<std::pair<std::string, Shape>>;

std::string unet_config_path(const std::string& model_dir);
std::string unet_weights_path(const std::string& model_dir);
std::string scheduler_config_path(const std::string& model_dir);

// Reads both config files (not the weights); throws naming the file. A missing
// scheduler/scheduler_config.json is not an error (diffusers' DDPMScheduler defaults are taken,
// and said in `assumed`): models converted from other code often lack one.
ModelDir read_model_dir(const std::string& model_dir);

// diffusers' current name for a tensor name as stored in older checkpoints (attention
// query/key/value/proj_attn -> to_q/to_k/to_v/to_out.0, facts §5.5); other names unchanged.
std::string current_unet_tensor_name(const std::string& stored_name);

// Fills `flat` (the concatenation of `expected` in order) from a safetensors file of F32, F16 or
// BF16 tensors with diffusers' names, legacy attention names accepted. Checks everything before
// reading: missing tensors, unexpected tensors and shape mismatches are all reported in one
// message; then non-finite weights by tensor name. `expected_from` says where the expected shapes
// come from, e.g. "unet/config.json (block_out_channels [32,64,64])".
void load_unet_weights(const std::string& safetensors_path, const TensorList& expected, float* flat,
                       const std::string& expected_from = "the U-Net config");

// load_unet_weights for MODEL/unet/diffusion_pytorch_model.safetensors, naming unet/config.json
// and its block_out_channels in shape errors.
void load_model_dir_weights(const std::string& model_dir, const UNet2DConfig& unet, const TensorList& expected,
                            float* flat);

// Writes a complete model directory (F32 weights with metadata {"format": "pt"}, as diffusers
// writes them). Atomic: everything goes into a temporary sibling directory, which then replaces
// `model_dir`; an existing model directory is replaced only once the new one is complete. Refuses
// to replace a non-empty directory that is not a model directory. Rejects non-finite weights.
void save_model_dir(const std::string& model_dir, const UNet2DConfig& unet, const SchedulerConfig& scheduler,
                    const TensorList& tensors, const float* flat);

}  // namespace ddpm
