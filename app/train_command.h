// `ddpm train`: flags, validation and the progress display around ddpm::Trainer.
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

// Adds the subcommand to `app`; returns it so main() can tell whether it was chosen.
CLI::App* add_train_command(CLI::App& app);
int run_train_command();

}  // namespace ddpm::app
