// NPY reader and writer (format versions 1-3). Validates the header before allocating.
#include "ddpm/io/npy.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <type_traits>

namespace ddpm {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": not a valid .npy file: " + what);
}

size_t element_size(const std::string& descr) {
  if (descr == "<f4" || descr == "<i4") return 4;
  if (descr == "<f8" || descr == "<i8") return 8;
  if (descr == "|u1" || descr == "<u1") return 1;
  return 0;
}

// Extracts the value text following 'key': in the header dictionary.
std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) fail(path, "header has no '" + key + "'");
  size_t v = header.find(':', k);
  if (v == std::string::npos) fail(path, "malformed header");
  ++v;
  while (v < header.size() && header[v] == ' ') ++v;
  if (v >= header.size()) fail(path, "malformed header");
  size_t end;
  if (header[v] == '\'') {
    end = header.find('\'', v + 1);
    if (end == std::string::npos) fail(path, "unterminated string in header");
    return header.substr(v + 1, end - v - 1);
  }
  if (header[v] == '(') {
    end = header.find(')', v);
    if (end == std::string::npos) fail(path, "unterminated shape tuple");
    return header.substr(v + 1, end - v - 1);
  }
  end = header.find_first_of(",}", v);
  if (end == std::string::npos) fail(path, "malformed header");
  return header.substr(v, end - v);
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Float to int64 is undefined behaviour for NaN, infinities and values out of range: refuse
// those (and fractions, which would otherwise be truncated silently).
template <class Out, class In>
static Out convert_one(In v, const NpyArray& a, int64_t i) {
  if constexpr (std::is_integral_v<Out> && std::is_floating_point_v<In>) {
    // 2^63 is exactly representable; int64's range is [-2^63, 2^63).
    constexpr double kTwo63 = 9223372036854775808.0;
    if (!(static_cast<double>(v) >= -kTwo63 && static_cast<double>(v) < kTwo63) || std::trunc(v) != v) {
      char text[64];
      std::snprintf(text, sizeof text, "%.17g", static_cast<double>(v));
      throw std::runtime_error(a.path + ": element " + std::to_string(i) + " (" + text +
                               ") is not an integer in the int64 range");
    }
  }
  return static_cast<Out>(v);
}

template <class Out>
static std::vector<Out> convert(const NpyArray& a) {
  const int64_t n = a.numel();
  std::vector<Out> out(static_cast<size_t>(n));
  auto load = [&](auto tag) {
    using In = decltype(tag);
    for (int64_t i = 0; i < n; ++i) {
      In v;
      std::memcpy(&v, a.data.data() + i * static_cast<int64_t>(sizeof(In)), sizeof(In));
      out[static_cast<size_t>(i)] = convert_one<Out>(v, a, i);
    }
  };
  if (a.dtype == "<f4") load(float{});
  else if (a.dtype == "<f8") load(double{});
  else if (a.dtype == "<i4") load(int32_t{});
  else if (a.dtype == "<i8") load(int64_t{});
  else load(uint8_t{});
  return out;
}

std::vector<float> NpyArray::to_f32() const { return convert<float>(*this); }
std::vector<int64_t> NpyArray::to_i64() const { return convert<int64_t>(*this); }

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);

  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) fail(path, "bad magic");
  const int major = static_cast<unsigned char>(magic[6]);
  uint64_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) fail(path, "truncated header length");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) fail(path, "truncated header length");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint64_t>(b[3]) << 24);
  } else {
    fail(path, "unsupported format version " + std::to_string(major));
  }
  if (header_len > 65536 || header_len > file_size) fail(path, "header length out of range");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) fail(path, "truncated header");

  NpyArray a;
  a.path = path;
  a.dtype = dict_value(header, "descr", path);
  const size_t esize = element_size(a.dtype);
  if (esize == 0) fail(path, "unsupported dtype '" + a.dtype + "' (use <f4, <f8, <i4, <i8 or |u1)");
  if (dict_value(header, "fortran_order", path) != "False") fail(path, "Fortran order is not supported");

  const std::string shape_text = dict_value(header, "shape", path);
  size_t pos = 0;
  while (pos < shape_text.size()) {
    while (pos < shape_text.size() && (shape_text[pos] == ' ' || shape_text[pos] == ',')) ++pos;
    if (pos >= shape_text.size()) break;
    size_t used = 0;
    long long d = 0;
    try {
      d = std::stoll(shape_text.substr(pos), &used);
    } catch (const std::exception&) {
      fail(path, "bad shape '" + shape_text + "'");
    }
    if (d < 0 || d > (int64_t{1} << 40)) fail(path, "bad dimension in shape '" + shape_text + "'");
    a.shape.push_back(d);
    pos += used;
  }
  const uint64_t data_offset = static_cast<uint64_t>(in.tellg());
  uint64_t bytes = esize;
  for (int64_t d : a.shape) {
    if (d != 0 && bytes > (uint64_t{1} << 50) / static_cast<uint64_t>(d)) fail(path, "shape too large");
    bytes *= static_cast<uint64_t>(d);
  }
  if (data_offset + bytes != file_size)
    fail(path, "shape (" + shape_text + ") needs " + std::to_string(bytes) + " data bytes, file holds " +
                   std::to_string(file_size - data_offset));
  a.data.resize(bytes);
  if (!in.read(a.data.data(), static_cast<std::streamsize>(bytes))) fail(path, "truncated data");
  return a;
}

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    header += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    n *= shape[i];
  }
  header += "), }";
  // Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(path + ": cannot open for writing");
    const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                  static_cast<unsigned char>(header.size() >> 8)};
    out.write("\x93NUMPY\x01\x00", 8);
    out.write(reinterpret_cast<const char*>(len), 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * 4));
    if (!out.flush()) throw std::runtime_error(path + ": write failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace ddpm
