// config.json / scheduler_config.json: diffusers' files parse to the configs we mean, round trips,
// diffusers defaults for absent keys, and errors naming the key and file.
#include "ddpm/io/model_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace ddpm {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_cfg_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

std::string write_text(const std::string& name, const std::string& text) {
  const std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

void expect_same(const UNet2DConfig& a, const UNet2DConfig& b) {
  EXPECT_EQ(a.sample_height, b.sample_height);
  EXPECT_EQ(a.sample_width, b.sample_width);
  EXPECT_EQ(a.in_channels, b.in_channels);
  EXPECT_EQ(a.out_channels, b.out_channels);
  EXPECT_EQ(a.block_out_channels, b.block_out_channels);
  EXPECT_EQ(a.layers_per_block, b.layers_per_block);
  EXPECT_EQ(a.down_block_types, b.down_block_types);
  EXPECT_EQ(a.up_block_types, b.up_block_types);
  EXPECT_EQ(a.mid_block_type, b.mid_block_type);
  EXPECT_EQ(a.norm_num_groups, b.norm_num_groups);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.act_fn, b.act_fn);
  EXPECT_EQ(a.flip_sin_to_cos, b.flip_sin_to_cos);
  EXPECT_EQ(a.freq_shift, b.freq_shift);
  EXPECT_EQ(a.downsample_padding, b.downsample_padding);
  EXPECT_EQ(a.dropout, b.dropout);
  EXPECT_EQ(a.attention_head_dim, b.attention_head_dim);
  EXPECT_EQ(a.time_embedding_type, b.time_embedding_type);
  EXPECT_EQ(a.mid_block_scale_factor, b.mid_block_scale_factor);
  EXPECT_EQ(a.center_input_sample, b.center_input_sample);
  EXPECT_EQ(a.resnet_time_scale_shift, b.resnet_time_scale_shift);
  EXPECT_EQ(a.add_attention, b.add_attention);
  EXPECT_EQ(a.num_class_embeds, b.num_class_embeds);
}

// google/ddpm-cifar10-32's unet/config.json as re-saved by newer diffusers (facts §5.1).
const char* kCifar10Config = R"({
  "_class_name": "UNet2DModel",
  "_diffusers_version": "0.0.4",
  "act_fn": "silu",
  "add_attention": true,
  "attention_head_dim": null,
  "block_out_channels": [128, 256, 256, 256],
  "center_input_sample": false,
  "class_embed_type": null,
  "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
  "downsample_padding": 0,
  "dropout": 0.0,
  "flip_sin_to_cos": false,
  "freq_shift": 1,
  "in_channels": 3,
  "layers_per_block": 2,
  "mid_block_scale_factor": 1,
  "norm_eps": 1e-06,
  "norm_num_groups": 32,
  "num_class_embeds": null,
  "out_channels": 3,
  "resnet_time_scale_shift": "default",
  "sample_size": 32,
  "time_embedding_type": "positional",
  "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
}
)";

TEST(ModelConfig, GoogleCifar10ConfigIsOurCifar10Config) {
  const UNet2DConfig c = read_unet_config(write_text("cifar10.json", kCifar10Config));
  UNet2DConfig expected = named_unet_config("cifar10-ddpm");
  EXPECT_EQ(c.dropout, 0.0f);
  expected.dropout = 0.0f;  // the released file says 0.0; the paper trained with 0.1
  expect_same(c, expected);
}

