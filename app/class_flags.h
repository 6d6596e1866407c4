// The class-conditioning flags that `ddpm sample` and `ddpm eval fd` share: which class each image
// is drawn as, and the classifier-free guidance scale.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ddpm/nn/unet_config.h"

namespace ddpm::app {

struct ClassFlags {
  std::string klass;      // "" (unconditional), a class index, or "all"
  double guidance = 1.0;  // W: eps = eps_uncond + W (eps_cond - eps_uncond); 1 = the conditional model
};

// --class, --guidance.
void add_class_flags(CLI::App* cmd, ClassFlags& flags);

// The class of each of n images: [n] labels, the null class (the table's last row) for an
// unconditional draw; empty for a model without a class embedding. With "all", the n images are
// split evenly over the K classes in order (image i is class floor(i K / n)). Throws std::invalid_argument naming the flag for a class the model does not have, or
// class flags given for a model that is not class-conditional.
std::vector<int32_t> image_classes(const ClassFlags& flags, const UNet2DConfig& cfg, int64_t n);

// The guidance scale to run with: flags.guidance for a class-conditional draw, else 1.
double guidance_scale(const ClassFlags& flags, const UNet2DConfig& cfg);

// ", class 3, guidance 3" / ", classes 0-9, guidance 1" / "" for reports.
std::string describe_classes(const ClassFlags& flags, const UNet2DConfig& cfg);

}  // namespace ddpm::app
