// `ddpm eval fd`: sample quality in the feature space of the project's Fashion-MNIST classifier.
// Generates samples from a model (or reads them from an NPY file), and prints their Fréchet distance
// to the test set, the classifier score and the class-histogram entropy, next to the reference
// points that give those numbers meaning: real training images (the floor), the same with noise.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ddpm/data/dataset.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/eval/sample_quality.h"
#include "ddpm/image/png.h"
#include "ddpm/io/npy.h"
#include "ddpm/nn/classifier.h"
#include "ddpm/train/trainer.h"
#include "class_flags.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "device_flag.h"
#include "eval_command.h"
#include "progress.h"
#include "sampler_flags.h"

namespace ddpm::app {

namespace {

struct FdOptions {
  std::string model, samples, classifier = "models/fmnist-classifier", data = "fashion-mnist", save_samples,
      precision = "fp32";
  SamplerFlags sampler;
  ClassFlags classes;
  std::vector<int32_t> requested;   // the class asked of each generated image (class-conditional)
  std::string sampler_description;  // set when generating
  int64_t n = 10000, batch = 250;
  uint64_t seed = 0;
  bool no_reference = false, json = false;
} opt;

// What the classifier says about one set of images.
struct SetScore {
  std::string name;
  int64_t count = 0;
  double fd = 0, score = 0, entropy = 0;
  std::vector<int64_t> histogram;
  std::vector<int32_t> predicted{};  // the classifier's class of each image
};

class Scorer {
 public:
  Scorer(Classifier& net, const FeatureStats& reference) : net_(net), reference_(reference) {}

  SetScore score(const std::string& name, const std::vector<float>& images) {
    const ClassifierConfig& c = net_.config();
    const int64_t per_item = c.height * c.width * c.channels;
    const int64_t n = static_cast<int64_t>(images.size()) / per_item;
    std::vector<float> features(static_cast<size_t>(n * c.feature_dim)), probabilities(static_cast<size_t>(n * c.num_classes));
    classify(net_, images.data(), n, features.data(), probabilities.data());
    SetScore s{name, n, frechet_distance(feature_stats(features.data(), n, c.feature_dim), reference_),
               classifier_score(probabilities.data(), n, c.num_classes), 0,
               class_histogram(probabilities.data(), n, c.num_classes)};
    s.entropy = histogram_entropy(s.histogram);
    for (int64_t i = 0; i < n; ++i) {
      const float* p = probabilities.data() + i * c.num_classes;
      s.predicted.push_back(static_cast<int32_t>(std::max_element(p, p + c.num_classes) - p));
    }
    return s;
  }

