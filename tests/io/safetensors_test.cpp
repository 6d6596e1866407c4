// safetensors: round trip, files written by Python, files read by a Python reader, and a specific
// clear error (never a crash) for each kind of broken file.
#include "ddpm/io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "test_support.h"

namespace ddpm {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_st_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

int run_python(const std::string& script, const std::string& args) {
  const std::string py = temp_path("script.py");
  write_text(py, script);
  return std::system(("/usr/bin/python3 " + py + " " + args).c_str());
}

TEST(Safetensors, RoundTripKeepsOrderShapesValuesAndMetadata) {
  const auto a = test::random_normal(2 * 3 * 4, 1);
  const auto b = test::random_normal(5, 2);
  const float scalar = 3.5f;
  const std::string path = temp_path("roundtrip.safetensors");
  write_safetensors(path,
                    {{"z.weight", {2, 3, 4}, a.data()}, {"a.bias", {5}, b.data()}, {"s", {}, &scalar},
                     {"empty", {0, 3}, nullptr}},
                    {{"format", "pt"}, {"step", "12"}});
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 4u);
  // Written in the given order: z.weight first although it sorts last.
  EXPECT_EQ(f.tensors()[0].name, "z.weight");
  EXPECT_EQ(f.tensors()[0].shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(f.tensors()[0].dtype, "F32");
  EXPECT_EQ(f.find("s")->shape, std::vector<int64_t>{});
  EXPECT_EQ(f.find("empty")->numel(), 0);
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("step"), "12");
  EXPECT_EQ(f.read_f32("z.weight"), a);
  EXPECT_EQ(f.read_f32("a.bias"), b);
  EXPECT_EQ(f.read_f32("s"), std::vector<float>{3.5f});
  EXPECT_TRUE(f.read_f32("empty").empty());

  // Header padded with spaces to a multiple of 8.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);

  float wrong[3];
  EXPECT_THROW(f.read_f32("a.bias", wrong, 3), std::runtime_error);
  EXPECT_THROW(f.read_f32("nope"), std::runtime_error);
}

TEST(Safetensors, ReadsF32F16AndBF16WrittenByPython) {
  // The format written with plain struct/json, as safetensors' own serializer lays it out
  // (header keys unsorted here on purpose, so file order comes from the offsets).
  const char* script = R"PY(
import json, struct, sys
f32 = [1.5, -2.25, 3.0e-8, 1e30, 0.0, -7.0]
f16 = [1.0, -0.5, 65504.0, 2.0**-24, -0.0, float('inf'), 0.333251953125, -2.0**-14]
bf16 = [1.0, -3.0, 2.0**100, 0.15625, -2.0**-70]
d32 = struct.pack('<6f', *f32)
d16 = struct.pack('<8e', *f16)
db16 = b''.join(struct.pack('<f', v)[2:] for v in bf16)  # exact in bf16: keep the high half
header = {
  'b.half': {'dtype': 'F16', 'shape': [2, 4], 'data_offsets': [len(d32), len(d32) + len(d16)]},
  '__metadata__': {'format': 'pt'},
  'a.float': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, len(d32)]},
  'c.brain': {'dtype': 'BF16', 'shape': [5], 'data_offsets': [len(d32) + len(d16), len(d32) + len(d16) + len(db16)]},
}
h = json.dumps(header, separators=(',', ':')).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], 'wb') as out:
    out.write(struct.pack('<Q', len(h)) + h + d32 + d16 + db16)
)PY";
  const std::string path = temp_path("python.safetensors");
  ASSERT_EQ(run_python(script, path), 0) << "needs /usr/bin/python3";
  SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "a.float");
  EXPECT_EQ(f.tensors()[1].name, "b.half");
  EXPECT_EQ(f.tensors()[1].dtype, "F16");
  EXPECT_EQ(f.tensors()[1].shape, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(f.tensors()[2].dtype, "BF16");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.read_f32("a.float"), (std::vector<float>{1.5f, -2.25f, 3.0e-8f, 1e30f, 0.0f, -7.0f}));
  const auto h = f.read_f32("b.half");
  EXPECT_EQ(h, (std::vector<float>{1.0f, -0.5f, 65504.0f, 0x1p-24f, -0.0f, INFINITY, 0.333251953125f, -0x1p-14f}));
  EXPECT_TRUE(std::signbit(h[4]));
  EXPECT_EQ(f.read_f32("c.brain"), (std::vector<float>{1.0f, -3.0f, 0x1p100f, 0.15625f, -0x1p-70f}));
}

TEST(Safetensors, PythonReaderAcceptsWhatWeWrite) {
  // A reader written from the format specification, as strict as safetensors' own.
  const char* script = R"PY(
import json, struct, sys
path = sys.argv[1]
raw = open(path, 'rb').read()
n, = struct.unpack('<Q', raw[:8])
assert n % 8 == 0, 'header length %d not 8-aligned' % n
text = raw[8:8 + n].decode('utf-8')
assert text.startswith('{') and text.rstrip(' ').endswith('}'), 'header padding must be spaces'
header = json.loads(text)
assert header.pop('__metadata__') == {'format': 'pt'}
assert list(header) == ['conv.weight', 'conv.bias', 'scalar'], list(header)
data = raw[8 + n:]
end = 0
for name, info in header.items():
    assert set(info) == {'dtype', 'shape', 'data_offsets'}, info
    assert info['dtype'] == 'F32'
    b, e = info['data_offsets']
    assert b == end, (name, b, end)
    count = 1
    for d in info['shape']:
        count *= d
    assert e - b == 4 * count
    end = e
assert end == len(data), (end, len(data))
assert header['conv.weight']['shape'] == [2, 1, 3, 3]
assert header['scalar']['shape'] == []
w = struct.unpack('<18f', data[0:72])
assert w == tuple(0.25 * i - 2.0 for i in range(18)), w
assert struct.unpack('<2f', data[72:80]) == (-1.0, 0.5)
assert struct.unpack('<f', data[80:84]) == (42.0,)
)PY";
  std::vector<float> w(18);
  for (int i = 0; i < 18; ++i) w[static_cast<size_t>(i)] = 0.25f * static_cast<float>(i) - 2.0f;
  const float bias[2] = {-1.0f, 0.5f};
  const float scalar = 42.0f;
  const std::string path = temp_path("ours.safetensors");
  write_safetensors(path, {{"conv.weight", {2, 1, 3, 3}, w.data()}, {"conv.bias", {2}, bias}, {"scalar", {}, &scalar}},
                    {{"format", "pt"}});
  EXPECT_EQ(run_python(script, path), 0);
}

