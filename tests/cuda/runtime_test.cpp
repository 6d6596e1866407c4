// The CUDA runtime: device query, memory round trip, and clear errors where no device answers.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda_test_support.h"
#include "ddpm/kernels/cuda/runtime.h"

namespace ddpm {
namespace {

TEST(CudaRuntime, DeviceInfoDescribesTheDeviceOrWhyNot) {
  EXPECT_TRUE(cuda::built());
  const cuda::DeviceInfo info = cuda::device_info();
  EXPECT_FALSE(info.description.empty());
  if (info.usable) {
    EXPECT_GE(info.major, 7) << info.description;
    EXPECT_GT(info.memory_bytes, size_t{1} << 30) << info.description;
  }
}

TEST(CudaRuntime, WithoutADeviceMemoryThrowsNamingTheReason) {
  if (cuda::device_info().usable) GTEST_SKIP() << "a device answers: nothing to refuse";
  try {
    cuda::DeviceBuffer b(1024);
    FAIL() << "allocated device memory without a device";
  } catch (const cuda::Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a CUDA device"), std::string::npos) << e.what();
  }
}

TEST(CudaRuntime, UploadDownloadRoundTrip) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const std::vector<float> host = test::random_normal(100003, 1);
  test::DeviceArray d(host);
  EXPECT_EQ(d.host(), host);
  cuda::DeviceBuffer z(4096);
  z.zero();
  std::vector<float> back(1024, 1.0f);
  cuda::download(back.data(), z.data(), 4096);
  for (float v : back) ASSERT_EQ(v, 0.0f);
}

TEST(CudaRuntime, HugeAllocationFailsWithSizeAndFreeMemory) {
  DDPM_REQUIRE_CUDA_DEVICE();
  try {
    cuda::DeviceBuffer b(size_t{1} << 50);  // 1 PiB
    FAIL() << "a 1 PiB allocation succeeded";
  } catch (const cuda::Error& e) {
    EXPECT_NE(std::string(e.what()).find("MiB free"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddpm
