// config.json files of a model directory, with diffusers' keys: the U-Net's (UNet2DModel) and the
// noise scheduler's (DDPMScheduler / DDIMScheduler), so the files move between ddpm.cpp and Python.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddpm/nn/unet_config.h"

namespace ddpm {

// The diffusers version our config files claim to be written by: one whose UNet2DModel and
// DDPMScheduler take every key we write.
inline constexpr const char* kDiffusersVersion = "0.21.4";

// scheduler_config.json. Member defaults are ddpm.cpp's (google/ddpm-cifar10-32's fixed_large);
// read_scheduler_config() fills absent keys with diffusers' defaults instead.
struct SchedulerConfig {
  int64_t num_train_timesteps = 1000;
  std::string beta_schedule = "linear";  // linear | squaredcos_cap_v2 (cosine)
  double beta_start = 1e-4;
  double beta_end = 0.02;
  std::string variance_type = "fixed_large";  // fixed_large | fixed_small | learned_range (out_channels 2C)
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  std::string prediction_type = "epsilon";
  std::string class_name = "DDPMScheduler";  // or DDIMScheduler
  std::string timestep_spacing = "leading";  // leading | trailing | linspace
  int64_t steps_offset = 0;
  bool set_alpha_to_one = true;

  // Throws std::invalid_argument naming the key and the supported values.
  void validate() const;
};

// Reads a UNet2DModel config.json. Absent keys take diffusers' defaults, unknown keys are ignored,
// a value of the wrong type or one this implementation does not support is an error naming the
// key and the file. The result has passed UNet2DConfig::validate().
UNet2DConfig read_unet_config(const std::string& path);

// Writes every UNet2DModel key (sample_size an int when square, else [height, width]), sorted and
// indented as diffusers writes them; atomic. Validates first.
void write_unet_config(const std::string& path, const UNet2DConfig& config);

// Reads a scheduler_config.json of class DDPMScheduler or DDIMScheduler; absent keys take
// DDPMScheduler's defaults (variance_type "fixed_small" included). Rejects what ddpm.cpp cannot
// reproduce (other beta schedules, variance or prediction types, trained_betas, thresholding).
// `absent`, when given, receives "key value" for each key the file lacks, with the default taken.
SchedulerConfig read_scheduler_config(const std::string& path, std::vector<std::string>* absent = nullptr);

// DDPMScheduler's defaults, as read_scheduler_config() assumes them for a config without any keys.
SchedulerConfig default_scheduler_config();

// The scheduler settings that shape sampling, in one line: "1000 timesteps, linear betas
// 0.0001..0.02, fixed_small variance, x0 clipped to ±1, leading spacing".
std::string describe_scheduler(const SchedulerConfig& config);

// Writes DDPMScheduler's keys (plus DDIMScheduler's set_alpha_to_one); atomic. Validates first.
void write_scheduler_config(const std::string& path, const SchedulerConfig& config);

}  // namespace ddpm
