// Small archives built from explicit inputs, shared by the archive tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/kuat/archive_writer.h"
#include "lowbit/kuat/codes.h"

namespace lowbit::kuat::testing {

struct SampleSpec {
  std::uint32_t height, width;
  std::vector<std::uint32_t> indices;  // grid_h * grid_w
  std::int32_t label;
  std::string name;
};

struct ArchiveSpec {
  std::uint32_t patch, channels, codebook_size;
  std::vector<std::uint8_t> codebook;
  std::vector<SampleSpec> samples;
  std::string metadata;
};

inline void write_archive(const std::string& path, const ArchiveSpec& spec) {
  ArchiveWriter w(path, spec.patch, spec.channels, spec.codebook.data(), spec.codebook_size);
  const std::uint32_t bits = index_bits_for(spec.codebook_size);
  for (const auto& s : spec.samples) {
    std::vector<std::uint8_t> packed(packed_bytes(s.indices.size(), bits));
    pack_indices(s.indices.data(), s.indices.size(), bits, packed.data());
    w.add(packed.data(), packed.size(), s.height, s.width, s.label, s.name);
  }
  w.finish(spec.metadata);
}

// The golden fixed-shape archive: 3 grayscale 3x5 images, K = 4, codeword k = {16k .. 16k+3}.
inline ArchiveSpec golden_fixed_spec() {
  ArchiveSpec a{2, 1, 4, {}, {}, R"({"format":"golden","classes":["zero","one"]})"};
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j) a.codebook.push_back(static_cast<std::uint8_t>(16 * k + j));
  a.samples = {{3, 5, {0, 1, 2, 3, 0, 1}, 0, "a.png"},
               {3, 5, {3, 3, 3, 2, 2, 2}, 1, "b.png"},
               {3, 5, {1, 0, 3, 2, 1, 0}, -1, "c.png"}};
  return a;
}

// The golden variable-size archive: 2 RGB images (2x2 and 3x5), K = 3, codeword k bytes = 100k + j.
inline ArchiveSpec golden_variable_spec() {
  ArchiveSpec a{2, 3, 3, {}, {}, R"({"format":"golden-variable","classes":[]})"};
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 12; ++j) a.codebook.push_back(static_cast<std::uint8_t>(100 * k + j));
  a.samples = {{2, 2, {2}, 7, ""}, {3, 5, {0, 1, 2, 2, 1, 0}, 8, ""}};
  return a;
}

}  // namespace lowbit::kuat::testing
