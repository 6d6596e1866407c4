// libFuzzer target: read_npy on arbitrary bytes, then the conversions a caller makes.
#include "ddpm/io/npy.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = ddpm::fuzz::write_input("array.npy", data, size);
  ddpm::fuzz::expect_clean(path, [&] {
    const ddpm::NpyArray a = ddpm::read_npy(path);
    ddpm::fuzz::check(a.data.size() <= size, "the data is no larger than the file");
    const size_t n = static_cast<size_t>(a.numel());
    ddpm::fuzz::check(n == 0 || a.data.size() % n == 0, "the data is numel() elements");
    ddpm::fuzz::check(a.to_f32().size() == n, "to_f32 returns numel() values");
    ddpm::fuzz::check(a.to_i64().size() == n, "to_i64 returns numel() values");
  });
  return 0;
}
