// Reading a Kuat archive (docs/FORMAT.md).
//
// Opening memory-maps the file and validates the header, the section table and the checksums
// of the small sections (metadata, codebook, labels, shapes, offsets); the index section is
// never scanned on open, so opening is O(1) in the index data and sample access is O(1).
// Every access is bounds-checked; verify() checks every checksum and decodes every sample.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/kuat/archive_view.h"
#include "lowbit/kuat/codes.h"
#include "lowbit/kuat/json.h"

namespace lowbit::kuat {

// xxHash64 of a codebook's bytes, seeded with its shape: equal values <=> identical codebooks.
std::uint64_t codebook_identity_hash(const std::uint8_t* codebook, std::uint32_t codebook_size,
                                     std::uint32_t patch, std::uint32_t channels);

class Archive {
 public:
  // Throws IoError naming the path and the reason when the file cannot be used.
  explicit Archive(const std::string& path);
  // An archive held in memory (tests, fuzzing); `name` appears in error messages.
  static Archive from_bytes(std::vector<std::uint8_t> bytes, const std::string& name = "<memory>");

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return num_samples_; }
  std::uint64_t file_bytes() const { return file_bytes_; }
  std::uint16_t version_major() const { return version_major_; }
  std::uint16_t version_minor() const { return version_minor_; }

  bool fixed_shape() const { return fixed_; }
  // The common shape; throws InvalidArgument for variable-size archives.
  const ImageGeometry& geometry() const;
  // Sample i's shape (any archive).
  ImageGeometry sample_geometry(std::uint64_t i) const;
  std::uint32_t patch() const { return patch_; }
  std::uint32_t channels() const { return channels_; }

  const std::uint8_t* codebook() const { return codebook_; }
  std::uint32_t codebook_size() const { return codebook_size_; }
  std::uint32_t codeword_bytes() const { return patch_ * patch_ * channels_; }
  std::uint64_t codebook_hash() const { return codebook_hash_; }
  std::uint32_t index_bits() const { return index_bits_; }
  std::uint64_t index_section_bytes() const { return index_bytes_; }

  // Sample i's packed index block.
  std::span<const std::uint8_t> sample_indices(std::uint64_t i) const;
  std::int32_t label(std::uint64_t i) const;
  std::span<const std::int32_t> labels() const { return {labels_, num_samples_}; }

  const std::string& metadata_json() const { return metadata_json_; }
  const Json& metadata() const { return metadata_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  bool has_source_names() const { return names_offsets_ != nullptr; }
  // Where sample i came from (a file path relative to the source, or "file:index").
  std::string source_name(std::uint64_t i) const;

  // Decodes sample i (sample_geometry(i).pixel_bytes() bytes, HWC) with the reference decode.
  void decode(std::uint64_t i, std::uint8_t* out) const;

  // Checks every section checksum and decodes every sample; throws IoError naming the archive
  // and the first problem found.
  void verify() const;

  // Plain pointers for the batch loader; throws InvalidArgument for variable-size archives.
  ArchiveView view() const;

 private:
  struct Storage;
  Archive(std::shared_ptr<const Storage> storage, const std::string& name);
  void parse();
  [[noreturn]] void corrupt(const std::string& reason) const;
  void check_index(std::uint64_t i) const;

  std::shared_ptr<const Storage> storage_;
  std::string path_;
  const std::uint8_t* base_ = nullptr;
  std::uint64_t file_bytes_ = 0;
  std::uint16_t version_major_ = 0, version_minor_ = 0;
  std::uint64_t num_samples_ = 0;
  std::uint32_t codebook_size_ = 0, index_bits_ = 0, patch_ = 0, channels_ = 0;
  bool fixed_ = true;
  ImageGeometry geometry_;
  std::uint64_t codebook_hash_ = 0;
  const std::uint8_t* codebook_ = nullptr;
  const std::int32_t* labels_ = nullptr;
  const std::uint8_t* indices_ = nullptr;
  std::uint64_t index_bytes_ = 0;
  std::size_t stride_ = 0;
  const std::uint32_t* shapes_ = nullptr;     // variable: (h, w) pairs
  const std::uint64_t* offsets_ = nullptr;    // variable: N + 1
  const std::uint64_t* names_offsets_ = nullptr;
  const char* names_data_ = nullptr;
  std::uint64_t names_data_bytes_ = 0;
  std::string metadata_json_;
  Json metadata_;
  std::vector<std::string> class_names_;
  struct Section {
    std::uint32_t kind;
    std::uint64_t offset, bytes, checksum;
  };
  std::vector<Section> sections_;
};

}  // namespace lowbit::kuat
