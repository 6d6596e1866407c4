// The C interface (include/ddpm.h, libddpm.so): it generates (and edits) exactly what the
// library's pipeline does, a handle gives the same images for the same seed whatever it did before, progress
// counts every U-Net call and can cancel, and every bad argument or file is an error with a
// message, never a crash. (tests/capi/example_test.sh: the example program against `ddpm sample`;
// install_test.sh: an installed libddpm used through pkg-config and CMake.)
#include "ddpm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "ddpm/diffusion/editing.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/image/png.h"
#include "ddpm/io/model_dir.h"
#include "ddpm/nn/unet.h"
#include "ddpm/nn/unet_config.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "ddpm/pipeline/editing_pipeline.h"
#include "ddpm/pipeline/sampler_choice.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

const std::string kModel = std::string(DDPM_SOURCE_DIR) + "/models/fmnist";
constexpr int kPixels = 28 * 28;

struct ModelHandle {
  ddpm_model* model;
  explicit ModelHandle(ddpm_model* m) : model(m) {}
  ~ModelHandle() { ddpm_model_free(model); }
  ModelHandle(const ModelHandle&) = delete;
  ModelHandle& operator=(const ModelHandle&) = delete;
};

ddpm_model* load(const std::string& dir, int batch, double guidance = 1.0) {
  ddpm_load_params p;
  ddpm_load_params_init(&p);
  p.batch = batch;
  p.guidance = guidance;
  return ddpm_model_load(dir.c_str(), &p);
}

ddpm_generate_params params(int n, unsigned long long seed, const char* sampler, int steps) {
  ddpm_generate_params p;
  ddpm_generate_params_init(&p);
  p.n = n;
  p.seed = seed;
  p.sampler = sampler;
  p.steps = steps;
  p.spacing = "trailing";
  return p;
}

std::vector<float> generate_float(ddpm_model* model, const ddpm_generate_params& p, int per_item = kPixels) {
  std::vector<float> out(static_cast<size_t>(p.n * per_item));
  EXPECT_EQ(ddpm_generate_float(model, &p, out.data()), DDPM_OK) << ddpm_last_error();
  return out;
}

// The sampler options of the C calls in these tests (trailing spacing), for the pipeline's side.
ddpm::SamplerOptions trailing(const ddpm::DiffusionModel& model, const char* sampler, int64_t steps) {
  ddpm::SamplerChoice choice;
  choice.sampler = sampler;
  choice.steps = steps;
  choice.spacing = "trailing";
  return ddpm::sampler_options(choice, model.dir.scheduler);
}

// A model directory with cfg's architecture and random weights (N(0, 0.05²), seeded), in the temp dir.
fs::path random_model_dir(const ddpm::UNet2DConfig& cfg, const std::string& name, uint64_t seed) {
  const ddpm::UNet2D net(cfg, 1, ddpm::Precision::fp32, false);
  ddpm::TensorList list;
  for (const ddpm::ParamInfo& info : net.parameters()) list.emplace_back(info.name, info.shape);
  const std::vector<float> weights = ddpm::test::random_normal(static_cast<size_t>(net.parameter_count()), seed, 0.05f);
  const fs::path dir = fs::temp_directory_path() / name;
  ddpm::save_model_dir(dir.string(), cfg, ddpm::default_scheduler_config(), list, weights.data());
  return dir;
}

// A call that must fail with DDPM_ERROR (or NULL) and a message holding `needle`.
void expect_message(ddpm_status status, const std::string& needle) {
  EXPECT_EQ(status, DDPM_ERROR);
  EXPECT_NE(std::string(ddpm_last_error()).find(needle), std::string::npos) << ddpm_last_error();
}

}  // namespace

TEST(CApi, DescribesTheShippedModel) {
  ModelHandle h(load(kModel, 4));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  ddpm_model_info info;
  ASSERT_EQ(ddpm_model_get_info(h.model, &info), DDPM_OK);
  EXPECT_EQ(info.height, 28);
  EXPECT_EQ(info.width, 28);
  EXPECT_EQ(info.channels, 1);
  EXPECT_EQ(info.num_classes, 0);
  EXPECT_EQ(info.condition_channels, 0);
  EXPECT_EQ(info.num_train_timesteps, 1000);
  EXPECT_EQ(info.batch, 4);
  const ddpm::UNet2D net(ddpm::read_model_dir(kModel).unet, 1, ddpm::Precision::fp32, false);
  EXPECT_EQ(info.parameters, net.parameter_count());
  EXPECT_EQ(std::string(ddpm_version()), "0.1.0");
  EXPECT_STREQ(ddpm_last_error(), "");
}

