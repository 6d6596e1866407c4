// Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/): small valid files made with
// the project's own writers where it has one, and by hand (zlib, stb_image_write) for the
// variants it does not write (F16/BF16 tensors, other NPY dtypes, 16-bit and palette PNGs, JPEG).
//   build-fuzz/fuzz/fuzz_make_corpus fuzz/corpus
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ddpm/image/png.h"
#include "ddpm/io/model_config.h"
#include "ddpm/io/npy.h"
#include "ddpm/io/safetensors.h"
#include "ddpm/nn/unet_config.h"

// Static: png.cpp, linked in for write_png, has its own (external) copy of stb_image_write.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

namespace fs = std::filesystem;

namespace {

fs::path root;

std::string file(const std::string& target, const std::string& name) {
  fs::create_directories(root / target);
  return (root / target / name).string();
}

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  std::ofstream(file(target, name), std::ios::binary | std::ios::trunc) << bytes;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string safetensors(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

std::string npy(int major, const std::string& dict, const std::string& data) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string s = "\x93NUMPY";
  s += static_cast<char>(major);
  s += '\0';
  const size_t n = header.size();
  s += static_cast<char>(n & 0xff);
  s += static_cast<char>(n >> 8);
  if (major != 1) s += std::string(2, '\0');
  return s + header + data;
}

std::string idx(const std::vector<uint32_t>& dims) {
  std::string s = be32(0x800u | static_cast<uint32_t>(dims.size()));
  size_t n = 1;
  for (uint32_t d : dims) {
    s += be32(d);
    n *= d;
  }
  for (size_t i = 0; i < n; ++i) s += static_cast<char>(i * 7 % 10);
  return s;
}

std::string gzip(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void png_chunk(std::string& out, const std::string& type, const std::string& data) {
  out += be32(static_cast<uint32_t>(data.size()));
  const std::string body = type + data;
  out += body;
  out += be32(static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

// A PNG of `bits` per sample and `samples` per pixel (colour type `type`), every scanline with
// filter byte `filter`, optionally Adam7-interlaced; sample values follow a fixed pattern.
std::string png(int w, int h, int bits, int type, int samples, int filter, bool interlace, const std::string& extra = "") {
  std::string raw;
  auto rows = [&](int pw, int ph) {
    if (pw == 0 || ph == 0) return;
    const size_t row_bytes = (static_cast<size_t>(pw) * samples * bits + 7) / 8;
    for (int y = 0; y < ph; ++y) {
      raw += static_cast<char>(filter);
      for (size_t i = 0; i < row_bytes; ++i) raw += static_cast<char>((y * 31 + i * 17) % 251);
    }
  };
  if (interlace) {
    const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1}, dx[7] = {8, 8, 4, 4, 2, 2, 1},
              dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int p = 0; p < 7; ++p) rows((w - x0[p] + dx[p] - 1) / dx[p], (h - y0[p] + dy[p] - 1) / dy[p]);
  } else {
    rows(w, h);
  }
  std::string z(compressBound(static_cast<uLong>(raw.size())), '\0');
  uLongf zlen = z.size();
  compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
            static_cast<uLong>(raw.size()), 9);
  z.resize(zlen);
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr = be32(static_cast<uint32_t>(w)) + be32(static_cast<uint32_t>(h));
  ihdr += static_cast<char>(bits);
  ihdr += static_cast<char>(type);
  ihdr += std::string(2, '\0');
  ihdr += static_cast<char>(interlace ? 1 : 0);
  png_chunk(out, "IHDR", ihdr);
  out += extra;
  png_chunk(out, "IDAT", z);
  png_chunk(out, "IEND", "");
  return out;
}

void append(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

std::string jpeg(int w, int h, int comp, int quality) {
  std::vector<unsigned char> px(static_cast<size_t>(w * h * comp));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>((i * 13 + i / 7) % 256);
  std::string out;
  stbi_write_jpg_to_func(append, &out, w, h, comp, px.data(), quality);
  return out;
}

std::string cifar_record(int label) {
  std::string r(1, static_cast<char>(label));
  for (int i = 0; i < 3072; ++i) r += static_cast<char>((i * 5 + label) % 256);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  root = argv[1];

  // safetensors: the writer's files, then F16/BF16, a scalar and an empty tensor by hand.
  const std::vector<float> v = {1.0f, -2.0f, 0.5f, 3.0f, 0.0f, -0.25f};
  ddpm::write_safetensors(file("fuzz_safetensors", "writer_two_tensors.safetensors"),
                          {{"conv.weight", {2, 1, 1, 2}, v.data()}, {"conv.bias", {2}, v.data() + 4}},
                          {{"format", "pt"}, {"step", "12"}});
  ddpm::write_safetensors(file("fuzz_safetensors", "writer_empty.safetensors"), {});
  put("fuzz_safetensors", "f16_bf16_scalar_empty.safetensors",
      safetensors(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[4,8]},)"
                  R"("c":{"dtype":"F32","shape":[],"data_offsets":[8,12]},)"
                  R"("d":{"dtype":"F32","shape":[0,3],"data_offsets":[12,12]}})",
                  std::string("\x00\x3c\x01\x80\x80\x3f\xc0\x7f\x00\x00\x80\x3f", 12)));

