// A progress bar for long command-line work.
//
// Draws to stderr only when stderr is a terminal and the bar is enabled (CLI `-q` disables
// it), at most ten times a second; add() is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace lowbit {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::uint64_t total, bool enabled = true);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void add(std::uint64_t n = 1);
  // Draws the final state and ends the line (idempotent).
  void finish();

  bool active() const noexcept { return active_; }
  std::uint64_t done() const noexcept { return done_.load(); }

  // The line that would be drawn now; public so tests can check formatting without a TTY.
  std::string render(double elapsed_seconds) const;

 private:
  void draw(bool final_draw);

  std::string label_;
  std::uint64_t total_;
  bool active_;
  bool finished_ = false;
  std::atomic<std::uint64_t> done_{0};
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::mutex mutex_;
};

}  // namespace lowbit
