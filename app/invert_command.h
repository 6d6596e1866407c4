// `ddpm invert`: DDIM inversion of real images to x_T and decoding back, with the round-trip error.
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

CLI::App* add_invert_command(CLI::App& app);
int run_invert_command();

}  // namespace ddpm::app
