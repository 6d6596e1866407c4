// Atomic file writing and JSON file helpers for the io readers and writers.
#include "io/io_util.h"

#include <fcntl.h>   // AT_FDCWD
#include <stdio.h>   // renameat2
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ddpm::io_detail {

void write_bytes(std::FILE* f, const void* data, size_t bytes, const std::string& path) {
  if (bytes != 0 && std::fwrite(data, 1, bytes, f) != bytes)
    throw std::runtime_error(path + ": write failed (" + std::strerror(errno) + ")");
}

void write_directory_atomic(const std::string& dir, const std::string& marker, const std::string& kind,
                            const std::function<void(const std::filesystem::path& tmp)>& fill) {
  namespace fs = std::filesystem;
  fs::path target = fs::path(dir).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();  // "dir/" -> "dir"
  const std::string where = target.string();
  if (fs::exists(target)) {
    if (!fs::is_directory(target)) throw std::runtime_error(where + ": exists and is not a directory");
    if (!fs::is_empty(target) && !fs::exists(target / marker))
      throw std::runtime_error(where + ": exists and is not a " + kind + " (no " + marker + "); refusing to replace it");
  }
  if (!target.parent_path().empty()) fs::create_directories(target.parent_path());
  std::string stem = ".";  // not "." + string: GCC 12 reports a false -Wrestrict for that
  stem += target.filename().string();
  const fs::path tmp = target.parent_path() / (stem + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  try {
    fs::create_directories(tmp);
    fill(tmp);
    if (!fs::exists(target)) {
      fs::rename(tmp, target);
      return;
    }
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
      fs::remove_all(tmp);  // now the old directory
      return;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      throw std::runtime_error(where + ": cannot move the new " + kind + " into place (" + std::strerror(errno) + ")");
    const fs::path old = target.parent_path() / (stem + ".old-" + std::to_string(::getpid()));
    fs::remove_all(old);
    fs::rename(target, old);
    try {
      fs::rename(tmp, target);
    } catch (...) {
      fs::rename(old, target);
      throw;
    }
    fs::remove_all(old);
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw std::runtime_error(where + ": cannot write the " + kind + ": " + e.what());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& fill) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error(path + ": cannot open " + tmp + " for writing (" + std::strerror(errno) + ")");
  try {
    fill(f);
    // fflush + fsync so that a disk-full or I/O error surfaces here and not as a silently short file.
    if (std::fflush(f) != 0 || std::ferror(f))
      throw std::runtime_error(path + ": write failed (" + std::strerror(errno) + ", disk full?)");
    if (::fsync(fileno(f)) != 0) throw std::runtime_error(path + ": fsync failed (" + std::strerror(errno) + ")");
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": write failed on close (" + std::strerror(errno) + ")");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot rename " + tmp + " into place (" + ec.message() + ")");
  }
}

nlohmann::json read_json_object(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxJsonBytes)
    throw std::runtime_error(path + ": " + std::to_string(size) + " bytes is too large for a config file (limit " +
                             std::to_string(kMaxJsonBytes) + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::runtime_error(path + ": expected a JSON object at the top level, got " + json_type(j));
  return j;
}

void write_json_file(const std::string& path, const nlohmann::json& j) {
  std::string text;
  try {
    text = j.dump(2) + "\n";  // nlohmann::json keeps keys sorted, like diffusers' sort_keys=True
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": cannot write JSON: " + e.what());
  }
  write_file_atomic(path, [&](std::FILE* f) { write_bytes(f, text.data(), text.size(), path); });
}

double float_for_json(float f) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf) - 1, f);
  *r.ptr = '\0';
  return std::strtod(buf, nullptr);
}

std::string json_type(const nlohmann::json& j) {
  if (j.is_number_integer()) return "integer " + j.dump();
  if (j.is_number_float()) return "number " + j.dump();
  if (j.is_string()) return "string " + j.dump();
  if (j.is_boolean()) return std::string(j.get<bool>() ? "true" : "false");
  return j.type_name();
}

}  // namespace ddpm::io_detail
