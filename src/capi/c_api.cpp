// The C interface (include/ddpm.h) over the library's generation and editing pipelines
// (pipeline/): every call holds the library lock, and catches what the library throws and turns it
// into a status and this thread's last-error message, so no C++ exception crosses into C.
#include "ddpm.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/image/png.h"
#include "ddpm/kernels/cuda/runtime.h"
#include "ddpm/kernels/precision.h"
#include "ddpm/log.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "ddpm/pipeline/editing_pipeline.h"
#include "ddpm/pipeline/sampler_choice.h"

struct ddpm_model {
  ddpm::DiffusionModel model;
  int threads = 0;  // OpenMP threads for this model's calls; 0: the caller's setting
};

namespace {

thread_local std::string last_error;

// The library's CPU backend shares one oneDNN stream and a registry of primitives between all
// models, so calls run one at a time; each call uses every core through OpenMP. Recursive: a
// progress callback may call back into the library.
std::recursive_mutex library_lock;

// Thrown through the sampler when the progress callback asks to stop.
struct Cancelled {};

template <typename F>
ddpm_status guarded(const char* function, F&& body) {
  const std::lock_guard<std::recursive_mutex> hold(library_lock);
  last_error.clear();
  try {
    body();
    return DDPM_OK;
  } catch (const Cancelled&) {
    last_error = std::string(function) + ": cancelled by the progress callback";
    return DDPM_CANCELLED;
  } catch (const std::exception& e) {
    last_error = std::string(function) + ": " + e.what();
  } catch (...) {
    last_error = std::string(function) + ": unknown error";
  }
  return DDPM_ERROR;
}

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

ddpm::Device parse_device_name(const char* name) {
  const std::string s = name ? name : "cpu";
  if (s == "cpu") return ddpm::Device::cpu;
  if (s == "cuda") {
    ddpm::cuda::require_device("device \"cuda\"");  // says why not: no CUDA backend built, or no GPU
    return ddpm::Device::cuda;
  }
  throw std::invalid_argument("device \"" + s + "\": expected \"cpu\" or \"cuda\"");
}

// The model's thread count for the duration of a call, then the caller's own setting again
// (omp_set_num_threads changes the calling thread's default for everything it runs later).
class ThreadsFor {
 public:
  explicit ThreadsFor(const ddpm_model* model) : saved_(omp_get_max_threads()) {
    if (model != nullptr && model->threads > 0) omp_set_num_threads(model->threads);
  }
  ~ThreadsFor() { omp_set_num_threads(saved_); }
  ThreadsFor(const ThreadsFor&) = delete;
  ThreadsFor& operator=(const ThreadsFor&) = delete;

 private:
  int saved_;
};

// The sampler and classes a call asks for, after checking every parameter against the model.
struct Request {
  ddpm::SamplerOptions sampler;
  std::vector<int32_t> classes;
  const int32_t* class_labels() const { return classes.empty() ? nullptr : classes.data(); }
};

enum class Conditioning { none, image };

Request checked_request(ddpm_model* handle, const ddpm_generate_params* params, const void* out,
                        Conditioning conditioning = Conditioning::none) {
  require(handle != nullptr, "model is NULL");
  require(params != nullptr, "params is NULL (fill them with ddpm_generate_params_init)");
  require(out != nullptr, "the output buffer is NULL");
  require(params->n > 0, "n = " + std::to_string(params->n) + ": ask for at least one image");
  ddpm::DiffusionModel& model = handle->model;
  const ddpm::UNet2DConfig& cfg = model.dir.unet;
  if (conditioning == Conditioning::none)
    require(model.dir.condition_channels() == 0,
            "this model is image-conditioned (it generates from a condition image): use ddpm_translate");
  else
    require(model.dir.condition_channels() > 0,
            "this model is not image-conditioned (in_channels = out_channels): use ddpm_generate");

  ddpm::SamplerChoice choice;
  choice.sampler = params->sampler ? params->sampler : "ddpm";
  choice.spacing = params->spacing ? params->spacing : "";
  require(params->steps >= 0, "steps = " + std::to_string(params->steps) + ": expected 0 (the default) or more");
  choice.steps = params->steps;
  choice.eta = params->eta;
  require(choice.eta >= 0.0, "eta must be 0 or more");
  choice.no_clip = params->no_clip != 0;
  choice.clipped_eps = params->clipped_eps != 0;
  Request request{ddpm::sampler_options(choice, model.dir.scheduler), {}};

  if (params->classes != nullptr) {
    require(cfg.num_class_embeds > 0, "classes given, but this model is not class-conditional");
    const int64_t k = cfg.class_count() - 1;
    request.classes.assign(params->classes, params->classes + params->n);
    for (int i = 0; i < params->n; ++i)
      require(request.classes[static_cast<size_t>(i)] >= 0 && request.classes[static_cast<size_t>(i)] < k,
              "classes[" + std::to_string(i) + "] = " + std::to_string(request.classes[static_cast<size_t>(i)]) +
                  ": this model has classes 0.." + std::to_string(k - 1));
  }
  return request;
}

// The callback as the pipeline's progress: a nonzero return stops the work.
ddpm::SampleProgress progress_of(const ddpm_generate_params* params) {
  return [params](int64_t done, int64_t total) {
    if (params->progress && params->progress(done, total, params->user_data) != 0) throw Cancelled{};
  };
}

// The images' values in [-1, 1] into `out`, for a request already checked.
void generate(ddpm_model* handle, const ddpm_generate_params* params, const Request& request, float* out) {
  const ThreadsFor threads(handle);
  if (params->init_noise != nullptr)
    for (int64_t i = 0, n = params->n * handle->model.per_item(); i < n; ++i)
      require(std::isfinite(params->init_noise[i]), "init_noise[" + std::to_string(i) + "] is not finite");
  ddpm::generate_images(handle->model, params->n, params->seed, request.sampler, out, progress_of(params),
                        params->init_noise, request.class_labels());
}

// Runs edit(request, image values, out values) and converts the results to bytes.
template <typename Edit>
void edit_image(ddpm_model* handle, const ddpm_generate_params* params, const unsigned char* image,
                unsigned char* pixels, Edit&& edit) {
  Request request = checked_request(handle, params, pixels);
  require(image != nullptr, "image is NULL");
  const int64_t per_item = handle->model.per_item();
  const std::vector<float> values = ddpm::to_float(image, static_cast<size_t>(per_item));
  std::vector<float> out(static_cast<size_t>(params->n * per_item));
  const ThreadsFor threads(handle);
  edit(request, values.data(), out.data());
  ddpm::to_uint8(out.data(), out.size(), pixels);
}

}  // namespace

