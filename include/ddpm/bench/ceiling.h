// The machine's own fp32 ceiling, measured by the binary that reports the op speeds.
#pragma once

namespace ddpm::bench {

// GFLOP/s of a loop of independent vector FMAs on `threads` OpenMP threads (2 flops per lane).
double measure_fma_peak_gflops(int threads, double seconds = 1.0);

}  // namespace ddpm::bench
