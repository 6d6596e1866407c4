// safetensors files (HuggingFace's tensor container): the checkpoint format of diffusers model
// directories and of our training state. Reads F32, F16 and BF16; writes F32.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ddpm {

struct SafeTensor {
  std::string name;
  std::string dtype;           // "F32", "F16" or "BF16"
  std::vector<int64_t> shape;  // any rank, possibly empty (a scalar)
  uint64_t data_begin = 0;     // byte offsets into the data section (after the header)
  uint64_t data_end = 0;

  int64_t numel() const;
};

// An open, fully validated safetensors file. Opening reads and checks only the header (length,
// JSON, dtypes, shapes, offsets covering the data section without gaps or overlaps, as the format
// requires); tensor data is read on demand. Every error names the file, and the tensor where
// there is one.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // In file order (by data offset).
  const std::vector<SafeTensor>& tensors() const { return tensors_; }
  // nullptr when the file has no tensor of that name.
  const SafeTensor* find(const std::string& name) const;
  // The "__metadata__" entry (string to string); empty when absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Reads tensor `name` into out[0, count), converting F16/BF16 to float32; `count` must equal the
  // tensor's element count. Throws naming the file and tensor when it is missing or the file is
  // short (changed since open).
  void read_f32(const std::string& name, float* out, size_t count);
  std::vector<float> read_f32(const std::string& name);

 private:
  std::string path_;
  std::vector<SafeTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_start_ = 0;  // file offset of the data section
  std::unique_ptr<std::ifstream> in_;
};

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) float32 values, C order
};

// Writes F32 tensors in the given order, contiguous from offset 0, with the header padded by
// spaces to a multiple of 8 bytes (as the reference implementation does). Atomic: written to
// PATH.tmp, flushed to disk, then renamed over PATH. Metadata, when not empty, is written as
// "__metadata__".
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Largest header accepted when reading (the reference implementation's limit).
inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

}  // namespace ddpm
