// libFuzzer target: the same bytes as a U-Net config.json and as a scheduler_config.json.
#include "ddpm/io/model_config.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = ddpm::fuzz::write_input("config.json", data, size);
  ddpm::fuzz::expect_clean(path, [&] {
    const ddpm::UNet2DConfig c = ddpm::read_unet_config(path);
    c.validate();  // read_unet_config promises a validated config
    ddpm::fuzz::check(c.time_embedding_dim() > 0, "a positive time embedding width");
  });
  ddpm::fuzz::expect_clean(path, [&] {
    const ddpm::SchedulerConfig s = ddpm::read_scheduler_config(path);
    s.validate();
  });
  return 0;
}
