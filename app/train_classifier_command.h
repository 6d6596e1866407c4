// `ddpm train-classifier`: trains the Fashion-MNIST classifier whose features `ddpm eval fd` uses.
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

// Adds the subcommand to `app`; returns it so main() can tell whether it was chosen.
CLI::App* add_train_classifier_command(CLI::App& app);
int run_train_classifier_command();

}  // namespace ddpm::app