// Three images in batches of two (a short last batch), DPM-Solver++ 4 steps: the C call and the
// C++ pipeline give the same floats, and the bytes are their conversion.
TEST(CApi, GeneratesWhatThePipelineGenerates) {
  ModelHandle h(load(kModel, 2));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  const ddpm_generate_params p = params(3, 7, "dpm-solver++", 4);
  const std::vector<float> ours = generate_float(h.model, p);

  ddpm::DiffusionModel model = ddpm::load_diffusion_model(kModel, 2, ddpm::Precision::fp32);
  std::vector<float> expected(ours.size());
  ddpm::generate_images(model, 3, 7, trailing(model, "dpm-solver++", 4), expected.data());
  EXPECT_EQ(ours, expected);

  std::vector<unsigned char> pixels(ours.size());
  ASSERT_EQ(ddpm_generate(h.model, &p, pixels.data()), DDPM_OK) << ddpm_last_error();
  EXPECT_EQ(pixels, ddpm::to_uint8(expected.data(), expected.size()));
}

// One process, many images: the result depends on the seed and settings alone, not on what the
// handle generated before (x_T and the noise are drawn afresh from the seed on every call).
TEST(CApi, RepeatedCallsDependOnTheSeedAlone) {
  ModelHandle h(load(kModel, 2));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  const std::vector<float> a = generate_float(h.model, params(2, 1, "ddpm", 5));
  const std::vector<float> b = generate_float(h.model, params(2, 2, "ddpm", 5));
  const std::vector<float> c = generate_float(h.model, params(2, 1, "ddim", 3));
  const std::vector<float> again = generate_float(h.model, params(2, 1, "ddpm", 5));
  EXPECT_EQ(a, again);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  for (float v : a) ASSERT_TRUE(v >= -1.0f && v <= 1.0f) << v;  // x0 clipped by the scheduler config
}

