#include "provenance.h"

#include <algorithm>
#include <cctype>

namespace ddpm::app {

namespace {

std::string command_line;

// An argument as a POSIX shell reads it back: bare when it is plain, else in single quotes.
std::string shell_quoted(const std::string& arg) {
  const bool plain = !arg.empty() && std::all_of(arg.begin(), arg.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string("-_./=:,+@%").find(c) != std::string::npos;
  });
  if (plain) return arg;
  std::string quoted(1, '\'');
  for (char c : arg) {
    if (c == '\'') quoted.append("'\\'");  // close the quotes, an escaped quote, reopen them
    quoted.push_back(c);
  }
  quoted.push_back('\'');
  return quoted;
}

}  // namespace

void remember_command_line(int argc, char** argv) {
  command_line = "ddpm";  // argv[0] is wherever the binary happened to be
  for (int i = 1; i < argc; ++i) {
    command_line.push_back(' ');
    command_line.append(shell_quoted(argv[i]));
  }
}

PngText provenance(const std::string& parameters) {
  return {{"Software", std::string("ddpm.cpp ") + DDPM_VERSION_STRING},
          {"command", command_line},
          {"parameters", parameters}};
}

}  // namespace ddpm::app
