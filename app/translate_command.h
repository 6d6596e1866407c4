// `ddpm translate`: run an image-conditioned model (super-resolution, pairs:DIR translation,
// segmentation) on one image, or on a dataset with a quality report against its targets.
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

CLI::App* add_translate_command(CLI::App& app);
int run_translate_command();

}  // namespace ddpm::app
