#include "lowbit/kuat/source.h"

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include <sys/stat.h>

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
  return fit_to_target(convert_channels(std::move(img), channels ? channels : channels_), target);
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

namespace {

// fs::status through links, with a link loop reported as the error it is (naming the link)
// instead of a raw filesystem_error; anything else unreadable counts as "not there".
fs::file_status followed_status(const fs::path& p) {
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (ec == std::errc::too_many_symbolic_link_levels) {
    throw IoError(io_message(p.string(), "symbolic link loop (the link resolves to itself)"));
  }
  return ec ? fs::file_status(fs::file_type::not_found) : st;
}

// Whether `dir` holds a non-hidden image file at any depth below non-hidden folders; each folder
// (device, inode) is entered once, so link loops end.
bool holds_images(const fs::path& dir, std::vector<std::pair<std::uint64_t, std::uint64_t>>& seen, std::size_t& hidden) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return false;
  const std::pair<std::uint64_t, std::uint64_t> id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  if (std::find(seen.begin(), seen.end(), id) != seen.end()) return false;
  seen.push_back(id);
  std::error_code ec;
  std::vector<fs::path> subdirs;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    if (is_hidden_name(name)) {
      ++hidden;
      continue;
    }
    const fs::file_status est = followed_status(p);
    if (fs::is_regular_file(est) && has_image_extension(name)) return true;
    if (fs::is_directory(est)) subdirs.push_back(p);
  }
  for (const fs::path& sub : subdirs) {
    if (holds_images(sub, seen, hidden)) return true;
  }
  return false;
}

// Whether a sub-folder holds a dataset of a non-folder layout (IDX files, CIFAR batches), as
// torchvision's roots do (root/cifar-10-batches-py, root/MNIST/raw): named in the error.
bool holds_batches(const fs::path& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (is_hidden_name(name)) continue;
    if (is_idx_name(name) || name == "batches.meta" || name == "data_batch_1" || name == "data_batch_1.bin" ||
        name == "test_batch" || name == "test_batch.bin" || name == "train.bin" || name == "meta") {
      return true;
    }
  }
  return false;
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
  std::vector<std::string> nested;  // sub-folders holding IDX files or CIFAR batches
  std::size_t hidden = 0;            // hidden entries passed over (named in the error)
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    if (is_hidden_name(name)) {
      ++hidden;
      continue;
    }
    const fs::file_status est = followed_status(p);
    if (fs::is_regular_file(est)) {
      if (name == "batches.meta" || name == "data_batch_1" || name == "test_batch" || name == "meta") return "cifar";
      if (name == "batches.meta.txt" || name == "data_batch_1.bin" || name == "test_batch.bin" || name == "train.bin" ||
          name == "fine_label_names.txt") {
        return "cifar";
      }
      if (is_idx_name(name)) has_idx = true;
      if (has_image_extension(name)) has_images = true;
    } else if (fs::is_directory(est) && !has_class_dirs) {
      // A class folder holds images at any depth (format imagenet scans each one recursively).
      std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
      has_class_dirs = holds_images(p, seen, hidden);
      if (!has_class_dirs && holds_batches(p)) nested.push_back(name);
    }
  }
  if (ec) throw IoError(io_message(path, "cannot list the folder", ec.value()));
  if (has_idx) return "idx";
  if (has_class_dirs) return "imagenet";
  if (has_images) return "images";
  if (!nested.empty()) {
    std::sort(nested.begin(), nested.end());
    std::string list;
    for (const auto& n : nested) list += (list.empty() ? "'" : ", '") + (fs::path(path) / n).string() + "'";
    throw IoError(io_message(path, "no dataset directly in this folder; IDX files or CIFAR batches are in " + list +
                                       ": pass that folder"));
  }
  throw IoError(io_message(path, "no dataset found (no IDX files, CIFAR batches, images or class folders of images" +
                                     (hidden ? "; " + std::to_string(hidden) + " hidden entr" + (hidden == 1 ? "y" : "ies") +
                                                   " (dot names, __MACOSX) passed over, never samples or classes)"
                                             : std::string(")"))));
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
