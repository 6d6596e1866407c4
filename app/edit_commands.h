// Editing existing images with a trained model: `ddpm img2img` (SDEdit), `ddpm inpaint` (RePaint)
// and `ddpm interpolate` (slerp between two seeds' x_T, deterministic sampler).
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

CLI::App* add_img2img_command(CLI::App& app);
int run_img2img_command();
CLI::App* add_inpaint_command(CLI::App& app);
int run_inpaint_command();
CLI::App* add_interpolate_command(CLI::App& app);
int run_interpolate_command();

}  // namespace ddpm::app
