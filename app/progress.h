// A one-line terminal progress bar: step/total, rate, ETA and a smoothed loss. Redraws in place
// on a terminal; on a pipe or file it prints a plain line every few seconds instead.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ddpm::app {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "it");
  // Reports that `done` units are complete; `loss` (if finite) feeds an exponential moving average.
  void update(int64_t done, double loss = NAN_LOSS);
  void finish();  // final line with the total time

  static constexpr double NAN_LOSS = __builtin_nan("");

 private:
  void draw(bool final_line);

  std::string label_, unit_;
  int64_t total_, done_ = 0, start_done_ = -1;
  double smoothed_loss_ = NAN_LOSS;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace ddpm::app
