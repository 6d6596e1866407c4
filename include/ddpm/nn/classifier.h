// The image classifier behind `ddpm eval fd`: a small CNN whose penultimate layer gives the
// feature space of the Fréchet distance. Built from our own kernels with explicit forward and
// backward; parameters and gradients in flat buffers with names (like UNet2D), all memory planned
// at construction for a fixed batch, fp32.
//
//   conv3x3 C->w0, GN+SiLU
//   for each further width w_l:  conv3x3 stride 2 (pad (0,1), as diffusers' Downsample2D) w_{l-1}->w_l,
//                                GN+SiLU, conv3x3 w_l->w_l, GN+SiLU
//   global average pool -> Linear w_last->feature_dim -> SiLU   = features()
//   Linear feature_dim->num_classes                             = logits
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ddpm/nn/unet.h"  // ParamInfo

namespace ddpm {

struct ClassifierConfig {
  int64_t height = 28, width = 28, channels = 1, num_classes = 10, feature_dim = 128;
  std::vector<int64_t> widths{32, 64, 128};  // one per resolution; each step after the first halves it
  int64_t groups = 8;                        // group-norm groups; must divide every width
  float norm_eps = 1e-5f;

  // Throws std::invalid_argument naming the key for a value the network cannot be built from.
  void validate() const;
};

class Classifier {
 public:
  // Validates the config and plans all memory for `batch` images. training = false plans no
  // gradients (grads() is null and backward() throws): inference only.
  Classifier(const ClassifierConfig& cfg, int64_t batch, bool training);
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  const ClassifierConfig& config() const;
  int64_t batch() const;
  bool training() const;

  float* params();
  const float* params() const;
  float* grads();  // null unless training
  const float* grads() const;
  int64_t num_params() const;
  // Registration order: convs.0, norms.0, convs.1, norms.1, ..., feature_proj, head (PyTorch
  // layouts: conv [O,I,3,3], linear [out,in]).
  const std::vector<ParamInfo>& parameters() const;

  // PyTorch's default initialisation of Conv2d and Linear (weights and biases uniform in
  // +-1/sqrt(fan_in)), group-norm weight 1 and bias 0. Deterministic in seed; calls set_weights().
  void init_weights(uint64_t seed);
  // Hands params() to the ops. Call after every change of params(), before forward().
  void set_weights();

  // x: [batch, H, W, C] NHWC in [-1, 1]; logits: [batch, num_classes].
  void forward(const float* x_nhwc, float* logits);
  // [batch, feature_dim]: SiLU(feature_proj(pool(...))) of the last forward().
  const float* features() const;
  // Gradients of sum(dlogits * logits) for the last forward(), written (not accumulated) into grads().
  void backward(const float* dlogits);

  double forward_flops() const;  // convolutions and linear layers, per batch

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A classifier model directory: DIR/config.json (the ClassifierConfig), DIR/model.safetensors (F32
// tensors named as parameters()) and, when given, DIR/README.md (the model card). Written into a
// temporary sibling directory that then replaces DIR, so DIR is always complete. Refuses to replace
// a non-empty directory without config.json, and non-finite weights.
void save_classifier(const std::string& dir, const Classifier& net, const std::string& model_card = "");
// Reads DIR/config.json; errors name the file and the key.
ClassifierConfig read_classifier_config(const std::string& dir);
// Fills net.params() from DIR/model.safetensors and calls set_weights(). Every missing, unexpected
// or mis-shaped tensor is reported in one message naming the file; non-finite weights too.
void load_classifier_weights(const std::string& dir, Classifier& net);
// read_classifier_config + a Classifier for `batch` images (inference) + load_classifier_weights.
std::unique_ptr<Classifier> load_classifier(const std::string& dir, int64_t batch);

// Runs the classifier over n images (float NHWC in [-1, 1]) in batches of net.batch(), padding the
// last batch. Writes features [n, feature_dim] and softmax probabilities [n, num_classes], each
// optional (nullptr = skip).
void classify(Classifier& net, const float* images, int64_t n, float* features, float* probabilities);

}  // namespace ddpm
