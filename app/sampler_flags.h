// The sampler flags that `ddpm sample`, `ddpm eval fd` and the editing commands share: a
// SamplerChoice (pipeline/sampler_choice.h) filled from the command line.
#pragma once

#include <CLI/CLI.hpp>

#include "ddpm/pipeline/sampler_choice.h"

namespace ddpm::app {

using SamplerFlags = SamplerChoice;

// --sampler, --steps, --eta, --spacing, --no-clip, --clipped-eps.
void add_sampler_flags(CLI::App* cmd, SamplerFlags& flags);

}  // namespace ddpm::app
