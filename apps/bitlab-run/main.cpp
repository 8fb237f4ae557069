// bitlab-run: run a deployed BitMLP (LBBITMLP file) on float32 inputs, or generate text with a
// BitLM (GGUF file of llama.cpp's "bitnet" architecture), without Python.
//
//   bitlab-run MODEL INPUT [-o OUTPUT.npy] [--quiet] [--logits]
//   bitlab-run generate MODEL (--prompt TEXT | -f FILE) [-n N] [-c N] [--threads T]
//                       [--seed S --temperature X] [--ids] [--prefill-batch B] [--prompt-logits]
// INPUT is a .npy float32 array of shape (..., in_features), or a raw little-endian float32
// file (any other extension) holding rows of in_features values. Prints one line per row
// "<row> <argmax>" (with --logits also the outputs), and writes the outputs as .npy with -o.
// A usage error prints one line "bitlab-run: <what was wrong>", then the usage, and exits 2.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "lowbit/bitlab/lm.h"
#include "lowbit/bitlab/model.h"
#include "lowbit/bitlab/npy.h"
#include "lowbit/core/atomic_file.h"
#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"

namespace {

constexpr const char* kUsage =
    "usage: bitlab-run MODEL INPUT [-o OUTPUT.npy] [--quiet] [--logits]\n"
    "  MODEL   a model exported with bitmodels.export_bitmlp (LBBITMLP format)\n"
    "  INPUT   float32 .npy of shape (..., in_features), or raw little-endian float32 rows\n"
    "  -o      write the outputs (rows x out_features) as float32 .npy\n"
    "  --quiet print nothing per row; --logits print every output value\n"
    "usage: bitlab-run generate MODEL (--prompt TEXT | -f FILE) [-n N] [-c N] [--threads T]\n"
    "                           [--seed S --temperature X] [--ids] [--prefill-batch B] [--prompt-logits]\n"
    "  MODEL      a BitLM exported with bitmodels.export_gguf (GGUF, architecture bitnet)\n"
    "  -p, --prompt  the prompt (byte-level tokens, taken as given: no escape processing)\n"
    "  -f, --file  read the prompt from FILE (its bytes; one trailing newline dropped, as llama.cpp)\n"
    "  -n, --n-predict  new tokens to generate (default 64; -1: until EOS or the cache is full)\n"
    "  -c, --ctx-size  positions the KV cache holds, 1 to the model's context length (default: the\n"
    "             prompt plus -n, the most a run uses; 0 or -n -1: the model's context length); its\n"
    "             memory grows with it. The prompt plus -n must fit\n"
    "  -t, --threads  worker threads, 1 to 1024 (default: LOWBIT_NUM_THREADS, else every core)\n"
    "  --temp, --temperature  0 (default): greedy; X > 0: sample each token from the whole\n"
    "             softmax(logits / X) (no top-k, top-p or min-p, unlike llama.cpp's sampler)\n"
    "  -s, --seed  the sampler's seed, 0 to 2^64 - 1 (default or -1: a random one, printed to\n"
    "             stderr); the same seed, temperature, model and prompt give the same tokens\n"
    "  --ids      also print every token id (prompt and generated) on a line 'ids: ...'\n"
    "  --prefill-batch  prompt tokens per forward pass (default: the whole prompt in one\n"
    "             batched pass; 1: token by token); the tokens are the same either way\n"
    "  --prompt-logits  also print the logits after the prompt, as exact hex floats, on a\n"
    "             line 'logits: ...'\n"
    "  Decoding with a KV cache (greedy unless --temperature > 0); stops after the EOS token.\n"
    "  Prints the generated text (not the prompt); speeds go to stderr.\n";

// Prints "bitlab-run: <what>" and the usage to stderr; returns the usage-error exit code 2.
int usage_error(const std::string& what) {
  std::fprintf(stderr, "bitlab-run: %s\n%s", what.c_str(), kUsage);
  return 2;
}

bool parse_count(const std::string& text, long long min_value, long long& out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno || end == text.c_str() || *end != '\0' || v < min_value) return false;
  out = v;
  return true;
}

