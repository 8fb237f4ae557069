// CIFAR-10 (cifar-10-batches-py) and CIFAR-100 (cifar-100-python) pickle batches.
#include <algorithm>
#include <filesystem>

#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"
#include "pickle.h"
#include "source_cifar.h"

namespace lowbit::kuat {
namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kSide = kCifarSide, kPlane = kCifarPlane;

struct CifarLayout {
  std::vector<std::string> batches;  // full paths
  std::string meta;                  // may be empty
  bool hundred = false;
  std::vector<int> missing;          // CIFAR-10 training batches 1..5 not found
};

CifarLayout layout_for(const std::string& path, const std::string& split) {
  CifarLayout l;
  if (fs::is_regular_file(path)) {
    l.batches.push_back(path);
    const fs::path dir = fs::path(path).parent_path();
    if (fs::is_regular_file(dir / "batches.meta")) l.meta = (dir / "batches.meta").string();
    if (fs::is_regular_file(dir / "meta")) {
      l.meta = (dir / "meta").string();
      l.hundred = true;
    }
    return l;
  }
  const fs::path dir(path);
  if (fs::is_regular_file(dir / "batches.meta") || fs::is_regular_file(dir / "data_batch_1") ||
      fs::is_regular_file(dir / "test_batch")) {
    if (fs::is_regular_file(dir / "batches.meta")) l.meta = (dir / "batches.meta").string();
    if (split == "test") {
      l.batches.push_back((dir / "test_batch").string());
    } else if (split == "train") {
      for (int b = 1; b <= 5; ++b) {
        const fs::path p = dir / ("data_batch_" + std::to_string(b));
        if (fs::is_regular_file(p)) l.batches.push_back(p.string());
        else l.missing.push_back(b);
      }
    } else {
      throw InvalidArgument("CIFAR split must be 'train' or 'test', got '" + split + "'");
    }
  } else if (fs::is_regular_file(dir / "meta") || fs::is_regular_file(dir / "train")) {
    l.hundred = true;
    if (fs::is_regular_file(dir / "meta")) l.meta = (dir / "meta").string();
    if (split != "train" && split != "test") throw InvalidArgument("CIFAR split must be 'train' or 'test', got '" + split + "'");
    l.batches.push_back((dir / split).string());
  }
  for (const auto& b : l.batches) {
    if (!fs::is_regular_file(b)) throw IoError(io_message(b, "CIFAR batch file is missing"));
  }
  if (l.batches.empty()) throw IoError(io_message(path, "no CIFAR batches for split '" + split + "'"));
  return l;
}

void append_batch(const std::string& file, bool hundred, InMemorySource& src) {
  const std::vector<std::uint8_t> bytes = read_whole_file(file);
  const pickle::Document doc = pickle::parse(bytes.data(), bytes.size(), file);
  const pickle::Value* root = doc.root();
  if (root->kind != pickle::Kind::Dict) throw IoError(io_message(file, "CIFAR batch is not a dict"));
  const pickle::Value* data = pickle::dict_get(root, "data");
  if (!data || data->kind != pickle::Kind::NDArray) throw IoError(io_message(file, "CIFAR batch has no 'data' array"));
  std::size_t item = 0;
  bool sign = false;
  if (!pickle::integer_dtype(data->s, &item, &sign) || item != 1 || data->shape.size() != 2 || data->shape[1] != 3 * kPlane) {
    throw IoError(io_message(file, "CIFAR 'data' must be a uint8 array of shape (N, 3072)"));
  }
  const std::size_t n = data->shape[0];
  std::vector<std::int64_t> labels;
  const pickle::Value* lv = pickle::dict_get(root, hundred ? "fine_labels" : "labels");
  if (!lv) lv = pickle::dict_get(root, hundred ? "labels" : "fine_labels");
  if (!pickle::to_int_vector(lv, &labels) || labels.size() != n) {
    throw IoError(io_message(file, "CIFAR labels are missing or do not match the " + std::to_string(n) + " images"));
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (labels[i] < -1 || labels[i] > INT32_MAX) throw IoError(io_message(file, "CIFAR label out of range"));
  }
  const std::string base = fs::path(file).filename().string();
  append_planar_images(reinterpret_cast<const std::uint8_t*>(data->data.data()), n, src);
  for (std::size_t i = 0; i < n; ++i) {
    src.labels_.push_back(static_cast<std::int32_t>(labels[i]));
    src.names_.push_back(base + ":" + std::to_string(i));
  }
}

}  // namespace

void append_planar_images(const std::uint8_t* planar, std::size_t n, InMemorySource& src) {
  const std::size_t first = src.pixels_.size();
  src.pixels_.resize(first + n * kCifarImageBytes);
  std::uint8_t* out = src.pixels_.data() + first;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* s = planar + i * kCifarImageBytes;
    std::uint8_t* d = out + i * kCifarImageBytes;
    for (std::uint32_t p = 0; p < kCifarPlane; ++p) {
      d[3 * p] = s[p];
      d[3 * p + 1] = s[kCifarPlane + p];
      d[3 * p + 2] = s[2 * kCifarPlane + p];
    }
  }
}

std::unique_ptr<DatasetSource> open_cifar_source(const std::string& path, const SourceOptions& options) {
  if (!fs::exists(path)) throw IoError(io_message(path, "input does not exist"));
  if (is_cifar_binary(path)) return open_cifar_binary_source(path, options);
  const CifarLayout layout = layout_for(path, options.split);
  auto src = std::make_unique<InMemorySource>("cifar", kSide, kSide, 3);
  for (const auto& b : layout.batches) append_batch(b, layout.hundred, *src);
  if (!layout.missing.empty() && !layout.batches.empty()) src->warnings_.push_back(missing_batches_warning(path, layout.missing, ""));
  if (!layout.meta.empty()) {
    const std::vector<std::uint8_t> bytes = read_whole_file(layout.meta);
    const pickle::Document doc = pickle::parse(bytes.data(), bytes.size(), layout.meta);
    const pickle::Value* names = pickle::dict_get(doc.root(), layout.hundred ? "fine_label_names" : "label_names");
    if (!pickle::to_string_vector(names, &src->classes_)) {
      throw IoError(io_message(layout.meta, "CIFAR meta file has no list of label names"));
    }
  }
  return src;
}

}  // namespace lowbit::kuat