TEST(CApi, ProgressCountsEveryCallAndCancels) {
  ModelHandle h(load(kModel, 2));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  struct Seen {
    std::vector<long long> done, total;
    long long stop_at = -1;
  } seen;
  ddpm_generate_params p = params(3, 0, "ddim", 3);  // 2 batches x 3 steps
  p.user_data = &seen;
  p.progress = [](long long done, long long total, void* user) {
    auto* s = static_cast<Seen*>(user);
    s->done.push_back(done);
    s->total.push_back(total);
    return done == s->stop_at ? 1 : 0;
  };
  const std::vector<float> whole = generate_float(h.model, p);
  EXPECT_EQ(seen.done, (std::vector<long long>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(seen.total, std::vector<long long>(6, 6));

  seen = Seen{};
  seen.stop_at = 2;
  std::vector<float> out(whole.size());
  EXPECT_EQ(ddpm_generate_float(h.model, &p, out.data()), DDPM_CANCELLED);
  EXPECT_NE(std::string(ddpm_last_error()).find("cancelled"), std::string::npos) << ddpm_last_error();
  EXPECT_EQ(seen.done, (std::vector<long long>{1, 2}));

  seen = Seen{};  // the handle is still whole after a cancellation
  EXPECT_EQ(generate_float(h.model, p), whole);
  EXPECT_STREQ(ddpm_last_error(), "");
}

TEST(CApi, BadArgumentsAndFilesAreErrorsWithMessages) {
  ddpm_load_params lp;
  ddpm_load_params_init(&lp);
  EXPECT_EQ(ddpm_model_load("/no/such/model", &lp), nullptr);
  EXPECT_NE(std::string(ddpm_last_error()).find("/no/such/model"), std::string::npos) << ddpm_last_error();
  EXPECT_EQ(ddpm_model_load(nullptr, nullptr), nullptr);
  expect_message(DDPM_ERROR, "model_dir is NULL");
  lp.batch = 0;
  EXPECT_EQ(ddpm_model_load(kModel.c_str(), &lp), nullptr);
  expect_message(DDPM_ERROR, "batch = 0");
  ddpm_load_params_init(&lp);
  lp.precision = "fp16";
  EXPECT_EQ(ddpm_model_load(kModel.c_str(), &lp), nullptr);
  expect_message(DDPM_ERROR, "fp16");
  ddpm_load_params_init(&lp);
  lp.device = "tpu";
  EXPECT_EQ(ddpm_model_load(kModel.c_str(), &lp), nullptr);
  expect_message(DDPM_ERROR, "device \"tpu\": expected \"cpu\" or \"cuda\"");
  EXPECT_EQ(load(kModel, 1, 3.0), nullptr);
  expect_message(DDPM_ERROR, "needs a class-conditional model");

  ModelHandle h(load(kModel, 1));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  std::vector<float> out(4 * kPixels);
  ddpm_generate_params p = params(0, 0, "ddpm", 2);
  expect_message(ddpm_generate_float(h.model, &p, out.data()), "n = 0");
  p = params(1, 0, "euler", 2);
  expect_message(ddpm_generate_float(h.model, &p, out.data()), "euler");
  p = params(1, 0, "ddpm", 1001);
  expect_message(ddpm_generate_float(h.model, &p, out.data()), "T = 1000");
  p = params(1, 0, "ddpm", 2);
  p.eta = 0.5;
  expect_message(ddpm_generate_float(h.model, &p, out.data()), "ddim only");
  p = params(1, 0, "ddpm", 2);
  p.spacing = "sideways";
  expect_message(ddpm_generate_float(h.model, &p, out.data()), "sideways");
  const int classes[1] = {2};
  p = params(1, 0, "ddpm", 2);
  p.classes = classes;
  expect_message(ddpm_generate_float(h.model, &p, out.data()), "not class-conditional");
  p = params(1, 0, "ddpm", 2);
  expect_message(ddpm_generate_float(nullptr, &p, out.data()), "model is NULL");
  expect_message(ddpm_generate_float(h.model, nullptr, out.data()), "params is NULL");
  expect_message(ddpm_generate(h.model, &p, nullptr), "output buffer is NULL");
  expect_message(ddpm_model_get_info(h.model, nullptr), "info is NULL");
  const std::vector<unsigned char> pixels(kPixels);
  expect_message(ddpm_write_png_grid("x.png", pixels.data(), 1, 28, 28, 2, 0), "channels = 2");
  expect_message(ddpm_write_png_grid("/no/such/dir/x.png", pixels.data(), 1, 28, 28, 1, 0), "/no/such/dir/x.png");
  // A failed call leaves the handle usable, and a successful call clears the message.
  EXPECT_EQ(ddpm_generate_float(h.model, &p, out.data()), DDPM_OK) << ddpm_last_error();
  EXPECT_STREQ(ddpm_last_error(), "");
  ddpm_model_free(nullptr);
}

TEST(CApi, CorruptWeightsAreRefusedNamingTheFile) {
  const fs::path dir = fs::temp_directory_path() / "ddpm_capi_corrupt";
  fs::remove_all(dir);
  fs::copy(kModel, dir, fs::copy_options::recursive);
  const fs::path weights = dir / "unet" / "diffusion_pytorch_model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) / 2);
  EXPECT_EQ(load(dir.string(), 1), nullptr);
  EXPECT_NE(std::string(ddpm_last_error()).find("diffusion_pytorch_model.safetensors"), std::string::npos)
      << ddpm_last_error();
  fs::remove_all(dir);
}

// A class-conditional model (random weights): per-image classes reach the U-Net as the pipeline's
// classes do, guidance is honoured, and a class the model lacks is refused with its range.
TEST(CApi, ClassesAndGuidanceOnAClassConditionalModel) {
  ddpm::UNet2DConfig cfg = ddpm::named_unet_config("fmnist-small");
  cfg.num_class_embeds = 4;  // classes 0-2 and the null class
  const fs::path dir = random_model_dir(cfg, "ddpm_capi_classes", 3);

  ModelHandle h(load(dir.string(), 2, 2.5));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  ddpm_model_info info;
  ASSERT_EQ(ddpm_model_get_info(h.model, &info), DDPM_OK);
  EXPECT_EQ(info.num_classes, 3);
  const int classes[3] = {0, 2, 1};
  ddpm_generate_params p = params(3, 4, "ddim", 2);
  p.classes = classes;
  const std::vector<float> ours = generate_float(h.model, p);

  ddpm::DiffusionModel model = ddpm::load_diffusion_model(dir.string(), 2, ddpm::Precision::fp32, 2.5);
  std::vector<float> expected(ours.size());
  const int32_t labels[3] = {0, 2, 1};
  ddpm::generate_images(model, 3, 4, trailing(model, "ddim", 2), expected.data(), {},
                        nullptr, labels);
  EXPECT_EQ(ours, expected);
  p.classes = nullptr;  // unconditional draws differ from the class-conditional ones
  EXPECT_NE(generate_float(h.model, p), ours);

  const int bad[3] = {0, 3, 1};
  p.classes = bad;
  std::vector<float> out(ours.size());
  expect_message(ddpm_generate_float(h.model, &p, out.data()), "classes[1] = 3: this model has classes 0..2");
  fs::remove_all(dir);
}

namespace {

std::vector<unsigned char> test_image() {
  return ddpm::read_image(std::string(DDPM_SOURCE_DIR) + "/docs/fmnist-test-0.png", 1).pixels;
}

double mean_abs_difference(const std::vector<unsigned char>& a, const unsigned char* b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += std::abs(static_cast<double>(a[i]) - b[i]);
  return sum / static_cast<double>(a.size());
}

}  // namespace

// img2img is `ddpm img2img`'s recipe (one noise stream: the image noised to the first timestep,
// then the sampler), batches continue the stream, and a small strength stays nearer the input.
TEST(CApi, Img2imgFollowsTheCommandsRecipe) {
  ModelHandle h(load(kModel, 2));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  const std::vector<unsigned char> image = test_image();
  ddpm_generate_params p = params(3, 9, "ddim", 10);
  p.strength = 0.5;
  std::vector<unsigned char> ours(3 * kPixels);
  ASSERT_EQ(ddpm_img2img(h.model, &p, image.data(), ours.data()), DDPM_OK) << ddpm_last_error();

  ddpm::DiffusionModel model = ddpm::load_diffusion_model(kModel, 2, ddpm::Precision::fp32);
  ddpm::SamplerOptions sampler = trailing(model, "ddim", 10);
  sampler.strength = 0.5;
  const std::vector<int64_t> ts = ddpm::sampler_timesteps(model.schedule, sampler);
  EXPECT_EQ(ts.size(), 5u);
  ddpm::NoiseRng rng(9, 0);
  std::vector<float> x0(2 * kPixels), x(2 * kPixels);
  for (int i = 0; i < 2; ++i) ddpm::to_float(image.data(), kPixels, x0.data() + i * kPixels);
  ddpm::noise_to_timestep(x.data(), x0.data(), ts.front(), 2 * kPixels, model.schedule, rng);
  ddpm::run_sampler(model.eps_variance_model(), x.data(), 2, kPixels, model.schedule, sampler, rng);
  EXPECT_EQ(std::vector<unsigned char>(ours.begin(), ours.begin() + 2 * kPixels), ddpm::to_uint8(x.data(), x.size()));

  p.n = 2;
  std::vector<unsigned char> two(2 * kPixels), weak(2 * kPixels);
  ASSERT_EQ(ddpm_img2img(h.model, &p, image.data(), two.data()), DDPM_OK);
  EXPECT_TRUE(std::equal(two.begin(), two.end(), ours.begin()));
  p.strength = 0.1;
  ASSERT_EQ(ddpm_img2img(h.model, &p, image.data(), weak.data()), DDPM_OK);
  EXPECT_LT(mean_abs_difference(image, weak.data()), mean_abs_difference(image, two.data()));
  EXPECT_LT(mean_abs_difference(image, weak.data()), 12.0) << "strength 0.1 keeps the image";
}

// Inpainting the top half: the bottom half of every result is the input's bytes exactly, the top
// half is new, and two seeds give two different top halves.
TEST(CApi, InpaintKeepsTheKnownPixelsExactly) {
  ModelHandle h(load(kModel, 2));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  const std::vector<unsigned char> image = test_image();
  std::vector<unsigned char> mask(kPixels, 0);
  std::fill(mask.begin(), mask.begin() + kPixels / 2, 255);
  ddpm_generate_params p = params(3, 1, "ddpm", 10);
  p.jump_length = 2;
  p.jump_n_sample = 2;
  std::vector<long long> calls;
  p.user_data = &calls;
  p.progress = [](long long done, long long, void* user) {
    static_cast<std::vector<long long>*>(user)->push_back(done);
    return 0;
  };
  std::vector<unsigned char> out(3 * kPixels);
  ASSERT_EQ(ddpm_inpaint(h.model, &p, image.data(), mask.data(), out.data()), DDPM_OK) << ddpm_last_error();
  for (int i = 0; i < 3; ++i) {
    const unsigned char* result = out.data() + i * kPixels;
    EXPECT_TRUE(std::equal(image.begin() + kPixels / 2, image.end(), result + kPixels / 2)) << "image " << i;
    EXPECT_FALSE(std::equal(image.begin(), image.begin() + kPixels / 2, result)) << "image " << i;
  }
  EXPECT_FALSE(std::equal(out.begin(), out.begin() + kPixels / 2, out.begin() + kPixels));
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), 2 * ddpm::repaint_model_calls(10, 2, 2));  // two batches
}

