// Images in and out: PNG writing (atomic), PNG/JPEG reading, the sample grid, and the mapping
// between model values in [-1, 1] and uint8 pixels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ddpm {

struct Image {
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels]
};

// Text stored in a PNG (keyword, text), in file order: what made the image.
using PngText = std::vector<std::pair<std::string, std::string>>;

// Writes a 1- or 3-channel PNG through a temporary file and a rename, so readers never see half a
// file; `text` goes into tEXt chunks (iTXt for non-ASCII text) after the header.
void write_png(const std::string& path, const uint8_t* pixels, int64_t height, int64_t width, int64_t channels,
               const PngText& text = {});
void write_png(const std::string& path, const Image& image, const PngText& text = {});

// Inserts text chunks after the IHDR chunk of an encoded PNG. Keywords are 1-79 ASCII characters.
void add_png_text(std::vector<unsigned char>& png, const PngText& text);

// The tEXt and uncompressed iTXt chunks of a PNG file, in file order. Throws naming the file when
// it is not a PNG, ends early, or a text chunk's CRC or layout is wrong.
PngText read_png_text(const std::string& path);

// Limits of read_image, checked before anything is decoded: the file's size, and the pixel count
// its header claims (8192 x 8192; stb allocates for the claim before it finds that the data is
// missing, so a tiny file could otherwise ask for gigabytes).
inline constexpr uintmax_t kMaxImageFileBytes = uintmax_t{1} << 30;
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 26;
// A JPEG may claim at most this many pixels per byte of file (a baseline JPEG needs at least two
// bits per 8x8 block and component, 256 pixels per byte; 2048 leaves room for progressive files'
// end-of-band runs), and any JPEG up to 1024 x 1024 pixels is allowed.
inline constexpr int64_t kMaxJpegPixelsPerByte = 2048;
inline constexpr int64_t kJpegPixelsAlwaysAllowed = int64_t{1} << 20;

// Reads a PNG or JPEG (through stb_image). channels 0 keeps the file's colour type with alpha
// dropped (1 or 3); 1 converts colour to ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, rounded);
// 3 replicates grey. Throws naming the file when it is missing, over the limits above, or cannot
// be decoded.
Image read_image(const std::string& path, int64_t channels = 0);

// Tiles n images [n, height, width, channels] into one image, `cols` per row (fewer when n < cols),
// row-major, with `padding` pixels of `pad_value` around and between them (torchvision's make_grid).
Image make_grid(const uint8_t* images, int64_t n, int64_t height, int64_t width, int64_t channels,
                int64_t cols, int64_t padding = 2, uint8_t pad_value = 0);

// Model values to pixels as the DDPM code does: (x + 1) * 127.5, clipped to [0, 255], rounded to
// nearest (ties to even, as tf.round / torch.round); NaN becomes 0.
void to_uint8(const float* x, size_t n, uint8_t* out);
std::vector<uint8_t> to_uint8(const float* x, size_t n);

// Pixels to model values: x / 127.5 - 1, so 0 -> -1 and 255 -> 1.
void to_float(const uint8_t* x, size_t n, float* out);
std::vector<float> to_float(const uint8_t* x, size_t n);

}  // namespace ddpm
