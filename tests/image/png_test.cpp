// Images out: PNG round trip, reading with channel conversion, the sample grid, [-1, 1] <-> uint8.
#include "ddpm/image/png.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

// stb_image_write is compiled into libddpm (src/image/png.cpp); used here to write a JPEG.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace ddpm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_png_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  return v;
}

TEST(Png, RoundTripOneAndThreeChannels) {
  const fs::path dir = temp_dir("roundtrip");
  for (int64_t c : {1, 3}) {
    std::string name = std::to_string(c);
    name += "channels.png";  // not "x" + to_string(c): GCC 12 reports a false -Wrestrict there
    const std::string path = (dir / name).string();
    const auto pixels = pattern(static_cast<size_t>(5 * 7 * c));
    write_png(path, pixels.data(), 5, 7, c);
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    const Image img = read_image(path);
    EXPECT_EQ(img.height, 5);
    EXPECT_EQ(img.width, 7);
    EXPECT_EQ(img.channels, c);
    EXPECT_EQ(img.pixels, pixels);
  }
}

TEST(Png, ReadConvertsChannels) {
  const fs::path dir = temp_dir("convert");
  const std::string rgb = (dir / "rgb.png").string();
  const std::vector<uint8_t> px = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30};  // 1x4
  write_png(rgb, px.data(), 1, 4, 3);
  const Image grey = read_image(rgb, 1);
  ASSERT_EQ(grey.channels, 1);
  // ITU-R 601: 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1, 2.99+11.74+3.42 = 18.15
  EXPECT_EQ(grey.pixels, (std::vector<uint8_t>{76, 150, 29, 18}));
  const std::string g = (dir / "grey.png").string();
  write_png(g, grey);
  const Image back = read_image(g, 3);
  EXPECT_EQ(back.pixels, (std::vector<uint8_t>{76, 76, 76, 150, 150, 150, 29, 29, 29, 18, 18, 18}));
}

TEST(Png, ErrorsNameTheFile) {
  const fs::path dir = temp_dir("errors");
  const std::string missing = (dir / "missing.png").string();
  try {
    read_image(missing);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing + ": cannot open"), std::string::npos) << e.what();
  }
  const std::string junk = (dir / "junk.png").string();
  std::ofstream(junk, std::ios::binary) << "\x89PNG\r\n\x1a\n but then nothing sensible";
  try {
    read_image(junk);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(junk + ": cannot decode image"), std::string::npos) << e.what();
  }
  const std::vector<uint8_t> two(8);
  EXPECT_THROW(write_png((dir / "two.png").string(), two.data(), 2, 2, 2), std::invalid_argument);
  EXPECT_THROW(read_image(junk, 4), std::invalid_argument);
  EXPECT_THROW(write_png((dir / "no" / "such" / "dir.png").string(), two.data(), 2, 4, 1), std::runtime_error);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// read(path) must throw a runtime_error naming the file and holding `needle`.
template <typename Read>
void expect_refused_by(Read read, const std::string& path, const std::string& needle) {
  try {
    read(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

void expect_refused(const std::string& path, const std::string& needle) {
  expect_refused_by([](const std::string& p) { return read_image(p); }, path, needle);
}

void expect_refused_text(const std::string& path, const std::string& needle) {
  expect_refused_by([](const std::string& p) { return read_png_text(p); }, path, needle);
}

// The seed corpus of fuzz/fuzz_image (grey, grey+alpha, RGBA, 16-bit, palette, interlaced PNGs;
// baseline JPEGs) decodes, so the guards below refuse nothing real.

TEST(Png, FuzzSeedsDecode) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(DDPM_SOURCE_DIR) / "fuzz/corpus/fuzz_image")) {
    const Image img = read_image(e.path().string());
    EXPECT_GT(img.height * img.width, 0) << e.path();
    ++n;
  }
  EXPECT_GE(n, 10);
}

