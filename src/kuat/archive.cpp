#include "lowbit/kuat/archive.h"

#include <algorithm>
#include <cstring>
#include <variant>

#include "lowbit/core/error.h"
#include "lowbit/core/hash.h"
#include "lowbit/kuat/format.h"
#include "mapped_file.h"

namespace lowbit::kuat {

namespace fmt = format;

std::uint64_t codebook_identity_hash(const std::uint8_t* codebook, std::uint32_t codebook_size,
                                     std::uint32_t patch, std::uint32_t channels) {
  const std::uint64_t seed = (std::uint64_t{patch} << 40) | (std::uint64_t{channels} << 32) | codebook_size;
  return xxhash64(codebook, std::size_t{codebook_size} * patch * patch * channels, seed);
}

// Owns the bytes: a memory map or an in-memory copy.
struct Archive::Storage {
  std::variant<std::unique_ptr<MappedFile>, std::vector<std::uint8_t>> holder;
  const std::uint8_t* data() const {
    if (auto* m = std::get_if<std::unique_ptr<MappedFile>>(&holder)) return (*m)->data();
    return std::get<std::vector<std::uint8_t>>(holder).data();
  }
  std::size_t size() const {
    if (auto* m = std::get_if<std::unique_ptr<MappedFile>>(&holder)) return (*m)->size();
    return std::get<std::vector<std::uint8_t>>(holder).size();
  }
};

Archive::Archive(const std::string& path) : path_(path) {
  auto storage = std::make_shared<Storage>();
  storage->holder = std::make_unique<MappedFile>(path);
  storage_ = std::move(storage);
  parse();
}

Archive::Archive(std::shared_ptr<const Storage> storage, const std::string& name)
    : storage_(std::move(storage)), path_(name) {
  parse();
}

Archive Archive::from_bytes(std::vector<std::uint8_t> bytes, const std::string& name) {
  auto storage = std::make_shared<Storage>();
  storage->holder = std::move(bytes);
  return Archive(std::move(storage), name);
}

void Archive::corrupt(const std::string& reason) const {
  throw IoError(io_message(path_, "not a valid Kuat archive: " + reason));
}

void Archive::parse() {
  base_ = storage_->data();
  file_bytes_ = storage_->size();
  if (file_bytes_ < sizeof(fmt::FileHeader)) {
    corrupt("file is " + std::to_string(file_bytes_) + " bytes, smaller than the 128-byte header");
  }
  fmt::FileHeader h;
  std::memcpy(&h, base_, sizeof h);
  if (std::memcmp(h.magic, fmt::kMagic, sizeof h.magic) != 0) corrupt("bad magic (not a .kuat file)");
  if (xxhash64(base_, offsetof(fmt::FileHeader, header_checksum)) != h.header_checksum) {
    corrupt("header checksum mismatch");
  }
  if (h.version_major != fmt::kVersionMajor) {
    corrupt("format version " + std::to_string(h.version_major) + "." + std::to_string(h.version_minor) +
            " is not supported (this reader reads version " + std::to_string(fmt::kVersionMajor) + ".x)");
  }
  version_major_ = h.version_major;
  version_minor_ = h.version_minor;
  if (h.header_bytes != sizeof(fmt::FileHeader)) corrupt("unexpected header size " + std::to_string(h.header_bytes));
  if (h.file_bytes != file_bytes_) {
    corrupt("truncated or extended: header says " + std::to_string(h.file_bytes) + " bytes, file has " +
            std::to_string(file_bytes_));
  }
  if (h.section_count == 0 || h.section_count > fmt::kMaxSections) corrupt("bad section count " + std::to_string(h.section_count));
  if (h.section_table_offset != fmt::kSectionTableOffset) corrupt("bad section table offset");
  const std::uint64_t table_bytes = std::uint64_t{h.section_count} * sizeof(fmt::SectionEntry);
  if (fmt::kSectionTableOffset + table_bytes > file_bytes_) corrupt("section table past end of file");
  if (xxhash64(base_ + fmt::kSectionTableOffset, table_bytes) != h.section_table_checksum) {
    corrupt("section table checksum mismatch");
  }

  num_samples_ = h.num_samples;
  codebook_size_ = h.codebook_size;
  index_bits_ = h.index_bits;
  patch_ = h.patch;
  channels_ = h.channels;
  fixed_ = (h.flags & fmt::kFlagVariableShapes) == 0;
  if ((h.flags & ~fmt::kFlagVariableShapes) != 0) corrupt("unknown header flags");
  if (codebook_size_ < 2 || codebook_size_ > kMaxCodebookSize) corrupt("bad codebook size " + std::to_string(codebook_size_));
  if (index_bits_ != index_bits_for(codebook_size_)) corrupt("index bits do not match the codebook size");
  if (!(patch_ == 2 || patch_ == 4) || !(channels_ == 1 || channels_ == 3)) corrupt("bad patch size or channel count");
  if (num_samples_ == 0 || num_samples_ > file_bytes_) corrupt("bad sample count " + std::to_string(num_samples_));

  const Section* found[8] = {};
  sections_.clear();
  for (std::uint32_t s = 0; s < h.section_count; ++s) {
    fmt::SectionEntry e;
    std::memcpy(&e, base_ + fmt::kSectionTableOffset + s * sizeof e, sizeof e);
    if (e.offset % fmt::kSectionAlignment != 0 || e.offset < fmt::kSectionAlignment) {
      corrupt(std::string("section ") + fmt::section_name(e.kind) + " is not 4 KiB-aligned after the header");
    }
    if (e.offset > file_bytes_ || e.bytes > file_bytes_ - e.offset) {
      corrupt(std::string("section ") + fmt::section_name(e.kind) + " extends past the end of the file");
    }
    sections_.push_back({e.kind, e.offset, e.bytes, e.checksum});
  }
  // Sections must not overlap (sorted copy); known kinds at most once.
  {
    auto sorted = sections_;
    std::sort(sorted.begin(), sorted.end(), [](const Section& a, const Section& b) { return a.offset < b.offset; });
    for (std::size_t s = 1; s < sorted.size(); ++s) {
      if (sorted[s - 1].offset + sorted[s - 1].bytes > sorted[s].offset) corrupt("sections overlap");
    }
  }
  for (const auto& s : sections_) {
    if (s.kind >= 1 && s.kind <= 7) {
      if (found[s.kind]) corrupt(std::string("duplicate ") + fmt::section_name(s.kind) + " section");
      found[s.kind] = &s;
    }
  }
  auto need = [&](fmt::SectionKind kind) -> const Section& {
    const Section* s = found[static_cast<std::uint32_t>(kind)];
    if (!s) corrupt(std::string("missing ") + fmt::section_name(static_cast<std::uint32_t>(kind)) + " section");
    return *s;
  };
  auto checked = [&](const Section& s) {
    if (xxhash64(base_ + s.offset, s.bytes) != s.checksum) {
      corrupt(std::string(fmt::section_name(s.kind)) + " section checksum mismatch");
    }
    return base_ + s.offset;
  };

  // Codebook.
  const Section& cb = need(fmt::SectionKind::Codebook);
  if (cb.bytes != std::uint64_t{codebook_size_} * codeword_bytes()) corrupt("codebook section has the wrong size");
  codebook_ = checked(cb);
  codebook_hash_ = codebook_identity_hash(codebook_, codebook_size_, patch_, channels_);
  if (codebook_hash_ != h.codebook_hash) corrupt("codebook hash mismatch");

  // Labels.
  const Section& lb = need(fmt::SectionKind::Labels);
  if (lb.bytes != num_samples_ * 4) corrupt("labels section has the wrong size");
  labels_ = reinterpret_cast<const std::int32_t*>(checked(lb));

  // Indices: never scanned here.
  const Section& ix = need(fmt::SectionKind::Indices);
  indices_ = base_ + ix.offset;
  index_bytes_ = ix.bytes;
  if (fixed_) {
    geometry_ = ImageGeometry{h.height, h.width, channels_, patch_};
    if (h.height == 0 || h.width == 0 || h.height > 65535 || h.width > 65535) corrupt("bad image size");
    stride_ = packed_bytes(geometry_.num_patches(), index_bits_);
    if (index_bytes_ / stride_ != num_samples_ || index_bytes_ % stride_ != 0) {
      corrupt("index section size does not match " + std::to_string(num_samples_) + " samples of " +
              std::to_string(stride_) + " bytes");
    }
    if (found[static_cast<int>(fmt::SectionKind::Shapes)] || found[static_cast<int>(fmt::SectionKind::Offsets)]) {
      corrupt("fixed-shape archive has shape or offset sections");
    }
  } else {
    if (h.height != 0 || h.width != 0) corrupt("variable-size archive with a fixed image size");
    const Section& sh = need(fmt::SectionKind::Shapes);
    const Section& of = need(fmt::SectionKind::Offsets);
    if (sh.bytes != num_samples_ * 8) corrupt("shapes section has the wrong size");
    if (of.bytes != (num_samples_ + 1) * 8) corrupt("offsets section has the wrong size");
    shapes_ = reinterpret_cast<const std::uint32_t*>(checked(sh));
    offsets_ = reinterpret_cast<const std::uint64_t*>(checked(of));
    if (offsets_[0] != 0 || offsets_[num_samples_] != index_bytes_) corrupt("offset table does not span the index section");
  }

  // Source names (optional; checksummed by verify()).
  if (const Section* sn = found[static_cast<int>(fmt::SectionKind::SourceNames)]) {
    if (sn->bytes < (num_samples_ + 1) * 8) corrupt("source-names section is too small");
    names_offsets_ = reinterpret_cast<const std::uint64_t*>(base_ + sn->offset);
    names_data_ = reinterpret_cast<const char*>(base_ + sn->offset + (num_samples_ + 1) * 8);
    names_data_bytes_ = sn->bytes - (num_samples_ + 1) * 8;
  }

  // Metadata.
  const Section& md = need(fmt::SectionKind::Metadata);
  const std::uint8_t* md_bytes = checked(md);
  metadata_json_.assign(reinterpret_cast<const char*>(md_bytes), md.bytes);
  try {
    metadata_ = parse_json(metadata_json_, "metadata");
  } catch (const InvalidArgument& e) {
    corrupt(e.what());
  }
  if (!metadata_.is_object()) corrupt("metadata is not a JSON object");
  class_names_.clear();
  if (const Json* classes = metadata_.find("classes")) {
    if (!classes->is_array()) corrupt("metadata 'classes' is not an array");
    for (const Json& c : classes->as_array()) {
      if (!c.is_string()) corrupt("metadata 'classes' holds a non-string");
      class_names_.push_back(c.as_string());
    }
  }
}

const ImageGeometry& Archive::geometry() const {
  if (!fixed_) {
    throw InvalidArgument("'" + path_ + "': images have different sizes; convert with --width/--height for a fixed shape");
  }
  return geometry_;
}

void Archive::check_index(std::uint64_t i) const {
  if (i >= num_samples_) {
    throw InvalidArgument("sample index " + std::to_string(i) + " out of range for '" + path_ + "' with " +
                          std::to_string(num_samples_) + " samples");
  }
}

ImageGeometry Archive::sample_geometry(std::uint64_t i) const {
  check_index(i);
  if (fixed_) return geometry_;
  ImageGeometry g{shapes_[2 * i], shapes_[2 * i + 1], channels_, patch_};
  if (g.height == 0 || g.width == 0 || g.height > 65535 || g.width > 65535) {
    corrupt("sample " + std::to_string(i) + " has a bad shape");
  }
  // The shape must agree with the sample's index block, which bounds it by the file size:
  // callers may size pixel buffers from it.
  const std::uint64_t begin = offsets_[i], end = offsets_[i + 1];
  if (begin > end || end > index_bytes_ || end - begin != packed_bytes(g.num_patches(), index_bits_)) {
    corrupt("offset table entry " + std::to_string(i) + " does not match the sample's shape");
  }
  return g;
}

std::span<const std::uint8_t> Archive::sample_indices(std::uint64_t i) const {
  check_index(i);
  if (fixed_) return {indices_ + i * stride_, stride_};
  (void)sample_geometry(i);  // validates the offsets
  return {indices_ + offsets_[i], static_cast<std::size_t>(offsets_[i + 1] - offsets_[i])};
}

std::int32_t Archive::label(std::uint64_t i) const {
  check_index(i);
  return labels_[i];
}

std::string Archive::source_name(std::uint64_t i) const {
  check_index(i);
  if (!names_offsets_) return {};
  const std::uint64_t begin = names_offsets_[i], end = names_offsets_[i + 1];
  if (begin > end || end > names_data_bytes_) corrupt("source-name entry " + std::to_string(i) + " is inconsistent");
  return std::string(names_data_ + begin, names_data_ + end);
}

void Archive::decode(std::uint64_t i, std::uint8_t* out) const {
  const ImageGeometry g = sample_geometry(i);
  const auto block = sample_indices(i);
  try {
    decode_image_hwc_ref(g, codebook_, codebook_size_, block.data(), out);
  } catch (const InvalidArgument& e) {
    corrupt("sample " + std::to_string(i) + ": " + e.what());
  }
}

void Archive::verify() const {
  for (const auto& s : sections_) {
    if (xxhash64(base_ + s.offset, s.bytes) != s.checksum) {
      corrupt(std::string(fmt::section_name(s.kind)) + " section checksum mismatch");
    }
  }
  // Every byte outside the header, the table and the payloads is padding and must be zero,
  // so that any flipped byte anywhere in the file is detected.
  auto sorted = sections_;
  std::sort(sorted.begin(), sorted.end(), [](const Section& a, const Section& b) { return a.offset < b.offset; });
  std::uint64_t pos = fmt::kSectionTableOffset + sections_.size() * sizeof(fmt::SectionEntry);
  auto check_zero = [&](std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t b = from; b < to; ++b) {
      if (base_[b] != 0) corrupt("non-zero padding byte at offset " + std::to_string(b));
    }
  };
  for (const auto& s : sorted) {
    check_zero(pos, s.offset);
    pos = s.offset + s.bytes;
  }
  check_zero(pos, file_bytes_);
  if (names_offsets_) {
    for (std::uint64_t i = 0; i < num_samples_; ++i) (void)source_name(i);
  }
  std::vector<std::uint8_t> pixels;
  for (std::uint64_t i = 0; i < num_samples_; ++i) {
    pixels.resize(sample_geometry(i).pixel_bytes());
    decode(i, pixels.data());
  }
}

ArchiveView Archive::view() const {
  const ImageGeometry& g = geometry();
  ArchiveView v;
  v.geometry = g;
  v.codebook = codebook_;
  v.codebook_size = codebook_size_;
  v.codebook_hash = codebook_hash_;
  v.indices = indices_;
  v.index_stride = stride_;
  v.labels = labels_;
  v.num_samples = num_samples_;
  return v;
}

}  // namespace lowbit::kuat
