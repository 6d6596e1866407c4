#include "eval_command.h"

namespace ddpm::app {

namespace {
CLI::App* nll = nullptr;
CLI::App* fd = nullptr;
}  // namespace

CLI::App* add_eval_command(CLI::App& app) {
  CLI::App* eval = app.add_subcommand("eval", "Measure a model: likelihood (nll) or sample quality (fd)");
  eval->require_subcommand(1);
  nll = add_eval_nll_command(*eval);
  fd = add_eval_fd_command(*eval);
  return eval;
}

int run_eval_command() {
  if (nll->parsed()) return run_eval_nll_command();
  if (fd->parsed()) return run_eval_fd_command();
  return 1;
}

}  // namespace ddpm::app