extern "C" {

const char* ddpm_version(void) { return DDPM_VERSION_STRING; }

const char* ddpm_last_error(void) { return last_error.c_str(); }

void ddpm_load_params_init(ddpm_load_params* params) {
  if (!params) return;
  *params = ddpm_load_params{};
  params->batch = 16;
  params->precision = "fp32";
  params->device = "cpu";
  params->guidance = 1.0;
  params->threads = 0;
}

void ddpm_set_log_callback(ddpm_log_callback callback, void* user_data) {
  if (callback == nullptr) return ddpm::set_log_sink(nullptr);
  ddpm::set_log_sink([callback, user_data](ddpm::LogLevel level, const std::string& message) {
    callback(level == ddpm::LogLevel::note ? DDPM_LOG_NOTE : DDPM_LOG_WARNING, message.c_str(), user_data);
  });
}

ddpm_model* ddpm_model_load(const char* model_dir, const ddpm_load_params* params) {
  ddpm_load_params p;
  ddpm_load_params_init(&p);
  if (params) p = *params;
  ddpm_model* loaded = nullptr;
  guarded("ddpm_model_load", [&] {
    require(model_dir != nullptr, "model_dir is NULL");
    require(p.batch > 0, "batch = " + std::to_string(p.batch) + ": expected at least 1");
    require(p.threads >= 0, "threads = " + std::to_string(p.threads) + ": expected 0 (the default) or more");
    require(p.guidance == p.guidance, "guidance is NaN");
    const ddpm::Precision precision = ddpm::parse_precision(p.precision ? p.precision : "fp32");
    const ddpm::Device device = parse_device_name(p.device);
    ddpm::DiffusionModel model = ddpm::load_diffusion_model(model_dir, p.batch, precision, p.guidance, device);
    require(p.guidance == 1.0 || model.dir.unet.num_class_embeds > 0,
            std::string(model_dir) + ": guidance " + std::to_string(p.guidance) +
                " needs a class-conditional model (this one has no class embedding); use 1");
    loaded = new ddpm_model{std::move(model), p.threads};
  });
  return loaded;
}

void ddpm_model_free(ddpm_model* model) {
  const std::lock_guard<std::recursive_mutex> hold(library_lock);
  delete model;
}

ddpm_status ddpm_model_get_info(const ddpm_model* model, ddpm_model_info* info) {
  return guarded("ddpm_model_get_info", [&] {
    require(model != nullptr, "model is NULL");
    require(info != nullptr, "info is NULL");
    const ddpm::ModelDir& dir = model->model.dir;
    *info = ddpm_model_info{};
    info->height = static_cast<int>(dir.unet.sample_height);
    info->width = static_cast<int>(dir.unet.sample_width);
    info->channels = static_cast<int>(dir.image_channels());
    info->num_classes = dir.unet.num_class_embeds ? static_cast<int>(dir.unet.class_count() - 1) : 0;
    info->condition_channels = static_cast<int>(dir.condition_channels());
    info->num_train_timesteps = static_cast<int>(dir.scheduler.num_train_timesteps);
    info->batch = static_cast<int>(model->model.batch());
    info->parameters = static_cast<long long>(model->model.net->parameter_count());
  });
}

void ddpm_generate_params_init(ddpm_generate_params* params) {
  if (!params) return;
  *params = ddpm_generate_params{};
  params->n = 1;
  params->sampler = "ddpm";
  params->strength = 0.6;
  params->jump_length = 10;
  params->jump_n_sample = 10;
}

ddpm_status ddpm_generate_float(ddpm_model* model, const ddpm_generate_params* params, float* images) {
  return guarded("ddpm_generate_float",
                 [&] { generate(model, params, checked_request(model, params, images), images); });
}

ddpm_status ddpm_generate(ddpm_model* model, const ddpm_generate_params* params, unsigned char* pixels) {
  return guarded("ddpm_generate", [&] {
    const Request request = checked_request(model, params, pixels);  // before the buffer is sized from them
    std::vector<float> images(static_cast<size_t>(params->n * model->model.per_item()));
    generate(model, params, request, images.data());
    ddpm::to_uint8(images.data(), images.size(), pixels);
  });
}

ddpm_status ddpm_img2img(ddpm_model* model, const ddpm_generate_params* params, const unsigned char* image,
                         unsigned char* pixels) {
  return guarded("ddpm_img2img", [&] {
    edit_image(model, params, image, pixels, [&](Request& request, const float* values, float* out) {
      require(params->strength > 0.0 && params->strength <= 1.0,
              "strength = " + std::to_string(params->strength) + ": expected a value in (0, 1]");
      request.sampler.strength = params->strength;
      ddpm::img2img_images(model->model, values, params->n, params->seed, request.sampler, out,
                           request.class_labels(), progress_of(params));
    });
  });
}

ddpm_status ddpm_inpaint(ddpm_model* model, const ddpm_generate_params* params, const unsigned char* image,
                         const unsigned char* mask, unsigned char* pixels) {
  return guarded("ddpm_inpaint", [&] {
    require(params == nullptr || params->sampler == nullptr || std::string(params->sampler) == "ddpm",
            "inpainting runs RePaint on the ddpm sampler; leave sampler at \"ddpm\"");
    edit_image(model, params, image, pixels, [&](Request& request, const float* values, float* out) {
      require(mask != nullptr, "mask is NULL");
      require(params->jump_length >= 1 && params->jump_n_sample >= 1,
              "jump_length and jump_n_sample must be 1 or more");
      const ddpm::DiffusionModel& m = model->model;
      const std::vector<float> keep = ddpm::keep_from_mask(
          mask, m.dir.unet.sample_height * m.dir.unet.sample_width, m.dir.image_channels(), "mask");
      if (params->steps == 0) {
        ddpm::SamplerChoice choice;
        choice.steps = 250;  // RePaint's setting
        choice.spacing = params->spacing ? params->spacing : "";
        choice.no_clip = params->no_clip != 0;
        request.sampler = ddpm::sampler_options(choice, m.dir.scheduler);
      }
      ddpm::RepaintOptions repaint;
      repaint.jump_length = params->jump_length;
      repaint.jump_n_sample = params->jump_n_sample;
      ddpm::inpaint_images(model->model, values, keep.data(), params->n, params->seed, request.sampler, repaint, out,
                           request.class_labels(), progress_of(params));
    });
  });
}

ddpm_status ddpm_translate(ddpm_model* model, const ddpm_generate_params* params, const unsigned char* conditions,
                           unsigned char* pixels) {
  return guarded("ddpm_translate", [&] {
    const Request request = checked_request(model, params, pixels, Conditioning::image);
    require(conditions != nullptr, "conditions is NULL");
    const ddpm::DiffusionModel& m = model->model;
    const int64_t per_condition = m.dir.unet.sample_height * m.dir.unet.sample_width * m.dir.condition_channels();
    const std::vector<float> values = ddpm::to_float(conditions, static_cast<size_t>(params->n * per_condition));
    std::vector<float> out(static_cast<size_t>(params->n * m.per_item()));
    const ThreadsFor threads(model);
    ddpm::translate_images(model->model, values.data(), params->n, params->seed, request.sampler, out.data(),
                           progress_of(params));
    ddpm::to_uint8(out.data(), out.size(), pixels);
  });
}

ddpm_status ddpm_write_png_grid(const char* path, const unsigned char* pixels, int n, int height, int width,
                                int channels, int columns) {
  return guarded("ddpm_write_png_grid", [&] {
    require(path != nullptr, "path is NULL");
    require(pixels != nullptr, "pixels is NULL");
    require(n > 0 && height > 0 && width > 0, "n, height and width must be positive");
    require(channels == 1 || channels == 3, "channels = " + std::to_string(channels) + ": expected 1 or 3");
    require(columns >= 0, "columns must be 0 (square) or more");
    int64_t cols = columns;
    if (cols == 0)
      while (cols * cols < n) ++cols;
    ddpm::write_png(path, ddpm::make_grid(pixels, n, height, width, channels, cols));
  });
}

}  // extern "C"
