// ProgressBar: rate from the units done since the first update, ETA from that rate.
#include "progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace ddpm::app {

namespace {
std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(text, sizeof text, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return text;
}
}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), tty_(isatty(fileno(stderr)) != 0) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void ProgressBar::update(int64_t done, double loss) {
  if (start_done_ < 0) {
    start_done_ = done;
    start_ = std::chrono::steady_clock::now();
  }
  done_ = done;
  if (std::isfinite(loss)) smoothed_loss_ = std::isfinite(smoothed_loss_) ? 0.98 * smoothed_loss_ + 0.02 * loss : loss;
  const auto now = std::chrono::steady_clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (since_draw >= (tty_ ? 0.1 : 5.0) || done_ == total_) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::finish() { draw(true); }

void ProgressBar::draw(bool final_line) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_ - start_done_) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : NAN;
  const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(fraction * kWidth + 0.5);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  char loss_text[32] = "";
  if (std::isfinite(smoothed_loss_)) std::snprintf(loss_text, sizeof loss_text, "  loss %.4f", smoothed_loss_);
  std::fprintf(stderr, "%s%s [%s] %lld/%lld  %.2f %s/s  %s %s%s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), rate, unit_.c_str(),
               final_line ? "took" : "ETA", format_duration(final_line ? elapsed : eta).c_str(), loss_text,
               tty_ && !final_line ? "\033[K" : "\n");
  std::fflush(stderr);
}

}  // namespace ddpm::app