// The file image: 8-byte length (or `len_override`), header text, data bytes.
std::string file_bytes(const std::string& header, size_t data_bytes, uint64_t len_override = 0) {
  const uint64_t n = len_override ? len_override : header.size();
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s + header + std::string(data_bytes, '\x01');
}

void expect_error(const std::string& bytes, const std::string& needle, const std::string& tensor = "") {
  const std::string path = temp_path("broken.safetensors");
  write_text(path, bytes);
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "no error for a file that should fail with '" << needle << "'";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << "expected '" << needle << "' in: " << what;
    if (!tensor.empty()) {
      EXPECT_NE(what.find("'" + tensor + "'"), std::string::npos) << what;
    }
  }
}

TEST(Safetensors, BrokenFilesGiveSpecificErrors) {
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_error("", "shorter than the 8-byte header length");
  expect_error("abc", "shorter than the 8-byte header length");
  expect_error(file_bytes(ok, 8).substr(0, 20), "runs past the end of the file");  // truncated in the header
  expect_error(file_bytes(ok, 8).substr(0, 8 + ok.size() + 5), "run past the end of the data section", "w");
  expect_error(file_bytes(ok, 8, uint64_t{1} << 40), "exceeds the limit");
  expect_error(file_bytes(ok, 8, ~uint64_t{0}), "exceeds the limit");
  expect_error(file_bytes(R"({"w":{"dtype":"F32",)", 0), "not valid JSON");
  expect_error(file_bytes(R"({"w":1}x)", 0), "not valid JSON");
  expect_error(file_bytes("[1,2,3]", 0), "does not start with '{'");
  expect_error(file_bytes("{}", 0, 1), "too small");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
               "overlaps", "v");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
               "belong to no tensor", "v");
  expect_error(file_bytes(ok, 12), "cover only 8", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8), "run past the end of the data section", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12 bytes", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "end before they begin", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8), "unsupported dtype 'Q7'", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8), "unsupported dtype 'I64'", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "non-negative integers", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8), "non-negative integers", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})", 8), "too large", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "data_offsets", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8), "shape", "w");
  expect_error(file_bytes(R"({"w":[1,2]})", 8), "must be an object", "w");
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
               "appears twice", "w");
  expect_error(file_bytes(R"({"__metadata__":{"a":1},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
               "must be a string");
}

// Found by review while fuzzing (docs/RELIABILITY.md): the error for a bad shape printed the shape
// with json::dump(), which recurses once per nesting level; a header within the 100 MB limit can
// nest millions deep and overflowed the stack. Also: at most 64 dimensions.
TEST(Safetensors, DeeplyNestedShapeIsAnErrorNotACrash) {
  const size_t depth = 1'000'000;
  const std::string header = R"({"w":{"dtype":"F32","shape":)" + std::string(depth, '[') + std::string(depth, ']') +
                             R"(,"data_offsets":[0,0]}})";
  expect_error(file_bytes(header, 0), "shape an array holding arrays must hold non-negative integers", "w");
  std::string rank65 = "[1";
  for (int i = 1; i < 65; ++i) rank65 += ",1";
  expect_error(file_bytes(R"({"w":{"dtype":"F32","shape":)" + rank65 + R"(],"data_offsets":[0,4]}})", 4),
               "shape has 65 dimensions (at most 64)", "w");
}

TEST(Safetensors, WriterRejectsBadInputAndUnwritablePaths) {
  const float x[2] = {1, 2};
  const std::string path = temp_path("bad.safetensors");
  EXPECT_THROW(write_safetensors(path, {{"a", {2}, x}, {"a", {2}, x}}), std::invalid_argument);
  EXPECT_THROW(write_safetensors(path, {{"__metadata__", {2}, x}}), std::invalid_argument);
  EXPECT_THROW(write_safetensors(path, {{"a", {-1}, x}}), std::invalid_argument);
  EXPECT_THROW(write_safetensors(path, {{"a", {2}, nullptr}}), std::invalid_argument);
  const std::string nowhere = temp_path("no/such/dir/x.safetensors");
  try {
    write_safetensors(nowhere, {{"a", {2}, x}});
    ADD_FAILURE() << "writing into a missing directory succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(nowhere), std::string::npos) << e.what();
  }
  if (fs::exists("/dev/full")) {
    // A full disk: the error must surface, not a silently short file.
    const std::string full = temp_path("full.safetensors");
    fs::remove(full + ".tmp");
    fs::create_symlink("/dev/full", full + ".tmp");
    std::vector<float> big(1 << 16, 1.0f);
    EXPECT_THROW(write_safetensors(full, {{"a", {1 << 16}, big.data()}}), std::runtime_error);
    EXPECT_FALSE(fs::exists(full));
    fs::remove(full + ".tmp");
  }
}

}  // namespace
}  // namespace ddpm
