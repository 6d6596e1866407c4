// Training: a run interrupted and resumed ends bit-identical to an uninterrupted one; the loss
// falls on a tiny data set; the run directory holds a loadable diffusers model; bad options fail.
#include "ddpm/train/trainer.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include <unistd.h>
#include <vector>

#include "ddpm/image/png.h"
#include "ddpm/io/model_config.h"
#include "ddpm/io/model_dir.h"
#include "ddpm/nn/unet.h"
#include "test_support.h"

namespace ddpm {
namespace {

namespace fs = std::filesystem;

// A small model (8x8 grey images, two levels, attention at the lower one) and 12 random images.
struct Fixture {
  fs::path root = fs::temp_directory_path() / ("ddpm_trainer_test_" + std::to_string(::getpid()));
  std::string config_path, data_spec;

  Fixture() {
    fs::remove_all(root);
    fs::create_directories(root / "images");
    UNet2DConfig c;
    c.sample_height = c.sample_width = 8;
    c.in_channels = c.out_channels = 1;
    c.block_out_channels = {8, 16};
    c.down_block_types = {"DownBlock2D", "AttnDownBlock2D"};
    c.up_block_types = {"AttnUpBlock2D", "UpBlock2D"};
    c.norm_num_groups = 4;
    c.layers_per_block = 1;
    c.dropout = 0.1f;
    config_path = (root / "config.json").string();
    write_unet_config(config_path, c);
    for (int i = 0; i < 12; ++i) {
      const auto v = test::random_uniform(64, 100 + i, 0.0f, 255.0f);
      std::vector<uint8_t> px(v.begin(), v.end());
      write_png((root / "images" / ("img" + std::to_string(i) + ".png")).string(), px.data(), 8, 8, 1);
    }
    data_spec = "folder:" + (root / "images").string();
  }
  ~Fixture() { fs::remove_all(root); }

  TrainOptions options(const std::string& run) const {
    TrainOptions o;
    o.data = data_spec;
    o.config = config_path;
    o.out = (root / run).string();
    o.steps = 6;
    o.batch = 4;
    o.lr = 1e-3;
    o.warmup_steps = 2;
    o.save_every = 3;
    o.random_flip = true;
    o.seed = 7;
    o.log_every = 1;
    return o;
  }
};

std::vector<char> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Trainer, ResumedRunIsBitIdenticalToAnUninterruptedOne) {
  Fixture f;
  Trainer whole(f.options("whole"));
  whole.run();
  {
    TrainOptions first = f.options("parts");
    first.steps = 3;
    Trainer part(first);
    part.run();
  }
  auto resumed = Trainer::resume((f.root / "parts").string(), {.steps = 6});
  EXPECT_EQ(resumed->step(), 3);
  resumed->run();
  EXPECT_EQ(resumed->step(), 6);
  const auto a = file_bytes(f.root / "whole" / "training_state.safetensors");
  const auto b = file_bytes(f.root / "parts" / "training_state.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the resumed run's state differs from the uninterrupted run's";
  EXPECT_TRUE(std::equal(whole.params(), whole.params() + whole.parameter_count(), resumed->params()));
}

TEST(Trainer, LearnsAndExportsALoadableModel) {
  Fixture f;
  TrainOptions o = f.options("learn");
  o.steps = 40;
  o.save_every = 40;
  o.warmup_steps = 0;
  Trainer t(o);
  std::vector<double> losses;
  t.run([&](const TrainRecord& r) {
    losses.push_back(r.loss);
    return true;
  });
  ASSERT_EQ(losses.size(), 40u);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) first += losses[static_cast<size_t>(i)], last += losses[losses.size() - 1 - static_cast<size_t>(i)];
  EXPECT_LT(last, 0.8 * first) << "mean L_simple of the last 10 steps did not fall below 80% of the first 10";

  const std::string model = (f.root / "learn" / "model").string();
  const ModelDir dir = read_model_dir(model);
  UNet2D net(dir.unet, 2, Precision::fp32, false);
  TensorList list;
  for (const ParamInfo& p : net.parameters()) list.emplace_back(p.name, p.shape);
  std::vector<float> weights(static_cast<size_t>(net.parameter_count()));
  load_model_dir_weights(model, dir.unet, list, weights.data());
  EXPECT_TRUE(std::equal(weights.begin(), weights.end(), t.ema())) << "RUN/model does not hold the EMA weights";
  EXPECT_EQ(std::distance(std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(f.root / "learn" / "log.jsonl")),
                          std::istreambuf_iterator<char>()) > 0, true);

