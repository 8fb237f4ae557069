// GgufFile: parsing, TQ1_0 / TQ2_0 / F16 decoding, and truncated or corrupt files (IoError, no crash).
// BitLMModel::load on files that are not BitLM GGUFs. (End-to-end generation against PyTorch is
// tests/python/test_bitlm_runtime.py.)
#include <gtest/gtest.h>
#include <limits>
#include <functional>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sys/resource.h>
#include <string>
#include <type_traits>
#include <vector>

#include "lowbit/bitlab/gguf.h"
#include "lowbit/bitlab/lm.h"
#include "lowbit/core/error.h"
#include "test_helpers.h"

namespace lowbit::bitlab {
namespace {

class Writer {
 public:
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<std::uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  std::vector<std::uint8_t> bytes;
};

// TQ2_0 block as gguf-py's quantize_blocks writes it (d = 1.0 as float16 0x3C00).
std::vector<std::uint8_t> encode_tq2(const std::vector<std::int8_t>& trits) {
  std::vector<std::uint8_t> out;
  for (std::size_t b = 0; b < trits.size() / kTqBlock; ++b) {
    const std::int8_t* t = trits.data() + b * kTqBlock;
    for (std::size_t j = 0; j < 2; ++j) {
      for (std::size_t m = 0; m < 32; ++m) {
        std::uint8_t byte = 0;
        for (std::size_t l = 0; l < 4; ++l) byte |= static_cast<std::uint8_t>((t[128 * j + 32 * l + m] + 1) << (2 * l));
        out.push_back(byte);
      }
    }
    out.push_back(0x00);
    out.push_back(0x3C);
  }
  return out;
}

// TQ1_0 block as gguf-py's quantize_blocks writes it.
std::vector<std::uint8_t> encode_tq1(const std::vector<std::int8_t>& trits) {
  std::vector<std::uint8_t> out;
  auto pack = [](const std::int8_t* t, std::size_t stride, std::size_t digits) {
    unsigned v = 0;
    for (std::size_t n = 0; n < digits; ++n) v = v * 3 + static_cast<unsigned>(t[n * stride] + 1);
    for (std::size_t n = digits; n < 5; ++n) v *= 3;
    return static_cast<std::uint8_t>((v * 256 + 242) / 243);
  };
  for (std::size_t b = 0; b < trits.size() / kTqBlock; ++b) {
    const std::int8_t* t = trits.data() + b * kTqBlock;
    for (std::size_t m = 0; m < 32; ++m) out.push_back(pack(t + m, 32, 5));
    for (std::size_t m = 0; m < 16; ++m) out.push_back(pack(t + 160 + m, 16, 5));
    for (std::size_t j = 0; j < 4; ++j) out.push_back(pack(t + 240 + j, 4, 4));
    out.push_back(0x00);
    out.push_back(0x3C);
  }
  return out;
}

struct Sample {
  std::vector<std::uint8_t> bytes;
  std::vector<std::int8_t> trits;  // 2 x 512
  std::vector<std::uint16_t> halves;
};

Sample sample_file(const std::string& arch = "bitnet") {
  std::mt19937 rng(5);
  Sample s;
  s.trits = testing::random_trits(2 * 512, rng);
  s.halves = {0x3C00, 0xC000, 0x0001, 0x7BFF};  // 1, -2, smallest subnormal, 65504
  const std::vector<std::uint8_t> tq2 = encode_tq2(s.trits), tq1 = encode_tq1(s.trits);
  Writer w;
  w.put<std::uint32_t>(0x46554747u);
  w.put<std::uint32_t>(3);
  w.put<std::uint64_t>(3);  // tensors
  w.put<std::uint64_t>(3);  // kv
  w.str("general.architecture");
  w.put<std::uint32_t>(8);
  w.str(arch);
  w.str("test.count");
  w.put<std::uint32_t>(4);
  w.put<std::uint32_t>(7);
  w.str("test.tokens");
  w.put<std::uint32_t>(9);
  w.put<std::uint32_t>(8);
  w.put<std::uint64_t>(2);
  w.str("a");
  w.str("bc");
  std::uint64_t offset = 0;
  auto info = [&](const std::string& name, std::vector<std::uint64_t> dims, std::uint32_t type, std::size_t nbytes) {
    w.str(name);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(dims.size()));
    for (auto d : dims) w.put<std::uint64_t>(d);
    w.put<std::uint32_t>(type);
    w.put<std::uint64_t>(offset);
    offset += (nbytes + 31) / 32 * 32;
  };
  info("w2", {512, 2}, 35, tq2.size());
  info("w1", {512, 2}, 34, tq1.size());
  info("h", {4}, 1, 8);
  while (w.bytes.size() % 32) w.bytes.push_back(0);
  auto data = [&](const std::vector<std::uint8_t>& d) {
    w.bytes.insert(w.bytes.end(), d.begin(), d.end());
    while (w.bytes.size() % 32) w.bytes.push_back(0);
  };
  data(tq2);
  data(tq1);
  std::vector<std::uint8_t> h(8);
  std::memcpy(h.data(), s.halves.data(), 8);
  data(h);
  s.bytes = w.bytes;
  return s;
}

TEST(Gguf, ParsesMetadataAndDecodesTernaryAndHalfTensors) {
  const Sample s = sample_file();
  const GgufFile f = GgufFile::from_bytes(s.bytes, "sample.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "bitnet");
  EXPECT_EQ(f.get_uint("test.count"), 7u);
  EXPECT_EQ(f.get_string_array("test.tokens"), (std::vector<std::string>{"a", "bc"}));
  ASSERT_EQ(f.tensors().size(), 3u);
  for (const char* name : {"w2", "w1"}) {
    const GgufTensor* t = f.find_tensor(name);
    ASSERT_NE(t, nullptr);
    const std::vector<float> v = GgufFile::to_float(*t);
    ASSERT_EQ(v.size(), s.trits.size());
    for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], static_cast<float>(s.trits[i])) << name << " " << i;
  }
  const std::vector<float> h = GgufFile::to_float(*f.find_tensor("h"));
  EXPECT_EQ(h, (std::vector<float>{1.0f, -2.0f, 5.9604644775390625e-08f, 65504.0f}));
  EXPECT_EQ(f.find_tensor("missing"), nullptr);
  EXPECT_THROW(f.get_uint("general.architecture"), IoError);
  EXPECT_THROW(f.get_string("nope"), IoError);
}

