// `--device cpu|cuda` on every command, and `ddpm devices`, which says what each device is here.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "ddpm/tensor.h"

namespace ddpm::app {

// The device the command line chose (--device; cpu unless given), set once by main() after
// parsing: the device every U-Net the commands build is planned for.
void select_device(const std::string& name);
Device selected_device();

// Adds --device to every subcommand of `app` (and theirs), all bound to `device`.
void add_device_flag(CLI::App& app, std::string& device);

// For a command that was given --device cuda: throws an error that says why it cannot run there
// (no CUDA backend in this build, no device answering, or a command that does not run there).
void check_device(const std::string& device, const std::string& command, int processes);

// `ddpm devices`: the CPU (threads, oneDNN's instruction set) and the CUDA device, or why none.
CLI::App* add_devices_command(CLI::App& app);
int run_devices_command();

}  // namespace ddpm::app
