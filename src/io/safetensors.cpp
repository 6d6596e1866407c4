// safetensors reader (F32/F16/BF16) and atomic F32 writer. The reader validates the whole header
// (format spec: github.com/huggingface/safetensors) before it allocates or reads any tensor data.
#include "ddpm/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "ddpm/tensor.h"
#include "io/io_util.h"

namespace ddpm {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": not a valid safetensors file: " + what);
}

size_t element_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

std::string offsets_str(const SafeTensor& t) {
  std::string s = "[";
  s += std::to_string(t.data_begin);
  s += ',';
  s += std::to_string(t.data_end);
  s += ']';
  return s;
}

std::string short_json(const json& j) {
  // dump() recurses once per level of nesting, and a header may nest millions deep: describe
  // nested containers instead of printing them.
  if (j.is_structured())
    for (const json& e : j)
      if (e.is_structured()) return std::string(j.is_array() ? "an array" : "an object") + " holding " + e.type_name() + "s";
  std::string s = j.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

float f32_from_f16(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float f32_from_bf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

SafeTensor parse_entry(const std::string& path, const std::string& name, const json& e, uint64_t data_size) {
  const std::string where = "tensor '" + name + "'";
  if (!e.is_object()) fail(path, where + ": entry must be an object with dtype, shape and data_offsets");
  SafeTensor t;
  t.name = name;
  const auto dtype = e.find("dtype");
  if (dtype == e.end() || !dtype->is_string()) fail(path, where + ": missing or non-string \"dtype\"");
  t.dtype = dtype->get<std::string>();
  const size_t esize = element_size(t.dtype);
  if (esize == 0) fail(path, where + " has unsupported dtype '" + t.dtype + "' (supported: F32, F16, BF16)");

  const auto shape = e.find("shape");
  if (shape == e.end() || !shape->is_array()) fail(path, where + ": missing or non-array \"shape\"");
  constexpr size_t kMaxRank = 64;
  if (shape->size() > kMaxRank)
    fail(path, where + ": shape has " + std::to_string(shape->size()) + " dimensions (at most " +
                   std::to_string(kMaxRank) + ")");
  // Product in bytes with an overflow guard: no dimension or total may exceed 2^50 bytes.
  constexpr uint64_t kLimit = uint64_t{1} << 50;
  uint64_t bytes = esize;
  for (const json& d : *shape) {
    if (!d.is_number_unsigned())
      fail(path, where + ": shape " + short_json(*shape) + " must hold non-negative integers");
    const uint64_t v = d.get<uint64_t>();
    if (v > kLimit || (v != 0 && bytes > kLimit / v)) fail(path, where + ": shape " + short_json(*shape) + " is too large");
    bytes *= v;
    t.shape.push_back(static_cast<int64_t>(v));
  }

  const auto offs = e.find("data_offsets");
  if (offs == e.end() || !offs->is_array() || offs->size() != 2 || !(*offs)[0].is_number_unsigned() ||
      !(*offs)[1].is_number_unsigned())
    fail(path, where + ": \"data_offsets\" must be [begin, end] with non-negative integers, got " +
                   (offs == e.end() ? std::string("nothing") : short_json(*offs)));
  t.data_begin = (*offs)[0].get<uint64_t>();
  t.data_end = (*offs)[1].get<uint64_t>();
  if (t.data_end < t.data_begin) fail(path, where + ": data_offsets " + offsets_str(t) + " end before they begin");
  if (t.data_end > data_size)
    fail(path, where + ": data_offsets " + offsets_str(t) + " run past the end of the data section (" +
                   std::to_string(data_size) + " bytes; file truncated?)");
  if (t.data_end - t.data_begin != bytes)
    fail(path, where + ": shape " + dims_str(t.shape) + " of " + t.dtype + " needs " + std::to_string(bytes) +
                   " bytes, but data_offsets " + offsets_str(t) + " span " +
                   std::to_string(t.data_end - t.data_begin));
  return t;
}

}  // namespace

int64_t SafeTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.in_ = std::make_unique<std::ifstream>(path, std::ios::binary);
  std::ifstream& in = *f.in_;
  if (!in) throw std::runtime_error(path + ": cannot open");
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8) fail(path, "the file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kSafetensorsMaxHeader)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(kSafetensorsMaxHeader) + " bytes");
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(file_size - 8) + " bytes follow the length field; file truncated?)");
  if (header_len < 2) fail(path, "header length " + std::to_string(header_len) + " is too small for a JSON object");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) fail(path, "cannot read the header");
  if (header[0] != '{') fail(path, "the header does not start with '{'");

  // nlohmann keeps the last of duplicate keys silently; a duplicate tensor name is an error.
  std::string duplicate;
  std::set<std::string> seen;
  const json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(header, cb);
  } catch (const json::exception& e) {
    fail(path, std::string("the header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "the header is not a JSON object");
  if (!duplicate.empty()) fail(path, "tensor '" + duplicate + "' appears twice in the header");

  f.data_start_ = 8 + header_len;
  const uint64_t data_size = file_size - f.data_start_;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail(path, "\"__metadata__\" must be an object of strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail(path, "\"__metadata__\" entry '" + mk + "' must be a string, got " + short_json(mv));
        f.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    f.tensors_.push_back(parse_entry(path, key, value, data_size));
  }

  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const SafeTensor& a, const SafeTensor& b) {
    return a.data_begin != b.data_begin ? a.data_begin < b.data_begin
                                        : a.data_end != b.data_end ? a.data_end < b.data_end : a.name < b.name;
  });
  // The format requires the tensors to cover the data section exactly: no gaps, no overlaps.
  uint64_t covered = 0;
  const SafeTensor* prev = nullptr;
  for (const SafeTensor& t : f.tensors_) {
    if (t.data_begin < covered)
      fail(path, "tensor '" + t.name + "' (data_offsets " + offsets_str(t) + ") overlaps tensor '" + prev->name +
                     "' (data_offsets " + offsets_str(*prev) + ")");
    if (t.data_begin > covered)
      fail(path, "bytes [" + std::to_string(covered) + "," + std::to_string(t.data_begin) +
                     ") of the data section belong to no tensor (a gap before tensor '" + t.name + "')");
    covered = t.data_end;
    prev = &t;
  }
  if (covered != data_size)
    fail(path, "the data section has " + std::to_string(data_size) + " bytes but the tensors cover only " +
                   std::to_string(covered) + (prev ? " (trailing bytes after tensor '" + prev->name + "')" : ""));
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  return f;
}

const SafeTensor* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::read_f32(const std::string& name, float* out, size_t count) {
  const SafeTensor* t = find(name);
  if (!t) throw std::runtime_error(path_ + ": no tensor '" + name + "'");
  if (static_cast<uint64_t>(t->numel()) != count)
    throw std::runtime_error(path_ + ": tensor '" + name + "' has " + std::to_string(t->numel()) +
                             " elements, the caller expects " + std::to_string(count));
  std::ifstream& in = *in_;
  in.clear();
  in.seekg(static_cast<std::streamoff>(data_start_ + t->data_begin));
  auto read = [&](void* dst, size_t bytes) {
    if (!in.read(static_cast<char*>(dst), static_cast<std::streamsize>(bytes)))
      throw std::runtime_error(path_ + ": tensor '" + name + "': the file ends early (changed since it was opened?)");
  };
  if (t->dtype == "F32") {
    read(out, count * 4);
    return;
  }
  const bool bf16 = t->dtype == "BF16";
  std::vector<uint16_t> buf(std::min<size_t>(count, 1 << 16));
  for (size_t done = 0; done < count;) {
    const size_t n = std::min(buf.size(), count - done);
    read(buf.data(), n * 2);
    for (size_t i = 0; i < n; ++i) out[done + i] = bf16 ? f32_from_bf16(buf[i]) : f32_from_f16(buf[i]);
    done += n;
  }
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) {
  const SafeTensor* t = find(name);
  if (!t) throw std::runtime_error(path_ + ": no tensor '" + name + "'");
  std::vector<float> v(static_cast<size_t>(t->numel()));
  read_f32(name, v.data(), v.size());
  return v;
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  uint64_t offset = 0;
  std::vector<uint64_t> bytes(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& t = tensors[i];
    const std::string where = path + ": cannot write tensor '" + t.name + "': ";
    if (t.name == "__metadata__") throw std::invalid_argument(where + "the name is reserved");
    if (header.contains(t.name)) throw std::invalid_argument(where + "the name appears twice");
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw std::invalid_argument(where + "negative dimension in shape " + dims_str(t.shape));
      n *= static_cast<uint64_t>(d);
    }
    if (n != 0 && t.data == nullptr) throw std::invalid_argument(where + "no data");
    bytes[i] = n * 4;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes[i]}}};
    offset += bytes[i];
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(path + ": cannot write the header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  io_detail::write_file_atomic(path, [&](std::FILE* f) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
    io_detail::write_bytes(f, len, 8, path);
    io_detail::write_bytes(f, text.data(), text.size(), path);
    for (size_t i = 0; i < tensors.size(); ++i) io_detail::write_bytes(f, tensors[i].data, bytes[i], path);
  });
}

}  // namespace ddpm