TEST(Gguf, DecodesPiecesOfATensorLikeTheWhole) {
  const Sample s = sample_file();
  const GgufFile f = GgufFile::from_bytes(s.bytes, "sample.gguf");
  for (const char* name : {"w2", "w1", "h"}) {
    const GgufTensor& t = *f.find_tensor(name);
    const std::vector<float> whole = GgufFile::to_float(t);
    const std::size_t step = t.type == GgmlType::F16 ? 1 : kTqBlock;
    for (std::size_t first = 0; first < whole.size(); first += step) {
      for (std::size_t count = step; first + count <= whole.size(); count += step) {
        std::vector<float> piece(count, -7.0f);
        GgufFile::to_float(t, first, count, piece.data());
        ASSERT_TRUE(std::equal(piece.begin(), piece.end(), whole.begin() + static_cast<std::ptrdiff_t>(first)))
            << name << " " << first << " " << count;
      }
    }
  }
  std::vector<float> out(kTqBlock * 4);
  EXPECT_THROW(GgufFile::to_float(*f.find_tensor("w2"), 1, kTqBlock, out.data()), InvalidArgument);  // not a block
  EXPECT_THROW(GgufFile::to_float(*f.find_tensor("w2"), kTqBlock, kTqBlock * 4, out.data()), InvalidArgument);
  EXPECT_THROW(GgufFile::to_float(*f.find_tensor("h"), 3, 2, out.data()), InvalidArgument);
}