TEST(CApi, EditingErrorsSayWhatIsWrong) {
  ModelHandle h(load(kModel, 1));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  const std::vector<unsigned char> image = test_image();
  std::vector<unsigned char> mask(kPixels, 0), out(kPixels);
  ddpm_generate_params p = params(1, 0, "ddim", 4);
  p.strength = 0;
  expect_message(ddpm_img2img(h.model, &p, image.data(), out.data()), "strength = 0");
  p.strength = 1.5;
  expect_message(ddpm_img2img(h.model, &p, image.data(), out.data()), "expected a value in (0, 1]");
  p.strength = 0.5;
  expect_message(ddpm_img2img(h.model, &p, nullptr, out.data()), "image is NULL");
  expect_message(ddpm_inpaint(h.model, &p, image.data(), mask.data(), out.data()), "leave sampler at \"ddpm\"");
  p = params(1, 0, "ddpm", 4);
  expect_message(ddpm_inpaint(h.model, &p, image.data(), nullptr, out.data()), "mask is NULL");
  expect_message(ddpm_inpaint(h.model, &p, image.data(), mask.data(), out.data()), "nothing to inpaint");
  p.jump_length = 0;
  mask[0] = 255;
  expect_message(ddpm_inpaint(h.model, &p, image.data(), mask.data(), out.data()), "jump_length");
}

