// `ddpm eval nll`: the variational bound in bits/dim on a dataset split. `ddpm eval fd`: sample
// quality as a Fréchet distance in the features of the project's Fashion-MNIST classifier.
#pragma once

#include <CLI/CLI.hpp>

namespace ddpm::app {

// Adds `eval` with its two subcommands; run_eval_command runs whichever was parsed.
CLI::App* add_eval_command(CLI::App& app);
int run_eval_command();

CLI::App* add_eval_nll_command(CLI::App& eval);
int run_eval_nll_command();
CLI::App* add_eval_fd_command(CLI::App& eval);
int run_eval_fd_command();

}  // namespace ddpm::app
