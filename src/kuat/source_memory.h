// A source whose samples are already decoded in memory (IDX and CIFAR), internal.
#pragma once

#include <string>
#include <vector>

#include "lowbit/kuat/source.h"

namespace lowbit::kuat {

class InMemorySource : public DatasetSource {
 public:
  InMemorySource(const char* format, std::uint32_t height, std::uint32_t width, std::uint32_t channels)
      : format_(format), height_(height), width_(width), channels_(channels) {
    default_channels_ = channels;
  }

  const char* format() const override { return format_; }
  std::size_t size() const override { return labels_.size(); }
  std::int32_t label(std::size_t i) const override { return labels_.at(i); }
  std::string name(std::size_t i) const override { return names_.at(i); }
  std::vector<std::string> classes() const override { return classes_; }
  std::vector<std::string> warnings() const override { return warnings_; }
  bool samples_can_fail() const override { return false; }
  Image load(std::size_t i, std::uint32_t channels, const TargetSize& target) const override;

  // HWC pixels of all samples, one after another.
  std::vector<std::uint8_t> pixels_;
  std::vector<std::int32_t> labels_;
  std::vector<std::string> names_;
  std::vector<std::string> classes_;
  std::vector<std::string> warnings_;  // about the source (missing labels, missing batches)

 private:
  const char* format_;
  std::uint32_t height_, width_, channels_;
};

// A CIFAR-10 training folder lacks some of its five batches (an interrupted download or
// extraction): the batches found are converted, with a warning that names the missing ones.
inline std::string missing_batches_warning(const std::string& folder, const std::vector<int>& missing, const char* suffix) {
  std::string m = "'" + folder + "': CIFAR-10 training batch";
  m += missing.size() == 1 ? " " : "es ";
  for (std::size_t i = 0; i < missing.size(); ++i) {
    m += (i ? ", " : "") + std::string("data_batch_") + std::to_string(missing[i]) + suffix;
  }
  return m + " missing; converting the " + std::to_string(5 - missing.size()) + " found (of 5)";
}

}  // namespace lowbit::kuat
