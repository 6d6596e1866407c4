// IDX reader (gzip or plain, through zlib) and the Fashion-MNIST loader. Validates before allocating.
#include "ddpm/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace ddpm {

namespace {

// Generous for any IDX dataset, and bounds what a corrupt header can make us allocate.
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr int64_t kMaxBytes = int64_t{1} << 32;
constexpr unsigned kChunk = 1u << 20;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": not a valid IDX file: " + what);
}

std::string hex32(uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(dims[i]);
  }
  s += ']';
  return s;
}

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// Reads up to `len` bytes; returns how many arrived. A damaged stream is an error, a clean end is not.
size_t read_some(gzFile f, void* buf, size_t len, const std::string& path) {
  size_t got = 0;
  while (got < len) {
    const unsigned ask = static_cast<unsigned>(std::min<size_t>(len - got, kChunk));
    const int r = gzread(f, static_cast<char*>(buf) + got, ask);
    int err = Z_OK;
    const char* msg = gzerror(f, &err);
    if (r < 0 || (err != Z_OK && err != Z_BUF_ERROR)) fail(path, std::string("corrupt gzip stream (zlib: ") + msg + ")");
    if (err == Z_BUF_ERROR)
      fail(path, "truncated gzip stream (zlib: " + std::string(msg) + ") after " +
                     std::to_string(got + static_cast<size_t>(std::max(r, 0))) + " data bytes");
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

std::string missing_hint() {
  return " (install the Debian package: apt-get install dataset-fashion-mnist, or run scripts/setup)";
}

}  // namespace

int64_t IdxArray::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

IdxArray read_idx(const std::string& path, int ndims) {
  if (ndims < 1 || ndims > 4) throw std::invalid_argument(path + ": read_idx: ndims must be 1..4");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw std::runtime_error(path + ": no such file");
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw std::runtime_error(path + ": cannot open");
  gzbuffer(f.get(), 1u << 17);

  unsigned char magic[4];
  const size_t got_magic = read_some(f.get(), magic, 4, path);
  if (got_magic < 4) fail(path, "file too short for the magic number (" + std::to_string(got_magic) + " bytes)");
  const uint32_t m = (uint32_t{magic[0]} << 24) | (uint32_t{magic[1]} << 16) | (uint32_t{magic[2]} << 8) | magic[3];
  const uint32_t expected = 0x800u | static_cast<uint32_t>(ndims);
  if (m != expected) {
    std::string what = "bad magic " + hex32(m) + ", expected " + hex32(expected) + " (unsigned bytes, " +
                       std::to_string(ndims) + " dimension" + (ndims > 1 ? "s" : "") + ")";
    if (magic[0] == 0 && magic[1] == 0 && magic[2] == 0x08)
      what += ": this file has " + std::to_string(magic[3]) + " dimensions" +
              (magic[3] == 1 ? " (labels?)" : magic[3] == 3 ? " (images?)" : "");
    else if (magic[0] == 0 && magic[1] == 0)
      what += ": element type " + hex32(magic[2]) + " is not unsigned byte (0x08)";
    fail(path, what);
  }

  IdxArray a;
  int64_t bytes = 1;
  for (int i = 0; i < ndims; ++i) {
    unsigned char b[4];
    if (read_some(f.get(), b, 4, path) < 4) fail(path, "truncated header (dimension " + std::to_string(i) + ")");
    const int64_t d = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    if (d <= 0 || d >= kMaxDim) fail(path, "dimension " + std::to_string(i) + " is " + std::to_string(d));
    a.dims.push_back(d);
    bytes *= d;
    if (bytes > kMaxBytes)
      fail(path, "dimensions " + dims_text(a.dims) + " claim more than " + std::to_string(kMaxBytes) + " bytes");
  }

  // The dimensions only say what the file claims; allocate no more than the file actually holds.
  // A compressed file can expand up to ~1032x (deflate's limit), a plain one not at all.
  std::error_code size_ec;
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(path, size_ec));
  const bool compressed = gzdirect(f.get()) == 0;
  const int64_t header_bytes = 4 + 4 * int64_t{ndims};
  const int64_t most_present = size_ec ? kMaxBytes : compressed ? file_bytes * 1032 : file_bytes - header_bytes;
  if (bytes > most_present)
    fail(path, "dimensions " + dims_text(a.dims) + " need " + std::to_string(bytes) + " data bytes, the file " +
                   (compressed ? "can hold at most " : "holds ") + std::to_string(std::max<int64_t>(most_present, 0)));

  // Even within that bound, memory grows only with the data that actually arrives: a gzip file
  // that claims more than it holds costs what it holds, not what it claims.
  size_t got = 0;
  for (size_t want = std::min<size_t>(static_cast<size_t>(bytes), kChunk); got < static_cast<size_t>(bytes);) {
    a.data.reserve(got + want);  // exactly: the last step ends at `bytes`, with no slack
    a.data.resize(got + want);
    const size_t r = read_some(f.get(), a.data.data() + got, want, path);
    got += r;
    if (r < want) break;
    want = std::min(static_cast<size_t>(bytes) - got, std::max<size_t>(got, kChunk));
  }
  a.data.resize(got);
  if (got < static_cast<size_t>(bytes))
    fail(path, "dimensions " + dims_text(a.dims) + " need " + std::to_string(bytes) + " data bytes, the file holds " +
                   std::to_string(got));
  unsigned char extra;
  if (read_some(f.get(), &extra, 1, path) != 0)
    fail(path, "trailing data after the " + std::to_string(bytes) + " bytes of dimensions " + dims_text(a.dims));
  return a;
}

Dataset load_fashion_mnist(const std::string& dir, Split split) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  auto locate = [&](const std::string& stem) {
    const std::string gz = dir + "/" + stem + ".gz";
    std::error_code ec;
    if (std::filesystem::is_regular_file(gz, ec)) return gz;
    if (std::filesystem::is_regular_file(dir + "/" + stem, ec)) return dir + "/" + stem;
    throw std::runtime_error(gz + ": Fashion-MNIST file not found" + missing_hint());
  };
  const std::string images_path = locate(prefix + "-images-idx3-ubyte");
  const std::string labels_path = locate(prefix + "-labels-idx1-ubyte");

  // Labels first: they are small, and a mismatch is found before the big file is decoded.
  IdxArray labels = read_idx(labels_path, 1);
  IdxArray images = read_idx(images_path, 3);
  if (images.dims[0] != labels.dims[0])
    throw std::runtime_error(images_path + ": holds " + std::to_string(images.dims[0]) + " images, but " +
                             labels_path + " holds " + std::to_string(labels.dims[0]) + " labels");

  Dataset d;
  d.name = "fashion-mnist " + std::string(split_name(split));
  d.n = images.dims[0];
  d.height = images.dims[1];
  d.width = images.dims[2];
  d.channels = 1;
  d.num_classes = 10;
  d.images = std::move(images.data);
  d.labels.resize(static_cast<size_t>(d.n));
  for (int64_t i = 0; i < d.n; ++i) {
    const uint8_t l = labels.data[static_cast<size_t>(i)];
    if (l >= 10)
      throw std::runtime_error(labels_path + ": label " + std::to_string(l) + " at index " + std::to_string(i) +
                               " is out of range (expected 0..9)");
    d.labels[static_cast<size_t>(i)] = l;
  }
  return d;
}

}  // namespace ddpm
