// libFuzzer target: SafetensorsFile::open on arbitrary bytes, then every tensor read as float32.
#include "ddpm/io/safetensors.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = ddpm::fuzz::write_input("model.safetensors", data, size);
  ddpm::fuzz::expect_clean(path, [&] {
    ddpm::SafetensorsFile f = ddpm::SafetensorsFile::open(path);
    uint64_t covered = 0;
    for (const ddpm::SafeTensor& t : f.tensors()) {
      ddpm::fuzz::check(t.data_begin == covered, "tensors cover the data section in order");
      covered = t.data_end;
      const std::vector<float> v = f.read_f32(t.name);
      ddpm::fuzz::check(v.size() == static_cast<size_t>(t.numel()), "read_f32 returns numel() values");
    }
    ddpm::fuzz::check(covered <= size, "tensors lie inside the file");
  });
  return 0;
}
