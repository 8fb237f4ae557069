#include "lowbit/kuat/convert.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <new>
#include <numeric>
#include <optional>
#include <random>
#include <unordered_map>

#include "lowbit/core/build_info.h"
#include "lowbit/core/error.h"
#include "lowbit/core/progress.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/archive_writer.h"
#include "lowbit/kuat/codebook.h"
#include "lowbit/kuat/json.h"

namespace lowbit::kuat {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Job {
  const DatasetSource& source;
  const ConvertOptions& options;
  std::uint32_t channels;
  ThreadPool& pool;
  const std::function<void(const std::string&)>& warn;
  ConvertStats& stats;
  std::mutex mutex;

  std::vector<std::string> training_failures;  // why inputs of the training sample could not be read

  // Images over max_pixels are refused by check_pixel_limit (image_decode.cpp) and the IDX reader
  // with a message naming the limit: they are intact, only too large, so the summary counts them apart.
  static bool is_pixel_limit_refusal(const std::string& message) {
    return message.find("over the limit of") != std::string::npos && message.find("--max-pixels") != std::string::npos;
  }

  // A broken input: counted and reported, or fatal with --strict.
  void skip(const std::string& message) {
    if (options.strict) throw IoError(message + " (--strict)");
    std::lock_guard<std::mutex> lock(mutex);
    ++stats.skipped;
    if (is_pixel_limit_refusal(message)) ++stats.refused;
    stats.skipped_reasons.push_back(message);
    if (warn) warn("skipped " + message);
  }

  // `report`: count and report a broken input (the encoding pass); the training pass reads a
  // subset of the same inputs and must not count them twice.
  std::optional<Image> load(std::size_t i, bool report) {
    try {
      return source.load(i, channels, options.target);
    } catch (const IoError& e) {
      if (!source.samples_can_fail()) throw;
      failed(e.what(), report);
      return std::nullopt;
    }
  }

  // Memory ran out while the decoded image `i` was being worked on (its patches sampled or
  // encoded): that image's error, named, like a decoding failure; never a run-wide bad_alloc.
  void out_of_memory(std::size_t i, const char* stage, bool report) {
    const std::string message =
        io_message(source.message_name(i), std::string("out of memory while ") + stage + " (lower --max-pixels or --threads)");
    if (!source.samples_can_fail()) throw IoError(message);
    failed(message, report);
  }

 private:
  void failed(const std::string& message, bool report) {
    if (options.strict) throw IoError(message + " (--strict)");
    if (report) {
      skip(message);
    } else {
      std::lock_guard<std::mutex> lock(mutex);
      training_failures.push_back(message);
    }
  }
};

// Decoded training images kept for the encoding pass, so a sampled image is decoded once.
class DecodedCache {
 public:
  explicit DecodedCache(std::size_t budget_bytes) : budget_(budget_bytes) {}
  // Called from pool threads while the training sample is read.
  void offer(std::size_t index, Image&& image) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (used_ + image.pixels.size() > budget_) return;
    used_ += image.pixels.size();
    images_.emplace(index, std::move(image));
  }
  // The encoding pass takes each entry once, from one thread; the map itself is not modified.
  std::optional<Image> take(std::size_t index) {
    const auto it = images_.find(index);
    if (it == images_.end() || it->second.pixels.empty()) return std::nullopt;
    return std::move(it->second);
  }

 private:
  std::size_t budget_, used_ = 0;
  std::mutex mutex_;
  std::unordered_map<std::size_t, Image> images_;
};

// Memory for decoded training images awaiting their encoding (224x224 RGB: ~3400 images;
// K=512 samples 2048).
constexpr std::size_t kDecodedCacheBytes = std::size_t{512} << 20;