TEST(Gguf, EveryTruncationIsAnIoErrorNamingTheFile) {
  const Sample s = sample_file();
  for (std::size_t n = 0; n < s.bytes.size(); n += (n < 400 ? 1 : 97)) {
    std::vector<std::uint8_t> cut(s.bytes.begin(), s.bytes.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      GgufFile::from_bytes(cut, "cut.gguf");
      ADD_FAILURE() << "a file truncated to " << n << " bytes parsed";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("cut.gguf"), std::string::npos) << e.what();
    }
  }
}

TEST(Gguf, CorruptBytesNeverCrash) {
  const Sample s = sample_file();
  std::mt19937 rng(9);
  std::uniform_int_distribution<std::size_t> pos(0, 300);
  std::uniform_int_distribution<int> val(0, 255);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<std::uint8_t> bad = s.bytes;
    for (int k = 0; k < 3; ++k) bad[pos(rng)] = static_cast<std::uint8_t>(val(rng));
    try {
      GgufFile::from_bytes(bad, "bad.gguf");
    } catch (const IoError&) {
    }
  }
  std::vector<std::uint8_t> magic = s.bytes;
  magic[0] = 'X';
  EXPECT_THROW(GgufFile::from_bytes(magic, "m.gguf"), IoError);
}

TEST(Gguf, HalfToFloatIsExact) {
  EXPECT_EQ(half_to_float(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
  EXPECT_EQ(half_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(half_to_float(0x0400), 6.103515625e-05f);
  EXPECT_TRUE(std::isinf(half_to_float(0xFC00)));
  EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
}

TEST(BitLMModel, LoadRefusesOtherArchitecturesAndIncompleteFiles) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto llama = dir / "lowbit_test_llama.gguf";
  const auto bitnet = dir / "lowbit_test_bitnet.gguf";
  for (const auto& [path, arch] : {std::pair{llama, std::string("llama")}, std::pair{bitnet, std::string("bitnet")}}) {
    const Sample s = sample_file(arch);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(s.bytes.data()),
                                                static_cast<std::streamsize>(s.bytes.size()));
  }
  try {
    BitLMModel::load(llama.string());
    ADD_FAILURE() << "a llama GGUF loaded";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("architecture 'llama'"), std::string::npos) << e.what();
  }
  try {
    BitLMModel::load(bitnet.string());  // no hyperparameters
    ADD_FAILURE() << "an incomplete bitnet GGUF loaded";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("lowbit_test_bitnet.gguf"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BitLMModel::load((dir / "lowbit_no_such_file.gguf").string()), IoError);
  std::filesystem::remove(llama);
  std::filesystem::remove(bitnet);
}


// A one-layer bitnet GGUF with F32 tensors (ternary projections of magnitude 1), a byte-level
// vocabulary of 256 tokens, hidden 256, 2 heads sharing 1 KV head, the given context length.
std::vector<std::uint8_t> tiny_bitnet(std::uint32_t context) {
  constexpr std::uint64_t d = 256, ff = 256, vocab = 256, kv = 128;
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> trit(-1, 1);
  std::uniform_real_distribution<float> real(-1.0f, 1.0f);
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;  // GGUF order: columns first
    std::vector<float> values;
  };
  std::vector<Tensor> tensors;
  auto add = [&](const std::string& name, std::uint64_t rows, std::uint64_t cols, bool ternary) {
    Tensor t{name, rows == 1 ? std::vector<std::uint64_t>{cols} : std::vector<std::uint64_t>{cols, rows}, {}};
    for (std::uint64_t i = 0; i < rows * cols; ++i)
      t.values.push_back(ternary ? static_cast<float>(trit(rng)) : rows == 1 ? 1.0f : real(rng));
    tensors.push_back(std::move(t));
  };
  add("token_embd.weight", vocab, d, false);
  add("output_norm.weight", 1, d, false);
  add("blk.0.attn_norm.weight", 1, d, false);
  add("blk.0.attn_sub_norm.weight", 1, d, false);
  add("blk.0.ffn_norm.weight", 1, d, false);
  add("blk.0.ffn_sub_norm.weight", 1, ff, false);
  add("blk.0.attn_q.weight", d, d, true);
  add("blk.0.attn_k.weight", kv, d, true);
  add("blk.0.attn_v.weight", kv, d, true);
  add("blk.0.attn_output.weight", d, d, true);
  add("blk.0.ffn_gate.weight", ff, d, true);
  add("blk.0.ffn_up.weight", ff, d, true);
  add("blk.0.ffn_down.weight", d, ff, true);
  Writer w;
  w.put<std::uint32_t>(0x46554747u);
  w.put<std::uint32_t>(3);
  w.put<std::uint64_t>(tensors.size());
  w.put<std::uint64_t>(11);  // kv
  auto u32 = [&](const std::string& key, std::uint32_t v) {
    w.str(key);
    w.put<std::uint32_t>(4);
    w.put<std::uint32_t>(v);
  };
  auto text = [&](const std::string& key, const std::string& v) {
    w.str(key);
    w.put<std::uint32_t>(8);
    w.str(v);
  };
  text("general.architecture", "bitnet");
  u32("bitnet.embedding_length", d);
  u32("bitnet.block_count", 1);
  u32("bitnet.attention.head_count", 2);
  u32("bitnet.attention.head_count_kv", 1);
  u32("bitnet.feed_forward_length", ff);
  u32("bitnet.context_length", context);
  w.str("bitnet.attention.layer_norm_rms_epsilon");
  w.put<std::uint32_t>(6);
  w.put<float>(1e-5f);
  text("bitnet.hidden_activation", "relu2");
  text("tokenizer.ggml.model", "gpt2");
  w.str("tokenizer.ggml.tokens");  // GPT-2's byte alphabet, UTF-8
  w.put<std::uint32_t>(9);
  w.put<std::uint32_t>(8);
  w.put<std::uint64_t>(vocab);
  std::uint32_t extra = 0;
  for (std::uint32_t b = 0; b < vocab; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const std::uint32_t cp = printable ? b : 256 + extra++;
    std::string s;
    if (cp < 0x80) s = std::string(1, static_cast<char>(cp));
    else s = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    w.str(s);
  }
  std::uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    w.str(t.name);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(t.dims.size()));
    for (auto dim : t.dims) w.put<std::uint64_t>(dim);
    w.put<std::uint32_t>(0);  // F32
    w.put<std::uint64_t>(offset);
    offset += (4 * t.values.size() + 31) / 32 * 32;
  }
  while (w.bytes.size() % 32) w.bytes.push_back(0);
  for (const Tensor& t : tensors) {
    for (float v : t.values) w.put<float>(v);
    while (w.bytes.size() % 32) w.bytes.push_back(0);
  }
  return w.bytes;
}

