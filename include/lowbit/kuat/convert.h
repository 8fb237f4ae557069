// Dataset -> Kuat archive conversion: the engine behind `kuat convert` and kuat.convert_dataset.
//
// Two passes over the source: (1) decode a bounded, deterministic sample of images (target/64
// images, 256 to 16384, so training costs the same for any dataset size past that) and
// train the codebook on their patches (skipped with codebook_from); (2) decode, encode and
// append every sample, in parallel chunks, in source order. Sampled images that pass 2 encodes
// stay decoded in memory (up to 512 MiB) instead of being decoded twice. PSNR per sample is measured against the image that was
// encoded (after resizing) and summarised in the metadata.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/kuat/image.h"
#include "lowbit/kuat/source.h"

namespace lowbit::kuat {

struct ConvertOptions {
  SourceOptions source;                 // format, split, labels file, channels
  std::uint32_t bits = 4;               // coreset precision, 1..8
  std::uint32_t codebook_size = 512;    // K, 2..65536
  std::uint32_t patch = 2;              // 2 or 4
  TargetSize target;                    // 0x0: native sizes
  std::string codebook_from;            // reuse this archive's codebook (no training)
  std::uint32_t shard_index = 0, shard_count = 1;  // sample i belongs to shard i % shard_count
  bool strict = false;                  // a broken image fails the run instead of being skipped
  bool progress = true;                 // progress bars on a terminal
  std::uint32_t threads = 0;            // 0: the default pool
  std::uint32_t iterations = 20;        // Lloyd iterations
  std::uint64_t seed = 1234;
  std::uint64_t training_patches = 0;   // 0: 256 per centroid (faiss's cap), at least 65536
  std::uint64_t limit = 0;              // convert at most this many samples of the shard (0: all)
  // Class names stored in the metadata instead of the source's own (IDX files carry none): one
  // per class, in label order. Their count must equal the source's class count (class folders,
  // CIFAR meta) or, where the source names none, the label range 0..max label.
  std::vector<std::string> class_names;
  std::string classes_file;             // read class_names from this file, one name per line
  // Polled between images and k-means iterations (from any thread): once it reads true the
  // conversion stops, removes its temporary file (no output is left) and throws Interrupted.
  const std::atomic<bool>* interrupt = nullptr;
};

struct ConvertStats {
  std::uint64_t samples = 0;
  std::uint64_t skipped = 0;                 // broken inputs skipped
  std::uint64_t refused = 0;                 // of `skipped`: images refused as over max_pixels (not broken)
  std::vector<std::string> skipped_reasons;  // one message per skipped input
  std::vector<std::string> ignored;          // hidden entries the folder scan left out (relative paths)
  std::vector<std::string> warnings;         // about the source as a whole (e.g. IDX without labels)
  double psnr = 0, psnr_worst = 0, mse = 0;
  std::uint64_t raw_bytes = 0;               // H*W*C of every stored sample
  std::uint64_t archive_bytes = 0;
  double compression_ratio = 0;              // raw_bytes / archive_bytes
  double seconds = 0, training_seconds = 0, encoding_seconds = 0;
  std::uint64_t training_patches = 0, coreset_points = 0;
  std::uint32_t iterations_run = 0;
  std::string format;
  std::uint64_t codebook_hash = 0;
};

// `warn` receives one line per warning: each source warning, then "skipped <reason>" per
// skipped input (default: nothing; the CLI prints them).
ConvertStats convert_dataset(const std::string& input, const std::string& output, const ConvertOptions& options,
                             const std::function<void(const std::string&)>& warn = {});

// Reads a class-names file: one name per line ('\r' stripped, trailing blank lines ignored).
// IoError naming the file when it cannot be read, is empty or has a blank line inside.
std::vector<std::string> read_class_names(const std::string& path);

// Parses "i/N" into shard index and count (InvalidArgument unless 0 <= i < N).
void parse_shard(const std::string& text, std::uint32_t* index, std::uint32_t* count);

}  // namespace lowbit::kuat