TEST(ModelConfig, UNetRoundTripWritesEveryDiffusersKey) {
  UNet2DConfig c = named_unet_config("fmnist-small");
  const std::string square = temp_path("square.json");
  write_unet_config(square, c);
  expect_same(read_unet_config(square), c);
  EXPECT_FALSE(fs::exists(square + ".tmp"));

  std::ifstream in(square);
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["_class_name"], "UNet2DModel");
  EXPECT_TRUE(j["_diffusers_version"].is_string());
  EXPECT_EQ(j["sample_size"], 28);
  EXPECT_EQ(j["norm_eps"].dump(), "1e-06");  // not 9.999999974752427e-07
  EXPECT_EQ(j["dropout"].dump(), "0.1");
  EXPECT_EQ(j["freq_shift"], 1);
  for (const char* key : {"act_fn", "add_attention", "attention_head_dim", "attn_norm_num_groups", "block_out_channels",
                          "center_input_sample", "class_embed_type", "down_block_types", "downsample_padding",
                          "downsample_type", "dropout", "flip_sin_to_cos", "freq_shift", "in_channels",
                          "layers_per_block", "mid_block_scale_factor", "norm_eps", "norm_num_groups",
                          "num_class_embeds", "out_channels", "resnet_time_scale_shift", "sample_size",
                          "time_embedding_dim", "time_embedding_type", "up_block_types", "upsample_type"})
    EXPECT_TRUE(j.contains(key)) << key;

  c.sample_height = 28;
  c.sample_width = 36;
  c.attention_head_dim = 64;
  c.flip_sin_to_cos = true;
  c.freq_shift = 0.5f;
  const std::string wide = temp_path("wide.json");
  write_unet_config(wide, c);
  expect_same(read_unet_config(wide), c);
  std::ifstream in2(wide);
  EXPECT_EQ(nlohmann::json::parse(in2)["sample_size"], nlohmann::json({28, 36}));
}

TEST(ModelConfig, AbsentKeysTakeDiffusersDefaults) {
  const UNet2DConfig c = read_unet_config(write_text("minimal.json", R"({
    "sample_size": 16, "block_out_channels": [32, 64],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": null, "some_future_key": {"x": 1}})"));
  EXPECT_EQ(c.sample_height, 16);
  EXPECT_TRUE(c.flip_sin_to_cos);
  EXPECT_EQ(c.freq_shift, 0.0f);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.downsample_padding, 1);
  EXPECT_EQ(c.layers_per_block, 2);
  EXPECT_EQ(c.in_channels, 3);
}

void expect_error(const std::string& json_text, const std::string& needle, bool scheduler = false) {
  const std::string path = write_text("bad.json", json_text);
  try {
    if (scheduler) {
      read_scheduler_config(path);
    } else {
      read_unet_config(path);
    }
    ADD_FAILURE() << "no error for " << json_text;
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << "expected '" << needle << "' in: " << what;
  }
}

// kCifar10Config with one key replaced.
std::string cifar_with(const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(kCifar10Config);
  j[key] = nlohmann::json::parse(value);
  return j.dump();
}

TEST(ModelConfig, WrongTypesAndUnsupportedValuesNameTheKey) {
  expect_error("{", "not valid JSON");
  expect_error("[1]", "JSON object");
  expect_error(cifar_with("norm_eps", R"("small")"), "\"norm_eps\" must be a number");
  expect_error(cifar_with("block_out_channels", R"([128, "a"])"), "\"block_out_channels\" must be a list of integers");
  expect_error(cifar_with("sample_size", R"("32")"), "\"sample_size\" must be an integer or [height, width]");
  expect_error(cifar_with("sample_size", "[32, 32, 3]"), "\"sample_size\"");
  expect_error(cifar_with("flip_sin_to_cos", "1"), "\"flip_sin_to_cos\" must be true or false");
  expect_error(cifar_with("layers_per_block", "2.5"), "\"layers_per_block\" must be an integer");
  expect_error(cifar_with("down_block_types", "[1, 2, 3, 4]"), "\"down_block_types\" must be a list of strings");
  expect_error(cifar_with("_class_name", R"("UNet2DConditionModel")"), "\"_class_name\"");
  expect_error(cifar_with("class_embed_type", R"("timestep")"), "\"class_embed_type\"");
  expect_error(cifar_with("time_embedding_dim", "256"), "\"time_embedding_dim\" is 256");
  expect_error(cifar_with("upsample_type", R"("resnet")"), "\"upsample_type\"");
  expect_error(cifar_with("act_fn", R"("gelu")"), "act_fn");                   // from validate()
  expect_error(cifar_with("attention_head_dim", "8"), "attention_head_dim");  // multi-head: unsupported
  nlohmann::json no_size = nlohmann::json::parse(kCifar10Config);
  no_size.erase("sample_size");
  expect_error(no_size.dump(), "\"sample_size\" is missing");
}

