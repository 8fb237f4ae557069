// Antialiased separable resampling (bicubic, a = -0.5, support widened by the downscale
// factor as in Pillow), and channel conversion.
#include <algorithm>
#include <cmath>

#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"

namespace lowbit::kuat {
namespace {

double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// For each output position: the first input index, the tap count and normalized weights.
struct Taps {
  std::vector<int> first, count;
  std::vector<float> weights;  // out_size x max_taps
  int max_taps = 0;
};

Taps compute_taps(std::uint32_t in_size, double box0, double box1, std::uint32_t out_size) {
  const double scale = (box1 - box0) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 2.0 * filter_scale;
  Taps t;
  t.max_taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(std::size_t{out_size} * t.max_taps, 0.0f);
  std::vector<double> w(t.max_taps);
  for (std::uint32_t o = 0; o < out_size; ++o) {
    const double center = box0 + (o + 0.5) * scale;
    int lo = static_cast<int>(center - support + 0.5);
    int hi = static_cast<int>(center + support + 0.5);
    lo = std::max(lo, 0);
    hi = std::min(hi, static_cast<int>(in_size));
    hi = std::min(hi, lo + t.max_taps);
    if (hi <= lo) {  // degenerate box: take the nearest pixel
      lo = std::clamp(static_cast<int>(center), 0, static_cast<int>(in_size) - 1);
      hi = lo + 1;
    }
    double total = 0;
    for (int i = lo; i < hi; ++i) total += (w[i - lo] = bicubic((i + 0.5 - center) / filter_scale));
    if (total == 0) {
      w[0] = total = 1.0;
      hi = lo + 1;
    }
    t.first[o] = lo;
    t.count[o] = hi - lo;
    for (int i = 0; i < hi - lo; ++i) t.weights[std::size_t{o} * t.max_taps + i] = static_cast<float>(w[i] / total);
  }
  return t;
}

}  // namespace

ResizeMode parse_resize_mode(const std::string& name) {
  if (name == "crop" || name == "center-crop" || name == "centre-crop") return ResizeMode::CenterCrop;
  if (name == "stretch") return ResizeMode::Stretch;
  throw InvalidArgument("resize mode must be 'crop' or 'stretch', got '" + name + "'");
}

const char* resize_mode_name(ResizeMode mode) { return mode == ResizeMode::Stretch ? "stretch" : "crop"; }

Image convert_channels(Image image, std::uint32_t channels) {
  if (image.channels == channels) return image;
  require((channels == 1 || channels == 3) && (image.channels == 1 || image.channels == 3),
          "channel conversion supports 1 and 3 channels");
  Image out;
  out.height = image.height;
  out.width = image.width;
  out.channels = channels;
  const std::size_t n = std::size_t{image.height} * image.width;
  out.pixels.resize(n * channels);
  if (channels == 3) {
    for (std::size_t i = 0; i < n; ++i) out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] = image.pixels[i];
  } else {
    // PIL's convert("L") exactly: the BT.601 weights in 16-bit fixed point (19595 + 38470 + 7471
    // = 65536, so gray stays gray), rounded. (299 R + 587 G + 114 B + 500) / 1000 differs from
    // it by one for 9040 of the 2^24 colours.
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t* p = &image.pixels[3 * i];
      out.pixels[i] = static_cast<std::uint8_t>((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
    }
  }
  return out;
}

namespace {

// -O2 leaves short fixed-count loops rolled (and their sums in memory); these are the hot loops.
#define LOWBIT_UNROLL _Pragma("GCC unroll 16")

// Rounds a filtered value to uint8 (min/max rather than clamp: branch-free, vectorizable).
inline std::uint8_t to_u8(float v) { return static_cast<std::uint8_t>(std::min(std::max(v, 0.0f), 255.0f) + 0.5f); }

// Horizontal pass over rows [row_lo, row_hi) into float rows of width * C (one rounding only,
// at the end of the vertical pass). C as a template parameter keeps the channel sums in registers.
template <std::uint32_t C>
void resample_rows(const Image& image, const Taps& tx, std::uint32_t width, int row_lo, int row_hi, float* mid) {
  std::vector<float> row(std::size_t{image.width} * C);
  for (int y = row_lo; y < row_hi; ++y) {
    const std::uint8_t* src = image.pixels.data() + std::size_t(y) * image.width * C;
    for (std::size_t j = 0; j < row.size(); ++j) row[j] = src[j];
    float* dst = mid + std::size_t(y - row_lo) * width * C;
    for (std::uint32_t o = 0; o < width; ++o) {
      const float* w = &tx.weights[std::size_t{o} * tx.max_taps];
      const float* s = row.data() + std::size_t(tx.first[o]) * C;
      float acc[C] = {};
      for (int i = 0; i < tx.count[o]; ++i) {
        LOWBIT_UNROLL
        for (std::uint32_t c = 0; c < C; ++c) acc[c] += w[i] * s[std::size_t(i) * C + c];
      }
      LOWBIT_UNROLL
      for (std::uint32_t c = 0; c < C; ++c) dst[std::size_t{o} * C + c] = acc[c];
    }
  }
}

// Vertical pass: each output row is a weighted sum of `count` float rows, rounded to uint8.
// Tiles of kTile values keep the sums in registers across the taps (and let the compiler use
// vector registers); per value, the taps are summed in the same order as a plain loop.
void combine_rows(const float* const* rows, const float* w, int count, std::size_t n, std::uint8_t* dst) {
  constexpr std::size_t kTile = 16;
  std::size_t j = 0;
  for (; j + kTile <= n; j += kTile) {
    float acc[kTile] = {};
    for (int i = 0; i < count; ++i) {
      const float* src = rows[i] + j;
      LOWBIT_UNROLL
      for (std::size_t l = 0; l < kTile; ++l) acc[l] += w[i] * src[l];
    }
    LOWBIT_UNROLL
    for (std::size_t l = 0; l < kTile; ++l) dst[j + l] = to_u8(acc[l]);
  }
  for (; j < n; ++j) {
    float acc = 0;
    for (int i = 0; i < count; ++i) acc += w[i] * rows[i][j];
    dst[j] = to_u8(acc);
  }
}

}  // namespace

Image resample(const Image& image, double x0, double y0, double x1, double y1, std::uint32_t width,
               std::uint32_t height) {
  require(width > 0 && height > 0, "resample: empty target");
  require(x1 > x0 && y1 > y0, "resample: empty source box");
  require(image.channels == 1 || image.channels == 3, "resample: 1 or 3 channels");
  const std::uint32_t C = image.channels;
  const Taps tx = compute_taps(image.width, x0, x1, width);
  const Taps ty = compute_taps(image.height, y0, y1, height);
  // Horizontal pass over the rows the vertical pass reads.
  const int row_lo = *std::min_element(ty.first.begin(), ty.first.end());
  int row_hi = 0;
  for (std::uint32_t o = 0; o < height; ++o) row_hi = std::max(row_hi, ty.first[o] + ty.count[o]);
  const std::size_t row = std::size_t{width} * C;
  std::vector<float> mid(std::size_t(row_hi - row_lo) * row);
  if (C == 3) {
    resample_rows<3>(image, tx, width, row_lo, row_hi, mid.data());
  } else {
    resample_rows<1>(image, tx, width, row_lo, row_hi, mid.data());
  }
  Image out;
  out.height = height;
  out.width = width;
  out.channels = C;
  out.pixels.resize(std::size_t{width} * height * C);
  std::vector<const float*> rows(static_cast<std::size_t>(ty.max_taps));
  for (std::uint32_t o = 0; o < height; ++o) {
    for (int i = 0; i < ty.count[o]; ++i) rows[i] = mid.data() + std::size_t(ty.first[o] + i - row_lo) * row;
    combine_rows(rows.data(), &ty.weights[std::size_t{o} * ty.max_taps], ty.count[o], row, out.pixels.data() + std::size_t{o} * row);
  }
  return out;
}

Image fit_to_target(Image image, const TargetSize& target) {
  if (!target.active() || (image.width == target.width && image.height == target.height)) return image;
  const double w = image.width, h = image.height;
  if (target.mode == ResizeMode::Stretch) return resample(image, 0, 0, w, h, target.width, target.height);
  // Centre crop: the largest box with the target's aspect ratio, centred, scaled to the target.
  const double s = std::max(target.width / w, target.height / h);
  const double bw = target.width / s, bh = target.height / s;
  const double x0 = (w - bw) / 2, y0 = (h - bh) / 2;
  return resample(image, x0, y0, x0 + bw, y0 + bh, target.width, target.height);
}

}  // namespace lowbit::kuat
