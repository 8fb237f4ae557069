// IDX internals shared by the IDX source (source_idx.cpp) and the fuzz targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "source_memory.h"

namespace lowbit::kuat {

// The bytes of an IDX file, gunzipped when they start with the gzip magic. The output never
// grows past `max_bytes` (IoError naming `what` instead), so a small gzip stream cannot make it
// allocate without bound.
std::vector<std::uint8_t> idx_file_bytes(const std::uint8_t* data, std::size_t size, const std::string& what,
                                         std::uint64_t max_bytes);

// An IDX images file (magic 0x00000803; big-endian count, rows, cols; uint8 pixels) as a source
// with every label -1. IoError naming `what` for a bad magic, shape or size, or images larger
// than `max_pixels`.
std::unique_ptr<InMemorySource> idx_images_source(const std::vector<std::uint8_t>& bytes, const std::string& what,
                                                  std::uint64_t max_pixels);

// Sets the labels from an IDX labels file (magic 0x00000801); its count must match.
void set_idx_labels(const std::vector<std::uint8_t>& bytes, const std::string& what, InMemorySource& src);

}  // namespace lowbit::kuat
