#include "lowbit/core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace lowbit {

ProgressBar::ProgressBar(std::string label, std::uint64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      active_(enabled && isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

std::string ProgressBar::render(double elapsed) const {
  const std::uint64_t done = done_.load();
  const double fraction = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth + 0.5);
  std::string bar(static_cast<std::size_t>(filled > kWidth ? kWidth : filled), '#');
  bar.resize(kWidth, '.');
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = (rate > 0 && total_ > done) ? static_cast<double>(total_ - done) / rate : 0.0;
  char line[256];
  std::snprintf(line, sizeof line, "%s [%s] %3d%% %llu/%llu %.1f/s %s %.0fs", label_.c_str(),
                bar.c_str(), static_cast<int>(fraction * 100.0 + 1e-9),
                static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_),
                rate, done >= total_ ? "in" : "eta", done >= total_ ? elapsed : eta);
  return line;
}

void ProgressBar::draw(bool final_draw) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r%s\033[K%s", render(elapsed).c_str(), final_draw ? "\n" : "");
  std::fflush(stderr);
  last_draw_ = now;
}

void ProgressBar::add(std::uint64_t n) {
  done_.fetch_add(n);
  if (!active_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;  // racy read is harmless
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;
  draw(false);
}

void ProgressBar::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (active_) draw(true);
}

}  // namespace lowbit
