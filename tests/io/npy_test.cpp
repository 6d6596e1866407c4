// NPY: round trip, files written by NumPy, and clear errors for broken files.
#include "ddpm/io/npy.h"

#include <gtest/gtest.h>

#include <cstdlib>
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

}  // namespace
}  // namespace ddpm
