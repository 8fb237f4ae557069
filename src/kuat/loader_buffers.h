// Batch buffers and their pool (internal; see loader.h "Memory").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "lowbit/core/aligned_buffer.h"

namespace lowbit::kuat::detail {

struct BatchBuffer {
  AlignedBuffer<std::uint8_t> images;
  AlignedBuffer<std::int32_t> labels;
  AlignedBuffer<std::uint64_t> samples;
};

class BufferPool {
 public:
  BufferPool(std::size_t image_bytes, std::size_t batch_size, std::size_t max_idle);
  // An idle buffer, or a new one.
  std::unique_ptr<BatchBuffer> acquire();
  // Keeps the buffer for reuse unless max_idle are already idle.
  void release(std::unique_ptr<BatchBuffer> buffer) noexcept;
  std::size_t alive() const noexcept;
  std::uint64_t allocations() const noexcept;

 private:
  std::size_t image_bytes_, batch_size_, max_idle_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<BatchBuffer>> idle_;
  std::size_t alive_ = 0;
  std::uint64_t allocations_ = 0;
};

}  // namespace lowbit::kuat::detail
