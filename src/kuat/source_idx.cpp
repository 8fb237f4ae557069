// MNIST / Fashion-MNIST IDX files (big-endian header; optionally gzip-compressed).
#include "source_idx.h"

#if LOWBIT_HAVE_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>
#include <filesystem>
#include <new>

#include "lowbit/core/error.h"

namespace lowbit::kuat {
namespace {

namespace fs = std::filesystem;

std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

std::string labels_name_for(const std::string& images) {
  std::string name = fs::path(images).filename().string();
  for (auto [from, to] : {std::pair<const char*, const char*>{"idx3", "idx1"}, {"images", "labels"}}) {
    const auto at = name.find(from);
    if (at != std::string::npos) name.replace(at, std::strlen(from), to);
  }
  return name;
}

std::string labels_path_for(const std::string& images) {
  const std::string name = labels_name_for(images);
  const fs::path dir = fs::path(images).parent_path();
  const bool gz = name.size() > 3 && name.compare(name.size() - 3, 3, ".gz") == 0;
  for (const std::string& candidate : {name, gz ? name.substr(0, name.size() - 3) : name + ".gz"}) {
    if (!candidate.empty() && fs::is_regular_file(dir / candidate)) return (dir / candidate).string();
  }
  return {};
}

// Whether an IDX file name belongs to `split`: MNIST's "train-..." / "t10k-...", and the split as
// a word of the name ("emnist-balanced-test-images-idx3-ubyte", "kmnist_train_images...").
bool idx_name_in_split(const std::string& name, const std::string& split) {
  const std::string want = split == "test" ? "t10k" : split;
  if (name.rfind(want, 0) == 0) return true;
  std::vector<std::string> words{""};
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') words.emplace_back();
    else words.back() += c;
  }
  return std::find(words.begin(), words.end(), split) != words.end() ||
         (split == "test" && std::find(words.begin(), words.end(), "t10k") != words.end());
}

std::string pick_images_file(const std::string& folder, const std::string& split) {
  std::vector<std::string> all, matching;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    std::error_code ec;
    if (is_hidden_name(name) || !e.is_regular_file(ec) || name.find("idx3-ubyte") == std::string::npos) continue;
    all.push_back(name);
    if (idx_name_in_split(name, split)) matching.push_back(name);
  }
  // torchvision's MNIST/raw keeps each download next to its extraction (X.gz and X): the same
  // data twice, so the plain file stands for both.
  auto drop_gz_twins = [](std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& n : names) {
      const bool gz = n.size() > 3 && n.compare(n.size() - 3, 3, ".gz") == 0;
      if (!(gz && std::find(names.begin(), names.end(), n.substr(0, n.size() - 3)) != names.end())) out.push_back(n);
    }
    names = out;
  };
  drop_gz_twins(all);
  drop_gz_twins(matching);
  if (matching.size() == 1) return (fs::path(folder) / matching[0]).string();
  if (all.size() == 1) return (fs::path(folder) / all[0]).string();
  std::sort(all.begin(), all.end());
  std::string listing;
  for (const auto& a : all) listing += " " + a;
  if (all.empty()) throw IoError(io_message(folder, "no *-idx3-ubyte[.gz] images file"));
  throw IoError(io_message(folder, "split '" + split + "' selects " + std::to_string(matching.size()) +
                                       " of the IDX files (pass the images file itself):" + listing));
}

// The whole file size an IDX header (its first 16 bytes) gives; UINT64_MAX when it is no IDX header.
std::uint64_t idx_size_from_header(const std::uint8_t* h) {
  const std::uint32_t magic = be32(h);
  if (magic == 0x00000801) return 8 + std::uint64_t{be32(h + 4)};
  if (magic != 0x00000803 || be32(h + 8) > 65535 || be32(h + 12) > 65535) return UINT64_MAX;
  return 16 + std::uint64_t{be32(h + 4)} * be32(h + 8) * be32(h + 12);
}


std::vector<std::uint8_t> read_idx_file(const std::string& path, std::uint64_t max_bytes) {
  const std::vector<std::uint8_t> raw = read_whole_file(path);
  return idx_file_bytes(raw.data(), raw.size(), path, max_bytes);
}

}  // namespace

