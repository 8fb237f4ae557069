// Image folders: a flat folder ("images") or one sub-folder per class ("imagenet").
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "lowbit/core/error.h"
#include "lowbit/kuat/source.h"

namespace lowbit::kuat {
namespace {

namespace fs = std::filesystem;

class FolderSource : public DatasetSource {
 public:
  FolderSource(std::string root, const char* format) : root_(std::move(root)), format_(format) {}

  const char* format() const override { return format_; }
  std::size_t size() const override { return files_.size(); }
  std::int32_t label(std::size_t i) const override { return labels_.at(i); }
  std::string name(std::size_t i) const override { return files_.at(i); }
  std::vector<std::string> classes() const override { return classes_; }
  bool samples_can_fail() const override { return true; }
  Image load(std::size_t i, std::uint32_t channels, const TargetSize& target) const override {
    const Image img = read_image_file((fs::path(root_) / files_.at(i)).string(), channels ? channels : 3, target);
    return fit_to_target(img, target);
  }

  std::vector<std::string> files_;  // relative to root_
  std::vector<std::int32_t> labels_;
  std::vector<std::string> classes_;

 private:
  std::string root_;
  const char* format_;
};

std::vector<std::string> list_images(const fs::path& dir, const fs::path& relative_to, bool recursive) {
  std::vector<std::string> out;
  std::error_code ec;
  auto add = [&](const fs::directory_entry& e) {
    if (e.is_regular_file() && has_image_extension(e.path().filename().string())) {
      out.push_back(fs::relative(e.path(), relative_to).generic_string());
    }
  };
  if (recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec)) add(e);
  } else {
    for (const auto& e : fs::directory_iterator(dir, ec)) add(e);
  }
  if (ec) throw IoError(io_message(dir.string(), "cannot list the folder", ec.value()));
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::int32_t> read_label_map(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw IoError(io_message(file, "cannot open the labels file", errno));
  std::map<std::string, std::int32_t> map;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto comma = line.rfind(',');
    std::size_t used = 0;
    long value = 0;
    try {
      if (comma == std::string::npos) throw std::invalid_argument("no comma");
      value = std::stol(line.substr(comma + 1), &used);
    } catch (const std::exception&) {
      throw IoError(io_message(file, "line " + std::to_string(n) + " is not 'path,label'"));
    }
    if (used != line.size() - comma - 1 || value < -1 || value > INT32_MAX) {
      throw IoError(io_message(file, "line " + std::to_string(n) + " has a bad label"));
    }
    map[line.substr(0, comma)] = static_cast<std::int32_t>(value);
  }
  return map;
}

}  // namespace

std::unique_ptr<DatasetSource> open_folder_source(const std::string& path, const SourceOptions& options, bool class_folders) {
  if (!fs::exists(path)) throw IoError(io_message(path, "input folder does not exist"));
  if (!fs::is_directory(path)) throw IoError(io_message(path, "is not a folder"));
  auto src = std::make_unique<FolderSource>(path, class_folders ? "imagenet" : "images");
  if (class_folders) {
    std::vector<std::string> classes;
    for (const auto& e : fs::directory_iterator(path)) {
      if (e.is_directory()) classes.push_back(e.path().filename().string());
    }
    std::sort(classes.begin(), classes.end());
    for (std::size_t c = 0; c < classes.size(); ++c) {
      for (auto& f : list_images(fs::path(path) / classes[c], path, true)) {
        src->files_.push_back(std::move(f));
        src->labels_.push_back(static_cast<std::int32_t>(c));
      }
    }
    src->classes_ = classes;
    if (src->files_.empty()) throw IoError(io_message(path, "no images in any class folder"));
  } else {
    src->files_ = list_images(path, path, false);
    if (src->files_.empty()) throw IoError(io_message(path, "folder holds no .jpg, .jpeg, .png or .webp images"));
    src->labels_.assign(src->files_.size(), -1);
    if (!options.labels_file.empty()) {
      const auto map = read_label_map(options.labels_file);
      for (std::size_t i = 0; i < src->files_.size(); ++i) {
        auto it = map.find(src->files_[i]);
        if (it != map.end()) src->labels_[i] = it->second;
      }
    }
  }
  return src;
}

}  // namespace lowbit::kuat
