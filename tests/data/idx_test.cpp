// IDX reader and Fashion-MNIST: the real data set, and a clear error for every kind of broken file.
#include "ddpm/data/idx.h"

#include <gtest/gtest.h>

#include "test_support.h"
#include <zlib.h>

#include <array>
#include <filesystem>
#include <fstream>

namespace ddpm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_idx_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

std::string idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, size_t data_bytes, uint8_t fill = 3) {
  std::string s = be32(magic);
  for (uint32_t d : dims) s += be32(d);
  return s + std::string(data_bytes, char(fill));
}

void write_gz(const fs::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

void write_plain(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(FashionMnist, TrainSplitIsTheRealDataSet) {
  const Dataset d = load_fashion_mnist(kFashionMnistDir, Split::train);
  EXPECT_EQ(d.n, 60000);
  EXPECT_EQ(d.height, 28);
  EXPECT_EQ(d.width, 28);
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.num_classes, 10);
  ASSERT_EQ(d.images.size(), size_t{60000} * 784);
  ASSERT_EQ(d.labels.size(), size_t{60000});
  std::array<int, 10> histogram{};
  for (int32_t l : d.labels) {
    ASSERT_TRUE(l >= 0 && l < 10) << l;
    ++histogram[static_cast<size_t>(l)];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(histogram[static_cast<size_t>(c)], 6000) << "class " << c;
  // Checked with Python's gzip module: the first training image is an ankle boot (9) whose
  // pixels sum to 76247, and its row 14 starts 00 00 01 04 06 07 02.
  EXPECT_EQ(d.labels[0], 9);
  int64_t sum = 0;
  for (int i = 0; i < 784; ++i) sum += d.images[static_cast<size_t>(i)];
  EXPECT_EQ(sum, 76247);
  EXPECT_EQ(d.images[14 * 28 + 3], 4);
  EXPECT_EQ(d.images[14 * 28 + 5], 7);
}

TEST(FashionMnist, TestSplitHas10000) {
  const Dataset d = load_fashion_mnist(kFashionMnistDir, Split::test);
  EXPECT_EQ(d.n, 10000);
  EXPECT_EQ(d.labels.size(), size_t{10000});
  EXPECT_EQ(d.labels[0], 9);  // also from Python: the test labels start 9 2 1 1 6
  EXPECT_EQ(d.labels[1], 2);
  EXPECT_EQ(d.labels[4], 6);
}

TEST(FashionMnist, MissingFilesNameThePackage) {
  const fs::path dir = temp_dir("missing");
  test::expect_error([&] { load_fashion_mnist(dir.string(), Split::train); },
               (dir / "train-images-idx3-ubyte.gz").string(), "apt-get install dataset-fashion-mnist");
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes(0x801, {2}, 2, 1));
  test::expect_error([&] { load_fashion_mnist(dir.string(), Split::test); },
               (dir / "t10k-images-idx3-ubyte.gz").string(), "scripts/setup");
}

TEST(FashionMnist, ImageAndLabelCountsMustAgree) {
  const fs::path dir = temp_dir("counts");
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes(0x801, {3}, 3, 1));
  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx_bytes(0x803, {2, 4, 5}, 40));
  test::expect_error([&] { load_fashion_mnist(dir.string(), Split::test); },
               (dir / "t10k-images-idx3-ubyte.gz").string(), "holds 2 images, but");
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes(0x801, {2}, 2, 10));
  test::expect_error([&] { load_fashion_mnist(dir.string(), Split::test); },
               (dir / "t10k-labels-idx1-ubyte.gz").string(), "label 10 at index 0 is out of range");
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes(0x801, {2}, 2, 7));
  const Dataset d = load_fashion_mnist(dir.string(), Split::test);  // a small valid pair loads
  EXPECT_EQ(d.n, 2);
  EXPECT_EQ(d.height, 4);
  EXPECT_EQ(d.width, 5);
  EXPECT_EQ(d.labels, (std::vector<int32_t>{7, 7}));
}