// Calls from several threads are serialised by the library and give what one thread gets; a
// model's own thread count applies during its calls only.
TEST(CApi, ThreadsAndConcurrentCalls) {
  ModelHandle a(load(kModel, 1)), b(load(kModel, 1));
  ASSERT_NE(a.model, nullptr) << ddpm_last_error();
  ASSERT_NE(b.model, nullptr) << ddpm_last_error();
  const ddpm_generate_params pa = params(1, 11, "ddim", 3), pb = params(1, 12, "dpm-solver++", 3);
  const std::vector<float> alone_a = generate_float(a.model, pa), alone_b = generate_float(b.model, pb);
  std::vector<float> together_a(kPixels), together_b(kPixels);
  ddpm_status status_a = DDPM_ERROR, status_b = DDPM_ERROR;
  std::thread ta([&] { status_a = ddpm_generate_float(a.model, &pa, together_a.data()); });
  std::thread tb([&] { status_b = ddpm_generate_float(b.model, &pb, together_b.data()); });
  ta.join();
  tb.join();
  EXPECT_EQ(status_a, DDPM_OK);
  EXPECT_EQ(status_b, DDPM_OK);
  EXPECT_EQ(together_a, alone_a);
  EXPECT_EQ(together_b, alone_b);

  ddpm_load_params lp;
  ddpm_load_params_init(&lp);
  lp.batch = 1;
  lp.threads = 1;
  ModelHandle one(ddpm_model_load(kModel.c_str(), &lp));
  ASSERT_NE(one.model, nullptr) << ddpm_last_error();
  const int before = omp_get_max_threads();
  int seen = 0;
  ddpm_generate_params p = params(1, 0, "ddim", 2);
  p.user_data = &seen;
  p.progress = [](long long, long long, void* user) {
    *static_cast<int*>(user) = omp_get_max_threads();
    return 0;
  };
  std::vector<float> out(kPixels);
  ASSERT_EQ(ddpm_generate_float(one.model, &p, out.data()), DDPM_OK) << ddpm_last_error();
  EXPECT_EQ(seen, 1) << "the model's thread count during its call";
  EXPECT_EQ(omp_get_max_threads(), before) << "the caller's setting afterwards";
}

