// libFuzzer target: load_cifar10. The first input byte picks the split: the rest becomes
// test_batch.bin, or each of data_batch_1..5.bin.
#include "ddpm/data/cifar10.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool train = data[0] & 1;
  const std::string& dir = ddpm::fuzz::scratch_dir();
  if (train) {
    for (int i = 1; i <= 5; ++i) ddpm::fuzz::write_input("data_batch_" + std::to_string(i) + ".bin", data + 1, size - 1);
  } else {
    ddpm::fuzz::write_input("test_batch.bin", data + 1, size - 1);
  }
  ddpm::fuzz::expect_clean(dir, [&] {
    const ddpm::Dataset d = ddpm::load_cifar10(dir, train ? ddpm::Split::train : ddpm::Split::test);
    ddpm::fuzz::check(d.images.size() == static_cast<size_t>(d.n * 32 * 32 * 3), "images hold n x 32x32x3 bytes");
    ddpm::fuzz::check(d.labels.size() == static_cast<size_t>(d.n), "one label per image");
    for (const auto l : d.labels) ddpm::fuzz::check(l < 10, "labels are 0..9");
  });
  return 0;
}
