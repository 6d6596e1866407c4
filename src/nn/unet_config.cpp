// UNet2DConfig: validation and the built-in configurations.
#include "ddpm/nn/unet_config.h"

#include <stdexcept>

namespace ddpm {

namespace {

[[noreturn]] void reject(const std::string& key, const std::string& why) {
  throw std::invalid_argument("UNet2DModel config: " + key + " " + why);
}

}  // namespace

bool UNet2DConfig::level_has_attention(int64_t level) const {
  return down_block_types.at(static_cast<size_t>(level)) == "AttnDownBlock2D";
}

void UNet2DConfig::validate() const {
  if (sample_height <= 0 || sample_width <= 0) reject("sample_size", "must be positive");
  if (in_channels <= 0 || out_channels <= 0) reject("in_channels/out_channels", "must be positive");
  if (block_out_channels.empty()) reject("block_out_channels", "must list at least one level");
  if (layers_per_block <= 0) reject("layers_per_block", "must be positive");
  if (static_cast<int64_t>(down_block_types.size()) != levels() ||
      static_cast<int64_t>(up_block_types.size()) != levels())
    reject("down_block_types/up_block_types", "must have one entry per block_out_channels entry (" +
                                                  std::to_string(levels()) + ")");
  for (size_t i = 0; i < down_block_types.size(); ++i) {
    const std::string& t = down_block_types[i];
    if (t != "DownBlock2D" && t != "AttnDownBlock2D")
      reject("down_block_types[" + std::to_string(i) + "]", "is \"" + t + "\"; supported: DownBlock2D, AttnDownBlock2D");
    // Up blocks mirror the down blocks: up level i serves down level (levels - 1 - i).
    const std::string& u = up_block_types[i];
    if (u != "UpBlock2D" && u != "AttnUpBlock2D")
      reject("up_block_types[" + std::to_string(i) + "]", "is \"" + u + "\"; supported: UpBlock2D, AttnUpBlock2D");
  }
  if (mid_block_type != "UNetMidBlock2D") reject("mid_block_type", "is \"" + mid_block_type + "\"; supported: UNetMidBlock2D");
  if (norm_num_groups <= 0) reject("norm_num_groups", "must be positive");
  for (int64_t c : block_out_channels)
    if (c <= 0 || c % norm_num_groups != 0)
      reject("block_out_channels", "entries must be positive multiples of norm_num_groups (" +
                                       std::to_string(norm_num_groups) + "), got " + std::to_string(c));
  if (block_out_channels[0] % 2 != 0) reject("block_out_channels[0]", "must be even (timestep embedding)");
  if (!(norm_eps > 0)) reject("norm_eps", "must be positive");
  if (act_fn != "silu" && act_fn != "swish") reject("act_fn", "is \"" + act_fn + "\"; supported: silu");
  if (downsample_padding != 0 && downsample_padding != 1) reject("downsample_padding", "must be 0 or 1");
  if (!(dropout >= 0 && dropout < 1)) reject("dropout", "must be in [0, 1)");
  if (attention_head_dim) {
    for (size_t i = 0; i < block_out_channels.size(); ++i)
      if (level_has_attention(static_cast<int64_t>(i)) && *attention_head_dim != block_out_channels[i])
        reject("attention_head_dim", "must be null or equal to the channels of every attention level "
                                     "(multi-head attention is not implemented)");
  }
  if (time_embedding_type != "positional") reject("time_embedding_type", "is \"" + time_embedding_type + "\"; supported: positional");
  if (mid_block_scale_factor != 1.0f) reject("mid_block_scale_factor", "must be 1");
  if (center_input_sample) reject("center_input_sample", "must be false");
  if (resnet_time_scale_shift != "default") reject("resnet_time_scale_shift", "is \"" + resnet_time_scale_shift + "\"; supported: default");
  if (!add_attention) reject("add_attention", "must be true");
  if (num_class_embeds && (*num_class_embeds < 2 || *num_class_embeds > kMaxClassEmbeds))
    reject("num_class_embeds", "is " + std::to_string(*num_class_embeds) + "; must be null or in 2.." +
                                   std::to_string(kMaxClassEmbeds));
}

UNet2DConfig named_unet_config(const std::string& name) {
  UNet2DConfig c;
  if (name == "cifar10-ddpm") {
    c.dropout = 0.1f;  // the paper's training value; the released config.json says 0.0
  } else if (name == "fmnist-small" || name == "fmnist-64") {
    c.sample_height = c.sample_width = 28;
    c.in_channels = c.out_channels = 1;
    c.dropout = 0.1f;
    if (name == "fmnist-small") {
      c.block_out_channels = {32, 64, 64};
      c.down_block_types = {"DownBlock2D", "DownBlock2D", "AttnDownBlock2D"};
      c.up_block_types = {"AttnUpBlock2D", "UpBlock2D", "UpBlock2D"};
    } else {
      c.block_out_channels = {64, 128, 128};
      c.down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"};
      c.up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
    }
  } else {
    std::string known;
    for (const auto& n : named_unet_configs()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown config '" + name + "' (built-in: " + known + ", or a config.json path)");
  }
  c.validate();
  return c;
}

std::vector<std::string> named_unet_configs() { return {"cifar10-ddpm", "fmnist-small", "fmnist-64"}; }

}  // namespace ddpm
