// kuat preview <archive> <out.png> [--count N] [--source PATH]
//
// A grid of (original, decoded) pairs. Originals are re-read from the source recorded in the
// metadata (or --source) with the conversion's size settings; without them, decoded only.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <unordered_map>

#include "args.h"
#include "commands.h"
#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/convert.h"
#include "lowbit/kuat/image.h"
#include "lowbit/kuat/source.h"
#include "sample_selection.h"

namespace kuat_cli {

namespace {

using lowbit::kuat::Image;
using lowbit::kuat::Json;

std::string text_of(const Json* obj, const char* key, const std::string& fallback) {
  const Json* v = obj ? obj->find(key) : nullptr;
  return v && v->is_string() ? v->as_string() : fallback;
}
std::uint32_t number_of(const Json* obj, const char* key) {
  const Json* v = obj ? obj->find(key) : nullptr;
  return v && v->is_number() ? static_cast<std::uint32_t>(v->as_number()) : 0;
}

// Re-opens the archive's source; nullopt (with the reason printed) when it is not available.
struct Originals {
  std::unique_ptr<lowbit::kuat::DatasetSource> source;
  std::unordered_map<std::string, std::size_t> by_name;  // file sources
  std::uint32_t shard_index = 0, shard_count = 1;        // in-memory sources: i -> shard_index + i * shard_count
  lowbit::kuat::TargetSize target;
  std::uint32_t channels = 0;
};

std::optional<Originals> open_originals(const lowbit::kuat::Archive& a, const std::string& override_path) {
  const Json& m = a.metadata();
  const Json* conv = m.find("conversion");
  const std::string path = override_path.empty() ? text_of(&m, "source", "") : override_path;
  if (path.empty()) return std::nullopt;
  Originals o;
  try {
    lowbit::kuat::SourceOptions so;
    so.format = text_of(&m, "format", "auto");
    so.split = text_of(conv, "split", "train");
    o.source = lowbit::kuat::open_source(path, so);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kuat preview: originals unavailable (%s); showing decoded images only\n", e.what());
    return std::nullopt;
  }
  if (o.source->samples_can_fail()) {
    for (std::size_t i = 0; i < o.source->size(); ++i) o.by_name.emplace(o.source->name(i), i);
  } else {
    try {
      lowbit::kuat::parse_shard(text_of(conv, "shard", "0/1"), &o.shard_index, &o.shard_count);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  o.target.width = number_of(conv, "width");
  o.target.height = number_of(conv, "height");
  o.target.mode = text_of(conv, "resize", "crop") == "stretch" ? lowbit::kuat::ResizeMode::Stretch : lowbit::kuat::ResizeMode::CenterCrop;
  o.channels = a.channels();
  return o;
}

void paste(Image& canvas, const Image& img, std::uint32_t top, std::uint32_t left) {
  for (std::uint32_t y = 0; y < img.height && top + y < canvas.height; ++y) {
    for (std::uint32_t x = 0; x < img.width && left + x < canvas.width; ++x) {
      for (std::uint32_t c = 0; c < 3; ++c) {
        canvas.pixels[((std::size_t{top} + y) * canvas.width + left + x) * 3 + c] =
            img.pixels[(std::size_t{y} * img.width + x) * img.channels + (img.channels == 3 ? c : 0)];
      }
    }
  }
}

}  // namespace

int cmd_preview(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {{"count", 'n', true, "the first N samples (default 16)"},
                                         {"indices", 0, true, "comma-separated sample numbers"},
                                         {"source", 0, true, "where the originals are (default: the recorded source)"},
                                         {"columns", 0, true, "pairs per row (default 4)"},
                                         {"help", 'h', false, "show this help"}};
  const Args args(argc, argv, 2, specs);
  if (args.has("help")) {
    std::printf("usage: kuat preview <archive> <out.png> [options]\n\n%s", options_help(specs).c_str());
    return 0;
  }
  args.expect_positional(2, "<archive> <out.png>");
  const lowbit::kuat::Archive a(args.positional()[0]);
  const auto samples = selected_samples(args, a.size(), 16);
  if (samples.empty()) throw UsageError("no samples selected");
  std::optional<Originals> originals = open_originals(a, args.get("source"));

  std::vector<Image> decoded, original;
  std::uint32_t cell_h = 0, cell_w = 0;
  for (std::uint64_t i : samples) {
    const auto g = a.sample_geometry(i);
    Image d{g.height, g.width, g.channels, std::vector<std::uint8_t>(g.pixel_bytes())};
    a.decode(i, d.pixels.data());
    Image o;
    if (originals) {
      std::optional<std::size_t> at;
      if (originals->source->samples_can_fail()) {
        auto it = originals->by_name.find(a.source_name(i));
        if (it != originals->by_name.end()) at = it->second;
      } else if (const std::uint64_t k = originals->shard_index + i * originals->shard_count; k < originals->source->size()) {
        at = k;
      }
      if (at) {
        try {
          o = originals->source->load(*at, originals->channels, originals->target);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "kuat preview: original of sample %llu unavailable: %s\n", static_cast<unsigned long long>(i), e.what());
        }
      }
    }
    cell_h = std::max(cell_h, g.height);
    cell_w = std::max(cell_w, g.width);
    decoded.push_back(std::move(d));
    original.push_back(std::move(o));
  }
  const bool pairs = originals.has_value();
  const std::uint32_t gap = 2;
  const std::uint32_t columns = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, args.get_uint("columns", 4)));
  const std::uint32_t per = pairs ? 2 : 1;
  const std::uint32_t cols = std::min<std::uint32_t>(columns, static_cast<std::uint32_t>(samples.size()));
  const std::uint32_t rows = static_cast<std::uint32_t>((samples.size() + cols - 1) / cols);
  Image canvas;
  canvas.channels = 3;
  canvas.width = cols * (per * cell_w + (per - 1) * gap) + (cols + 1) * gap * 3;
  canvas.height = rows * cell_h + (rows + 1) * gap * 3;
  canvas.pixels.assign(std::size_t{canvas.width} * canvas.height * 3, 64);
  for (std::size_t s = 0; s < samples.size(); ++s) {
    const std::uint32_t r = static_cast<std::uint32_t>(s / cols), c = static_cast<std::uint32_t>(s % cols);
    const std::uint32_t top = gap * 3 + r * (cell_h + gap * 3);
    const std::uint32_t left = gap * 3 + c * (per * cell_w + (per - 1) * gap + gap * 3);
    if (pairs) {
      if (!original[s].pixels.empty()) paste(canvas, original[s], top, left);
      paste(canvas, decoded[s], top, left + cell_w + gap);
    } else {
      paste(canvas, decoded[s], top, left);
    }
  }
  lowbit::kuat::write_png(args.positional()[1], canvas);
  std::printf("wrote %s: %zu samples, %s\n", args.positional()[1].c_str(), samples.size(),
              pairs ? "original (left) beside decoded (right)" : "decoded only (originals not available)");
  return 0;
}

}  // namespace kuat_cli
