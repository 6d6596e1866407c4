// `ddpm sample` and `ddpm info`: use a diffusers model directory.
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

CLI::App* add_sample_command(CLI::App& app);
int run_sample_command();

CLI::App* add_info_command(CLI::App& app);
int run_info_command();

}  // namespace ddpm::app
