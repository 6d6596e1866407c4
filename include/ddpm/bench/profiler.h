// Where a step's time goes: wall time per op type and per U-Net block, for `ddpm bench --profile`.
// Off by default; a disabled scope costs one relaxed atomic load. Scopes are opened on the thread
// that drives the model (ops parallelise inside), so the totals need no locking.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ddpm::profile {

enum class Kind {
  op,     // self time: time in nested op scopes is charged to them (attention's matmuls, ...)
  block,  // inclusive time of a part of the model or of the step
};

namespace detail {
extern std::atomic<bool> enabled;
}

inline bool enabled() { return detail::enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);
void reset();

struct Total {
  std::string name;
  double seconds = 0;
  int64_t calls = 0;
};
// Totals since the last reset, largest first.
std::vector<Total> totals(Kind kind);

// Charges the time from construction to destruction to `name` (which must outlive the scope:
// a literal or a model's stored name).
class Scope {
 public:
  Scope(Kind kind, const char* name) {
    if (enabled()) open(kind, name);
  }
  ~Scope() {
    if (active_) close();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void open(Kind kind, const char* name);
  void close();
  bool active_ = false;
  Kind kind_ = Kind::op;
  const char* name_ = nullptr;
  std::chrono::steady_clock::time_point start_;
  double nested_ = 0;  // seconds of op scopes opened inside this one
  Scope* parent_ = nullptr;
};

}  // namespace ddpm::profile
