#include "lowbit/kuat/source.h"

#include <algorithm>
#include <filesystem>

#include "lowbit/core/error.h"
#include "source_memory.h"

namespace lowbit::kuat {

namespace fs = std::filesystem;

Image InMemorySource::load(std::size_t i, std::uint32_t channels, const TargetSize& target) const {
  const std::size_t bytes = std::size_t{height_} * width_ * channels_;
  Image img;
  img.height = height_;
  img.width = width_;
  img.channels = channels_;
  img.pixels.assign(pixels_.begin() + static_cast<long>(i * bytes), pixels_.begin() + static_cast<long>((i + 1) * bytes));
  return fit_to_target(convert_channels(img, channels ? channels : channels_), target);
}

bool has_image_extension(const std::string& filename) {
  std::string ext = fs::path(filename).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".webp" || ext == ".jpe";
}

bool has_unread_image_extension(const std::string& filename) {
  std::string ext = fs::path(filename).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* e : {".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".heic", ".heif", ".avif",
                        ".jxl", ".jp2", ".tga", ".ico"}) {
    if (ext == e) return true;
  }
  return false;
}

bool is_hidden_name(const std::string& filename) {
  return (!filename.empty() && filename[0] == '.') || filename == "__MACOSX";
}

namespace {

bool is_idx_name(const std::string& name) {
  return name.find("-idx3-ubyte") != std::string::npos || name.find(".idx3-ubyte") != std::string::npos;
}

}  // namespace

std::string detect_format(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw IoError(io_message(path, "input does not exist"));
  if (fs::is_regular_file(st)) {
    const std::string name = fs::path(path).filename().string();
    if (is_idx_name(name)) return "idx";
    if (name.rfind("data_batch", 0) == 0 || name == "test_batch" || name == "train" || name == "test") return "cifar";
    if (name == "test_batch.bin" || name == "train.bin" || name == "test.bin") return "cifar";
    throw IoError(io_message(path, "cannot tell the format of this file (use --format idx or cifar)"));
  }
  if (!fs::is_directory(st)) throw IoError(io_message(path, "not a file or folder"));
  bool has_idx = false, has_images = false, has_class_dirs = false;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const std::string name = e.path().filename().string();
    if (is_hidden_name(name)) continue;
    if (e.is_regular_file()) {
      if (name == "batches.meta" || name == "data_batch_1" || name == "test_batch" || name == "meta") return "cifar";
      if (name == "batches.meta.txt" || name == "data_batch_1.bin" || name == "test_batch.bin" || name == "train.bin" ||
          name == "fine_label_names.txt") {
        return "cifar";
      }
      if (is_idx_name(name)) has_idx = true;
      if (has_image_extension(name)) has_images = true;
    } else if (e.is_directory() && !has_class_dirs) {
      for (const auto& f : fs::directory_iterator(e.path(), ec)) {
        const std::string file = f.path().filename().string();
        if (!is_hidden_name(file) && f.is_regular_file() && has_image_extension(file)) {
          has_class_dirs = true;
          break;
        }
      }
    }
  }
  if (ec) throw IoError(io_message(path, "cannot list the folder", ec.value()));
  if (has_idx) return "idx";
  if (has_class_dirs) return "imagenet";
  if (has_images) return "images";
  throw IoError(io_message(path, "no dataset found (no IDX files, CIFAR batches, images or class folders of images)"));
}

std::unique_ptr<DatasetSource> open_source(const std::string& path, const SourceOptions& options) {
  const std::string format = options.format == "auto" || options.format.empty() ? detect_format(path) : options.format;
  require(options.channels == 0 || options.channels == 1 || options.channels == 3,
          "channels must be 1 or 3, got " + std::to_string(options.channels));
  if (format == "idx" || format == "mnist") return open_idx_source(path, options);
  if (format == "cifar") return open_cifar_source(path, options);
  if ((format == "images" || format == "imagenet") && !image_codecs_available())
    throw IoError(io_message(path, no_image_codecs_reason()));
  if (format == "images") return open_folder_source(path, options, false);
  if (format == "imagenet") return open_folder_source(path, options, true);
  throw InvalidArgument("unknown format '" + format + "' (expected auto, idx, cifar, images or imagenet)");
}

}  // namespace lowbit::kuat
