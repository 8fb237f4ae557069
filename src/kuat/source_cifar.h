// CIFAR internals shared by the pickle reader (source_cifar.cpp), the binary reader
// (source_cifar_bin.cpp) and the fuzz targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "source_memory.h"

namespace lowbit::kuat {

constexpr std::uint32_t kCifarSide = 32, kCifarPlane = kCifarSide * kCifarSide, kCifarImageBytes = 3 * kCifarPlane;

// Appends n channel-planar images (all R, then G, then B; 3072 bytes each) as HWC pixels.
void append_planar_images(const std::uint8_t* planar, std::size_t n, InMemorySource& src);

// True when `path` is a CIFAR binary batch file or a folder of them (cifar-10-batches-bin,
// cifar-100-binary).
bool is_cifar_binary(const std::string& path);
std::unique_ptr<DatasetSource> open_cifar_binary_source(const std::string& path, const SourceOptions& options);

// Appends the records of one binary batch: CIFAR-10 records are 1 label byte + 3072 pixel
// bytes, CIFAR-100 records 2 label bytes (coarse, fine; the fine label is kept) + 3072. IoError
// naming `what` for a size that is not a whole number of records or a label out of range.
void append_cifar_binary(const std::uint8_t* data, std::size_t size, bool hundred, const std::string& what,
                         InMemorySource& src);

}  // namespace lowbit::kuat
