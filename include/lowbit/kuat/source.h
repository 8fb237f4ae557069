// Dataset inputs for the converter: MNIST-style IDX files, CIFAR pickles, flat image folders
// and ImageNet-style class folders, behind one interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/kuat/image.h"

namespace lowbit::kuat {

struct SourceOptions {
  std::string format = "auto";  // auto, idx, cifar, images, imagenet
  std::string split = "train";  // idx / cifar: "train" or "test" (idx also accepts "t10k")
  std::string labels_file;      // images: optional "relative/path,label" lines
  std::uint32_t channels = 0;   // 0: the source's own (1 for idx, 3 otherwise)
  DecodeOptions decode;         // image files: pixel limit, background, EXIF orientation
};

class DatasetSource {
 public:
  virtual ~DatasetSource() = default;
  virtual const char* format() const = 0;
  virtual std::size_t size() const = 0;
  virtual std::int32_t label(std::size_t i) const = 0;
  // Where sample i comes from: a path relative to the source, or "file:index".
  virtual std::string name(std::size_t i) const = 0;
  // How messages about sample i name it: the path load() reads (as its own errors do), or name(i).
  virtual std::string message_name(std::size_t i) const { return name(i); }
  virtual std::vector<std::string> classes() const = 0;
  // True when samples are files that may turn out to be broken (skipped or fatal with --strict).
  virtual bool samples_can_fail() const = 0;
  // Sample i with `channels` channels, brought to `target`. Thread-safe. IoError for broken inputs.
  virtual Image load(std::size_t i, std::uint32_t channels, const TargetSize& target) const = 0;
  std::uint32_t default_channels() const { return default_channels_; }
  // Entries the folder scan left out because they are hidden (relative paths), for the summary.
  virtual std::vector<std::string> ignored() const { return {}; }
  // Warnings about the source as a whole (e.g. IDX images without a labels file).
  virtual std::vector<std::string> warnings() const { return {}; }

 protected:
  std::uint32_t default_channels_ = 3;
};

// Detects (format "auto") or opens the named format. Errors name the path and the reason.
std::unique_ptr<DatasetSource> open_source(const std::string& path, const SourceOptions& options);
// The detected format of a path ("idx", "cifar", "images", "imagenet"), IoError if none fits.
std::string detect_format(const std::string& path);

// Internals shared by the source files (exposed for tests).
std::unique_ptr<DatasetSource> open_idx_source(const std::string& path, const SourceOptions& options);
std::unique_ptr<DatasetSource> open_cifar_source(const std::string& path, const SourceOptions& options);
std::unique_ptr<DatasetSource> open_folder_source(const std::string& path, const SourceOptions& options, bool class_folders);
bool has_image_extension(const std::string& filename);
// Image types kuat does not read (.bmp, .gif, .tif, .tiff, .ppm, .pgm, .pbm, .pnm, .heic, .heif,
// .avif, .jxl, .jp2, .tga, .ico): such files in a folder are left out and counted in a warning.
bool has_unread_image_extension(const std::string& filename);
// Hidden entries are never classes or samples: names starting with a dot (.DS_Store,
// .ipynb_checkpoints, AppleDouble ._* files) and macOS archive folders (__MACOSX).
bool is_hidden_name(const std::string& filename);

}  // namespace lowbit::kuat
