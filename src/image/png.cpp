// PNG/JPEG through stb_image and stb_image_write; the sample grid; [-1, 1] <-> uint8.
#include "ddpm/image/png.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO  // we read files ourselves, to name them in errors
// PNG and JPEG only: the image folder takes .png/.jpg/.jpeg, and every other decoder is attack
// surface (stb's GIF, PNM, TGA, PSD and PIC readers have had the most memory-safety bugs).
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

namespace ddpm {

namespace {

// Large enough for any sample grid we write.
constexpr int64_t kMaxPixels = int64_t{1} << 28;

// stb_image 2.27 (Debian 12's libstb-dev) writes past its Huffman tables when a JPEG DHT segment
// declares more than 256 codes (upstream fixed it in 2.28 with a "bad DHT header" check); found by
// fuzz/fuzz_image. This finds such a table before stb sees the file, returning the number of
// codes it declares, or 0 when every table stb could parse is sound.
//
// stb parses a DHT wherever it meets the bytes FF C4 as a marker. Up to the first scan its walk
// over the segments is deterministic and is followed here exactly (so FF C4 inside APPn/COM
// payloads, such as ICC profiles, is skipped as stb skips it); after the first SOS, where stb
// resumes depends on the entropy-coded data, so every FF C4 pair from there on is checked.
int oversized_jpeg_huffman_table(const unsigned char* p, size_t n) {
  constexpr int kNone = 0xff;  // stb's STBI__MARKER_none
  size_t pos = 0;
  auto get8 = [&]() -> int { return pos < n ? p[pos++] : 0; };  // stb returns 0 at the end, without moving
  auto get16 = [&]() { const int hi = get8(); return (hi << 8) | get8(); };
  auto skip = [&](int64_t bytes) { pos = bytes <= 0 ? pos : std::min<size_t>(n, pos + static_cast<size_t>(bytes)); };
  auto get_marker = [&]() {
    int x = get8();
    if (x != 0xff) return kNone;
    while (x == 0xff) x = get8();
    return x;
  };
  int oversized = 0;
  // stb's DHT parse (stbi__process_marker, case 0xC4); false where stb would stop with an error.
  auto dht = [&]() {
    int length = get16() - 2;
    while (length > 0) {
      const int q = get8();
      if ((q >> 4) > 1 || (q & 15) > 3) return false;
      int codes = 0;
      for (int i = 0; i < 16; ++i) codes += get8();
      if (codes > 256) {
        oversized = codes;
        return false;
      }
      skip(codes);
      length -= 17 + codes;
    }
    return length == 0;
  };
  // stbi__process_marker: true where stb goes on to the next marker.
  auto process = [&](int m) {
    if (m == 0xDD) {  // DRI
      if (get16() != 4) return false;
      skip(2);
      return true;
    }
    if (m == 0xDB) {  // DQT
      int length = get16() - 2;
      while (length > 0) {
        const int q = get8();
        if ((q >> 4) > 1 || (q & 15) > 3) return false;
        skip((q >> 4) ? 128 : 64);
        length -= (q >> 4) ? 129 : 65;
      }
      return length == 0;
    }
    if (m == 0xC4) return dht();
    if ((m >= 0xE0 && m <= 0xEF) || m == 0xFE) {  // APPn, COM: skipped
      const int length = get16();
      if (length < 2) return false;
      skip(length - 2);
      return true;
    }
    return false;  // stb: "expected marker" or "unknown marker"
  };

  if (get_marker() != 0xD8) return 0;  // no SOI: stb does not take it for a JPEG
  size_t resume = pos;                  // where the exact walk ended
  bool frame = false;                   // after the frame header (SOF0/1/2)
  int m = get_marker();
  for (;;) {
    if (!frame) {  // stbi__decode_jpeg_header
      if (m == 0xC0 || m == 0xC1 || m == 0xC2) {
        const int length = get16();
        if (length < 11) break;  // stb: "bad SOF len"
        skip(length - 2);
        frame = true;
        resume = pos;
        m = get_marker();
        continue;
      }
      if (!process(m)) break;
      resume = pos;
      m = get_marker();
      while (m == kNone && pos < n) m = get_marker();  // stb skips junk between header segments
      if (m == kNone) return oversized;
    } else {  // stbi__decode_jpeg_image, up to the first scan
      if (m == 0xD9) return oversized;  // EOI: stb reads no further
      if (m == 0xDA || m == 0xDC || !process(m)) break;
      resume = pos;
      m = get_marker();
    }
  }
  if (oversized) return oversized;
  for (size_t i = resume > 2 ? resume - 2 : 0; i + 1 < n; ++i) {
    if (p[i] != 0xff || p[i + 1] != 0xC4) continue;
    pos = i + 2;
    dht();
    if (oversized) return oversized;
  }
  return 0;
}

void check_shape(const std::string& path, int64_t height, int64_t width, int64_t channels) {
  if (channels != 1 && channels != 3)
    throw std::invalid_argument(path + ": cannot write a PNG with " + std::to_string(channels) +
                                " channels (expected 1 or 3)");
  if (height <= 0 || width <= 0 || height * width > kMaxPixels || width * channels > INT32_MAX)
    throw std::invalid_argument(path + ": cannot write a PNG of " + std::to_string(height) + "x" +
                                std::to_string(width) + " pixels");
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<unsigned char>*>(context);
  const auto* bytes = static_cast<const unsigned char*>(data);
  out->insert(out->end(), bytes, bytes + size);
}

// stb_image reads a PNG's chunks in file order and trusts their lengths: an IDAT chunk claiming
// 2 GB makes it grow its buffer to 2 GB before it finds the data missing (found by fuzz/fuzz_image),
// and it allocates the whole decompressed image as the header claims it before inflating. This
// walks the chunks first and returns what is wrong, or "" when the claims fit the file: every
// chunk's data lies inside the file, and the image's scanlines are no more than deflate's ratio
// limit (1032:1) can produce from the IDAT data present.
std::string png_claims_problem(const unsigned char* p, size_t n) {
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 8 || std::memcmp(p, kSignature, 8) != 0) return "";  // stb does not take it for a PNG
  auto be32 = [&](size_t at) {
    return (uint32_t{p[at]} << 24) | (uint32_t{p[at + 1]} << 16) | (uint32_t{p[at + 2]} << 8) | p[at + 3];
  };
  uint64_t idat_bytes = 0, raw_bytes = 0;
  for (size_t pos = 8; pos + 8 <= n;) {
    const uint64_t length = be32(pos);
    const std::string type(reinterpret_cast<const char*>(p + pos + 4), 4);
    if (length > n - pos - 8) {
      std::string printable;
      for (char c : type) printable += std::isalpha(static_cast<unsigned char>(c)) ? c : '?';
      return "corrupt PNG: chunk '" + printable + "' at byte " + std::to_string(pos) + " claims " +
             std::to_string(length) + " bytes, but only " + std::to_string(n - pos - 8) + " follow";
    }
    if (type == "IHDR" && length == 13 && raw_bytes == 0) {
      static const int kSamples[7] = {1, 0, 3, 1, 2, 0, 4};  // by colour type
      const uint64_t w = be32(pos + 8), h = be32(pos + 12), depth = p[pos + 16], colour = p[pos + 17];
      const uint64_t samples = colour < 7 ? static_cast<uint64_t>(kSamples[colour]) : 0;
      raw_bytes = h * (1 + (w * samples * depth + 7) / 8);  // w, h < 2^32: no overflow
    }
    if (type == "IDAT") idat_bytes += length;
    if (type == "IEND") break;
    pos += 12 + length;
  }
  if (raw_bytes > 1032 * idat_bytes + 1024)
    return "corrupt PNG: its header claims " + std::to_string(raw_bytes) + " bytes of scanlines, more than the " +
           std::to_string(idat_bytes) + " bytes of compressed data can hold";
  return "";
}

uint8_t luma(uint8_t r, uint8_t g, uint8_t b) {
  // ITU-R BT.601 weights, rounded (stb's own conversion truncates an integer approximation).
  const float y = 0.299f * r + 0.587f * g + 0.114f * b;
  return static_cast<uint8_t>(std::min(255.0f, std::nearbyint(y)));
}

// stb leaves its reason empty on some corrupt inputs (a zero-length IDAT chunk, found by fuzzing).
std::string decode_failure() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr && *reason != '\0' ? reason : "corrupt or truncated image data";
}

}  // namespace