// Pass 1: patches from a deterministic sample of the whole (unsharded) source, so every shard
// trains the same codebook. The sample is bounded (target / 64 images, at least 256, at most
// 16384, with target / images patches each), so training costs the same for any dataset size
// past that; sampled images that this run encodes are cached for pass 2 (decoded once).
std::vector<std::uint8_t> collect_training_patches(Job& job, std::uint32_t dim, std::uint64_t target,
                                                   const std::vector<bool>& encoded, DecodedCache& cache) {
  const std::size_t n = job.source.size();
  const std::size_t images = std::min<std::size_t>(n, std::clamp<std::uint64_t>(target / 64, 256, 16384));
  const std::size_t per_image = static_cast<std::size_t>((target + images - 1) / images);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937_64 rng(job.options.seed);
  std::shuffle(order.begin(), order.end(), rng);
  order.resize(images);
  std::sort(order.begin(), order.end());  // file order reads faster

  std::vector<std::vector<std::uint8_t>> per(images);
  ProgressBar bar("codebook: reading", images, job.options.progress);
  job.pool.parallel_for(0, images, 4, [&](std::size_t b, std::size_t e) {
    std::vector<std::uint8_t> all;
    for (std::size_t j = b; j < e; ++j) {
      check_interrupt(job.options.interrupt, "convert");
      std::optional<Image> img = job.load(order[j], false);
      bar.add();
      if (!img) continue;
      all.clear();
      try {
        extract_patches(img->pixels.data(), img->height, img->width, img->channels, job.options.patch, all);
        const std::size_t count = all.size() / dim;
        std::mt19937_64 pick(job.options.seed ^ (0x9E3779B97F4A7C15ULL * (order[j] + 1)));
        std::vector<std::uint32_t> idx(count);
        std::iota(idx.begin(), idx.end(), 0u);
        const std::size_t take = std::min(per_image, count);
        for (std::size_t t = 0; t < take; ++t) {  // partial Fisher-Yates
          std::uniform_int_distribution<std::size_t> u(t, count - 1);
          std::swap(idx[t], idx[u(pick)]);
          per[j].insert(per[j].end(), all.begin() + std::size_t{idx[t]} * dim, all.begin() + std::size_t{idx[t] + 1} * dim);
        }
      } catch (const std::bad_alloc&) {
        std::vector<std::uint8_t>().swap(all);
        std::vector<std::uint8_t>().swap(per[j]);
        job.out_of_memory(order[j], "sampling its patches", false);
        continue;  // not in the sample; the encoding pass reads it again
      }
      if (encoded[order[j]]) cache.offer(order[j], std::move(*img));
    }
  });
  bar.finish();
  std::vector<std::uint8_t> patches;
  for (auto& p : per) patches.insert(patches.end(), p.begin(), p.end());
  return patches;
}

// Why no codebook could be trained: the first few per-file reasons (sorted: the reading order is
// parallel), how many were refused over max_pixels, and the hidden entries the scan left out.
std::string no_training_images_message(const Job& job, const std::vector<std::string>& ignored) {
  std::vector<std::string> reasons = job.training_failures;
  std::sort(reasons.begin(), reasons.end());
  std::string m = "no readable images to train a codebook on";
  if (!reasons.empty()) {
    const auto refused = std::count_if(reasons.begin(), reasons.end(), Job::is_pixel_limit_refusal);
    m += ": none of the " + std::to_string(reasons.size()) + " input(s) read for it could be used";
    if (refused > 0) m += " (" + std::to_string(refused) + " refused over --max-pixels)";
    const std::size_t shown = std::min<std::size_t>(reasons.size(), 5);
    for (std::size_t i = 0; i < shown; ++i) m += "\n  " + reasons[i];
    if (reasons.size() > shown) m += "\n  ... (" + std::to_string(reasons.size() - shown) + " more)";
  }
  if (!ignored.empty()) {
    m += "\n  ignored " + std::to_string(ignored.size()) + " hidden entr" + (ignored.size() == 1 ? "y" : "ies") + ":";
    for (std::size_t i = 0; i < ignored.size() && i < 10; ++i) m += (i ? ", " : " ") + ignored[i];
    if (ignored.size() > 10) m += ", ... (" + std::to_string(ignored.size() - 10) + " more)";
    m += " (hidden files and folders are never samples)";
  }
  return m;
}