// google/ddpm-cifar10-32's scheduler_config.json (facts §5.2).
const char* kCifar10Scheduler = R"({
  "_class_name": "DDPMScheduler",
  "_diffusers_version": "0.1.0",
  "beta_end": 0.02,
  "beta_schedule": "linear",
  "beta_start": 0.0001,
  "clip_sample": true,
  "num_train_timesteps": 1000,
  "trained_betas": null,
  "variance_type": "fixed_large"
})";

TEST(SchedulerConfig, GoogleCifar10FileAndDefaults) {
  const SchedulerConfig s = read_scheduler_config(write_text("sched.json", kCifar10Scheduler));
  EXPECT_EQ(s.class_name, "DDPMScheduler");
  EXPECT_EQ(s.num_train_timesteps, 1000);
  EXPECT_EQ(s.beta_schedule, "linear");
  EXPECT_EQ(s.beta_start, 1e-4);
  EXPECT_EQ(s.beta_end, 0.02);
  EXPECT_EQ(s.variance_type, "fixed_large");
  EXPECT_TRUE(s.clip_sample);
  EXPECT_EQ(s.clip_sample_range, 1.0);
  EXPECT_EQ(s.prediction_type, "epsilon");
  EXPECT_EQ(s.timestep_spacing, "leading");
  EXPECT_EQ(s.steps_offset, 0);

  // A DDIMScheduler file (no variance_type key) is accepted; absent variance_type is diffusers'
  // DDPMScheduler default, fixed_small.
  const SchedulerConfig d = read_scheduler_config(write_text("ddim.json", R"({
    "_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "set_alpha_to_one": false,
    "timestep_spacing": "trailing", "steps_offset": 1, "clip_sample": false})"));
  EXPECT_EQ(d.class_name, "DDIMScheduler");
  EXPECT_EQ(d.variance_type, "fixed_small");
  EXPECT_EQ(d.beta_schedule, "squaredcos_cap_v2");
  EXPECT_FALSE(d.set_alpha_to_one);
  EXPECT_FALSE(d.clip_sample);
  EXPECT_EQ(d.timestep_spacing, "trailing");
  EXPECT_EQ(d.steps_offset, 1);
}

TEST(SchedulerConfig, RoundTrip) {
  SchedulerConfig s;
  s.beta_schedule = "squaredcos_cap_v2";
  s.variance_type = "fixed_small";
  s.clip_sample_range = 2.5;
  s.timestep_spacing = "linspace";
  s.steps_offset = 1;
  s.set_alpha_to_one = false;
  s.beta_start = 0.00085;
  const std::string path = temp_path("sched_rt.json");
  write_scheduler_config(path, s);
  const SchedulerConfig r = read_scheduler_config(path);
  EXPECT_EQ(r.num_train_timesteps, s.num_train_timesteps);
  EXPECT_EQ(r.beta_schedule, s.beta_schedule);
  EXPECT_EQ(r.beta_start, s.beta_start);
  EXPECT_EQ(r.beta_end, s.beta_end);
  EXPECT_EQ(r.variance_type, s.variance_type);
  EXPECT_EQ(r.clip_sample, s.clip_sample);
  EXPECT_EQ(r.clip_sample_range, s.clip_sample_range);
  EXPECT_EQ(r.prediction_type, s.prediction_type);
  EXPECT_EQ(r.class_name, s.class_name);
  EXPECT_EQ(r.timestep_spacing, s.timestep_spacing);
  EXPECT_EQ(r.steps_offset, s.steps_offset);
  EXPECT_EQ(r.set_alpha_to_one, s.set_alpha_to_one);
  std::ifstream in(path);
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_TRUE(j["trained_betas"].is_null());
  EXPECT_EQ(j["_class_name"], "DDPMScheduler");
}

std::string sched_with(const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(kCifar10Scheduler);
  j[key] = nlohmann::json::parse(value);
  return j.dump();
}

