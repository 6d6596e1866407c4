// Helpers shared by the file readers and writers in src/io (not part of the public API).
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace ddpm::io_detail {

// Writes PATH atomically: `fill` writes into PATH.tmp, which is flushed to disk and renamed over
// PATH. Any write, flush or rename failure throws naming PATH (and the temp file is removed).
void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& fill);

// Replaces the directory `dir` with new contents in one step: fill(tmp) writes everything into a
// temporary sibling directory, which is then swapped into place (RENAME_EXCHANGE where the
// filesystem can; otherwise the old directory is moved aside first), so a crash or an error
// always leaves one complete directory. Refuses to replace an existing non-empty directory
// without `marker` (a relative path such as "unet/config.json"): it is not a `kind` and may be
// the user's. Filesystem errors throw naming the directory; the temporary directory is removed.
void write_directory_atomic(const std::string& dir, const std::string& marker, const std::string& kind,
                            const std::function<void(const std::filesystem::path& tmp)>& fill);

// Writes `bytes` bytes or throws naming `path` (for use inside write_file_atomic's fill).
void write_bytes(std::FILE* f, const void* data, size_t bytes, const std::string& path);

// Reads a JSON file whose top level must be an object; throws naming the file. Files over
// kMaxJsonBytes are refused before they are read.
inline constexpr uintmax_t kMaxJsonBytes = 16u << 20;
nlohmann::json read_json_object(const std::string& path);

// Writes `j` as diffusers does (indent 2, sorted keys, final newline), atomically.
void write_json_file(const std::string& path, const nlohmann::json& j);

// The shortest decimal that reads back as `f`, as a double (1e-6f is written 1e-06, not
// 9.999999974752427e-07), so diffusers sees the number we mean.
double float_for_json(float f);

// "string", "number", ... for error messages.
std::string json_type(const nlohmann::json& j);

}  // namespace ddpm::io_detail