// Fuzz finding (fuzz_image, docs/RELIABILITY.md): Debian's stb_image 2.27 writes past its Huffman
// tables when a JPEG DHT segment declares more than 256 codes (UBSan: index 257 out of bounds for
// 'stbi_uc[257]'). The fixture is the fuzzer's input; the second file is the smallest such JPEG.
TEST(Png, JpegHuffmanTableOverflowIsRefused) {
  expect_refused(std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/fuzz_image_jpeg_dht_overflow.jpg",
                 "corrupt JPEG: a Huffman table declares");
  const fs::path dir = temp_dir("dht");
  const std::string small = (dir / "dht.jpg").string();
  std::ofstream(small, std::ios::binary) << std::string("\xff\xd8\xff\xc4\x00\x13\x00", 7) + std::string(16, '\xff');
  expect_refused(small, "a Huffman table declares 4080 codes (at most 256)");
  // FF C4 inside an APP2 payload (as in an ICC profile) is data, skipped by stb: still decodes.
  const std::string jpeg = read_bytes(std::string(DDPM_SOURCE_DIR) + "/fuzz/corpus/fuzz_image/rgb_16x16_q95.jpg");
  const std::string payload = std::string("\xff\xc4\x00\x13\x00", 5) + std::string(16, '\xff');
  const std::string app2 = std::string("\xff\xe2\x00", 3) + static_cast<char>(2 + payload.size()) + payload;
  const std::string icc = (dir / "icc.jpg").string();
  std::ofstream(icc, std::ios::binary) << jpeg.substr(0, 2) + app2 + jpeg.substr(2);
  EXPECT_EQ(read_image(icc).width, 16);
}

// Fuzz finding (fuzz_image): a palette PNG whose IDAT chunk is empty made stb call memcpy(dst, NULL,
// 0), which UBSan stops on in the sanitized build; stb then fails without a reason of its own.
TEST(Png, ZeroLengthIdatIsRefusedWithAReason) {
  expect_refused(std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/fuzz_image_png_zero_length_idat.png",
                 "cannot decode image: ");
  try {
    read_image(std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/fuzz_image_png_zero_length_idat.png");
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.back(), ' ') << "the message ends without saying why: " << message;
  }
}

