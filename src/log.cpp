#include "ddpm/log.h"

#include <cstdio>
#include <mutex>

namespace ddpm {

namespace {

std::mutex sink_lock;
LogSink sink;

}  // namespace

void set_log_sink(LogSink new_sink) {
  const std::lock_guard<std::mutex> hold(sink_lock);
  sink = std::move(new_sink);
}

void log_message(LogLevel level, const std::string& message) {
  LogSink current;
  {
    const std::lock_guard<std::mutex> hold(sink_lock);
    current = sink;  // called outside the lock: a sink may log, or set another sink
  }
  if (current) return current(level, message);
  std::fprintf(stderr, "%s: %s\n", level == LogLevel::note ? "note" : "warning", message.c_str());
}

}  // namespace ddpm