 private:
  Classifier& net_;
  const FeatureStats& reference_;
};

std::vector<float> dataset_images(const Dataset& data, int64_t count) {
  std::vector<float> images(static_cast<size_t>(count * data.image_size()));
  images_to_float(data, 0, count, images.data());
  return images;
}

// x + σ z, clipped to [−1, 1] and rounded to 8 bits, as a saved noisy image would be.
std::vector<float> with_noise(const std::vector<float>& images, float sigma, uint64_t seed) {
  std::vector<float> noisy(images.size());
  NoiseRng rng(seed, 0);
  rng.fill_normal(noisy.data(), static_cast<int64_t>(noisy.size()));
  for (size_t i = 0; i < noisy.size(); ++i) noisy[i] = std::clamp(images[i] + sigma * noisy[i], -1.0f, 1.0f);
  std::vector<uint8_t> pixels = to_uint8(noisy.data(), noisy.size());
  return to_float(pixels.data(), pixels.size());
}

// Reads what `ddpm sample --npy` writes: pixel values 0..255 as [N, H, W, C] (NCHW is accepted too),
// into NHWC floats in [−1, 1].
std::vector<float> read_sample_npy(const std::string& path, const ClassifierConfig& c) {
  const NpyArray a = read_npy(path);
  const auto& s = a.shape;
  const bool nhwc = s.size() == 4 && s[1] == c.height && s[2] == c.width && s[3] == c.channels;
  const bool nchw = s.size() == 4 && s[1] == c.channels && s[2] == c.height && s[3] == c.width;
  if (!nhwc && !nchw)
    throw std::invalid_argument(path + ": expected images [N, " + std::to_string(c.height) + ", " +
                                std::to_string(c.width) + ", " + std::to_string(c.channels) +
                                "] (or NCHW) with pixel values 0..255, as `ddpm sample --npy` writes");
  if (s[0] < 2) throw std::invalid_argument(path + ": needs at least 2 images for a covariance");
  const std::vector<float> values = a.to_f32();
  std::vector<float> images(values.size());
  const int64_t n = s[0], hw = c.height * c.width, ch = c.channels;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t k = 0; k < ch; ++k) {
        const float v = nhwc ? values[(i * hw + p) * ch + k] : values[(i * ch + k) * hw + p];
        if (!(v >= 0.0f && v <= 255.0f))
          throw std::invalid_argument(path + ": pixel value " + std::to_string(v) +
                                      " outside 0..255 (the file should hold 8-bit pixel values)");
        images[(i * hw + p) * ch + k] = v / 127.5f - 1.0f;
      }
  return images;
}

std::vector<float> generate_samples(const ClassifierConfig& c) {
  const ModelDir dir = open_model_dir(opt.model);
  opt.requested = image_classes(opt.classes, dir.unet, opt.n);
  DiffusionModel model = load_diffusion_model(opt.model, std::min(opt.batch, opt.n), parse_precision(opt.precision),
                                              guidance_scale(opt.classes, dir.unet), selected_device());
  model.comm = &world();  // under mpirun: the batches spread over the processes, scored on rank 0
  const UNet2DConfig& u = model.dir.unet;
  if (u.sample_height != c.height || u.sample_width != c.width || u.in_channels != c.channels)
    throw std::invalid_argument(opt.model + " makes " + std::to_string(u.sample_height) + "x" +
                                std::to_string(u.sample_width) + "x" + std::to_string(u.in_channels) +
                                " images, but the classifier " + opt.classifier + " takes " + std::to_string(c.height) +
                                "x" + std::to_string(c.width) + "x" + std::to_string(c.channels));
  const SamplerOptions sampler = sampler_options(opt.sampler, model.dir.scheduler);
  opt.sampler_description = describe_sampler(sampler, model.schedule.num_timesteps()) + describe_classes(opt.classes, u);
  std::vector<float> images(static_cast<size_t>(opt.n * model.per_item()));
  const bool root = world().is_root();
  if (root)
    std::fprintf(stderr, "generating %lld images: %s\n", static_cast<long long>(opt.n), opt.sampler_description.c_str());
  const int64_t calls = generation_calls(model, opt.n, sampler);
  ProgressBar bar("generate", calls, "step");
  generate_images(
      model, opt.n, opt.seed, sampler, images.data(),
      [&](int64_t d, int64_t total) {
        if (root) bar.update(d * calls / std::max<int64_t>(total, 1));
      },
      nullptr, opt.requested.empty() ? nullptr : opt.requested.data());
  if (root) bar.finish();
  // Scored as saved: rounded to 8-bit pixels.
  const std::vector<uint8_t> pixels = to_uint8(images.data(), images.size());
  if (!opt.save_samples.empty() && root) {
    const std::vector<float> values(pixels.begin(), pixels.end());
    write_npy(opt.save_samples, values.data(), {opt.n, c.height, c.width, c.channels});
    std::fprintf(stderr, "wrote %s\n", opt.save_samples.c_str());
  }
  return to_float(pixels.data(), pixels.size());
}

const char* const kFashionMnistClasses[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

void print_row(const SetScore& s) {
  std::printf("  %-34s %7lld %10.3f %8.3f %10.3f\n", s.name.c_str(), static_cast<long long>(s.count), s.fd, s.score,
              s.entropy);
}

nlohmann::json as_json(const SetScore& s) {
  return {{"name", s.name}, {"images", s.count}, {"fd", s.fd}, {"classifier_score", s.score},
          {"class_entropy", s.entropy}, {"class_histogram", s.histogram}};
}

}  // namespace

CLI::App* add_eval_fd_command(CLI::App& eval) {
  CLI::App* cmd = eval.add_subcommand("fd", "Sample quality: Frechet distance in the classifier's features, and more");
  auto* model = cmd->add_option("--model", opt.model, "diffusers model directory to sample from");
  auto* samples = cmd->add_option("--samples", opt.samples, "score these images instead (NPY of 0..255 pixels, as sample --npy writes)");
  model->excludes(samples);
  cmd->add_option("--n", opt.n, "images to generate")->check(CLI::Range(int64_t{2}, int64_t{1} << 24))->capture_default_str();
  cmd->add_option("--batch", opt.batch, "images per U-Net call")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--seed", opt.seed, "seed of the samples")->capture_default_str();
  add_sampler_flags(cmd, opt.sampler);
  add_class_flags(cmd, opt.classes);
  cmd->add_option("--precision", opt.precision, "fp32 | bf16")->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
  cmd->add_option("--save-samples", opt.save_samples, "also write the generated images as NPY (0..255, NHWC)");
  cmd->add_option("--classifier", opt.classifier, "classifier model directory (ddpm train-classifier)")->capture_default_str();
  cmd->add_option("--data", opt.data, "dataset whose test split is the reference")->capture_default_str();
  cmd->add_flag("--no-reference", opt.no_reference, "skip the reference points (training images, clean and noisy)");
  cmd->add_flag("--json", opt.json, "also print the results as one JSON object");
  return cmd;
}

int run_eval_fd_command() {
  if (opt.model.empty() && opt.samples.empty()) throw std::invalid_argument("eval fd: give --model DIR or --samples FILE.npy");
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<Classifier> net = load_classifier(opt.classifier, 500);
  const ClassifierConfig& c = net->config();
  const std::vector<float> candidates = opt.samples.empty() ? generate_samples(c) : read_sample_npy(opt.samples, c);
  if (!world().is_root()) return 0;  // under mpirun the other processes helped generate; rank 0 scores
  const Dataset test = load_dataset(opt.data, Split::test, c.height, c.width, c.channels);
  if (test.height != c.height || test.width != c.width || test.channels != c.channels)
    throw std::invalid_argument(test.name + " images do not match the classifier " + opt.classifier);

  const std::vector<float> test_images = dataset_images(test, test.n);
  std::vector<float> test_features(static_cast<size_t>(test.n * c.feature_dim));
  classify(*net, test_images.data(), test.n, test_features.data(), nullptr);
  const FeatureStats reference = feature_stats(test_features.data(), test.n, c.feature_dim);
  Scorer scorer(*net, reference);

  const std::string what = opt.samples.empty() ? "samples (" + opt.sampler_description + ", seed " +
                                                   std::to_string(opt.seed) + ")"
                                               : opt.samples;
  const SetScore result = scorer.score(what, candidates);

  std::vector<SetScore> references;
  if (!opt.no_reference) {
    const Dataset train = load_dataset(opt.data, Split::train, c.height, c.width, c.channels);
    // At the samples' count: the Fréchet distance of a finite set is biased upwards, more so for
    // fewer images, so only figures at the same count compare.
    const int64_t count = std::min(result.count, train.n);
    const std::vector<float> train_images = dataset_images(train, count);
    references.push_back(scorer.score("training images (the floor)", train_images));
    for (const float sigma : {0.05f, 0.1f, 0.2f}) {
      char name[64];
      std::snprintf(name, sizeof name, "training images + noise sigma %.2f", sigma);
      references.push_back(scorer.score(name, with_noise(train_images, sigma, opt.seed + 1)));
    }
    references.push_back(scorer.score("test images (the reference)", test_images));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf("Features: %s (%lld-d); reference: %s (%lld images)\n", opt.classifier.c_str(),
              static_cast<long long>(c.feature_dim), test.name.c_str(), static_cast<long long>(test.n));
  std::printf("  %-34s %7s %10s %8s %10s\n", "set", "images", "FD", "score", "entropy");
  print_row(result);
  if (!references.empty()) std::printf("  reference points:\n");
  for (const SetScore& r : references) print_row(r);
  std::printf("  (score: exp E[KL(p(y|x) || p(y))], at most %lld; entropy of the predicted classes in nats, at most %.3f)\n",
              static_cast<long long>(c.num_classes), std::log(static_cast<double>(c.num_classes)));
  std::printf("  predicted classes of %s:", what.c_str());
  for (int64_t k = 0; k < c.num_classes; ++k) {
    if (c.num_classes == 10 && opt.data == "fashion-mnist")
      std::printf(" %s %lld%s", kFashionMnistClasses[k], static_cast<long long>(result.histogram[k]), k + 1 < c.num_classes ? "," : "\n");
    else
      std::printf(" %lld: %lld%s", static_cast<long long>(k), static_cast<long long>(result.histogram[k]),
                  k + 1 < c.num_classes ? "," : "\n");
  }
  // Class-conditional samples: how often the classifier sees the class that was asked for.
  std::vector<double> accuracy;
  if (!opt.classes.klass.empty() && !opt.requested.empty()) {
    std::vector<int64_t> asked(static_cast<size_t>(c.num_classes)), hit(static_cast<size_t>(c.num_classes));
    for (size_t i = 0; i < opt.requested.size(); ++i) {
      const auto k = static_cast<size_t>(opt.requested[i]);
      if (k >= asked.size()) continue;  // more model classes than the classifier knows
      ++asked[k];
      hit[k] += result.predicted[i] == opt.requested[i];
    }
    std::printf("  requested class recognised by the classifier (%s):\n", what.c_str());
    int64_t all_asked = 0, all_hit = 0;
    for (int64_t k = 0; k < c.num_classes; ++k) {
      const auto a = asked[static_cast<size_t>(k)], h = hit[static_cast<size_t>(k)];
      accuracy.push_back(a ? static_cast<double>(h) / static_cast<double>(a) : -1.0);
      if (!a) continue;
      all_asked += a, all_hit += h;
      const std::string name = c.num_classes == 10 && opt.data == "fashion-mnist" ? kFashionMnistClasses[k]
                                                                                   : std::to_string(k);
      std::printf("    %-12s %5lld / %5lld  %.3f\n", name.c_str(), static_cast<long long>(h), static_cast<long long>(a),
                  accuracy.back());
    }
    std::printf("    %-12s %5lld / %5lld  %.3f\n", "all", static_cast<long long>(all_hit),
                static_cast<long long>(all_asked), all_asked ? static_cast<double>(all_hit) / static_cast<double>(all_asked) : 0.0);
  }
  if (opt.json) {
    nlohmann::json refs = nlohmann::json::array();
    for (const SetScore& r : references) refs.push_back(as_json(r));
    nlohmann::json j = as_json(result);
    j["model"] = opt.model;
    j["classifier"] = opt.classifier;
    j["sampler"] = opt.samples.empty() ? opt.sampler_description : "";
    j["references"] = refs;
    if (!accuracy.empty()) j["class_accuracy"] = accuracy, j["guidance"] = opt.classes.guidance;
    j["seconds"] = seconds;
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace ddpm::app
