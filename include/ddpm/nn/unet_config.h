// The U-Net's configuration, with the keys and meaning of diffusers' UNet2DModel config.json
// (facts §5.1), and the built-in named configurations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ddpm {

inline constexpr int64_t kMaxClassEmbeds = 100000;

struct UNet2DConfig {
  int64_t sample_height = 32;  // config.json "sample_size": an int, or [height, width]
  int64_t sample_width = 32;
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<int64_t> block_out_channels{128, 256, 256, 256};
  int64_t layers_per_block = 2;
  // DownBlock2D | AttnDownBlock2D, and UpBlock2D | AttnUpBlock2D; one per level.
  std::vector<std::string> down_block_types{"DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"};
  std::vector<std::string> up_block_types{"UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
  std::string mid_block_type = "UNetMidBlock2D";
  int64_t norm_num_groups = 32;
  float norm_eps = 1e-6f;
  std::string act_fn = "silu";
  bool flip_sin_to_cos = false;
  float freq_shift = 1.0f;
  int64_t downsample_padding = 0;  // diffusers pads (0,1) before the stride-2 conv when 0
  float dropout = 0.0f;
  std::optional<int64_t> attention_head_dim;  // null: one head over all channels
  // Keys that must keep diffusers' defaults (checked by validate()).
  std::string time_embedding_type = "positional";
  float mid_block_scale_factor = 1.0f;
  bool center_input_sample = false;
  std::string resnet_time_scale_shift = "default";
  bool add_attention = true;
  // Class-conditional: an embedding table of this many rows added to the time embedding
  // (diffusers' class_embed_type null + num_class_embeds). ddpm.cpp trains it with the last row as
  // the null class of classifier-free guidance, so a dataset of K classes gives K + 1.
  std::optional<int64_t> num_class_embeds;

  int64_t levels() const { return static_cast<int64_t>(block_out_channels.size()); }
  int64_t time_embedding_dim() const { return 4 * block_out_channels.at(0); }
  int64_t class_count() const { return num_class_embeds.value_or(0); }  // 0: unconditional
  bool level_has_attention(int64_t level) const;  // from down_block_types
  // Throws std::invalid_argument naming the key and the accepted values for anything this
  // implementation does not support (so an unsupported checkpoint never half-loads).
  void validate() const;
};

// "cifar10-ddpm" (google/ddpm-cifar10-32 with dropout 0.1), "fmnist-small", "fmnist-64".
UNet2DConfig named_unet_config(const std::string& name);
std::vector<std::string> named_unet_configs();

}  // namespace ddpm