TEST(Png, DecompressionBombsAreRefusedBeforeDecoding) {
  const fs::path dir = temp_dir("bomb");
  // Fuzz finding (fuzz_image, a 25 s input): a 697-byte JPEG claiming 56592x255 pixels; stb decodes
  // its truncated scan as zeros, all 14M pixels. Refused by the pixels-per-byte bound...
  expect_refused(std::string(DDPM_SOURCE_DIR) + "/tests/fixtures/fuzz_image_jpeg_truncated_bomb.jpg",
                 "corrupt JPEG: its header claims 56592x255 pixels, more than 697 bytes of JPEG can hold");
  // ...which real JPEGs pass: the corpus's 16x16 (under the floor) and a 1536x1024 flat grey JPEG
  // of a few KB (well under 2048 pixels per byte).
  EXPECT_EQ(read_image(std::string(DDPM_SOURCE_DIR) + "/fuzz/corpus/fuzz_image/rgb_16x16_q95.jpg").height, 16);
  const std::vector<uint8_t> grey(1536 * 1024, 128);
  std::string flat;
  ASSERT_TRUE(stbi_write_jpg_to_func(
      [](void* context, void* data, int size) { static_cast<std::string*>(context)->append(static_cast<char*>(data), size); },
      &flat, 1536, 1024, 1, grey.data(), 90));
  const std::string flat_path = (dir / "flat.jpg").string();
  std::ofstream(flat_path, std::ios::binary) << flat;
  EXPECT_LT(1536 * 1024 / static_cast<int64_t>(flat.size()), kMaxJpegPixelsPerByte / 8) << flat.size() << " bytes";
  EXPECT_EQ(read_image(flat_path).width, 1536);
  // A 16384 x 16384 RGBA PNG header with no pixel data: 33 bytes that would make stb allocate 1 GiB.
  const std::string ihdr = std::string("IHDR\x00\x00\x40\x00\x00\x00\x40\x00\x08\x06\x00\x00\x00", 17);
  const std::string big = (dir / "big.png").string();
  std::ofstream(big, std::ios::binary) << std::string("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", 12) + ihdr + "\x00\x00\x00\x00";
  expect_refused(big, "image of 16384x16384 pixels is too large (limit 67108864 pixels)");
  // Fuzz finding (fuzz_image): an IDAT chunk that claims 2 GiB made stb grow its buffer to 2 GiB
  // before it found the data missing. Chunks must fit the file...
  const std::string idat = (dir / "idat.png").string();
  const std::string small_ihdr = std::string("IHDR\x00\x00\x00\x08\x00\x00\x00\x08\x08\x00\x00\x00\x00", 17);
  const std::string head = std::string("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", 12) + small_ihdr + std::string(4, '\0');  // + CRC
  std::ofstream(idat, std::ios::binary) << head + std::string("\x7f\xff\xff\xf0IDATxyz", 11);
  expect_refused(idat, "corrupt PNG: chunk 'IDAT' at byte 33 claims 2147483632 bytes, but only 3 follow");
  // ...and the scanlines the header claims must be producible from the compressed data present
  // (deflate expands at most 1032:1): 4096 x 4096 grey pixels from 10 bytes cannot be.
  const std::string ratio = (dir / "ratio.png").string();
  const std::string grey_ihdr = std::string("IHDR\x00\x00\x10\x00\x00\x00\x10\x00\x08\x00\x00\x00\x00", 17);
  std::ofstream(ratio, std::ios::binary) << std::string("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", 12) + grey_ihdr +
                                                std::string(4, '\0') + std::string("\x00\x00\x00\x0aIDAT", 8) +
                                                std::string(14, '\0') + std::string("\x00\x00\x00\x00IEND\0\0\0\0", 12);
  expect_refused(ratio, "claims 16781312 bytes of scanlines, more than the 10 bytes of compressed data can hold");
  // A file over the size limit is refused before it is read (sparse: nothing is written).
  const std::string huge = (dir / "huge.png").string();
  std::ofstream(huge, std::ios::binary) << "x";
  fs::resize_file(huge, kMaxImageFileBytes + 1);
  expect_refused(huge, "image file of 1073741825 bytes is too large (limit 1073741824)");
  fs::remove(huge);
  // Only PNG and JPEG are decoded: a BMP (which stb could read) is not taken.
  const std::string bmp = (dir / "one.bmp").string();
  std::string header = std::string("BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\x18\0", 30);
  header += std::string(24, '\0') + std::string("\x10\x20\x30\0", 4);
  std::ofstream(bmp, std::ios::binary) << header;
  expect_refused(bmp, "cannot decode image (not a PNG or JPEG?)");
}

TEST(Grid, LayoutAndPadding) {
  // Five 2x3 RGB images, 3 per row, 1 pixel of padding with value 7: a 2-row grid of 7x13.
  const int64_t n = 5, h = 2, w = 3, c = 3;
  std::vector<uint8_t> images(static_cast<size_t>(n * h * w * c));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < h * w * c; ++p) images[static_cast<size_t>(i * h * w * c + p)] = static_cast<uint8_t>(100 + i * 10 + p % 3);
  const Image g = make_grid(images.data(), n, h, w, c, 3, 1, 7);
  EXPECT_EQ(g.height, 2 * (h + 1) + 1);
  EXPECT_EQ(g.width, 3 * (w + 1) + 1);
  EXPECT_EQ(g.channels, 3);
  auto at = [&](int64_t y, int64_t x, int64_t k) { return g.pixels[static_cast<size_t>((y * g.width + x) * c + k)]; };
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y0 = 1 + (i / 3) * 3, x0 = 1 + (i % 3) * 4;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < c; ++k) EXPECT_EQ(at(y0 + y, x0 + x, k), 100 + i * 10 + k) << i;
  }
  EXPECT_EQ(at(0, 0, 0), 7);
  EXPECT_EQ(at(3, 5, 1), 7);    // the padding row between the rows
  EXPECT_EQ(at(4, 4, 2), 7);    // the padding column between images 3 and 4
  EXPECT_EQ(at(5, 10, 0), 7);   // the empty sixth cell
  // Fewer images than columns: the grid shrinks to them.
  EXPECT_EQ(make_grid(images.data(), 2, h, w, c, 8, 2).width, 2 * (w + 2) + 2);
  EXPECT_THROW(make_grid(images.data(), 0, h, w, c, 8, 2), std::invalid_argument);
}