  // NPY: the writer's float32, then other dtypes and format version 2.0 by hand.
  ddpm::write_npy(file("fuzz_npy", "writer_f4_2x3.npy"), v.data(), {2, 3});
  ddpm::write_npy(file("fuzz_npy", "writer_f4_6.npy"), v.data(), {6});
  put("fuzz_npy", "i8_3.npy", npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
                                 std::string("\x01\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff\x07\0\0\0\0\0\0\0", 24)));
  put("fuzz_npy", "u1_2x2.npy", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", "\x01\x02\x03\xff"));
  put("fuzz_npy", "f8_scalar.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                                      std::string("\0\0\0\0\0\0\xf0\x3f", 8)));
  put("fuzz_npy", "v2_i4_1x2.npy", npy(2, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }",
                                      std::string("\x05\0\0\0\xfb\xff\xff\xff", 8)));

  // IDX: the first byte is fuzz_idx's mode (bits 0-1: 0 as is, 1 gzip it, 2 gzip and cut it short
  // by 1 + bits 4-7 bytes) and dimension count - 1 (bits 2-3).
  auto mode = [](int m, int ndims, int cut = 0) { return std::string(1, static_cast<char>(m | (ndims - 1) << 2 | cut << 4)); };
  put("fuzz_idx", "plain_labels.idx", mode(0, 1) + idx({5}));
  put("fuzz_idx", "plain_images.idx", mode(0, 3) + idx({2, 3, 3}));
  put("fuzz_idx", "gzip_file_images.idx", mode(0, 3) + gzip(idx({2, 4, 4})));
  put("fuzz_idx", "gzip_by_target_labels.idx", mode(1, 1) + idx({7}));
  put("fuzz_idx", "gzip_by_target_4d.idx", mode(1, 4) + idx({1, 2, 2, 3}));
  put("fuzz_idx", "gzip_truncated_images.idx", mode(2, 3, 5) + idx({3, 2, 2}));

  // CIFAR-10: the first byte is fuzz_cifar10's split (0 test, 1 train).
  put("fuzz_cifar10", "test_one_record.bin", std::string(1, '\0') + cifar_record(3));
  put("fuzz_cifar10", "train_two_records.bin", std::string(1, '\1') + cifar_record(0) + cifar_record(9));

  // Images: the writer's grey and RGB PNGs; grey+alpha, RGBA, 16-bit, palette and interlaced
  // PNGs by hand; baseline JPEGs from stb_image_write.
  std::vector<uint8_t> px(5 * 4 * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 11);
  ddpm::write_png(file("fuzz_image", "writer_grey_4x3.png"), px.data(), 4, 3, 1);
  ddpm::write_png(file("fuzz_image", "writer_rgb_5x4.png"), px.data(), 5, 4, 3);
  put("fuzz_image", "grey_alpha_3x2_paeth.png", png(3, 2, 8, 4, 2, 4, false));
  put("fuzz_image", "rgba_3x3_sub.png", png(3, 3, 8, 6, 4, 1, false));
  put("fuzz_image", "rgb16_2x2_avg.png", png(2, 2, 16, 2, 3, 3, false));
  std::string plte, trns;
  png_chunk(plte, "PLTE", std::string("\xff\0\0\0\xff\0\0\0\xff\x80\x80\x80", 12));
  png_chunk(trns, "tRNS", std::string("\xff\x80", 2));
  put("fuzz_image", "palette2_5x3.png", png(5, 3, 2, 3, 1, 0, false, plte + trns));
  put("fuzz_image", "grey1_9x2.png", png(9, 2, 1, 0, 1, 2, false));
  put("fuzz_image", "interlaced_grey_8x8.png", png(8, 8, 8, 0, 1, 0, true));
  put("fuzz_image", "grey_8x8.jpg", jpeg(8, 8, 1, 90));
  put("fuzz_image", "rgb_16x16_q95.jpg", jpeg(16, 16, 3, 95));
  put("fuzz_image", "rgb_17x9_q50.jpg", jpeg(17, 9, 3, 50));

  // Configs: the writers' files for the built-in configurations, and a released diffusers file.
  ddpm::write_unet_config(file("fuzz_model_config", "writer_unet_fmnist_small.json"), ddpm::named_unet_config("fmnist-small"));
  ddpm::write_unet_config(file("fuzz_model_config", "writer_unet_cifar10.json"), ddpm::named_unet_config("cifar10-ddpm"));
  ddpm::write_scheduler_config(file("fuzz_model_config", "writer_scheduler_default.json"), ddpm::SchedulerConfig{});
  ddpm::SchedulerConfig cosine;
  cosine.class_name = "DDIMScheduler";
  cosine.beta_schedule = "squaredcos_cap_v2";
  cosine.variance_type = "learned_range";
  cosine.timestep_spacing = "trailing";
  cosine.steps_offset = 1;
  ddpm::write_scheduler_config(file("fuzz_model_config", "writer_scheduler_ddim_cosine.json"), cosine);
  // google/ddpm-cifar10-32's unet/config.json as released (diffusers 0.x keys, sample_size an int).
  put("fuzz_model_config", "ddpm_cifar10_32_released.json",
      R"({"_class_name": "UNet2DModel", "_diffusers_version": "0.1.1", "act_fn": "silu", "attention_head_dim": null,
 "block_out_channels": [128, 256, 256, 256], "center_input_sample": false,
 "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"], "downsample_padding": 0,
 "flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2, "mid_block_scale_factor": 1,
 "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": [32, 32], "time_embedding_type": "positional",
 "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}
)");
  std::printf("wrote the seed corpus under %s\n", root.c_str());
  return 0;
}
