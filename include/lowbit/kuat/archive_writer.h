// Writing a Kuat archive (docs/FORMAT.md), streaming: index blocks are appended one sample at
// a time and go straight to disk. Everything is written to a temporary file next to the target
// and renamed into place by finish(), so a failed or interrupted conversion never leaves a
// partial archive behind.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/hash.h"

namespace lowbit::kuat {

class ArchiveWriter {
 public:
  // `codebook` holds codebook_size * patch*patch*channels bytes (copied). Throws IoError when the
  // temporary file cannot be created.
  ArchiveWriter(const std::string& path, std::uint32_t patch, std::uint32_t channels,
                const std::uint8_t* codebook, std::uint32_t codebook_size);
  // Removes the temporary file unless finish() succeeded.
  ~ArchiveWriter();
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;

  // Appends one sample: its packed index block (packed_bytes(grid_h*grid_w, index_bits) bytes),
  // its native shape, its label and (optionally) where it came from.
  void add(const std::uint8_t* packed, std::size_t packed_size, std::uint32_t height, std::uint32_t width,
           std::int32_t label, std::string_view source_name = {});

  std::uint64_t count() const { return labels_.size(); }

  // Writes the remaining sections, the section table and the header, syncs and renames the
  // temporary file to the target. `metadata_json` must be a JSON object. Needs >= 1 sample.
  void finish(const std::string& metadata_json);

 private:
  void write_at(std::uint64_t offset, const void* data, std::size_t size);
  void fail(const std::string& reason, int err = 0);

  std::string path_, temp_path_;
  std::FILE* file_ = nullptr;
  bool finished_ = false;
  std::uint32_t patch_, channels_, codebook_size_, index_bits_;
  std::vector<std::uint8_t> codebook_;
  std::vector<std::int32_t> labels_;
  std::vector<std::uint32_t> shapes_;   // (h, w) pairs
  std::vector<std::uint64_t> offsets_;  // N + 1
  std::vector<std::uint64_t> name_offsets_;
  std::string names_;
  bool any_name_ = false;
  XxHash64 index_hash_;
  std::uint64_t index_bytes_ = 0;
};

}  // namespace lowbit::kuat
