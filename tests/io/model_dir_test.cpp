// Model directories: save/read/load round trip, atomic replacement, legacy attention names, and
// one message listing every missing, unexpected and mis-shaped tensor.
#include "ddpm/io/model_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "ddpm/io/safetensors.h"
#include "test_support.h"

namespace ddpm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_md_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

// A stand-in for the U-Net's parameter list (the real one comes from nn/).
const TensorList kExpected = {
    {"conv_in.weight", Shape{32, 1, 3, 3}},
    {"mid_block.attentions.0.to_q.weight", Shape{64, 64}},
    {"mid_block.attentions.0.to_q.bias", Shape{64}},
    {"mid_block.attentions.0.to_out.0.weight", Shape{64, 64}},
    {"conv_out.bias", Shape{1}},
};

size_t total(const TensorList& list) {
  size_t n = 0;
  for (const auto& [name, shape] : list) n += static_cast<size_t>(shape.numel());
  return n;
}

TEST(ModelDir, SaveReadLoadRoundTripAndReplace) {
  const fs::path dir = temp_dir("model");
  const UNet2DConfig unet = named_unet_config("fmnist-small");
  SchedulerConfig sched;
  sched.variance_type = "fixed_small";
  const auto weights = test::random_normal(total(kExpected), 3);
  save_model_dir(dir.string(), unet, sched, kExpected, weights.data());
  EXPECT_TRUE(fs::exists(dir / "unet" / "config.json"));
  EXPECT_TRUE(fs::exists(dir / "unet" / "diffusion_pytorch_model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "scheduler" / "scheduler_config.json"));

  const ModelDir m = read_model_dir(dir.string());
  EXPECT_EQ(m.unet.block_out_channels, unet.block_out_channels);
  EXPECT_EQ(m.unet.dropout, unet.dropout);
  EXPECT_EQ(m.scheduler.variance_type, "fixed_small");
  std::vector<float> loaded(weights.size(), test::kNaN);
  load_model_dir_weights(dir.string(), m.unet, kExpected, loaded.data());
  EXPECT_EQ(loaded, weights);
  EXPECT_EQ(SafetensorsFile::open(unet_weights_path(dir.string())).metadata().at("format"), "pt");

  // Saving again replaces the directory; nothing temporary is left beside it.
  const auto weights2 = test::random_normal(total(kExpected), 4);
  std::ofstream(dir / "stale.txt") << "from the old model";
  save_model_dir(dir.string() + "/", unet, sched, kExpected, weights2.data());
  EXPECT_FALSE(fs::exists(dir / "stale.txt"));
  load_model_dir_weights(dir.string(), m.unet, kExpected, loaded.data());
  EXPECT_EQ(loaded, weights2);
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.parent_path())) ++entries;
  EXPECT_EQ(entries, 1u);
}

// A learned variance needs 2 x in_channels outputs (ε and v), a fixed one exactly in_channels.
TEST(ModelDir, OutputChannelsMustMatchTheVarianceType) {
  const fs::path dir = temp_dir("variance");
  UNet2DConfig unet = named_unet_config("fmnist-small");
  SchedulerConfig sched;
  sched.variance_type = "learned_range";
  const auto weights = test::random_normal(total(kExpected), 5);
  save_model_dir(dir.string(), unet, sched, kExpected, weights.data());
  try {
    read_model_dir(dir.string());
    FAIL() << "a learned_range scheduler with a 1-channel output was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("out_channels = 2 x the image channels"), std::string::npos) << e.what();
  }
  unet.out_channels = 2;
  save_model_dir(dir.string(), unet, sched, kExpected, weights.data());
  EXPECT_EQ(read_model_dir(dir.string()).unet.out_channels, 2);
  EXPECT_EQ(read_model_dir(dir.string()).image_channels(), 1);
  sched.variance_type = "fixed_large";  // 2 output channels for a 1-channel input: impossible
  save_model_dir(dir.string(), unet, sched, kExpected, weights.data());
  EXPECT_THROW(read_model_dir(dir.string()), std::runtime_error);
  // Image-conditioned: in_channels 4 = a 1-channel image + an RGB condition.
  unet.in_channels = 4;
  unet.out_channels = 1;
  save_model_dir(dir.string(), unet, sched, kExpected, weights.data());
  const ModelDir conditioned = read_model_dir(dir.string());
  EXPECT_EQ(conditioned.image_channels(), 1);
  EXPECT_EQ(conditioned.condition_channels(), 3);
}