// The library's warnings reach the log callback (not stderr) and NULL restores stderr.
TEST(CApi, LogCallbackReceivesTheWarnings) {
  const fs::path dir = fs::temp_directory_path() / "ddpm_capi_log";
  fs::remove_all(dir);
  fs::copy(kModel, dir, fs::copy_options::recursive);
  fs::remove(dir / "scheduler" / "scheduler_config.json");  // DDPMScheduler's defaults are assumed
  std::vector<std::pair<ddpm_log_level, std::string>> seen;
  ddpm_set_log_callback(
      [](ddpm_log_level level, const char* message, void* user) {
        static_cast<std::vector<std::pair<ddpm_log_level, std::string>>*>(user)->emplace_back(level, message);
      },
      &seen);
  ::testing::internal::CaptureStderr();
  ModelHandle h(load(dir.string(), 1));
  const std::string err = ::testing::internal::GetCapturedStderr();
  ddpm_set_log_callback(nullptr, nullptr);
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, DDPM_LOG_WARNING);
  EXPECT_NE(seen[0].second.find("scheduler_config.json is missing"), std::string::npos) << seen[0].second;
  EXPECT_EQ(err, "");
  fs::remove_all(dir);
}

// x_T given: with DDIM (eta 0) the seed no longer matters, and the result is the pipeline's with
// that x_T; a non-finite x_T is refused.
TEST(CApi, InitNoiseIsUsedAsXT) {
  ModelHandle h(load(kModel, 2));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  std::vector<float> x_T = ddpm::test::random_normal(2 * kPixels, 21);
  ddpm_generate_params p = params(2, 1, "ddim", 4);
  p.init_noise = x_T.data();
  const std::vector<float> one = generate_float(h.model, p);
  p.seed = 2;
  EXPECT_EQ(generate_float(h.model, p), one);

  ddpm::DiffusionModel model = ddpm::load_diffusion_model(kModel, 2, ddpm::Precision::fp32);
  std::vector<float> expected(one.size());
  ddpm::generate_images(model, 2, 7, trailing(model, "ddim", 4), expected.data(), {},
                        x_T.data());
  EXPECT_EQ(one, expected);

  x_T[5] = ddpm::test::kNaN;
  std::vector<float> out(one.size());
  expect_message(ddpm_generate_float(h.model, &p, out.data()), "init_noise[5] is not finite");
}

// An image-conditioned model (random weights; 1 image + 1 condition channel): ddpm_translate is
// the pipeline's translate_images (as `ddpm translate` runs it), one output per condition, and
// each entry point refuses the other kind of model.
TEST(CApi, TranslateRunsImageConditionedModels) {
  ddpm::UNet2DConfig cfg = ddpm::named_unet_config("fmnist-small");
  cfg.in_channels = 2;  // the noisy image, then the condition
  const fs::path dir = random_model_dir(cfg, "ddpm_capi_translate", 5);

  ModelHandle h(load(dir.string(), 2));
  ASSERT_NE(h.model, nullptr) << ddpm_last_error();
  ddpm_model_info info;
  ASSERT_EQ(ddpm_model_get_info(h.model, &info), DDPM_OK);
  EXPECT_EQ(info.channels, 1);
  EXPECT_EQ(info.condition_channels, 1);
  std::vector<unsigned char> conditions = test_image();
  conditions.resize(3 * kPixels);
  std::fill(conditions.begin() + kPixels, conditions.begin() + 2 * kPixels, 0);
  std::fill(conditions.begin() + 2 * kPixels, conditions.end(), 255);
  const ddpm_generate_params p = params(3, 8, "ddim", 3);
  std::vector<unsigned char> ours(3 * kPixels);
  ASSERT_EQ(ddpm_translate(h.model, &p, conditions.data(), ours.data()), DDPM_OK) << ddpm_last_error();

  ddpm::DiffusionModel model = ddpm::load_diffusion_model(dir.string(), 2, ddpm::Precision::fp32);
  const std::vector<float> values = ddpm::to_float(conditions.data(), conditions.size());
  std::vector<float> expected(3 * kPixels);
  ddpm::translate_images(model, values.data(), 3, 8, trailing(model, "ddim", 3),
                         expected.data());
  EXPECT_EQ(ours, ddpm::to_uint8(expected.data(), expected.size()));
  EXPECT_FALSE(std::equal(ours.begin(), ours.begin() + kPixels, ours.begin() + kPixels)) << "conditions matter";

  std::vector<unsigned char> out(kPixels);
  ddpm_generate_params one = params(1, 0, "ddim", 2);
  expect_message(ddpm_generate(h.model, &one, out.data()), "image-conditioned");
  expect_message(ddpm_translate(h.model, &one, nullptr, out.data()), "conditions is NULL");
  ModelHandle plain(load(kModel, 1));
  expect_message(ddpm_translate(plain.model, &one, conditions.data(), out.data()), "not image-conditioned");
  fs::remove_all(dir);
}