// The class names to store: the source's own, or the user's (checked against the labels).
std::vector<std::string> class_names_for(const DatasetSource& source, const ConvertOptions& o) {
  std::vector<std::string> names = o.class_names;
  const std::string from = o.classes_file.empty() ? std::string("classes") : "'" + o.classes_file + "'";
  if (!o.classes_file.empty()) {
    require(o.class_names.empty(), "give class names as a list or as a file, not both");
    names = read_class_names(o.classes_file);
  }
  if (names.empty()) return source.classes();
  const std::size_t own = source.classes().size();
  if (own > 0) {
    require(names.size() == own, from + " lists " + std::to_string(names.size()) + " class names but the " +
                                     source.format() + " source has " + std::to_string(own) + " classes");
    return names;
  }
  std::int32_t max_label = -1;
  for (std::size_t i = 0; i < source.size(); ++i) max_label = std::max(max_label, source.label(i));
  require(max_label >= 0, from + " names classes but the " + std::string(source.format()) + " source has no labels");
  require(names.size() == static_cast<std::size_t>(max_label) + 1,
          from + " lists " + std::to_string(names.size()) + " class names but the labels run from 0 to " +
              std::to_string(max_label) + " (" + std::to_string(max_label + 1) + " classes)");
  return names;
}

Json build_metadata(const std::string& input, const ConvertOptions& o, const DatasetSource& source, const ConvertStats& s,
                    std::uint32_t channels, const std::string& codebook_from_hash, const std::vector<std::string>& names) {
  Json m = Json::object();
  m.set("format", source.format());
  m.set("source", input);
  Json classes = Json::array();
  for (const auto& c : names) classes.push(c);
  m.set("classes", classes);
  Json tool = Json::object();
  tool.set("name", "kuat");
  tool.set("version", lowbit::version());
  m.set("tool", tool);
  Json conv = Json::object();
  conv.set("patch", o.patch);
  conv.set("channels", channels);
  conv.set("codebook_size", o.codebook_size);
  conv.set("bits", o.bits);
  conv.set("width", o.target.width);
  conv.set("height", o.target.height);
  conv.set("resize", o.target.active() ? resize_mode_name(o.target.mode) : "native");
  conv.set("max_pixels", o.source.decode.max_pixels);
  const Rgb bg = o.source.decode.background;
  conv.set("background", std::to_string(bg.r) + "," + std::to_string(bg.g) + "," + std::to_string(bg.b));
  conv.set("exif_transpose", o.source.decode.exif_transpose);
  conv.set("split", o.source.split);
  conv.set("iterations", o.iterations);
  conv.set("iterations_run", s.iterations_run);
  conv.set("training_patches", s.training_patches);
  conv.set("coreset_points", s.coreset_points);
  conv.set("seed", o.seed);
  conv.set("shard", std::to_string(o.shard_index) + "/" + std::to_string(o.shard_count));
  conv.set("codebook_from", o.codebook_from.empty() ? Json() : Json(o.codebook_from));
  if (!codebook_from_hash.empty()) conv.set("codebook_from_hash", codebook_from_hash);
  m.set("conversion", conv);
  Json q = Json::object();
  q.set("psnr", s.psnr);
  q.set("psnr_worst", s.psnr_worst);
  q.set("mse", s.mse);
  m.set("quality", q);
  Json st = Json::object();
  st.set("samples", s.samples);
  st.set("skipped", s.skipped);
  st.set("ignored_hidden", static_cast<std::uint64_t>(s.ignored.size()));
  st.set("raw_bytes", s.raw_bytes);
  st.set("training_seconds", s.training_seconds);
  st.set("encoding_seconds", s.encoding_seconds);
  m.set("stats", st);
  return m;
}

}  // namespace

std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(io_message(path, "cannot open the class-names file", errno));
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  if (in.bad()) throw IoError(io_message(path, "cannot read the class-names file", errno));
  while (!names.empty() && names.back().empty()) names.pop_back();
  if (names.empty()) throw IoError(io_message(path, "class-names file is empty"));
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) throw IoError(io_message(path, "line " + std::to_string(i + 1) + " is blank (one class name per line)"));
  }
  return names;
}

void parse_shard(const std::string& text, std::uint32_t* index, std::uint32_t* count) {
  const auto slash = text.find('/');
  unsigned long i = 0, n = 0;
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    std::size_t u1 = 0, u2 = 0;
    i = std::stoul(text.substr(0, slash), &u1);
    n = std::stoul(text.substr(slash + 1), &u2);
    if (u1 != slash || u2 != text.size() - slash - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw InvalidArgument("--shard must look like i/N (e.g. 0/4), got '" + text + "'");
  }
  require(n >= 1 && n <= 1000000 && i < n, "--shard i/N needs 0 <= i < N, got '" + text + "'");
  *index = static_cast<std::uint32_t>(i);
  *count = static_cast<std::uint32_t>(n);
}