TEST(Pixels, ToUint8ClipsAndRoundsLikeDdpm) {
  const float nan = std::nanf("");
  const std::vector<float> x = {-1.0f, 1.0f, 0.0f, -3.0f, 2.5f, nan, -0.5f, 0.5f, 0.999f, -0.999f};
  // 0 -> 127.5 -> 128; -0.5 -> 63.75 -> 64; 0.5 -> 191.25 -> 191; 0.999 -> 254.87 -> 255.
  EXPECT_EQ(to_uint8(x.data(), x.size()), (std::vector<uint8_t>{0, 255, 128, 0, 255, 0, 64, 191, 255, 0}));
}

TEST(Pixels, ToFloatIsTheExactInverse) {
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  const std::vector<float> f = to_float(all.data(), all.size());
  EXPECT_EQ(f[0], -1.0f);
  EXPECT_EQ(f[255], 1.0f);
  EXPECT_NEAR(f[128], 128 / 127.5 - 1, 1e-7);
  EXPECT_EQ(to_uint8(f.data(), f.size()), all);
}

// Text chunks (what made an image): written after IHDR, read back in order, ASCII as tEXt and
// UTF-8 as iTXt; the pixels are untouched; damage is reported naming the file.
TEST(PngText, RoundTripAndPixelsUntouched) {
  const fs::path dir = temp_dir("text");
  const std::vector<uint8_t> pixels = {0, 50, 100, 150, 200, 250};
  const PngText text = {{"Software", "ddpm.cpp 0.1.0"},
                        {"parameters", "16 images from models/fmnist: ddpm, 100 steps (trailing spacing), seed 1"},
                        {"command", "ddpm sample --out 'caf\xc3\xa9 grid.png'"}};
  const std::string with = (dir / "with.png").string(), without = (dir / "without.png").string();
  write_png(with, pixels.data(), 2, 3, 1, text);
  write_png(without, pixels.data(), 2, 3, 1);
  EXPECT_EQ(read_png_text(with), text);
  EXPECT_TRUE(read_png_text(without).empty());
  EXPECT_EQ(read_image(with).pixels, pixels);
  const std::string bytes = read_bytes(with);
  EXPECT_EQ(bytes.substr(37, 4), "tEXt");  // right after the 8-byte signature and the 25-byte IHDR
  EXPECT_NE(bytes.find("iTXtcommand"), std::string::npos);  // the non-ASCII text
}

TEST(PngText, BadKeywordsAndDamagedFilesAreErrors) {
  const fs::path dir = temp_dir("text_bad");
  const std::vector<uint8_t> pixels(4, 7);
  const std::string path = (dir / "t.png").string();
  EXPECT_THROW(write_png(path, pixels.data(), 2, 2, 1, {{"", "x"}}), std::invalid_argument);
  EXPECT_THROW(write_png(path, pixels.data(), 2, 2, 1, {{std::string(80, 'k'), "x"}}), std::invalid_argument);
  EXPECT_THROW(write_png(path, pixels.data(), 2, 2, 1, {{"k", std::string("a\0b", 3)}}), std::invalid_argument);
  EXPECT_FALSE(fs::exists(path)) << "a refused write leaves no file";
  write_png(path, pixels.data(), 2, 2, 1, {{"parameters", "seed 1"}});
  std::string bytes = read_bytes(path);
  const size_t at = bytes.find("seed 1");
  bytes[at] = 'S';  // the CRC no longer matches
  const std::string damaged = (dir / "damaged.png").string();
  std::ofstream(damaged, std::ios::binary) << bytes;
  expect_refused_text(damaged, "CRC does not match");
  std::ofstream(damaged, std::ios::binary) << bytes.substr(0, at);
  expect_refused_text(damaged, "runs past the end of the file");
  std::ofstream(damaged, std::ios::binary) << "not a png at all";
  expect_refused_text(damaged, "not a PNG file");
}

}  // namespace
}  // namespace ddpm