TEST(ModelDir, RefusesToReplaceOtherDirectoriesAndNonFiniteWeights) {
  const fs::path dir = temp_dir("not_a_model");
  fs::create_directories(dir);
  std::ofstream(dir / "precious.txt") << "data";
  const auto weights = test::random_normal(total(kExpected), 5);
  EXPECT_THROW(save_model_dir(dir.string(), named_unet_config("fmnist-small"), {}, kExpected, weights.data()),
               std::runtime_error);
  EXPECT_TRUE(fs::exists(dir / "precious.txt"));

  auto bad = weights;
  bad[32 * 9 + 40] = NAN;  // in to_q.weight
  const fs::path dir2 = temp_dir("nan_model");
  try {
    save_model_dir(dir2.string(), named_unet_config("fmnist-small"), {}, kExpected, bad.data());
    ADD_FAILURE() << "saved NaN weights";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("mid_block.attentions.0.to_q.weight"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir2));
}

TEST(ModelDir, MissingFilesAreNamed) {
  const fs::path dir = temp_dir("empty_model");
  fs::create_directories(dir / "unet");
  try {
    read_model_dir(dir.string());
    ADD_FAILURE() << "read an empty model directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: missing"), std::string::npos) << e.what();
  }
}

// A model without scheduler/scheduler_config.json (common in converted checkpoints) loads with
// DDPMScheduler's defaults, and says which; so does a config that leaves keys out.
TEST(ModelDir, MissingSchedulerConfigAssumesTheDefaultsAndSaysWhich) {
  const fs::path dir = temp_dir("no_scheduler");
  SchedulerConfig sched;
  sched.variance_type = "fixed_large";
  sched.num_train_timesteps = 500;
  const auto weights = test::random_normal(total(kExpected), 4);
  save_model_dir(dir.string(), named_unet_config("fmnist-small"), sched, kExpected, weights.data());
  EXPECT_TRUE(read_model_dir(dir.string()).assumed.empty());
  const std::string path = scheduler_config_path(dir.string());
  std::ofstream(path) << R"({"_class_name": "DDPMScheduler", "num_train_timesteps": 500, "beta_schedule": "linear",
    "beta_start": 0.0001, "beta_end": 0.02, "clip_sample": true, "prediction_type": "epsilon",
    "timestep_spacing": "leading"})";
  ModelDir m = read_model_dir(dir.string());
  EXPECT_EQ(m.scheduler.variance_type, "fixed_small");
  ASSERT_EQ(m.assumed.size(), 1u);
  EXPECT_NE(m.assumed[0].find("leaves 1 setting out; assuming DDPMScheduler's defaults: variance_type fixed_small"),
            std::string::npos) << m.assumed[0];
  fs::remove(path);
  m = read_model_dir(dir.string());
  EXPECT_EQ(m.scheduler.num_train_timesteps, 1000);
  EXPECT_EQ(m.scheduler.variance_type, "fixed_small");
  ASSERT_EQ(m.assumed.size(), 1u);
  EXPECT_NE(m.assumed[0].find(path + " is missing; assuming DDPMScheduler's defaults: 1000 timesteps, linear betas "
                              "0.0001..0.02, fixed_small variance, x0 clipped to ±1, epsilon prediction, leading spacing"),
            std::string::npos) << m.assumed[0];
}

TEST(ModelDir, LegacyAttentionNamesLoad) {
  EXPECT_EQ(current_unet_tensor_name("mid_block.attentions.0.query.weight"), "mid_block.attentions.0.to_q.weight");
  EXPECT_EQ(current_unet_tensor_name("down_blocks.1.attentions.0.key.bias"), "down_blocks.1.attentions.0.to_k.bias");
  EXPECT_EQ(current_unet_tensor_name("up_blocks.2.attentions.2.value.weight"), "up_blocks.2.attentions.2.to_v.weight");
  EXPECT_EQ(current_unet_tensor_name("mid_block.attentions.0.proj_attn.bias"), "mid_block.attentions.0.to_out.0.bias");
  EXPECT_EQ(current_unet_tensor_name("mid_block.attentions.0.group_norm.weight"), "mid_block.attentions.0.group_norm.weight");
  EXPECT_EQ(current_unet_tensor_name("conv_in.weight"), "conv_in.weight");

  const auto w = test::random_normal(total(kExpected), 6);
  const float* p = w.data();
  const float* conv_in = p;
  const float* q_w = conv_in + 32 * 9;
  const float* q_b = q_w + 64 * 64;
  const float* out_w = q_b + 64;
  const float* out_b = out_w + 64 * 64;
  // Stored in another order and with the pre-2023 names.
  const std::string path = (temp_dir("legacy") += ".safetensors").string();
  write_safetensors(path, {{"conv_out.bias", {1}, out_b},
                           {"mid_block.attentions.0.proj_attn.weight", {64, 64}, out_w},
                           {"mid_block.attentions.0.query.bias", {64}, q_b},
                           {"mid_block.attentions.0.query.weight", {64, 64}, q_w},
                           {"conv_in.weight", {32, 1, 3, 3}, conv_in}});
  std::vector<float> loaded(w.size(), test::kNaN);
  load_unet_weights(path, kExpected, loaded.data());
  EXPECT_EQ(loaded, w);
}

TEST(ModelDir, EveryNameAndShapeProblemInOneMessage) {
  const auto w = test::random_normal(64 * 64 * 2 + 64 + 8 * 9 + 64, 7);
  const std::string path = (temp_dir("wrong") += ".safetensors").string();
  write_safetensors(path, {{"conv_in.weight", {8, 1, 3, 3}, w.data()},  // wrong shape
                           {"mid_block.attentions.0.query.weight", {64, 64}, w.data()},
                           {"mid_block.attentions.0.to_q.bias", {64}, w.data()},
                           {"mid_block.attentions.0.to_out.0.weight", {64, 64}, w.data()},
                           {"extra.weight", {64}, w.data()}});  // unexpected; conv_out.bias missing
  std::vector<float> loaded(total(kExpected));
  const std::string from = "unet/config.json (block_out_channels [32,64,64])";
  try {
    load_unet_weights(path, kExpected, loaded.data(), from);
    ADD_FAILURE() << "loaded a file with wrong tensors";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path + ": 3 problems"), std::string::npos) << what;
    EXPECT_NE(what.find("tensor conv_in.weight has shape [8,1,3,3], but " + from + " needs [32,1,3,3]"),
              std::string::npos) << what;
    EXPECT_NE(what.find("tensor conv_out.bias is missing"), std::string::npos) << what;
    EXPECT_NE(what.find("tensor extra.weight [64] is unexpected"), std::string::npos) << what;
  }

  // A single problem is one line in the style of STYLE.md.
  const std::string one = (temp_dir("one") += ".safetensors").string();
  write_safetensors(one, {{"conv_in.weight", {8, 1, 3, 3}, w.data()},
                          {"mid_block.attentions.0.to_q.weight", {64, 64}, w.data()},
                          {"mid_block.attentions.0.to_q.bias", {64}, w.data()},
                          {"mid_block.attentions.0.to_out.0.weight", {64, 64}, w.data()},
                          {"conv_out.bias", {1}, w.data()}});
  try {
    load_unet_weights(one, kExpected, loaded.data(), from);
    ADD_FAILURE() << "loaded a mis-shaped tensor";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              one + ": tensor conv_in.weight has shape [8,1,3,3], but " + from + " needs [32,1,3,3]");
  }

  // Both the legacy and the current name of one tensor.
  const std::string both = (temp_dir("both") += ".safetensors").string();
  write_safetensors(both, {{"mid_block.attentions.0.query.bias", {64}, w.data()},
                           {"mid_block.attentions.0.to_q.bias", {64}, w.data()}});
  try {
    load_unet_weights(both, kExpected, loaded.data());
    ADD_FAILURE() << "loaded duplicate names";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("are both mid_block.attentions.0.to_q.bias"), std::string::npos) << e.what();
  }
}

TEST(ModelDir, NonFiniteWeightsAreNamed) {
  auto w = test::random_normal(total(kExpected), 8);
  w[32 * 9 + 5] = INFINITY;  // in to_q.weight
  w.back() = NAN;            // conv_out.bias
  const std::string path = (temp_dir("nan") += ".safetensors").string();
  std::vector<NamedTensor> named;
  size_t off = 0;
  for (const auto& [name, shape] : kExpected) {
    std::vector<int64_t> dims;
    for (int i = 0; i < shape.rank(); ++i) dims.push_back(shape[i]);
    named.push_back({name, dims, w.data() + off});
    off += static_cast<size_t>(shape.numel());
  }
  write_safetensors(path, named);
  std::vector<float> loaded(w.size());
  try {
    load_unet_weights(path, kExpected, loaded.data());
    ADD_FAILURE() << "loaded non-finite weights";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("tensor mid_block.attentions.0.to_q.weight has 1 non-finite value (NaN or Inf)"), std::string::npos) << what;
    EXPECT_NE(what.find("tensor conv_out.bias has 1 non-finite value"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace ddpm
