// bitlab-run: run a deployed BitMLP (LBBITMLP file) on float32 inputs without Python.
//
//   bitlab-run MODEL INPUT [-o OUTPUT.npy] [--quiet] [--logits]
// INPUT is a .npy float32 array of shape (..., in_features), or a raw little-endian float32
// file (any other extension) holding rows of in_features values. Prints one line per row
// "<row> <argmax>" (with --logits also the outputs), and writes the outputs as .npy with -o.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lowbit/bitlab/model.h"
#include "lowbit/bitlab/npy.h"
#include "lowbit/core/error.h"

namespace {

constexpr const char* kUsage =
    "usage: bitlab-run MODEL INPUT [-o OUTPUT.npy] [--quiet] [--logits]\n"
    "  MODEL   a model exported with bitmodels.export_bitmlp (LBBITMLP format)\n"
    "  INPUT   float32 .npy of shape (..., in_features), or raw little-endian float32 rows\n"
    "  -o      write the outputs (rows x out_features) as float32 .npy\n"
    "  --quiet print nothing per row; --logits print every output value\n";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

lowbit::bitlab::FloatArray read_input(const std::string& path, std::size_t in_features) {
  lowbit::bitlab::FloatArray input;
  if (ends_with(path, ".npy")) {
    input = lowbit::bitlab::read_npy_f32(path);
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw lowbit::IoError(lowbit::io_message(path, "cannot open input file", errno));
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
        std::fprintf(stderr, "bitlab-run: %s needs a file name\n%s", arg.c_str(), kUsage);
        return 2;
      }
      output_path = argv[++i];
    } else if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--logits") {
      logits = true;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "bitlab-run: unknown option '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
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