TEST(BitLMModel, ForwardRefusesTheCacheOfAModelWithAnotherContextLength) {
  // Contexts 64 and 70 give the same key stride (80): only the values' size tells the caches
  // apart, and a forward pass of 70 positions into the 64-position cache wrote past its end.
  const auto dir = std::filesystem::temp_directory_path();
  std::vector<BitLMModel> models;
  for (std::uint32_t context : {64u, 70u}) {
    const auto path = dir / ("lowbit_test_tiny_bitnet_" + std::to_string(context) + ".gguf");
    const std::vector<std::uint8_t> bytes = tiny_bitnet(context);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
    models.push_back(BitLMModel::load(path.string()));
    std::filesystem::remove(path);
  }
  BitLMCache small = models[0].new_cache();
  ASSERT_EQ(small.key_stride, models[1].new_cache().key_stride);
  const std::vector<std::int32_t> tokens(70, 65);
  EXPECT_THROW(models[1].forward(tokens.data(), tokens.size(), small), InvalidArgument);
  BitLMCache own = models[1].new_cache();
  const std::vector<float> logits = models[1].forward(tokens.data(), tokens.size(), own);
  EXPECT_EQ(logits.size(), 256u);
  EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); }));
  BitLMCache other = models[0].new_cache();
  other.values.pop_back();  // a layer short
  EXPECT_THROW(models[0].forward(tokens.data(), 1, other), InvalidArgument);
}

