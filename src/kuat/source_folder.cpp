// Image folders: a flat folder ("images") or one sub-folder per class ("imagenet").
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <new>
#include <fstream>
#include <map>

#include "lowbit/core/error.h"
#include "lowbit/kuat/source.h"

namespace lowbit::kuat {
namespace {

namespace fs = std::filesystem;

class FolderSource : public DatasetSource {
 public:
  FolderSource(std::string root, const char* format, DecodeOptions decode)
      : root_(std::move(root)), format_(format), decode_(decode) {}

  const char* format() const override { return format_; }
  std::size_t size() const override { return files_.size(); }
  std::int32_t label(std::size_t i) const override { return labels_.at(i); }
  std::string name(std::size_t i) const override { return files_.at(i); }
  std::vector<std::string> classes() const override { return classes_; }
  std::vector<std::string> ignored() const override { return ignored_; }
  std::vector<std::string> warnings() const override {
    if (unread_.empty()) return {};
    std::string m = "left out " + std::to_string(unread_.size()) + " image file(s) of a type kuat does not read " +
                    "(samples are .jpg, .jpeg, .jpe, .png and .webp files; convert the others first):";
    for (std::size_t i = 0; i < unread_.size() && i < 10; ++i) m += (i ? ", " : " ") + unread_[i];
    if (unread_.size() > 10) m += ", ... (" + std::to_string(unread_.size() - 10) + " more)";
    return {m};
  }
  bool samples_can_fail() const override { return true; }
  std::string message_name(std::size_t i) const override { return (fs::path(root_) / files_.at(i)).string(); }
  Image load(std::size_t i, std::uint32_t channels, const TargetSize& target) const override {
    const std::string path = message_name(i);
    try {
      return fit_to_target(read_image_file(path, channels ? channels : 3, target, decode_), target);
    } catch (const std::bad_alloc&) {  // one image's failure, not the run's
      throw IoError(io_message(path, "out of memory while resizing"));
    }
  }

  std::vector<std::string> files_;  // relative to root_
  std::vector<std::int32_t> labels_;
  std::vector<std::string> classes_;
  std::vector<std::string> ignored_;  // hidden entries left out, relative to root_
  std::vector<std::string> unread_;   // image files of types kuat does not read, relative to root_

 private:
  std::string root_;
  const char* format_;
  DecodeOptions decode_;
};

// Folder scanning: samples are image files, classes are folders; hidden entries are neither
// (they are listed in `ignored`), and a folder reached again through a symbolic link below
// itself is an error naming the link instead of an endless walk.
class FolderScan {
 public:
  explicit FolderScan(fs::path root) : root_(std::move(root)) {}

  // The non-hidden entries of `dir` (followed through symbolic links), sorted by name.
  struct Entry {
    fs::path path;
    bool directory = false, image = false;
  };
  std::vector<Entry> list(const fs::path& dir) {
    std::vector<Entry> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      const std::string name = p.filename().string();
      if (is_hidden_name(name)) {
        ignored.push_back(relative(p));
        continue;
      }
      std::error_code sec;
      const fs::file_status st = fs::status(p, sec);  // follows links
      if (sec == std::errc::too_many_symbolic_link_levels) {
        throw IoError(io_message(p.string(), "symbolic link loop (the link resolves to itself)"));
      }
      if (sec) continue;  // a dangling link: neither a sample nor a class
      if (fs::is_directory(st)) out.push_back({p, true, false});
      else if (fs::is_regular_file(st) && has_image_extension(name)) out.push_back({p, false, true});
      else if (fs::is_regular_file(st) && has_unread_image_extension(name)) unread.push_back(relative(p));
    }
    if (ec) throw IoError(io_message(dir.string(), "cannot list the folder", ec.value()));
    std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.path.filename() < b.path.filename(); });
    return out;
  }

  // Image files directly in `dir` (recursive: in every non-hidden sub-folder too), relative to root.
  void images(const fs::path& dir, bool recursive, std::vector<std::string>& out) {
    const Identity id = identity(dir);
    for (const Identity& a : ancestors_) {
      if (a.dev == id.dev && a.ino == id.ino) {
        throw IoError(io_message(dir.string(), "symbolic link loop: this folder leads back to '" + a.path + "'"));
      }
    }
    ancestors_.push_back(id);
    for (const Entry& e : list(dir)) {
      if (e.image) out.push_back(relative(e.path));
      else if (recursive) images(e.path, true, out);
    }
    ancestors_.pop_back();
  }

  // Enters `dir` as an ancestor without listing it (the root of a class-folder walk).
  void enter(const fs::path& dir) { ancestors_.push_back(identity(dir)); }

  std::vector<std::string> ignored;
  std::vector<std::string> unread;  // image files of types kuat does not read

 private:
  struct Identity {
    std::uint64_t dev = 0, ino = 0;
    std::string path;
  };
  Identity identity(const fs::path& dir) const {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) throw IoError(io_message(dir.string(), "cannot open the folder", errno));
    return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino), dir.string()};
  }
  std::string relative(const fs::path& p) const { return p.lexically_relative(root_).generic_string(); }

  fs::path root_;
  std::vector<Identity> ancestors_;
};

// " (ignored N hidden entries: a, b, ...)" for an error that found no sample, else "".
std::string hidden_note(std::vector<std::string> hidden) {
  if (hidden.empty()) return {};
  std::sort(hidden.begin(), hidden.end());
  std::string m = " (ignored " + std::to_string(hidden.size()) + " hidden entr" + (hidden.size() == 1 ? "y" : "ies") +
                  ", never samples or classes:";
  for (std::size_t i = 0; i < hidden.size() && i < 10; ++i) m += (i ? ", " : " ") + hidden[i];
  if (hidden.size() > 10) m += ", ...";
  return m + ")";
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
  auto src = std::make_unique<FolderSource>(path, class_folders ? "imagenet" : "images", options.decode);
  FolderScan scan{fs::path(path)};
  if (class_folders) {
    scan.enter(path);
    for (const auto& e : scan.list(path)) {
      if (!e.directory) continue;
      const auto c = static_cast<std::int32_t>(src->classes_.size());
      src->classes_.push_back(e.path.filename().string());
      std::vector<std::string> files;
      scan.images(e.path, true, files);
      std::sort(files.begin(), files.end());
      for (auto& f : files) {
        src->files_.push_back(std::move(f));
        src->labels_.push_back(c);
      }
    }
    if (src->files_.empty()) throw IoError(io_message(path, "no images in any class folder" + hidden_note(scan.ignored)));
  } else {
    scan.images(path, false, src->files_);
    std::sort(src->files_.begin(), src->files_.end());
    if (src->files_.empty()) {
      throw IoError(io_message(path, "folder holds no .jpg, .jpeg, .png or .webp images" + hidden_note(scan.ignored)));
    }
    src->labels_.assign(src->files_.size(), -1);
    if (!options.labels_file.empty()) {
      const auto map = read_label_map(options.labels_file);
      for (std::size_t i = 0; i < src->files_.size(); ++i) {
        auto it = map.find(src->files_[i]);
        if (it != map.end()) src->labels_[i] = it->second;
      }
    }
  }
  src->ignored_ = std::move(scan.ignored);
  std::sort(src->ignored_.begin(), src->ignored_.end());
  src->unread_ = std::move(scan.unread);
  std::sort(src->unread_.begin(), src->unread_.end());
  return src;
}

}  // namespace lowbit::kuat
