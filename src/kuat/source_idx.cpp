// MNIST / Fashion-MNIST IDX files (big-endian header; optionally gzip-compressed).
#if LOWBIT_HAVE_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"
#include "source_memory.h"

namespace lowbit::kuat {
namespace {

namespace fs = std::filesystem;

#if !LOWBIT_HAVE_ZLIB
// A build without zlib (its headers were missing): plain files only.
std::vector<std::uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<std::uint8_t> out = read_whole_file(path);
  if (out.size() >= 2 && out[0] == 0x1f && out[1] == 0x8b)
    throw IoError(io_message(path, "gzip-compressed, and lowbit was built without zlib; gunzip the file first"));
  return out;
}
#else
// Reads a whole file, gunzipping it when it is gzip-compressed (zlib passes plain files through).
std::vector<std::uint8_t> read_maybe_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw IoError(io_message(path, "cannot open", errno));
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    const int r = gzread(f, buf, sizeof buf);
    if (r < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw IoError(io_message(path, "corrupt or truncated gzip data: " + msg));
    }
    if (r == 0) break;
    out.insert(out.end(), buf, buf + r);
  }
  // A truncated gzip stream reads as a short file without an error from gzread; gzclose reports it.
  if (gzclose(f) != Z_OK) throw IoError(io_message(path, "corrupt or truncated gzip data"));
  return out;
}
#endif

std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

std::string labels_path_for(const std::string& images) {
  std::string name = fs::path(images).filename().string();
  for (auto [from, to] : {std::pair<const char*, const char*>{"idx3", "idx1"}, {"images", "labels"}}) {
    const auto at = name.find(from);
    if (at != std::string::npos) name.replace(at, std::strlen(from), to);
  }
  const fs::path dir = fs::path(images).parent_path();
  for (const std::string& candidate : {name, name.substr(0, name.size() - 3), name + ".gz"}) {
    if (!candidate.empty() && fs::is_regular_file(dir / candidate)) return (dir / candidate).string();
  }
  return {};
}

std::string pick_images_file(const std::string& folder, const std::string& split) {
  const std::string want = split == "test" ? "t10k" : split;
  std::vector<std::string> all, matching;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.find("idx3-ubyte") == std::string::npos) continue;
    all.push_back(name);
    if (name.rfind(want, 0) == 0) matching.push_back(e.path().string());
  }
  if (matching.size() == 1) return matching[0];
  if (all.size() == 1) return (fs::path(folder) / all[0]).string();
  std::sort(all.begin(), all.end());
  std::string listing;
  for (const auto& a : all) listing += " " + a;
  if (all.empty()) throw IoError(io_message(folder, "no *-idx3-ubyte[.gz] images file"));
  throw IoError(io_message(folder, "split '" + split + "' selects " + std::to_string(matching.size()) +
                                       " of the IDX files:" + listing));
}

}  // namespace

std::unique_ptr<DatasetSource> open_idx_source(const std::string& path, const SourceOptions& options) {
  const std::string images = fs::is_directory(path) ? pick_images_file(path, options.split) : path;
  const std::vector<std::uint8_t> raw = read_maybe_gzip(images);
  if (raw.size() < 16 || be32(raw.data()) != 0x00000803) {
    throw IoError(io_message(images, "not an IDX image file (expected magic 0x00000803 and a 16-byte header)"));
  }
  const std::uint32_t n = be32(raw.data() + 4), rows = be32(raw.data() + 8), cols = be32(raw.data() + 12);
  if (n == 0 || rows == 0 || cols == 0 || rows > 65535 || cols > 65535) throw IoError(io_message(images, "IDX header has an empty or huge shape"));
  const std::uint64_t need = std::uint64_t{n} * rows * cols;
  if (raw.size() - 16 != need) {
    throw IoError(io_message(images, "IDX data is " + std::to_string(raw.size() - 16) + " bytes, header says " +
                                         std::to_string(need) + " (truncated?)"));
  }
  auto src = std::make_unique<InMemorySource>("idx", rows, cols, 1);
  src->pixels_.assign(raw.begin() + 16, raw.end());
  src->labels_.assign(n, -1);
  const std::string base = fs::path(images).filename().string();
  src->names_.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) src->names_.push_back(base + ":" + std::to_string(i));
  const std::string labels = labels_path_for(images);
  if (!labels.empty()) {
    const std::vector<std::uint8_t> lab = read_maybe_gzip(labels);
    if (lab.size() < 8 || be32(lab.data()) != 0x00000801) throw IoError(io_message(labels, "not an IDX label file (magic 0x00000801)"));
    if (be32(lab.data() + 4) != n || lab.size() - 8 != n) {
      throw IoError(io_message(labels, "holds " + std::to_string(be32(lab.data() + 4)) + " labels for " + std::to_string(n) + " images"));
    }
    for (std::uint32_t i = 0; i < n; ++i) src->labels_[i] = lab[8 + i];
  }
  (void)options;
  return src;
}

}  // namespace lowbit::kuat