TEST(Idx, ReadsGzipAndPlainFiles) {
  const fs::path dir = temp_dir("ok");
  std::string bytes = idx_bytes(0x803, {2, 3, 4}, 0);
  for (int i = 0; i < 24; ++i) bytes += char(i * 10);
  write_gz(dir / "a.gz", bytes);
  write_plain(dir / "a", bytes);
  for (const char* name : {"a.gz", "a"}) {
    const IdxArray a = read_idx((dir / name).string(), 3);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3, 4})) << name;
    ASSERT_EQ(a.data.size(), size_t{24}) << name;
    EXPECT_EQ(a.data[23], 230) << name;
  }
}

TEST(Idx, BrokenFilesGiveClearErrors) {
  const fs::path dir = temp_dir("broken");
  const std::string p = (dir / "x.gz").string();
  auto check = [&](const std::string& bytes, int ndims, const std::string& needle, bool gz = true) {
    if (gz) write_gz(p, bytes);
    else write_plain(p, bytes);
    test::expect_error([&] { read_idx(p, ndims); }, p, needle);
  };
  test::expect_error([&] { read_idx((dir / "none.gz").string(), 1); }, (dir / "none.gz").string(), "no such file");
  // Labels where images are expected, and the other way round.
  check(idx_bytes(0x801, {4}, 4), 3, "bad magic 0x00000801, expected 0x00000803");
  check(idx_bytes(0x801, {4}, 4), 3, "(labels?)");
  check(idx_bytes(0x803, {1, 2, 2}, 4), 1, "(images?)");
  check(idx_bytes(0x0d03, {1, 2, 2}, 4), 3, "is not unsigned byte");
  check("\x89PNG\r\n\x1a\n....", 3, "bad magic 0x89504e47");
  check("ab", 1, "too short for the magic");
  check(be32(0x803) + be32(5), 3, "truncated header (dimension 1)");
  check(idx_bytes(0x803, {0, 28, 28}, 0), 3, "dimension 0 is 0");
  // Dimensions that claim more than the file can hold fail before allocating them...
  check(idx_bytes(0x803, {60000, 28, 28}, 10), 3, "need 47040000 data bytes, the file can hold at most");
  check(idx_bytes(0x803, {60000, 28, 28}, 10), 3, "need 47040000 data bytes, the file holds 10", false);
  check(idx_bytes(0x803, {65535, 65535, 65535}, 10), 3, "claim more than");
  // ...and within that bound, the bytes actually decompressed are counted.
  check(idx_bytes(0x803, {10, 10, 10}, 999), 3, "need 1000 data bytes, the file holds 999");
  check(idx_bytes(0x801, {10}, 11), 1, "trailing data after the 10 bytes");
  // A claim within deflate's 1032x bound that the stream does not fill: memory grows with the data
  // that arrives (1 MiB, then doubling), so this costs about 1 MiB, not the 100 MB claimed.
  std::string noise = idx_bytes(0x803, {100, 1000, 1000}, 0);
  for (uint32_t i = 0, x = 1; i < 100000; ++i) noise += char((x = x * 1664525u + 1013904223u) >> 24);
  check(noise, 3, "need 100000000 data bytes, the file holds 100000");

  // A gzip stream cut in half.
  std::string big = idx_bytes(0x803, {100, 28, 28}, 0);
  for (int i = 0; i < 78400; ++i) big += char((i * 7919) % 251);
  write_gz(p, big);
  const auto size = fs::file_size(p);
  fs::resize_file(p, size / 2);
  test::expect_error([&] { read_idx(p, 3); }, p, "truncated gzip stream");
  // A damaged one (bytes flipped in the middle of the deflate data).
  write_gz(p, big);
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    const std::string junk(64, '\xff');
    f.write(junk.data(), 64);
  }
  try {
    read_idx(p, 3);
    ADD_FAILURE() << "no error for a damaged gzip stream";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddpm
