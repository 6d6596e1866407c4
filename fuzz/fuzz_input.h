// Shared by the libFuzzer targets: the readers take paths, so every input is written to a file
// in a per-process scratch directory in /dev/shm, and the reader's errors are checked against the
// contract (a std::exception naming the file; anything else is a finding).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace ddpm::fuzz {

// /dev/shm/ddpm-fuzz-<pid>, created on first use and removed when the process exits normally.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string d = "/dev/shm/ddpm-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all("/dev/shm/ddpm-fuzz-" + std::to_string(::getpid()), ec);
    });
    return d;
  }();
  return dir;
}

// Writes `size` bytes to scratch_dir()/name (replacing it) and returns the path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out.flush()) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what.c_str());
  std::abort();
}

// A property the reader's result must have; a violation is a finding.
inline void check(bool ok, const char* what) {
  if (!ok) finding(std::string("broken invariant: ") + what);
}

// Runs call(). A std::exception is the expected way to refuse bad input, but its message must
// name `file` (the readers' contract); an exception of any other type escapes to libFuzzer,
// which reports it as a crash. DDPM_FUZZ_VERBOSE=1 prints each input's outcome.
template <class F>
void expect_clean(const std::string& file, F&& call) {
  try {
    call();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.find(file) == std::string::npos) finding("error message does not name " + file + ": " + what);
    static const bool verbose = std::getenv("DDPM_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "refused: %s\n", what.c_str());
    return;
  }
  static const bool verbose = std::getenv("DDPM_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "accepted\n");
}

}  // namespace ddpm::fuzz
