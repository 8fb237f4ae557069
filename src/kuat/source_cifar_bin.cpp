// CIFAR-10 (cifar-10-batches-bin) and CIFAR-100 (cifar-100-binary) binary batches.
#include <filesystem>
#include <fstream>

#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"
#include "source_cifar.h"

namespace lowbit::kuat {
namespace {

namespace fs = std::filesystem;

bool is_cifar10_bin_name(const std::string& name) {
  return name == "test_batch.bin" || (name.rfind("data_batch_", 0) == 0 && name.size() > 15 &&
                                      name.compare(name.size() - 4, 4, ".bin") == 0);
}
bool is_cifar100_bin_name(const std::string& name) { return name == "train.bin" || name == "test.bin"; }

struct BinaryLayout {
  std::vector<std::string> batches;
  std::string names_file;  // batches.meta.txt or fine_label_names.txt; may be empty
  bool hundred = false;
  std::vector<int> missing;  // CIFAR-10 training batches 1..5 not found
};

BinaryLayout binary_layout(const std::string& path, const std::string& split) {
  BinaryLayout l;
  if (split != "train" && split != "test") throw InvalidArgument("CIFAR split must be 'train' or 'test', got '" + split + "'");
  fs::path dir(path);
  if (fs::is_regular_file(path)) {
    const std::string name = dir.filename().string();
    if (is_cifar100_bin_name(name)) l.hundred = true;
    else if (!is_cifar10_bin_name(name)) {
      throw IoError(io_message(path, "not a CIFAR binary batch name (data_batch_N.bin or test_batch.bin for CIFAR-10, "
                                     "train.bin or test.bin for CIFAR-100)"));
    }
    l.batches.push_back(path);
    dir = dir.parent_path();
  } else {
    l.hundred = fs::is_regular_file(dir / "train.bin") || fs::is_regular_file(dir / "test.bin") ||
                fs::is_regular_file(dir / "fine_label_names.txt");
    if (l.hundred) {
      l.batches.push_back((dir / (split + ".bin")).string());
    } else if (split == "test") {
      l.batches.push_back((dir / "test_batch.bin").string());
    } else {
      for (int b = 1; b <= 5; ++b) {
        const fs::path p = dir / ("data_batch_" + std::to_string(b) + ".bin");
        if (fs::is_regular_file(p)) l.batches.push_back(p.string());
        else l.missing.push_back(b);
      }
      if (l.batches.empty()) throw IoError(io_message(path, "no CIFAR-10 binary training batches (data_batch_1.bin ...)"));
    }
  }
  for (const auto& b : l.batches) {
    if (!fs::is_regular_file(b)) throw IoError(io_message(b, "CIFAR batch file is missing"));
  }
  const fs::path names = dir / (l.hundred ? "fine_label_names.txt" : "batches.meta.txt");
  if (fs::is_regular_file(names)) l.names_file = names.string();
  return l;
}

// One class name per line; blank lines at the end (the real files have them) are dropped.
std::vector<std::string> read_names(const std::string& file, std::size_t expected) {
  std::ifstream in(file);
  if (!in) throw IoError(io_message(file, "cannot open", errno));
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  for (const auto& n : names) {
    if (n.empty()) throw IoError(io_message(file, "has a blank line among the class names"));
  }
  if (names.size() != expected) {
    throw IoError(io_message(file, "lists " + std::to_string(names.size()) + " class names, expected " + std::to_string(expected)));
  }
  return names;
}

}  // namespace

bool is_cifar_binary(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    const std::string name = fs::path(path).filename().string();
    return is_cifar10_bin_name(name) || is_cifar100_bin_name(name);
  }
  const fs::path dir(path);
  for (const char* f : {"data_batch_1.bin", "test_batch.bin", "batches.meta.txt", "train.bin", "test.bin", "fine_label_names.txt"}) {
    if (fs::is_regular_file(dir / f, ec)) return true;
  }
  return false;
}

void append_cifar_binary(const std::uint8_t* data, std::size_t size, bool hundred, const std::string& what,
                         InMemorySource& src) {
  const std::size_t label_bytes = hundred ? 2 : 1, record = label_bytes + kCifarImageBytes;
  const char* kind = hundred ? "CIFAR-100" : "CIFAR-10";
  if (size == 0) throw IoError(io_message(what, std::string(kind) + " binary batch is empty"));
  if (size % record != 0) {
    throw IoError(io_message(what, "is " + std::to_string(size) + " bytes, not a whole number of " + std::to_string(record) +
                                       "-byte " + kind + " records (truncated, or not a " + kind + " binary batch)"));
  }
  const std::size_t n = size / record;
  const std::string base = fs::path(what).filename().string();
  std::vector<std::uint8_t> planar(kCifarImageBytes);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* r = data + i * record;
    const unsigned label = r[label_bytes - 1];
    if (label >= (hundred ? 100u : 10u) || (hundred && r[0] >= 20)) {
      throw IoError(io_message(what, "record " + std::to_string(i) + " has label " + std::to_string(label) +
                                         (hundred ? " (coarse " + std::to_string(r[0]) + ")" : std::string()) +
                                         ", out of range for " + kind + " (truncated or not a " + kind + " binary batch?)"));
    }
  }
  src.pixels_.reserve(src.pixels_.size() + n * kCifarImageBytes);
  src.labels_.reserve(src.labels_.size() + n);
  src.names_.reserve(src.names_.size() + n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* r = data + i * record;
    append_planar_images(r + label_bytes, 1, src);
    src.labels_.push_back(r[label_bytes - 1]);
    src.names_.push_back(base + ":" + std::to_string(i));
  }
}

std::unique_ptr<DatasetSource> open_cifar_binary_source(const std::string& path, const SourceOptions& options) {
  const BinaryLayout layout = binary_layout(path, options.split);
  auto src = std::make_unique<InMemorySource>("cifar", kCifarSide, kCifarSide, 3);
  for (const auto& b : layout.batches) {
    const std::vector<std::uint8_t> bytes = read_whole_file(b);
    append_cifar_binary(bytes.data(), bytes.size(), layout.hundred, b, *src);
  }
  if (!layout.names_file.empty()) src->classes_ = read_names(layout.names_file, layout.hundred ? 100 : 10);
  if (!layout.missing.empty()) src->warnings_.push_back(missing_batches_warning(path, layout.missing, ".bin"));
  return src;
}

}  // namespace lowbit::kuat