std::vector<std::uint8_t> idx_file_bytes(const std::uint8_t* data, std::size_t size, const std::string& what,
                                         std::uint64_t max_bytes) {
  if (size < 2 || data[0] != 0x1f || data[1] != 0x8b) return std::vector<std::uint8_t>(data, data + size);
#if !LOWBIT_HAVE_ZLIB  // zlib's headers were missing at build time (LOWBIT_IMAGE_CODECS=OFF builds only)
  (void)max_bytes;
  throw IoError(io_message(what, "gzip-compressed, and lowbit was built without zlib; gunzip the file first"));
#else
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw IoError(io_message(what, "cannot start gzip decompression"));
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = 0;
  std::size_t left = size;
  int r = Z_OK;
  while (r != Z_STREAM_END) {
    if (z.avail_in == 0) {
      if (left == 0) break;
      const std::size_t take = std::min<std::size_t>(left, 1u << 30);
      z.avail_in = static_cast<uInt>(take);
      left -= take;
    }
    z.next_out = buf;
    z.avail_out = sizeof buf;
    r = inflate(&z, Z_NO_FLUSH);
    if (r != Z_OK && r != Z_STREAM_END && !(r == Z_BUF_ERROR && z.avail_in == 0)) break;
    const std::size_t got = sizeof buf - z.avail_out;
    if (out.size() + got > max_bytes) {
      inflateEnd(&z);
      throw IoError(io_message(what, "gzip data is longer than the " + std::to_string(max_bytes) +
                                         " bytes its IDX header gives"));
    }
    const bool had_header = out.size() >= 16;
    out.insert(out.end(), buf, buf + got);
    if (!had_header && out.size() >= 16) max_bytes = std::min(max_bytes, idx_size_from_header(out.data()));
    if (r == Z_BUF_ERROR && left == 0 && z.avail_in == 0) break;
  }
  inflateEnd(&z);
  if (r != Z_STREAM_END) throw IoError(io_message(what, "corrupt or truncated gzip data"));
  return out;
#endif
}

std::unique_ptr<InMemorySource> idx_images_source(const std::vector<std::uint8_t>& raw, const std::string& what,
                                                  std::uint64_t max_pixels) {
  if (raw.size() < 16 || be32(raw.data()) != 0x00000803) {
    throw IoError(io_message(what, "not an IDX image file (expected magic 0x00000803 and a 16-byte header)"));
  }
  const std::uint32_t n = be32(raw.data() + 4), rows = be32(raw.data() + 8), cols = be32(raw.data() + 12);
  if (n == 0 || rows == 0 || cols == 0 || rows > 65535 || cols > 65535) throw IoError(io_message(what, "IDX header has an empty or huge shape"));
  if (std::uint64_t{rows} * cols > max_pixels) {
    throw IoError(io_message(what, "IDX images are " + std::to_string(rows) + " x " + std::to_string(cols) +
                                       " pixels, over the limit of " + std::to_string(max_pixels) + " (--max-pixels)"));
  }
  const std::uint64_t need = std::uint64_t{n} * rows * cols;
  if (raw.size() - 16 != need) {
    throw IoError(io_message(what, "IDX data is " + std::to_string(raw.size() - 16) + " bytes, header says " +
                                       std::to_string(need) + " (truncated?)"));
  }
  auto src = std::make_unique<InMemorySource>("idx", rows, cols, 1);
  src->pixels_.assign(raw.begin() + 16, raw.end());
  src->labels_.assign(n, -1);
  const std::string base = fs::path(what).filename().string();
  src->names_.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) src->names_.push_back(base + ":" + std::to_string(i));
  return src;
}

void set_idx_labels(const std::vector<std::uint8_t>& lab, const std::string& what, InMemorySource& src) {
  const std::size_t n = src.labels_.size();
  if (lab.size() < 8 || be32(lab.data()) != 0x00000801) throw IoError(io_message(what, "not an IDX label file (magic 0x00000801)"));
  if (be32(lab.data() + 4) != n || lab.size() - 8 != n) {
    throw IoError(io_message(what, "holds " + std::to_string(be32(lab.data() + 4)) + " labels for " + std::to_string(n) + " images"));
  }
  for (std::size_t i = 0; i < n; ++i) src.labels_[i] = lab[8 + i];
}

std::unique_ptr<DatasetSource> open_idx_source(const std::string& path, const SourceOptions& options) {
  const std::string images = fs::is_directory(path) ? pick_images_file(path, options.split) : path;
  try {
    std::unique_ptr<InMemorySource> src = idx_images_source(read_idx_file(images, UINT64_MAX), images, options.decode.max_pixels);
    const std::string labels = labels_path_for(images);
    if (!labels.empty()) {
      set_idx_labels(read_idx_file(labels, UINT64_MAX), labels, *src);
    } else {
      src->warnings_.push_back(
          "'" + images + "': no labels file next to it (looked for '" + labels_name_for(images) +
          "' with and without .gz); every label is -1");
    }
    return src;
  } catch (const std::bad_alloc&) {
    throw IoError(io_message(images, "out of memory reading the IDX data"));
  }
}

}  // namespace lowbit::kuat
