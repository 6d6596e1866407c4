// Where the library's notes and warnings go: stderr by default, or a sink the host program sets
// (the C interface's ddpm_set_log_callback), so that an embedding program can route or silence them.
#pragma once

#include <functional>
#include <string>

namespace ddpm {

enum class LogLevel { note, warning };

// The message has no trailing newline. A null sink restores stderr ("note: ..." / "warning: ...").
using LogSink = std::function<void(LogLevel level, const std::string& message)>;
void set_log_sink(LogSink sink);

void log_message(LogLevel level, const std::string& message);

}  // namespace ddpm
