// configs/*.json (written by `ddpm info --config NAME --save-config`) stay equal to the built-in
// named configs, and their U-Nets have the documented sizes.
#include <gtest/gtest.h>

#include "ddpm/io/model_config.h"
#include "ddpm/nn/unet.h"

namespace ddpm {
namespace {

TEST(NamedConfigs, FilesInConfigsMatchTheBuiltInOnes) {
  const std::pair<const char*, int64_t> expected[] = {
      {"cifar10-ddpm", 35746307}, {"fmnist-small", 1623169}, {"fmnist-64", 6801409}};
  for (const auto& [name, params] : expected) {
    const UNet2DConfig file = read_unet_config(std::string(DDPM_SOURCE_DIR) + "/configs/" + name + ".json");
    const UNet2DConfig built_in = named_unet_config(name);
    EXPECT_EQ(file.block_out_channels, built_in.block_out_channels) << name;
    EXPECT_EQ(file.down_block_types, built_in.down_block_types) << name;
    EXPECT_EQ(file.up_block_types, built_in.up_block_types) << name;
    EXPECT_EQ(file.sample_height, built_in.sample_height) << name;
    EXPECT_EQ(file.in_channels, built_in.in_channels) << name;
    EXPECT_EQ(file.dropout, built_in.dropout) << name;
    EXPECT_EQ(file.norm_eps, built_in.norm_eps) << name;
    EXPECT_EQ(UNet2D(file, 1, Precision::fp32, false).parameter_count(), params) << name;
  }
}

}  // namespace
}  // namespace ddpm