ConvertStats convert_dataset(const std::string& input, const std::string& output, const ConvertOptions& o,
                             const std::function<void(const std::string&)>& warn) {
  const auto t0 = Clock::now();
  require(o.bits >= 1 && o.bits <= 8, "--bits must be between 1 and 8, got " + std::to_string(o.bits));
  index_bits_for(o.codebook_size);
  require(o.patch == 2 || o.patch == 4, "--patch must be 2 or 4, got " + std::to_string(o.patch));
  require((o.target.width == 0) == (o.target.height == 0), "--width and --height must be given together");
  require(o.target.width <= 65535 && o.target.height <= 65535, "--width/--height must be at most 65535");
  {  // every resized image is held in memory like a decoded one: the same limit holds for it
    const std::uint64_t out_pixels = std::uint64_t{o.target.width} * o.target.height;
    require(out_pixels <= o.source.decode.max_pixels,
            "--width x --height (width x height) = " + std::to_string(o.target.width) + " x " +
                std::to_string(o.target.height) + " = " + std::to_string(out_pixels) +
                " pixels per image, over the limit of " + std::to_string(o.source.decode.max_pixels) +
                " (--max-pixels / max_pixels)");
  }
  require(o.shard_count >= 1 && o.shard_index < o.shard_count, "bad shard");
  require(o.iterations >= 1, "iterations must be at least 1");
  require(!output.empty(), "no output path");
  {
    const std::filesystem::path parent = std::filesystem::absolute(output).parent_path();
    if (!std::filesystem::is_directory(parent)) throw IoError(io_message(output, "output folder does not exist"));
    std::error_code ec;
    if (std::filesystem::is_directory(output, ec)) {
      throw IoError(io_message(output, "is a directory; give the path of the .kuat file to write"));
    }
  }

  std::optional<Archive> donor;
  if (!o.codebook_from.empty()) donor.emplace(o.codebook_from);
  const std::unique_ptr<DatasetSource> source = open_source(input, o.source);
  const std::uint32_t channels = o.source.channels ? o.source.channels : source->default_channels();
  const std::vector<std::string> class_names = class_names_for(*source, o);

  std::optional<ThreadPool> own_pool;
  if (o.threads > 0) own_pool.emplace(o.threads);
  ThreadPool& pool = own_pool ? *own_pool : default_thread_pool();

  ConvertStats stats;
  stats.format = source->format();
  stats.ignored = source->ignored();
  stats.warnings = source->warnings();
  if (warn) {
    for (const auto& w : stats.warnings) warn(w);
  }
  Job job{*source, o, channels, pool, warn, stats, {}, {}};
  const std::uint32_t dim = o.patch * o.patch * channels;

  // The samples this run encodes: its shard, up to the limit.
  std::vector<std::size_t> members;
  for (std::size_t i = o.shard_index; i < source->size(); i += o.shard_count) members.push_back(i);
  if (o.limit && members.size() > o.limit) members.resize(o.limit);
  if (members.empty()) throw IoError(io_message(input, "shard " + std::to_string(o.shard_index) + "/" + std::to_string(o.shard_count) + " holds no samples"));
  std::vector<bool> encoded(source->size(), false);
  for (const std::size_t i : members) encoded[i] = true;
  DecodedCache cache(kDecodedCacheBytes);

  // Pass 1: the codebook.
  std::vector<std::uint8_t> codebook;
  std::string donor_hash;
  std::uint32_t K = o.codebook_size;
  if (donor) {
    if (donor->patch() != o.patch || donor->channels() != channels) {
      throw InvalidArgument("'" + o.codebook_from + "' has " + std::to_string(donor->patch()) + "x" +
                            std::to_string(donor->patch()) + " patches with " + std::to_string(donor->channels()) +
                            " channels; this conversion needs " + std::to_string(o.patch) + "x" + std::to_string(o.patch) +
                            " with " + std::to_string(channels));
    }
    K = donor->codebook_size();
    codebook.assign(donor->codebook(), donor->codebook() + std::size_t{K} * dim);
    char hex[20];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(donor->codebook_hash()));
    donor_hash = hex;
  } else {
    const auto tt = Clock::now();
    const std::uint64_t target = o.training_patches ? o.training_patches : std::max<std::uint64_t>(65536, 256ull * K);
    const std::vector<std::uint8_t> patches = collect_training_patches(job, dim, target, encoded, cache);
    if (patches.empty()) throw IoError(io_message(input, no_training_images_message(job, stats.ignored)));
    CodebookOptions co;
    co.codebook_size = K;
    co.bits = o.bits;
    co.iterations = o.iterations;
    co.seed = o.seed;
    co.interrupt = o.interrupt;
    const CodebookTraining t = train_codebook(patches.data(), patches.size() / dim, dim, co);
    codebook = t.codebook;
    stats.training_patches = t.training_patches;
    stats.coreset_points = t.coreset_points;
    stats.iterations_run = t.iterations_run;
    stats.training_seconds = since(tt);
  }

  // Pass 2: encode every sample of this shard, chunk by chunk, appending in order.
  const auto te = Clock::now();
  const PatchEncoder encoder(codebook.data(), K, o.patch, channels);
  ArchiveWriter writer(output, o.patch, channels, codebook.data(), K);
  struct Encoded {
    bool ok = false;
    std::uint32_t height = 0, width = 0;
    PatchEncoder::Result result;
  };
  const std::size_t chunk = 64 * pool.size();
  std::vector<Encoded> slots(chunk);
  double psnr_sum = 0, sse_sum = 0, values = 0, worst = kLosslessPsnr;
  ProgressBar bar("encoding", members.size(), o.progress);
  for (std::size_t begin = 0; begin < members.size(); begin += chunk) {
    const std::size_t end = std::min(members.size(), begin + chunk);
    pool.parallel_for(begin, end, 1, [&](std::size_t b, std::size_t e) {
      for (std::size_t j = b; j < e; ++j) {
        check_interrupt(o.interrupt, "convert");
        Encoded& slot = slots[j - begin];
        slot.ok = false;
        std::optional<Image> img = cache.take(members[j]);
        if (!img) img = job.load(members[j], true);
        if (img) {
          slot.height = img->height;
          slot.width = img->width;
          try {
            slot.result = encoder.encode(img->pixels.data(), img->height, img->width);
            slot.ok = true;
          } catch (const std::bad_alloc&) {
            slot.result = {};
            img.reset();
            job.out_of_memory(members[j], "encoding", true);
          }
        }
        bar.add();
      }
    });
    for (std::size_t j = begin; j < end; ++j) {
      const Encoded& slot = slots[j - begin];
      if (!slot.ok) continue;
      const std::size_t i = members[j];
      // File sources record each sample's path (samples may be skipped); in-memory sources
      // (idx, cifar) never skip, so sample order alone maps back to the source.
      writer.add(slot.result.packed.data(), slot.result.packed.size(), slot.height, slot.width, source->label(i),
                 source->samples_can_fail() ? source->name(i) : std::string());
      const double n = double(slot.height) * slot.width * channels;
      const double p = psnr_from_mse(slot.result.squared_error / n);
      psnr_sum += p;
      worst = std::min(worst, p);
      sse_sum += slot.result.squared_error;
      values += n;
      stats.raw_bytes += static_cast<std::uint64_t>(n);
    }
  }
  bar.finish();
  stats.samples = writer.count();
  if (stats.samples == 0) throw IoError(io_message(input, "every input failed to decode; nothing to write"));
  stats.psnr = psnr_sum / static_cast<double>(stats.samples);
  stats.psnr_worst = worst;
  stats.mse = sse_sum / values;
  stats.encoding_seconds = since(te);
  stats.seconds = since(t0);
  writer.finish(build_metadata(input, o, *source, stats, channels, donor_hash, class_names).dump(2));
  stats.archive_bytes = std::filesystem::file_size(output);
  stats.compression_ratio = double(stats.raw_bytes) / double(stats.archive_bytes);
  stats.codebook_hash = codebook_identity_hash(codebook.data(), K, o.patch, channels);
  stats.seconds = since(t0);
  return stats;
}

}  // namespace lowbit::kuat