TEST(BitLMModel, GenerateAllocatesTheCacheItRunsNotTheDeclaredContext) {
  // generate() made new_cache() of the whole context_length: for a file declaring 2^20 positions
  // (128 KV floats x 2 per position here) 1 GiB of zeroed cache to run 4 tokens. Each gtest runs
  // in its own process under ctest, so the peak below is this test's.
  const auto path = std::filesystem::temp_directory_path() / "lowbit_test_tiny_bitnet_long.gguf";
  const std::vector<std::uint8_t> bytes = tiny_bitnet(1u << 20);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
  const BitLMModel model = BitLMModel::load(path.string());
  std::filesystem::remove(path);
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  const std::vector<std::int32_t> ids = model.generate({65, 66}, 2);
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  EXPECT_GE(ids.size(), 3u);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "KiB of peak growth for a 4-position run";
  BitLMCache cache = model.new_cache(4);  // the same tokens as a cache of exactly the run's positions
  std::vector<float> logits = model.forward(ids.data(), 2, cache);
  for (std::size_t i = 2; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i], std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (i + 1 < ids.size()) logits = model.forward(&ids[i], 1, cache);
  }
}

// Loads tiny_bitnet(context) with `patch` applied to its bytes; returns the IoError's message
// ("loaded" if it loads).
std::string load_message(std::uint32_t context, const std::function<void(std::vector<std::uint8_t>&)>& patch = {}) {
  const auto path = std::filesystem::temp_directory_path() / "lowbit_test_tiny_bitnet_patched.gguf";
  std::vector<std::uint8_t> bytes = tiny_bitnet(context);
  if (patch) patch(bytes);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
  std::string message = "loaded";
  try {
    BitLMModel::load(path.string());
  } catch (const IoError& e) {
    message = e.what();
  }
  std::filesystem::remove(path);
  return message;
}

// Overwrites the 4-byte value that follows `key` (its string and a u32 type tag) in a GGUF file.
void set_value_after(std::vector<std::uint8_t>& bytes, const std::string& key, const void* value) {
  auto it = std::search(bytes.begin(), bytes.end(), key.begin(), key.end());
  ASSERT_NE(it, bytes.end()) << key;
  std::memcpy(&*(it + static_cast<std::ptrdiff_t>(key.size()) + 4), value, 4);
}