TEST(SchedulerConfig, RejectsWhatWeCannotReproduce) {
  expect_error(sched_with("beta_schedule", R"("scaled_linear")"), "\"beta_schedule\" is \"scaled_linear\"", true);
  expect_error(sched_with("variance_type", R"("learned")"), "\"variance_type\" is \"learned\"", true);
  expect_error(sched_with("prediction_type", R"("v_prediction")"), "\"prediction_type\" is \"v_prediction\"", true);
  expect_error(sched_with("trained_betas", "[0.1, 0.2]"), "\"trained_betas\"", true);
  expect_error(sched_with("_class_name", R"("PNDMScheduler")"), "\"_class_name\" is \"PNDMScheduler\"", true);
  expect_error(sched_with("thresholding", "true"), "\"thresholding\"", true);
  expect_error(sched_with("timestep_spacing", R"("random")"), "\"timestep_spacing\"", true);
  expect_error(sched_with("num_train_timesteps", R"("1000")"), "\"num_train_timesteps\" must be an integer", true);
  expect_error(sched_with("clip_sample", R"("yes")"), "\"clip_sample\" must be true or false", true);
  expect_error(sched_with("beta_end", "2.0"), "beta_start/beta_end", true);
}

// Fuzz finding (fuzz_model_config, docs/RELIABILITY.md): nlohmann throws out_of_range, not
// parse_error, for a number beyond double's range; it escaped without the file's name.
TEST(ModelConfig, FuzzNumberOverflowNamesTheFile) {
  expect_error("1e999", "not valid JSON");
  expect_error(R"({"sample_size": 32, "norm_eps": 1e999})", "number overflow");
  expect_error(R"({"num_train_timesteps": -1e999})", "not valid JSON", true);
}

// Sizes are bounded before anything is computed from them (4 * block_out_channels[0] overflowed
// int64 for 2^62) or a U-Net is built from them.
TEST(ModelConfig, HugeAndNegativeSizesNameTheKey) {
  expect_error(cifar_with("block_out_channels", "[4611686018427387904, 256, 256, 256]"),
               "\"block_out_channels\" is 4611686018427387904; must be in 1..65536");
  nlohmann::json j = nlohmann::json::parse(cifar_with("block_out_channels", "[4611686018427387904, 256, 256, 256]"));
  j["time_embedding_dim"] = 512;
  expect_error(j.dump(), "\"block_out_channels\" is 4611686018427387904");
  expect_error(cifar_with("block_out_channels", "[-128, 256, 256, 256]"), "\"block_out_channels\" is -128");
  expect_error(cifar_with("block_out_channels", "[32768, 32768, 32768, 32768]"),
               "\"block_out_channels\" and layers_per_block ask for a U-Net of about");
  expect_error(cifar_with("block_out_channels", "[]"), "\"block_out_channels\" has 0 entries");
  expect_error(cifar_with("layers_per_block", "1000000"), "\"layers_per_block\" is 1000000; must be in 1..64");
  expect_error(cifar_with("in_channels", "-3"), "\"in_channels\" is -3");
  expect_error(cifar_with("out_channels", "100000"), "\"out_channels\" is 100000");
  expect_error(cifar_with("sample_size", "9223372036854775807"), "\"sample_size\" is 9223372036854775807");
  expect_error(cifar_with("sample_size", "[65536, 65536]"), "\"sample_size\" is 65536x65536, more than");
  expect_error(cifar_with("sample_size", "18446744073709551615"), "\"sample_size\" is too large");
  expect_error(cifar_with("norm_num_groups", "0"), "\"norm_num_groups\" is 0");
  expect_error(cifar_with("norm_eps", "1e300"), "\"norm_eps\" is 1000000");
  expect_error(sched_with("num_train_timesteps", "1000000000000"), "\"num_train_timesteps\" is 1000000000000; at most", true);
  expect_error(sched_with("steps_offset", "1000"), "\"steps_offset\" is 1000; must be less than", true);
}

TEST(ModelConfig, OversizedFileIsRefusedBeforeReading) {
  const std::string path = temp_path("huge.json");
  std::ofstream(path, std::ios::binary) << "{}";
  fs::resize_file(path, 1u << 30);  // sparse: nothing is written, and nothing may be read
  try {
    read_unet_config(path);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": 1073741824 bytes is too large for a config file"), std::string::npos)
        << e.what();
  }
  fs::remove(path);
}

}  // namespace
}  // namespace ddpm