  t.save_samples((f.root / "grid.png").string(), 4, 1);
  const Image grid = read_image((f.root / "grid.png").string());
  EXPECT_EQ(grid.channels, 1);
  EXPECT_EQ(grid.width, 2 * 8 + 3 * 2);  // 2 columns of 8 pixels with 2-pixel padding
}

// Improved DDPM: 2C output channels, the hybrid loss, the cosine schedule; the run resumes bit for
// bit, L_vlb falls, and the exported model says learned_range and loads.
TEST(Trainer, LearnedVarianceRunResumesLearnsAndExports) {
  Fixture f;
  auto improved = [&](const std::string& run, int64_t steps) {
    TrainOptions o = f.options(run);
    o.learn_variance = true;
    o.beta_schedule = "cosine";
    o.steps = steps;
    return o;
  };
  Trainer whole(improved("whole", 6));
  whole.run();
  { Trainer(improved("parts", 3)).run(); }
  auto resumed = Trainer::resume((f.root / "parts").string(), {.steps = 6});
  resumed->run();
  EXPECT_TRUE(file_bytes(f.root / "whole" / "training_state.safetensors") ==
              file_bytes(f.root / "parts" / "training_state.safetensors"));

  TrainOptions o = improved("learn", 60);
  o.warmup_steps = 0;
  o.save_every = 60;
  o.vlb_weight = 0.01;
  Trainer t(o);
  std::vector<double> vlb;
  t.run([&](const TrainRecord& r) {
    EXPECT_TRUE(std::isfinite(r.vlb) && r.vlb > 0) << "step " << r.step;
    vlb.push_back(r.vlb);
    return true;
  });
  // Medians: a batch of 4 that draws t = 0 (the decoder) gives a rare term 100x the others.
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  const double first = median({vlb.begin(), vlb.begin() + 20}), last = median({vlb.end() - 20, vlb.end()});
  EXPECT_LT(last, 0.8 * first) << "the median L_vlb of the last 20 steps did not fall below 80% of the first 20";

  const ModelDir dir = read_model_dir((f.root / "learn" / "model").string());
  EXPECT_EQ(dir.scheduler.variance_type, "learned_range");
  EXPECT_EQ(dir.scheduler.beta_schedule, "squaredcos_cap_v2");
  EXPECT_EQ(dir.unet.out_channels, 2);
  t.save_samples((f.root / "grid.png").string(), 4, 1);
  EXPECT_EQ(read_image((f.root / "grid.png").string()).channels, 1);

  TrainOptions bad = improved("bad", 1);
  bad.vlb_weight = -1;
  EXPECT_THROW(Trainer{bad}, std::invalid_argument);
}

