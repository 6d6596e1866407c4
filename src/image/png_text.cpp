// PNG text chunks: what made an image, written into the file itself (as stable-diffusion.cpp and
// other generators do with a "parameters" chunk), and read back. tEXt for ASCII text, iTXt
// (UTF-8, uncompressed) otherwise; chunks are inserted right after IHDR.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "ddpm/image/png.h"

namespace ddpm {

namespace {

constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr size_t kIhdrEnd = 8 + 4 + 4 + 13 + 4;  // signature, then IHDR's length, type, data, CRC
constexpr size_t kMaxTextChunkBytes = size_t{1} << 20;

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void store_be32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (24 - 8 * i));
}

bool is_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::vector<unsigned char> text_chunk(const std::string& keyword, const std::string& text) {
  if (keyword.empty() || keyword.size() > 79 || !is_ascii(keyword) || keyword.find('\0') != std::string::npos)
    throw std::invalid_argument("PNG text keyword \"" + keyword + "\": expected 1-79 ASCII characters");
  if (text.find('\0') != std::string::npos || text.size() > kMaxTextChunkBytes)
    throw std::invalid_argument("PNG text \"" + keyword + "\": holds a NUL byte or is over 1 MiB");
  // Length, type, data (keyword, NUL, [iTXt: 4 header bytes], text), CRC of type and data.
  const bool ascii = is_ascii(text);
  const size_t header = ascii ? 0 : 4;  // iTXt: not compressed, method 0, no language, no translation
  const size_t data_size = keyword.size() + 1 + header + text.size();
  std::vector<unsigned char> chunk(4 + 4 + data_size + 4, 0);
  unsigned char* p = chunk.data();
  store_be32(p, static_cast<uint32_t>(data_size));
  std::memcpy(p + 4, ascii ? "tEXt" : "iTXt", 4);
  std::memcpy(p + 8, keyword.data(), keyword.size());
  std::memcpy(p + 8 + keyword.size() + 1 + header, text.data(), text.size());
  store_be32(p + 8 + data_size, static_cast<uint32_t>(crc32(0L, p + 4, static_cast<uInt>(4 + data_size))));
  return chunk;
}

}  // namespace

void add_png_text(std::vector<unsigned char>& png, const PngText& text) {
  if (png.size() < kIhdrEnd || std::memcmp(png.data(), kSignature, 8) != 0 ||
      std::memcmp(png.data() + 12, "IHDR", 4) != 0)
    throw std::invalid_argument("add_png_text: not an encoded PNG that starts with IHDR");
  std::vector<unsigned char> chunks;
  for (const auto& [keyword, value] : text) {
    const std::vector<unsigned char> c = text_chunk(keyword, value);
    chunks.insert(chunks.end(), c.begin(), c.end());
  }
  png.insert(png.begin() + kIhdrEnd, chunks.begin(), chunks.end());
}

PngText read_png_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  unsigned char signature[8];
  if (!in.read(reinterpret_cast<char*>(signature), 8) || std::memcmp(signature, kSignature, 8) != 0)
    throw std::runtime_error(path + ": not a PNG file");
  PngText text;
  for (;;) {
    unsigned char header[8];
    if (!in.read(reinterpret_cast<char*>(header), 8))
      throw std::runtime_error(path + ": corrupt PNG: the file ends before its IEND chunk");
    const uint32_t length = read_be32(header);
    const std::string type(reinterpret_cast<const char*>(header + 4), 4);
    if (type == "IEND") return text;
    if (type != "tEXt" && type != "iTXt") {  // skip the chunk and its CRC
      if (!in.seekg(static_cast<std::streamoff>(length) + 4, std::ios::cur))
        throw std::runtime_error(path + ": corrupt PNG: a " + type + " chunk runs past the end of the file");
      continue;
    }
    if (length > kMaxTextChunkBytes)
      throw std::runtime_error(path + ": corrupt PNG: a " + type + " chunk of " + std::to_string(length) +
                               " bytes (at most 1 MiB is read)");
    std::string data(length, '\0');
    unsigned char crc_bytes[4];
    if (!in.read(data.data(), length) || !in.read(reinterpret_cast<char*>(crc_bytes), 4))
      throw std::runtime_error(path + ": corrupt PNG: a " + type + " chunk runs past the end of the file");
    uLong crc = crc32(0L, header + 4, 4);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(length));
    if (static_cast<uint32_t>(crc) != read_be32(crc_bytes))
      throw std::runtime_error(path + ": corrupt PNG: a " + type + " chunk's CRC does not match its data");
    const size_t nul = data.find('\0');
    if (nul == std::string::npos || nul == 0)
      throw std::runtime_error(path + ": corrupt PNG: a " + type + " chunk without a keyword");
    std::string keyword = data.substr(0, nul), value;
    if (type == "tEXt") {
      value = data.substr(nul + 1);
    } else {  // iTXt: compression flag, method, language\0, translated keyword\0, text
      if (nul + 3 > data.size()) throw std::runtime_error(path + ": corrupt PNG: a truncated iTXt chunk");
      if (data[nul + 1] != 0) continue;  // compressed iTXt: not ours, skipped
      const size_t language_end = data.find('\0', nul + 3);
      const size_t translated_end =
          language_end == std::string::npos ? std::string::npos : data.find('\0', language_end + 1);
      if (translated_end == std::string::npos) throw std::runtime_error(path + ": corrupt PNG: a truncated iTXt chunk");
      value = data.substr(translated_end + 1);
    }
    text.emplace_back(std::move(keyword), std::move(value));
  }
}

}  // namespace ddpm
