#include "class_flags.h"

#include <stdexcept>

namespace ddpm::app {

void add_class_flags(CLI::App* cmd, ClassFlags& flags) {
  cmd->add_option("--class", flags.klass,
                  "class-conditional models: draw every image as class K, or 'all' (every class in turn: `sample` "
                  "draws --n per class, a grid row each); default: unconditional (the null class)");
  cmd->add_option("--guidance", flags.guidance,
                  "classifier-free guidance W: eps_uncond + W (eps_cond - eps_uncond); 1 = the conditional model, "
                  "0 = unconditional; W != 1 costs a second U-Net pass per step (batched with the first)")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
}

std::vector<int32_t> image_classes(const ClassFlags& flags, const UNet2DConfig& cfg, int64_t n) {
  if (!cfg.num_class_embeds) {
    if (!flags.klass.empty())
      throw std::invalid_argument("--class " + flags.klass + ": this model is not class-conditional (its " +
                                  "unet/config.json has no num_class_embeds); train one with --class-conditional");
    return {};
  }
  const int64_t classes = cfg.class_count() - 1;  // the last row is the null class
  std::vector<int32_t> labels(static_cast<size_t>(n), static_cast<int32_t>(classes));
  if (flags.klass.empty()) return labels;
  if (flags.klass == "all") {
    for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<int32_t>(i * classes / n);
    return labels;
  }
  size_t used = 0;
  long long k = -1;
  try {
    k = std::stoll(flags.klass, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != flags.klass.size() || k < 0 || k >= classes)
    throw std::invalid_argument("--class " + flags.klass + ": give a class in 0.." + std::to_string(classes - 1) +
                                " or 'all' (the model has " + std::to_string(classes) + " classes)");
  std::fill(labels.begin(), labels.end(), static_cast<int32_t>(k));
  return labels;
}

double guidance_scale(const ClassFlags& flags, const UNet2DConfig& cfg) {
  return cfg.num_class_embeds && !flags.klass.empty() ? flags.guidance : 1.0;
}

std::string describe_classes(const ClassFlags& flags, const UNet2DConfig& cfg) {
  if (!cfg.num_class_embeds) return "";
  if (flags.klass.empty()) return ", unconditional (null class)";
  char w[32];
  std::snprintf(w, sizeof w, "%g", flags.guidance);
  const std::string which = flags.klass == "all" ? "classes 0-" + std::to_string(cfg.class_count() - 2)
                                                 : "class " + flags.klass;
  return ", " + which + ", guidance " + w;
}

}  // namespace ddpm::app
