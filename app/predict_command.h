// `ddpm predict`: one U-Net evaluation, NPY in and out (NCHW float32, as PyTorch).
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

CLI::App* add_predict_command(CLI::App& app);
int run_predict_command();

}  // namespace ddpm::app