// Sampling (--temperature X > 0): p = softmax(logits / X) in double (max subtracted), u = the next
// std::mt19937_64 output >> 11, times 2^-53 (uniform in [0, 1), the same on every platform, unlike
// std::uniform_real_distribution), and the token is the first id whose running sum of p exceeds
// u * sum(p) (the last id with p > 0 if rounding leaves none).
std::int32_t sample(const std::vector<float>& logits, double temperature, std::mt19937_64& rng) {
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double total = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) total += p[i] = std::exp((logits[i] - top) / temperature);
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
  double run = 0.0;
  std::size_t last = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0.0) continue;
    last = i;
    run += p[i];
    if (run > u) return static_cast<std::int32_t>(i);
  }
  return static_cast<std::int32_t>(last);
}

int run_generate(int argc, char** argv) {
  std::string model_path, prompt, prompt_file;
  bool have_prompt = false, print_ids = false, print_logits = false, have_seed = false;
  // n_new -1: until EOS or the cache is full; ctx_size -1: not given (0: the model's context length)
  long long n_new = 64, threads = 0, prefill_batch = 0, ctx_size = -1;
  double temperature = 0.0;
  unsigned long long seed = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* what) -> const char* {
      if (i + 1 >= argc) std::exit(usage_error("option " + arg + " needs " + what));
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--prompt" || arg == "-p") {
      prompt = value("a text");
      have_prompt = true;
    } else if (arg == "-f" || arg == "--file") {
      prompt_file = value("a file name");
    } else if (arg == "-n" || arg == "--n-predict") {
      if (!parse_count(value("a count"), -1, n_new)) {
        std::fprintf(stderr, "bitlab-run generate: -n takes a non-negative integer, or -1 (until EOS or the cache is full)\n");
        return 2;
      }
    } else if (arg == "-c" || arg == "--ctx-size") {
      if (!parse_count(value("a count"), 0, ctx_size)) {
        std::fprintf(stderr, "bitlab-run generate: -c takes a non-negative integer (at most the model's context "
                             "length; 0: the context length)\n");
        return 2;
      }
    } else if (arg == "--threads" || arg == "-t") {
      if (!parse_count(value("a count"), 1, threads) || threads > static_cast<long long>(lowbit::kMaxThreads)) {
        std::fprintf(stderr, "bitlab-run generate: --threads takes an integer from 1 to %zu\n", lowbit::kMaxThreads);
        return 2;
      }
    } else if (arg == "--temperature" || arg == "--temp") {
      const std::string text = value("a number");
      char* end = nullptr;
      errno = 0;
      temperature = std::strtod(text.c_str(), &end);
      if (errno || end == text.c_str() || *end != '\0' || !std::isfinite(temperature) || temperature < 0) {
        std::fprintf(stderr, "bitlab-run generate: --temperature takes a finite number >= 0 (0: greedy), got '%s'\n",
                     text.c_str());
        return 2;
      }
    } else if (arg == "--seed" || arg == "-s") {
      const std::string text = value("an integer");
      char* end = nullptr;
      errno = 0;
      if (text == "-1") {  // llama.cpp's "random seed"
        have_seed = false;
        continue;
      }
      seed = std::strtoull(text.c_str(), &end, 10);
      if (errno || end == text.c_str() || *end != '\0' || text.find('-') != std::string::npos) {
        std::fprintf(stderr, "bitlab-run generate: --seed takes an integer from 0 to 2^64 - 1 (or -1: random), got '%s'\n",
                     text.c_str());
        return 2;
      }
      have_seed = true;
    } else if (arg == "--prefill-batch") {
      if (!parse_count(value("a count"), 1, prefill_batch)) {
        std::fprintf(stderr, "bitlab-run generate: --prefill-batch takes a positive integer\n");
        return 2;
      }
    } else if (arg == "--prompt-logits") {
      print_logits = true;
    } else if (arg == "--ids") {
      print_ids = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option '" + arg + "'");
    } else if (model_path.empty()) {
      model_path = arg;
    } else {
      return usage_error("unexpected argument '" + arg + "' (MODEL is '" + model_path + "')");
    }
  }
  if (model_path.empty()) return usage_error("generate needs MODEL (a GGUF file)");
  if (have_prompt && !prompt_file.empty()) return usage_error("give the prompt with --prompt or -f, not both");
  if (!have_prompt && prompt_file.empty()) return usage_error("generate needs --prompt TEXT or -f FILE");
  if (have_prompt && prompt.empty()) return usage_error("the prompt is empty");
  // The thread pool reads LOWBIT_NUM_THREADS when first used, which is after this point.
  if (threads > 0) setenv("LOWBIT_NUM_THREADS", std::to_string(threads).c_str(), 1);
  try {
    using clock = std::chrono::steady_clock;
    if (!prompt_file.empty()) {  // llama.cpp's -f: the file's bytes, less one trailing newline
      const std::vector<std::uint8_t> bytes = lowbit::read_file_bytes(prompt_file, "prompt file");
      prompt.assign(bytes.begin(), bytes.end());
      if (!prompt.empty() && prompt.back() == '\n') prompt.pop_back();
      if (prompt.empty()) throw lowbit::InvalidArgument("'" + prompt_file + "': the prompt file is empty");
    }
    const auto model = lowbit::bitlab::BitLMModel::load(model_path);
    const std::vector<std::int32_t> ids = model.encode(prompt);
    const std::size_t context = model.config().context_length;
    if (ctx_size > 0 && static_cast<unsigned long long>(ctx_size) > context) {
      throw lowbit::InvalidArgument("-c " + std::to_string(ctx_size) + " exceeds the model's context length " +
                                    std::to_string(context));
    }
    // The cache holds -c positions, else (-c 0 or -n -1) the context length, else just what this run
    // uses: the prompt plus -n (a file may declare a context far longer than any run needs).
    const bool explicit_ctx = ctx_size > 0;
    const std::size_t needed = ids.size() + static_cast<std::size_t>(n_new < 0 ? 0 : n_new);
    const std::size_t positions = explicit_ctx ? static_cast<std::size_t>(ctx_size)
                                  : (ctx_size == 0 || n_new < 0) ? context
                                                                 : std::min(needed, context);
    if (needed > positions || (n_new < 0 && ids.size() >= positions)) {
      const std::string what = n_new < 0 ? " prompt tokens leave no room for -n -1 to generate in"
                                         : " prompt tokens plus -n " + std::to_string(n_new) + " exceed";
      throw lowbit::InvalidArgument(std::to_string(ids.size()) + what +
                                    (explicit_ctx ? " -c " + std::to_string(ctx_size)
                                                  : " the model's context length " + std::to_string(context)));
    }
    if (n_new < 0) n_new = static_cast<long long>(positions - ids.size());  // until EOS or the cache is full
    auto cache = model.new_cache(positions);
    std::vector<std::int32_t> out = ids;
    const auto t0 = clock::now();
    std::vector<float> logits;
    const std::size_t batch = prefill_batch > 0 ? static_cast<std::size_t>(prefill_batch) : ids.size();
    for (std::size_t begin = 0; (n_new > 0 || print_logits) && begin < ids.size(); begin += batch) {
      logits = model.forward(ids.data() + begin, std::min(batch, ids.size() - begin), cache);
    }
    const auto t1 = clock::now();
    const std::vector<float> prompt_logits = print_logits ? logits : std::vector<float>{};
    if (temperature > 0 && !have_seed) {
      seed = (static_cast<unsigned long long>(std::random_device{}()) << 32) ^ std::random_device{}();
      std::fprintf(stderr, "bitlab-run: --seed %llu\n", seed);
    }
    std::mt19937_64 rng(seed);
    for (long long step = 0; step < n_new; ++step) {
      const auto best = temperature > 0
                            ? sample(logits, temperature, rng)
                            : static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(best);
      if (best == model.config().eos_token_id || step + 1 == n_new) break;
      logits = model.forward(&out.back(), 1, cache);
    }
    const auto t2 = clock::now();
    const std::vector<std::int32_t> generated(out.begin() + static_cast<std::ptrdiff_t>(ids.size()), out.end());
    const std::string text = model.decode(generated);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    if (print_ids) {
      std::printf("ids:");
      for (std::int32_t id : out) std::printf(" %d", id);
      std::printf("\n");
    }
    if (print_logits) {
      std::printf("logits:");
      for (float v : prompt_logits) std::printf(" %a", static_cast<double>(v));
      std::printf("\n");
    }
    const double prefill = std::chrono::duration<double>(t1 - t0).count();
    const std::size_t prefilled = n_new > 0 || print_logits ? ids.size() : 0;  // -n 0 alone runs nothing
    const double decode = std::chrono::duration<double>(t2 - t1).count();
    const std::size_t decoded = generated.empty() ? 0 : generated.size() - 1;
    std::fprintf(stderr, "bitlab-run: prefill %zu tokens in %.3f s (%.1f tok/s), decode %zu tokens in %.3f s (%.1f tok/s)\n",
                 prefilled, prefill, prefill > 0 ? prefilled / prefill : 0.0, decoded, decode,
                 decode > 0 ? decoded / decode : 0.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitlab-run: %s\n", e.what());
    return 1;
  }
  return 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

lowbit::bitlab::FloatArray read_input(const std::string& path, std::size_t in_features) {
  lowbit::bitlab::FloatArray input;
  if (ends_with(path, ".npy")) {
    input = lowbit::bitlab::read_npy_f32(path);
  } else {
    const std::vector<std::uint8_t> bytes = lowbit::read_file_bytes(path, "input file");
    if (bytes.size() % (4 * in_features) != 0) {
      throw lowbit::IoError(lowbit::io_message(path, "raw input size is not a multiple of in_features float32 values"));
    }
    input.values.resize(bytes.size() / 4);
    std::memcpy(input.values.data(), bytes.data(), bytes.size());
    input.shape = {input.values.size() / in_features, in_features};
  }
  if (input.shape.empty() || input.shape.back() != in_features) {
    throw lowbit::InvalidArgument(path + ": input rows must have " + std::to_string(in_features) + " values (the model's in_features)");
  }
  if (input.values.empty()) throw lowbit::InvalidArgument(path + ": input has no rows");
  return input;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "generate") return run_generate(argc, argv);
  std::vector<std::string> positional;
  std::string output_path;
  bool quiet = false, logits = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "-o" || arg == "--output") {
      if (i + 1 >= argc) {
        return usage_error("option " + arg + " needs a file name");
      }
      output_path = argv[++i];
    } else if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--logits") {
      logits = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.empty()) return usage_error("no MODEL and INPUT given");
  if (positional.size() == 1) return usage_error("no INPUT given after MODEL '" + positional[0] + "'");
  if (positional.size() > 2) return usage_error("unexpected argument '" + positional[2] + "' (MODEL INPUT come first)");
  try {
    const auto model = lowbit::bitlab::BitMLPModel::load(positional[0]);
    const auto input = read_input(positional[1], model.in_features());
    const std::size_t rows = input.values.size() / model.in_features();
    lowbit::bitlab::FloatArray output;
    output.shape = {rows, model.out_features()};
    output.values = model.forward(input.values.data(), rows);
    if (!quiet) {
      for (std::size_t r = 0; r < rows; ++r) {
        const float* y = output.values.data() + r * model.out_features();
        std::size_t best = 0;
        for (std::size_t j = 1; j < model.out_features(); ++j) {
          if (y[j] > y[best]) best = j;
        }
        std::printf("%zu %zu", r, best);
        if (logits) {
          for (std::size_t j = 0; j < model.out_features(); ++j) std::printf(" %.9g", y[j]);
        }
        std::printf("\n");
      }
    }
    if (!output_path.empty()) lowbit::bitlab::write_npy_f32(output_path, output);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitlab-run: %s\n", e.what());
    return 1;
  }
  return 0;
}
