#include "lowbit/kuat/archive_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lowbit/core/error.h"
#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/codes.h"
#include "lowbit/kuat/format.h"

namespace lowbit::kuat {

namespace fmt = format;

ArchiveWriter::ArchiveWriter(const std::string& path, std::uint32_t patch, std::uint32_t channels,
                             const std::uint8_t* codebook, std::uint32_t codebook_size)
    : path_(path), patch_(patch), channels_(channels), codebook_size_(codebook_size) {
  validate(ImageGeometry{1, 1, channels, patch});
  index_bits_ = index_bits_for(codebook_size);
  codebook_.assign(codebook, codebook + std::size_t{codebook_size} * patch * patch * channels);
  offsets_.push_back(0);
  name_offsets_.push_back(0);

  temp_path_ = path + ".tmp-" + std::string(6, 'X');  // mkstemp template
  const int fd = ::mkstemp(temp_path_.data());
  if (fd < 0) throw IoError(io_message(path, "cannot create a temporary file beside the output", errno));
  ::fchmod(fd, 0644);
  file_ = ::fdopen(fd, "w+b");
  if (!file_) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp_path_.c_str());
    throw IoError(io_message(temp_path_, "cannot open", err));
  }
  // The index section streams in at the first aligned offset; the rest follows in finish().
  if (std::fseek(file_, static_cast<long>(fmt::kSectionAlignment), SEEK_SET) != 0) fail("cannot seek", errno);
}

ArchiveWriter::~ArchiveWriter() {
  if (file_) std::fclose(file_);
  if (!finished_) ::unlink(temp_path_.c_str());
}

void ArchiveWriter::fail(const std::string& reason, int err) {
  throw IoError(io_message(temp_path_, reason, err));
}

void ArchiveWriter::add(const std::uint8_t* packed, std::size_t packed_size, std::uint32_t height,
                        std::uint32_t width, std::int32_t label, std::string_view source_name) {
  require(!finished_, "ArchiveWriter::add after finish");
  const ImageGeometry g{height, width, channels_, patch_};
  validate(g);
  require(height <= 65535 && width <= 65535, "image size must be at most 65535 in each dimension");
  require(packed_size == packed_bytes(g.num_patches(), index_bits_),
          "index block of " + std::to_string(packed_size) + " bytes does not fit a " + std::to_string(height) + "x" +
              std::to_string(width) + " image");
  if (std::fwrite(packed, 1, packed_size, file_) != packed_size) fail("write failed", errno);
  index_hash_.update(packed, packed_size);
  index_bytes_ += packed_size;
  offsets_.push_back(index_bytes_);
  labels_.push_back(label);
  shapes_.push_back(height);
  shapes_.push_back(width);
  names_.append(source_name);
  name_offsets_.push_back(names_.size());
  any_name_ = any_name_ || !source_name.empty();
}

void ArchiveWriter::write_at(std::uint64_t offset, const void* data, std::size_t size) {
  if (std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0) fail("cannot seek", errno);
  if (size && std::fwrite(data, 1, size, file_) != size) fail("write failed", errno);
}

void ArchiveWriter::finish(const std::string& metadata_json) {
  require(!finished_, "ArchiveWriter::finish called twice");
  require(!labels_.empty(), "cannot write an archive with no samples ('" + path_ + "')");
  const std::uint64_t n = labels_.size();
  bool fixed = true;
  for (std::uint64_t i = 1; i < n && fixed; ++i) {
    fixed = shapes_[2 * i] == shapes_[0] && shapes_[2 * i + 1] == shapes_[1];
  }

  std::vector<fmt::SectionEntry> table;
  std::uint64_t end = fmt::kSectionAlignment + index_bytes_;
  table.push_back({static_cast<std::uint32_t>(fmt::SectionKind::Indices), 0, fmt::kSectionAlignment, index_bytes_,
                   index_hash_.digest()});
  auto add_section = [&](fmt::SectionKind kind, const void* data, std::size_t size) {
    const std::uint64_t offset = fmt::align_up(end);
    write_at(offset, data, size);
    table.push_back({static_cast<std::uint32_t>(kind), 0, offset, size, xxhash64(data, size)});
    end = offset + size;
  };
  add_section(fmt::SectionKind::Codebook, codebook_.data(), codebook_.size());
  add_section(fmt::SectionKind::Labels, labels_.data(), labels_.size() * 4);
  if (!fixed) {
    add_section(fmt::SectionKind::Shapes, shapes_.data(), shapes_.size() * 4);
    add_section(fmt::SectionKind::Offsets, offsets_.data(), offsets_.size() * 8);
  }
  if (any_name_) {
    std::vector<std::uint8_t> blob((n + 1) * 8 + names_.size());
    std::memcpy(blob.data(), name_offsets_.data(), (n + 1) * 8);
    std::memcpy(blob.data() + (n + 1) * 8, names_.data(), names_.size());
    add_section(fmt::SectionKind::SourceNames, blob.data(), blob.size());
  }
  add_section(fmt::SectionKind::Metadata, metadata_json.data(), metadata_json.size());
  // Pad the file to a whole number of 4 KiB blocks (the padding is zero, as verify() expects).
  const std::uint64_t file_bytes = fmt::align_up(end);
  if (file_bytes > end) {
    const std::uint8_t zero = 0;
    write_at(file_bytes - 1, &zero, 1);
  }

  fmt::FileHeader h{};
  std::memcpy(h.magic, fmt::kMagic, sizeof h.magic);
  h.version_major = fmt::kVersionMajor;
  h.version_minor = fmt::kVersionMinor;
  h.header_bytes = sizeof h;
  h.file_bytes = file_bytes;
  h.num_samples = n;
  h.codebook_size = codebook_size_;
  h.index_bits = index_bits_;
  h.patch = patch_;
  h.channels = channels_;
  h.height = fixed ? shapes_[0] : 0;
  h.width = fixed ? shapes_[1] : 0;
  h.flags = fixed ? 0 : fmt::kFlagVariableShapes;
  h.section_count = static_cast<std::uint32_t>(table.size());
  h.section_table_offset = fmt::kSectionTableOffset;
  h.section_table_checksum = xxhash64(table.data(), table.size() * sizeof(fmt::SectionEntry));
  h.codebook_hash = codebook_identity_hash(codebook_.data(), codebook_size_, patch_, channels_);
  h.header_checksum = xxhash64(&h, offsetof(fmt::FileHeader, header_checksum));
  write_at(0, &h, sizeof h);
  write_at(fmt::kSectionTableOffset, table.data(), table.size() * sizeof(fmt::SectionEntry));

  if (std::fflush(file_) != 0) fail("flush failed", errno);
  if (::fsync(::fileno(file_)) != 0) fail("fsync failed", errno);
  if (std::fclose(file_) != 0) {
    file_ = nullptr;
    fail("close failed", errno);
  }
  file_ = nullptr;
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    finished_ = true;  // nothing left to clean up
    throw IoError(io_message(path_, "cannot rename the finished archive into place", err));
  }
  finished_ = true;
}

}  // namespace lowbit::kuat
