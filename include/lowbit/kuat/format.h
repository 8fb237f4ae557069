// The Kuat archive's on-disk structures (spec: docs/FORMAT.md). Little-endian, fixed layouts.
#pragma once

#include <bit>
#include <cstdint>

namespace lowbit::kuat::format {

static_assert(std::endian::native == std::endian::little, "Kuat archives are read and written on little-endian hosts");

inline constexpr char kMagic[8] = {'K', 'U', 'A', 'T', 'A', 'R', 'C', '\x1a'};
inline constexpr std::uint16_t kVersionMajor = 1;  // readers reject another major version
inline constexpr std::uint16_t kVersionMinor = 0;  // minor bumps only add optional sections
inline constexpr std::uint64_t kSectionAlignment = 4096;
inline constexpr std::uint32_t kFlagVariableShapes = 1u << 0;

enum class SectionKind : std::uint32_t {
  Metadata = 1,     // UTF-8 JSON object
  Codebook = 2,     // K x (P*P*C) uint8 codewords, (py, px, c) order
  Labels = 3,       // N int32 (-1 = unlabelled)
  Indices = 4,      // packed index blocks, one per sample, byte-aligned, in sample order
  Shapes = 5,       // variable shapes only: N x {uint32 height, uint32 width}
  Offsets = 6,      // variable shapes only: N + 1 uint64 byte offsets into Indices
  SourceNames = 7,  // optional: N + 1 uint64 offsets, then UTF-8 names (where each sample came from)
};

struct FileHeader {
  char magic[8];
  std::uint16_t version_major;
  std::uint16_t version_minor;
  std::uint32_t header_bytes;       // sizeof(FileHeader)
  std::uint64_t file_bytes;         // the whole file, padding included
  std::uint64_t num_samples;
  std::uint32_t codebook_size;      // K, 2..65536
  std::uint32_t index_bits;         // ceil(log2 K), at least 1
  std::uint32_t patch;              // 2 or 4
  std::uint32_t channels;           // 1 or 3
  std::uint32_t height;             // every sample's height; 0 with kFlagVariableShapes
  std::uint32_t width;              // every sample's width; 0 with kFlagVariableShapes
  std::uint32_t flags;
  std::uint32_t section_count;
  std::uint64_t section_table_offset;
  std::uint64_t section_table_checksum;  // xxHash64 of the section table
  std::uint64_t codebook_hash;           // codebook identity, see codebook_identity_hash()
  std::uint8_t reserved[32];             // zero
  std::uint64_t header_checksum;         // xxHash64 of the 120 bytes before it
};
static_assert(sizeof(FileHeader) == 128, "FileHeader layout is part of the format");

struct SectionEntry {
  std::uint32_t kind;      // SectionKind
  std::uint32_t reserved;  // zero
  std::uint64_t offset;    // multiple of kSectionAlignment
  std::uint64_t bytes;     // payload size, padding excluded
  std::uint64_t checksum;  // xxHash64 of the payload
};
static_assert(sizeof(SectionEntry) == 32, "SectionEntry layout is part of the format");

inline constexpr std::uint64_t kSectionTableOffset = sizeof(FileHeader);
inline constexpr std::uint32_t kMaxSections = (kSectionAlignment - kSectionTableOffset) / sizeof(SectionEntry);

constexpr std::uint64_t align_up(std::uint64_t x) { return (x + kSectionAlignment - 1) / kSectionAlignment * kSectionAlignment; }

const char* section_name(std::uint32_t kind) noexcept;

}  // namespace lowbit::kuat::format