TEST(BitLMModel, LoadNamesTheBadHyperparameterAndWhy) {
  EXPECT_NE(load_message(0).find("bitnet.context_length=0 must be positive"), std::string::npos) << load_message(0);
  const std::string huge = load_message((1u << 24) + 1);
  EXPECT_NE(huge.find("bitnet.context_length=16777217 exceeds 16777216"), std::string::npos) << huge;
  auto u32 = [](const std::string& key, std::uint32_t v) {
    return [key, v](std::vector<std::uint8_t>& b) { set_value_after(b, key, &v); };
  };
  std::string m = load_message(64, u32("bitnet.attention.head_count", 3));
  EXPECT_NE(m.find("bitnet.attention.head_count=3 must divide embedding_length=256"), std::string::npos) << m;
  m = load_message(64, u32("bitnet.attention.head_count_kv", 0));
  EXPECT_NE(m.find("bitnet.attention.head_count_kv=0 must be positive"), std::string::npos) << m;
  for (float eps : {std::numeric_limits<float>::quiet_NaN(), 0.0f, -1e-5f}) {
    m = load_message(64, [eps](std::vector<std::uint8_t>& b) { set_value_after(b, "bitnet.attention.layer_norm_rms_epsilon", &eps); });
    EXPECT_NE(m.find("bitnet.attention.layer_norm_rms_epsilon="), std::string::npos) << m;
    EXPECT_NE(m.find("must be a finite number > 0"), std::string::npos) << m;
  }
  // a norm weight of Inf: output_norm.weight follows token_embd's 256 x 256 values in the data
  // section, which ends the file (460032 floats: 6 tensors of 256 x 256, 2 of 128 x 256, 5 of 256)
  m = load_message(64, [](std::vector<std::uint8_t>& b) {
    const float inf = std::numeric_limits<float>::infinity();
    std::memcpy(&b[b.size() - 4 * 460032 + 4 * 65536 + 4 * 7], &inf, 4);
  });
  EXPECT_NE(m.find("tensor 'output_norm.weight' holds a non-finite value (inf at index 7)"), std::string::npos) << m;
  // a tensor of a layer the file does not have (same length as blk.0's name)
  m = load_message(64, [](std::vector<std::uint8_t>& b) {
    const std::string from = "blk.0.ffn_down.weight";
    auto it = std::search(b.begin(), b.end(), from.begin(), from.end());
    ASSERT_NE(it, b.end());
    *(it + 4) = '5';
  });
  EXPECT_NE(m.find("tensor 'blk.5.ffn_down.weight' is not part of a 1-layer bitnet model"), std::string::npos) << m;
}

TEST(BitLMModel, CacheOfFewerPositionsThanTheContext) {
  const auto path = std::filesystem::temp_directory_path() / "lowbit_test_tiny_bitnet_ctx.gguf";
  const std::vector<std::uint8_t> bytes = tiny_bitnet(1000);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
  const BitLMModel model = BitLMModel::load(path.string());
  std::filesystem::remove(path);
  EXPECT_THROW(model.new_cache(1001), InvalidArgument);
  BitLMCache small = model.new_cache(8);
  BitLMCache full = model.new_cache();
  EXPECT_EQ(small.capacity, 8u);
  EXPECT_EQ(full.capacity, 1000u);
  EXPECT_LT(small.values[0].size() * 100, full.values[0].size());
  const std::vector<std::int32_t> tokens(8, 65);
  // the same logits as with the full cache (positions below 8 read the same tables)
  EXPECT_EQ(model.forward(tokens.data(), 8, small), model.forward(tokens.data(), 8, full));
  try {
    model.forward(tokens.data(), 1, small);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("9 positions exceed the cache's 8"), std::string::npos) << e.what();
  }
}

// Its projections point into its weights block: copies would dangle, moves keep the block.
static_assert(!std::is_copy_constructible_v<BitLMModel> && !std::is_copy_assignable_v<BitLMModel>);
static_assert(std::is_nothrow_move_constructible_v<BitLMModel>);

// The weights' and the KV cache's allocator (lm.h): 2 MiB-aligned from 2 MiB on, cache-line aligned
// below, values kept like std::vector's, and sizes that overflow refused with std::bad_alloc.
TEST(HugePageAllocator, AlignsLargeBlocksTo2MiBAndSmallOnesToCacheLines) {
  HugeVector<float> big(std::size_t{3} << 20);  // 12 MiB
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(big.data()) % (std::size_t{2} << 20), 0u);
  EXPECT_TRUE(std::all_of(big.begin(), big.end(), [](float v) { return v == 0.0f; }));  // value-initialised
  big.back() = 1.5f;
  HugeVector<float> moved = std::move(big);
  EXPECT_EQ(moved.back(), 1.5f);
  HugeVector<std::uint8_t> small(100, 7);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(small.data()) % 64, 0u);
  EXPECT_EQ(small[99], 7);
  HugePageAllocator<double> a;
  EXPECT_THROW(a.allocate(static_cast<std::size_t>(-1) / sizeof(double) + 1), std::bad_alloc);
  EXPECT_THROW(huge_allocate(static_cast<std::size_t>(-1) - 100), std::bad_alloc);
}

}  // namespace
}  // namespace lowbit::bitlab
