// `ddpm diffuse`: the forward chain x0 -> xT and the model's reverse chain back, as picture strips.
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

CLI::App* add_diffuse_command(CLI::App& app);
int run_diffuse_command();

}  // namespace ddpm::app
