#include "loader_buffers.h"

#include "lowbit/kuat/loader.h"

namespace lowbit::kuat {
namespace detail {

BufferPool::BufferPool(std::size_t image_bytes, std::size_t batch_size, std::size_t max_idle)
    : image_bytes_(image_bytes), batch_size_(batch_size), max_idle_(max_idle) {
  idle_.reserve(max_idle_);
}

std::unique_ptr<BatchBuffer> BufferPool::acquire() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      auto buffer = std::move(idle_.back());
      idle_.pop_back();
      return buffer;
    }
    ++alive_;
    ++allocations_;
  }
  try {
    auto buffer = std::make_unique<BatchBuffer>();
    buffer->images.resize(image_bytes_ * batch_size_);
    buffer->labels.resize(batch_size_);
    buffer->samples.resize(batch_size_);
    return buffer;
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    --alive_;
    throw;
  }
}

void BufferPool::release(std::unique_ptr<BatchBuffer> buffer) noexcept {
  if (!buffer) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.size() < max_idle_) {
    idle_.push_back(std::move(buffer));  // capacity reserved up front: no allocation here
  } else {
    buffer.reset();
    --alive_;
  }
}

std::uint64_t BufferPool::allocations() const noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  return allocations_;
}

std::size_t BufferPool::alive() const noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  return alive_;
}

}  // namespace detail

Batch::Batch(std::unique_ptr<detail::BatchBuffer> buffer, std::shared_ptr<detail::BufferPool> pool,
             std::uint64_t epoch, std::uint64_t index, std::size_t size, std::array<std::size_t, 4> shape,
             PixelType dtype)
    : buffer_(std::move(buffer)), pool_(std::move(pool)), epoch_(epoch), index_(index), size_(size), shape_(shape),
      dtype_(dtype) {}

Batch::~Batch() { pool_->release(std::move(buffer_)); }

void* Batch::images() noexcept { return buffer_->images.data(); }
const void* Batch::images() const noexcept { return buffer_->images.data(); }
std::int32_t* Batch::labels() noexcept { return buffer_->labels.data(); }
const std::int32_t* Batch::labels() const noexcept { return buffer_->labels.data(); }
std::uint64_t* Batch::samples() noexcept { return buffer_->samples.data(); }
const std::uint64_t* Batch::samples() const noexcept { return buffer_->samples.data(); }

}  // namespace lowbit::kuat