void write_png(const std::string& path, const uint8_t* pixels, int64_t height, int64_t width, int64_t channels,
               const PngText& text) {
  check_shape(path, height, width, channels);
  std::vector<unsigned char> encoded;
  const int stride = static_cast<int>(width * channels);
  if (!stbi_write_png_to_func(append_bytes, &encoded, static_cast<int>(width), static_cast<int>(height),
                              static_cast<int>(channels), pixels, stride))
    throw std::runtime_error(path + ": PNG encoding failed");
  if (!text.empty()) add_png_text(encoded, text);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(path + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(encoded.data()), static_cast<std::streamsize>(encoded.size()));
    if (!out.flush()) {
      out.close();
      std::filesystem::remove(tmp);
      throw std::runtime_error(path + ": write failed (disk full?)");
    }
  }
  std::filesystem::rename(tmp, path);
}

void write_png(const std::string& path, const Image& image, const PngText& text) {
  if (image.pixels.size() != static_cast<size_t>(image.height * image.width * image.channels))
    throw std::invalid_argument(path + ": image holds " + std::to_string(image.pixels.size()) +
                                " bytes, its shape needs " +
                                std::to_string(image.height * image.width * image.channels));
  write_png(path, image.pixels.data(), image.height, image.width, image.channels, text);
}

