// CIFAR-10 binary batches: planes to NHWC, both splits, and errors for damaged sets.
#include "ddpm/data/cifar10.h"

#include <gtest/gtest.h>

#include "test_support.h"

#include <filesystem>
#include <fstream>

namespace ddpm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_cifar10_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Record r of file f: label (f + r) % 10; channel c of pixel p holds (p + 50 c + f + r) % 256.
std::string batch(int f, int records) {
  std::string s;
  for (int r = 0; r < records; ++r) {
    s += char((f + r) % 10);
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) s += char((p + 50 * c + f + r) % 256);
  }
  return s;
}

void write(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

void write_set(const fs::path& dir) {
  for (int f = 1; f <= 5; ++f) write(dir / ("data_batch_" + std::to_string(f) + ".bin"), batch(f, 2));
  write(dir / "test_batch.bin", batch(0, 3));
}


TEST(Cifar10, PlanesBecomeNhwc) {
  const fs::path dir = temp_dir("ok");
  write_set(dir);
  const Dataset train = load_cifar10(dir.string(), Split::train);
  EXPECT_EQ(train.n, 10);
  EXPECT_EQ(train.height, 32);
  EXPECT_EQ(train.width, 32);
  EXPECT_EQ(train.channels, 3);
  EXPECT_EQ(train.num_classes, 10);
  ASSERT_EQ(train.images.size(), size_t{10} * 3072);
  for (int f = 1; f <= 5; ++f)
    for (int r = 0; r < 2; ++r) {
      const int64_t i = (f - 1) * 2 + r;
      EXPECT_EQ(train.labels[static_cast<size_t>(i)], (f + r) % 10);
      for (int p : {0, 33, 1023})
        for (int c = 0; c < 3; ++c)
          EXPECT_EQ(train.image(i)[p * 3 + c], (p + 50 * c + f + r) % 256) << "image " << i << " pixel " << p;
    }
  const Dataset test = load_cifar10(dir.string(), Split::test);
  EXPECT_EQ(test.n, 3);
  EXPECT_EQ(test.labels, (std::vector<int32_t>{0, 1, 2}));
}

TEST(Cifar10, BrokenSetsGiveClearErrors) {
  const fs::path dir = temp_dir("broken");
  write_set(dir);
  fs::remove(dir / "data_batch_4.bin");
  test::expect_error([&] { load_cifar10(dir.string(), Split::train); }, (dir / "data_batch_4.bin").string(),
               "CIFAR-10 file not found");
  test::expect_error([&] { load_cifar10((dir / "nowhere").string(), Split::test); },
               (dir / "nowhere" / "test_batch.bin").string(), "cifar-10-batches-bin");
  write(dir / "data_batch_4.bin", batch(4, 2) + "x");
  test::expect_error([&] { load_cifar10(dir.string(), Split::train); }, (dir / "data_batch_4.bin").string(),
               "size 6147 bytes is not a non-zero multiple of the 3073-byte record");
  write(dir / "test_batch.bin", "");
  test::expect_error([&] { load_cifar10(dir.string(), Split::test); }, (dir / "test_batch.bin").string(),
               "size 0 bytes");
  std::string bad = batch(0, 3);
  bad[3073] = 10;  // record 1
  write(dir / "test_batch.bin", bad);
  test::expect_error([&] { load_cifar10(dir.string(), Split::test); }, (dir / "test_batch.bin").string(),
               "record 1 has label 10");
}

}  // namespace
}  // namespace ddpm