// An absurd learning rate blows the weights up after the first update: every later step has a
// non-finite loss. Those are skipped without touching the weights, and the run stops after
// max_nonfinite_steps in a row with the last checkpoint intact.
TEST(Trainer, SkipsNonFiniteStepsThenStopsKeepingTheCheckpoint) {
  Fixture f;
  TrainOptions o = f.options("nan");
  o.lr = 1e30;
  o.warmup_steps = 0;
  o.steps = 50;
  o.save_every = 1;
  o.max_nonfinite_steps = 3;
  Trainer t(o);
  const fs::path state = f.root / "nan" / "training_state.safetensors";
  std::string message;
  try {
    t.run();
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  ASSERT_FALSE(message.empty()) << "a run of non-finite steps did not stop training";
  EXPECT_NE(message.find("3 steps in a row"), std::string::npos) << message;
  EXPECT_NE(message.find("is intact"), std::string::npos) << message;
  EXPECT_EQ(t.skipped_steps(), 3);
  const int64_t good = t.step();
  EXPECT_GE(good, 1);
  EXPECT_LT(good, 50);
  const std::vector<float> weights(t.params(), t.params() + t.parameter_count());
  // The checkpoint holds the last applied step, and resuming from it works.
  auto resumed = Trainer::resume((f.root / "nan").string());
  EXPECT_EQ(resumed->step(), good);
  EXPECT_EQ(resumed->skipped_steps(), 0);  // none skipped before that checkpoint
  EXPECT_TRUE(std::equal(weights.begin(), weights.end(), resumed->params()))
      << "skipped steps changed the weights";
  // The log names every skipped step.
  std::ifstream log(f.root / "nan" / "log.jsonl");
  int skipped_lines = 0;
  for (std::string line; std::getline(log, line);) skipped_lines += line.find("\"skipped_step\"") != std::string::npos;
  EXPECT_EQ(skipped_lines, 3);
}

// A full disk, simulated with a file-size limit (RLIMIT_FSIZE; SIGXFSZ ignored, so writes fail
// with EFBIG): periodic checkpoints fail without stopping training, the final one throws, the last
// good checkpoint stays intact, and the state in memory can still be saved once space returns.
TEST(Trainer, FullDiskKeepsTheCheckpointAndTheStateInMemory) {
  Fixture f;
  TrainOptions o = f.options("full");
  o.steps = 3;
  {
    Trainer t(o);
    t.run();  // a complete run to step 3: the checkpoint to keep
  }
  const fs::path state = f.root / "full" / "training_state.safetensors";
  const auto before = file_bytes(state);
  auto t = Trainer::resume((f.root / "full").string(), {.steps = 9});
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 4096;  // far below a checkpoint
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string message;
  try {
    t->run();  // periodic saves at 6 fail (reported), the final one at 9 throws
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous_handler);
  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_EQ(t->step(), 9) << "training stopped at a failed periodic checkpoint";
  EXPECT_TRUE(file_bytes(state) == before) << "a failed save damaged the previous checkpoint";
  for (const auto& e : fs::recursive_directory_iterator(f.root / "full"))
    EXPECT_NE(e.path().extension(), ".tmp") << "left behind: " << e.path();
  t->save_checkpoint();  // space is back: the state in memory is still there
  EXPECT_EQ(Trainer::resume((f.root / "full").string())->step(), 9);
}

// Classifier-free guidance training: the U-Net gets num_class_embeds = classes + 1, labels are
// dropped to the null class by a stateless hash (so resuming stays bit-identical), and the
// exported model carries the table. Unlabelled data is refused.
TEST(Trainer, ClassConditionalRunResumesExactlyAndExportsTheClassTable) {
  Fixture f;
  TrainOptions o = f.options("cond");
  o.data = "synthetic";  // labelled i mod 10
  o.class_conditional = true;
  o.label_dropout = 0.5;
  Trainer whole(o);
  whole.run();
  TrainOptions first = o;
  first.out = (f.root / "cond_parts").string();
  first.steps = 3;
  { Trainer(first).run(); }
  auto resumed = Trainer::resume(first.out, {.steps = 6});
  resumed->run();
  EXPECT_TRUE(std::equal(whole.params(), whole.params() + whole.parameter_count(), resumed->params()));
  const ModelDir model = read_model_dir((f.root / "cond" / "model").string());
  EXPECT_EQ(model.unet.num_class_embeds, 11);
  UNet2D net(model.unet, 1, Precision::fp32, false);
  EXPECT_EQ(net.parameter("class_embedding.weight").shape, (Shape{11, 32}));
  TrainOptions folder = f.options("cond_folder");
  folder.class_conditional = true;
  test::expect_error([&] { Trainer{folder}; }, f.data_spec, "--class-conditional needs labelled data");
}

// Image-conditioned training (super-resolution from the images themselves): the U-Net gets the
// condition as a second input channel, the run resumes bit-identically and the exported model
// says in_channels 2, out_channels 1.
TEST(Trainer, SuperResolutionRunResumesExactlyAndExportsAConditionedModel) {
  Fixture f;
  TrainOptions o = f.options("sr");
  o.super_resolution = 2;
  Trainer whole(o);
  whole.run();
  TrainOptions first = o;
  first.out = (f.root / "sr_parts").string();
  first.steps = 3;
  { Trainer(first).run(); }
  auto resumed = Trainer::resume(first.out, {.steps = 6});
  resumed->run();
  EXPECT_TRUE(std::equal(whole.params(), whole.params() + whole.parameter_count(), resumed->params()));
  const ModelDir model = read_model_dir((f.root / "sr" / "model").string());
  EXPECT_EQ(model.unet.in_channels, 2);
  EXPECT_EQ(model.unet.out_channels, 1);
  EXPECT_EQ(model.condition_channels(), 1);
  whole.save_samples((f.root / "sr" / "grid.png").string(), 2, 1);  // draws from training conditions
  EXPECT_TRUE(fs::exists(f.root / "sr" / "grid.png"));
  o.out = (f.root / "sr_bad").string();
  o.super_resolution = 3;
  EXPECT_THROW(Trainer{o}, std::invalid_argument);
}

// Resuming refuses, in one line, what would silently corrupt a run: data that changed since the
// run started, and a checkpoint from another model (a state file copied between runs).
TEST(Trainer, ResumeRefusesChangedDataAndAnotherModelsCheckpoint) {
  Fixture f;
  TrainOptions o = f.options("data");
  o.steps = 3;
  { Trainer(o).run(); }
  TrainOptions other = f.options("other");
  other.steps = 3;
  UNet2DConfig wider = read_unet_config(f.config_path);
  wider.block_out_channels = {8, 24};
  other.config = (f.root / "wider.json").string();
  write_unet_config(other.config, wider);
  { Trainer(other).run(); }
  // Another run's state in this run's directory.
  fs::copy_file(f.root / "other" / "training_state.safetensors", f.root / "data" / "training_state.safetensors",
                fs::copy_options::overwrite_existing);
  test::expect_error([&] { Trainer::resume((f.root / "data").string()); }, "training_state.safetensors holds",
                     "parameters, but the run's model (config " + f.config_path);
  // The other run's own state, but one of its images replaced.
  const std::vector<uint8_t> grey(64, 128);
  write_png((f.root / "images" / "img3.png").string(), grey.data(), 8, 8, 1);
  test::expect_error([&] { Trainer::resume((f.root / "other").string()); }, "is not what the run trained on",
                     "12 images 8x8x1, hash ");
  // Changes a resume may make: the total and the periods.
  std::vector<uint8_t> back(64);
  const auto v = test::random_uniform(64, 103, 0.0f, 255.0f);
  std::copy(v.begin(), v.end(), back.begin());
  write_png((f.root / "images" / "img3.png").string(), back.data(), 8, 8, 1);
  auto resumed = Trainer::resume((f.root / "other").string(), {.steps = 5, .save_every = 1, .log_every = 2});
  EXPECT_EQ(resumed->options().steps, 5);
  EXPECT_EQ(resumed->options().save_every, 1);
  EXPECT_EQ(resumed->options().log_every, 2);
  EXPECT_EQ(resumed->options().sample_n, other.sample_n);
}

TEST(Trainer, RefusesBadOptionsAndExistingRuns) {
  Fixture f;
  TrainOptions o = f.options("bad");
  o.batch = 0;
  EXPECT_THROW(Trainer{o}, std::invalid_argument);
  o = f.options("twice");
  o.steps = 1;
  { Trainer(o).run(); }
  EXPECT_THROW(Trainer{o}, std::invalid_argument);  // would overwrite a run: use --resume
  o = f.options("wrong-size");
  o.data = "fashion-mnist";  // 28x28 images for the 8x8 model (a folder would be resized to fit)
  try {
    Trainer t(o);
    FAIL() << "a data/config size mismatch was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("sample_size"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddpm
