// libFuzzer target: read_idx. The first input byte says how the rest reaches the file and what is
// asked of it: bits 0-1 the mode (0 or 3: as it is, a plain IDX file or any gzip bytes; 1: gzip-
// compressed by this target, so mutations of the IDX content also travel through a valid gzip
// stream; 2: compressed, then cut short by 1 + bits 4-7 bytes), bits 2-3 the dimension count
// read_idx is asked for, minus one.
#include <zlib.h>

#include "ddpm/data/idx.h"
#include "fuzz_input.h"

namespace {

std::string gzip(const uint8_t* data, size_t size) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) ddpm::fuzz::finding("deflateInit2");
  std::string out(deflateBound(&z, size) + 32, '\0');
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) ddpm::fuzz::finding("deflate");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int mode = data[0] & 3;
  const int ndims = 1 + ((data[0] >> 2) & 3);
  const size_t cut = 1 + (data[0] >> 4);
  const uint8_t* body = data + 1;
  const size_t n = size - 1;
  std::string bytes(reinterpret_cast<const char*>(body), n);
  if (mode == 1 || mode == 2) bytes = gzip(body, n);
  if (mode == 2) bytes.resize(bytes.size() - std::min(bytes.size(), cut));
  const std::string path = ddpm::fuzz::write_input("data-idx-ubyte.gz", reinterpret_cast<const uint8_t*>(bytes.data()),
                                                   bytes.size());
  ddpm::fuzz::expect_clean(path, [&] {
    const ddpm::IdxArray a = ddpm::read_idx(path, ndims);
    ddpm::fuzz::check(static_cast<int>(a.dims.size()) == ndims, "dims has ndims entries");
    ddpm::fuzz::check(a.data.size() == static_cast<size_t>(a.numel()), "data holds numel() bytes");
  });
  return 0;
}
