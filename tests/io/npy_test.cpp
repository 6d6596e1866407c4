// NPY: round trip, files written by NumPy, and clear errors for broken files.
#include "ddpm/io/npy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "test_support.h"

namespace ddpm {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("ddpm_npy_" + name)).string();
}

TEST(Npy, RoundTripKeepsShapeAndValues) {
  const auto values = test::random_normal(2 * 3 * 5, 7);
  const std::string path = temp_path("roundtrip.npy");
  write_npy(path, values.data(), {2, 3, 5});
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3, 5}));
  EXPECT_EQ(a.dtype, "<f4");
  EXPECT_EQ(a.to_f32(), values);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Npy, ReadsWhatNumPyWrites) {
  const std::string path = temp_path("numpy.npy");
  const std::string cmd = "/usr/bin/python3 -c \"import numpy as np; np.save('" + path +
                          "', np.arange(12, dtype=np.int64).reshape(3, 4))\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "needs /usr/bin/python3 with numpy";
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(a.to_i64()[11], 11);
  EXPECT_FLOAT_EQ(a.to_f32()[5], 5.0f);
}

void expect_error(const std::string& bytes, const std::string& needle) {
  const std::string path = temp_path("broken.npy");
  std::ofstream(path, std::ios::binary) << bytes;
  try {
    read_npy(path);
    ADD_FAILURE() << "no error for a file that should fail with '" << needle << "'";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

std::string header(const std::string& dict) {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  return std::string("\x93NUMPY\x01\x00", 8) + char(h.size() & 0xff) + char(h.size() >> 8) + h;
}

TEST(Npy, BrokenFilesGiveClearErrors) {
  expect_error("hello", "bad magic");
  expect_error(header("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }"), "unsupported dtype");
  expect_error(header("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"), "Fortran");
  expect_error(header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000,), }") + "abcd", "needs 4000000");
  expect_error(header("{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }"), "bad shape");
  expect_error(std::string("\x93NUMPY\x01\x00\xff\xff", 10), "header length");
}

// Fuzz finding (fuzz_npy, docs/RELIABILITY.md): to_i64 cast NaN to int64, which is undefined
// behaviour (UBSan: "-nan is outside the range of representable values of type 'long'").
// Non-integral, infinite and out-of-range values now throw naming the file and the element.
TEST(Npy, ToI64RefusesValuesThatAreNotInt64) {
  const std::string path = temp_path("float_timesteps.npy");
  auto f4 = [&](float v) {
    std::string data(4, '\0');
    std::memcpy(data.data(), &v, 4);
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        << header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }") + std::string("\0\0\x80\x3f", 4) + data;
  };
  auto f8 = [&](double v) {
    std::string data(8, '\0');
    std::memcpy(data.data(), &v, 8);
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        << header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }") + data;
  };
  f4(std::nanf(""));
  test::expect_error([&] { read_npy(path).to_i64(); }, path, "element 1 (nan) is not an integer in the int64 range");
  EXPECT_EQ(read_npy(path).to_f32().size(), 2u);  // NaN is a fine float
  f4(INFINITY);
  test::expect_error([&] { read_npy(path).to_i64(); }, path, "element 1 (inf)");
  f4(2.5f);
  test::expect_error([&] { read_npy(path).to_i64(); }, path, "element 1 (2.5)");
  f8(9223372036854775808.0);
  test::expect_error([&] { read_npy(path).to_i64(); }, path, "element 0 (9.2233720368547758e+18)");
  f8(-9223372036854775808.0);
  EXPECT_EQ(read_npy(path).to_i64(), (std::vector<int64_t>{INT64_MIN}));
  f4(999.0f);
  EXPECT_EQ(read_npy(path).to_i64(), (std::vector<int64_t>{1, 999}));
}

}  // namespace
}  // namespace ddpm
