// libFuzzer target: read_image (PNG/JPEG through stb_image) and read_png_text. The input's length
// picks the channel conversion (keep, to grey, to RGB), so every input is tried with one of them.
#include "ddpm/image/png.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = ddpm::fuzz::write_input("image.png", data, size);
  const int64_t channels = size % 3 == 0 ? 0 : size % 3 == 1 ? 1 : 3;
  ddpm::fuzz::expect_clean(path, [&] {
    const ddpm::Image img = ddpm::read_image(path, channels);
    ddpm::fuzz::check(img.height > 0 && img.width > 0, "a decoded image has pixels");
    ddpm::fuzz::check(channels == 0 ? img.channels == 1 || img.channels == 3 : img.channels == channels,
                      "the channels asked for");
    ddpm::fuzz::check(img.pixels.size() == static_cast<size_t>(img.height * img.width * img.channels),
                      "pixels hold height x width x channels bytes");
  });
  ddpm::fuzz::expect_clean(path, [&] {
    for (const auto& [keyword, text] : ddpm::read_png_text(path))
      ddpm::fuzz::check(!keyword.empty() && keyword.find('\0') == std::string::npos, "a keyword without NUL");
  });
  return 0;
}