Image read_image(const std::string& path, int64_t channels) {
  if (channels != 0 && channels != 1 && channels != 3)
    throw std::invalid_argument(path + ": cannot convert an image to " + std::to_string(channels) +
                                " channels (expected 1 or 3)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::error_code ec;
  const uintmax_t file_bytes = std::filesystem::file_size(path, ec);
  if (ec) throw std::runtime_error(path + ": cannot read its size: " + ec.message());
  if (file_bytes > kMaxImageFileBytes)
    throw std::runtime_error(path + ": image file of " + std::to_string(file_bytes) + " bytes is too large (limit " +
                             std::to_string(kMaxImageFileBytes) + ")");
  std::vector<unsigned char> bytes(static_cast<size_t>(file_bytes));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
    throw std::runtime_error(path + ": read failed (file changed while reading?)");
  if (bytes.empty()) throw std::runtime_error(path + ": cannot decode image: the file is empty");
  const int size = static_cast<int>(bytes.size());

  if (const int codes = oversized_jpeg_huffman_table(bytes.data(), bytes.size()))
    throw std::runtime_error(path + ": cannot decode image: corrupt JPEG: a Huffman table declares " +
                             std::to_string(codes) + " codes (at most 256)");
  // The header alone first: a few bytes can claim a huge image, and stb allocates for the claim.
  int w = 0, h = 0, stored = 0;
  if (!stbi_info_from_memory(bytes.data(), size, &w, &h, &stored))
    throw std::runtime_error(path + ": cannot decode image (not a PNG or JPEG?): " + stbi_failure_reason());
  if (int64_t{w} * h > kMaxImagePixels)
    throw std::runtime_error(path + ": image of " + std::to_string(w) + "x" + std::to_string(h) +
                             " pixels is too large (limit " + std::to_string(kMaxImagePixels) + " pixels)");
  if (const std::string problem = png_claims_problem(bytes.data(), bytes.size()); !problem.empty())
    throw std::runtime_error(path + ": cannot decode image: " + problem);
  // JPEG has no deflate-style bound, and stb decodes a truncated scan as if zeros followed, so a
  // 700-byte file could make it decode (and allocate) 14M pixels: found by fuzz/fuzz_image as a
  // 25 s input. Real JPEGs hold far fewer pixels per byte; see kMaxJpegPixelsPerByte.
  if (bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8 &&
      int64_t{w} * h > std::max<int64_t>(kJpegPixelsAlwaysAllowed, kMaxJpegPixelsPerByte * static_cast<int64_t>(size)))
    throw std::runtime_error(path + ": cannot decode image: corrupt JPEG: its header claims " + std::to_string(w) + "x" +
                             std::to_string(h) + " pixels, more than " + std::to_string(size) +
                             " bytes of JPEG can hold (a truncated file or a decompression bomb)");
  // Decode as 1 (grey, grey + alpha) or 3 (RGB, RGBA) channels: stb drops alpha itself.
  const int decoded = stored <= 2 ? 1 : 3;
  unsigned char* raw = stbi_load_from_memory(bytes.data(), size, &w, &h, &stored, decoded);
  if (raw == nullptr) throw std::runtime_error(path + ": cannot decode image: " + decode_failure());

  Image image;
  image.height = h;
  image.width = w;
  image.channels = channels == 0 ? decoded : channels;
  const size_t pixels = static_cast<size_t>(w) * static_cast<size_t>(h);
  image.pixels.resize(pixels * static_cast<size_t>(image.channels));
  if (image.channels == decoded) {
    std::memcpy(image.pixels.data(), raw, image.pixels.size());
  } else if (image.channels == 1) {
    for (size_t i = 0; i < pixels; ++i) image.pixels[i] = luma(raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]);
  } else {
    for (size_t i = 0; i < pixels; ++i) std::fill_n(&image.pixels[3 * i], 3, raw[i]);
  }
  stbi_image_free(raw);
  return image;
}

