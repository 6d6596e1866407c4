#include "ddpm/bench/profiler.h"

#include <algorithm>
#include <map>

namespace ddpm::profile {

namespace detail {
std::atomic<bool> enabled{false};
}

namespace {

struct State {
  std::map<std::string, Total> ops, blocks;
  Scope* open_op = nullptr;  // innermost open op scope
};

State& state() {
  static State s;
  return s;
}

}  // namespace

void set_enabled(bool on) { detail::enabled.store(on, std::memory_order_relaxed); }

void reset() {
  state().ops.clear();
  state().blocks.clear();
}

std::vector<Total> totals(Kind kind) {
  const auto& table = kind == Kind::op ? state().ops : state().blocks;
  std::vector<Total> out;
  for (const auto& [name, total] : table) out.push_back(total);
  std::sort(out.begin(), out.end(), [](const Total& a, const Total& b) { return a.seconds > b.seconds; });
  return out;
}

void Scope::open(Kind kind, const char* name) {
  active_ = true;
  kind_ = kind;
  name_ = name;
  if (kind == Kind::op) {
    parent_ = state().open_op;
    state().open_op = this;
  }
  start_ = std::chrono::steady_clock::now();
}

void Scope::close() {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  State& s = state();
  if (kind_ == Kind::op) {
    s.open_op = parent_;
    if (parent_ != nullptr) parent_->nested_ += elapsed;
  }
  Total& t = (kind_ == Kind::op ? s.ops : s.blocks)[name_];
  if (t.name.empty()) t.name = name_;
  t.seconds += kind_ == Kind::op ? elapsed - nested_ : elapsed;
  ++t.calls;
}

}  // namespace ddpm::profile
