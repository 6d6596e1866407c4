// What made an image, written into the PNGs the commands produce (PNG text chunks "Software",
// "command" and "parameters", as stable-diffusion.cpp and other generators record theirs), so a
// picture found later says how to make it again. `ddpm info --image FILE` prints them.
#pragma once

#include <string>

#include "ddpm/image/png.h"

namespace ddpm::app {

// Called once by main(): the command line to record.
void remember_command_line(int argc, char** argv);

// The text chunks for an image: this build, the command line (shell-quoted), and `parameters`,
// the settings as resolved (sampler, steps, spacing, seed, model, ...).
PngText provenance(const std::string& parameters);

}  // namespace ddpm::app