Image make_grid(const uint8_t* images, int64_t n, int64_t height, int64_t width, int64_t channels,
                int64_t cols, int64_t padding, uint8_t pad_value) {
  if (n <= 0 || height <= 0 || width <= 0 || channels <= 0 || cols <= 0 || padding < 0)
    throw std::invalid_argument("make_grid: bad arguments (n " + std::to_string(n) + ", image " +
                                std::to_string(height) + "x" + std::to_string(width) + "x" +
                                std::to_string(channels) + ", cols " + std::to_string(cols) +
                                ", padding " + std::to_string(padding) + ")");
  cols = std::min(cols, n);
  const int64_t rows = (n + cols - 1) / cols;
  Image grid;
  grid.height = rows * (height + padding) + padding;
  grid.width = cols * (width + padding) + padding;
  grid.channels = channels;
  grid.pixels.assign(static_cast<size_t>(grid.height * grid.width * channels), pad_value);
  const int64_t row_bytes = width * channels;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y0 = padding + (i / cols) * (height + padding);
    const int64_t x0 = padding + (i % cols) * (width + padding);
    for (int64_t y = 0; y < height; ++y)
      std::memcpy(&grid.pixels[static_cast<size_t>(((y0 + y) * grid.width + x0) * channels)],
                  images + (i * height + y) * row_bytes, static_cast<size_t>(row_bytes));
  }
  return grid;
}

void to_uint8(const float* x, size_t n, uint8_t* out) {
  for (size_t i = 0; i < n; ++i) {
    const float v = (x[i] + 1.0f) * 127.5f;
    // Written so that NaN fails the first test and lands on 0.
    const float clipped = v > 0.0f ? std::min(v, 255.0f) : 0.0f;
    out[i] = static_cast<uint8_t>(std::nearbyint(clipped));
  }
}

std::vector<uint8_t> to_uint8(const float* x, size_t n) {
  std::vector<uint8_t> out(n);
  to_uint8(x, n, out.data());
  return out;
}

void to_float(const uint8_t* x, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(x[i]) / 127.5f - 1.0f;
}

std::vector<float> to_float(const uint8_t* x, size_t n) {
  std::vector<float> out(n);
  to_float(x, n, out.data());
  return out;
}

}  // namespace ddpm
