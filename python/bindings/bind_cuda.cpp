// CUDA bindings (lowbit._native.cuda), compiled only with LOWBIT_CUDA=ON.
//
// Thin launchers over include/lowbit/cuda: every buffer is a raw device address (torch's
// tensor.data_ptr()) and `stream` a cudaStream_t as an integer (torch's
// current_stream().cuda_stream), so a call costs no DLPack exchange and runs on the caller's
// stream, asynchronously. The Python side (python/lowbit/_cuda_kernels.py) checks devices, dtypes,
// shapes and contiguity before it passes addresses here; this side checks sizes and parameters
// again and raises ValueError / RuntimeError (CUDA errors name the failing call).
#if defined(LOWBIT_WITH_CUDA)

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/coset/hnlq.h"
#include "lowbit/cuda/bitlab_gemm.h"
#include "lowbit/cuda/coset_hnlq.h"
#include "lowbit/cuda/device.h"
#include "lowbit/cuda/kuat_decode.h"
#include "registry.h"

namespace nb = nanobind;

namespace {

template <class T>
T* ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

void* stream_of(std::uintptr_t stream) { return reinterpret_cast<void*>(stream); }

void require_address(std::uintptr_t address, const char* what) {
  lowbit::require(address != 0, std::string(what) + ": null device address");
}

}  // namespace

LOWBIT_BINDING(cuda) {
  m.def("visible_device_count", &lowbit::cuda::visible_device_count, "CUDA devices the extension's runtime sees.");

  // ---- Kuat -------------------------------------------------------------------------------
  m.def("kuat_decode_batch",
        [](std::uintptr_t codebook, std::uintptr_t packed, std::uint32_t batch, std::uint32_t height,
           std::uint32_t width, std::uint32_t channels, std::uint32_t patch, std::uint32_t codebook_size,
           std::uint32_t index_bits, std::uint64_t index_stride, std::uint32_t out_height, std::uint32_t out_width,
           bool nchw, bool float_output, const std::vector<float>& mean, const std::vector<float>& std_dev,
           std::uintptr_t crop_y, std::uintptr_t crop_x, std::uintptr_t flip, std::uintptr_t out,
           std::uintptr_t stream, std::uintptr_t error_flag) {
          require_address(codebook, "kuat_decode_batch codebook");
          require_address(packed, "kuat_decode_batch packed");
          require_address(out, "kuat_decode_batch out");
          lowbit::require(mean.size() <= 4 && std_dev.size() <= 4, "kuat_decode_batch: at most 4 channel means/stds");
          lowbit::cuda::KuatDecodeParams p;
          p.height = height;
          p.width = width;
          p.channels = channels;
          p.patch = patch;
          p.codebook_size = codebook_size;
          p.index_bits = index_bits;
          p.index_stride = index_stride;
          p.out_height = out_height;
          p.out_width = out_width;
          p.nchw = nchw;
          p.float_output = float_output;
          for (std::size_t c = 0; c < mean.size(); ++c) p.mean[c] = mean[c];
          for (std::size_t c = 0; c < std_dev.size(); ++c) p.std[c] = std_dev[c];
          nb::gil_scoped_release release;
          lowbit::cuda::kuat_decode_batch(p, ptr<const std::uint8_t>(codebook), ptr<const std::uint8_t>(packed),
                                          batch, ptr<const std::int32_t>(crop_y), ptr<const std::int32_t>(crop_x),
                                          ptr<const std::uint8_t>(flip), ptr<void>(out), stream_of(stream),
                                          ptr<int>(error_flag));
        },
        nb::arg("codebook"), nb::arg("packed"), nb::arg("batch"), nb::arg("height"), nb::arg("width"),
        nb::arg("channels"), nb::arg("patch"), nb::arg("codebook_size"), nb::arg("index_bits"),
        nb::arg("index_stride"), nb::arg("out_height"), nb::arg("out_width"), nb::arg("nchw"),
        nb::arg("float_output"), nb::arg("mean"), nb::arg("std"), nb::arg("crop_y"), nb::arg("crop_x"),
        nb::arg("flip"), nb::arg("out"), nb::arg("stream"), nb::arg("error_flag"),
        "Fused Kuat batch decode (include/lowbit/cuda/kuat_decode.h). error_flag 0: synchronous, raises "
        "ValueError on an out-of-range index; else a device int32 the kernel sets to 1, nothing waits.");

  // ---- BitLab -----------------------------------------------------------------------------
  auto weights = [](std::uintptr_t packed, std::size_t rows, std::size_t cols, std::uintptr_t scales,
                    std::uintptr_t bias) {
    require_address(packed, "bitlinear packed");
    require_address(scales, "bitlinear weight_scale");
    lowbit::cuda::TernaryWeightsDevice w;
    w.packed = ptr<const std::uint8_t>(packed);
    w.rows = rows;
    w.cols = cols;
    w.row_bytes = (cols + 255) / 256 * 64;
    w.scales = ptr<const float>(scales);
    w.bias = ptr<const float>(bias);
    return w;
  };
  m.def("bitlinear_int8_workspace_bytes",
        [](std::size_t rows, std::size_t out_features, std::size_t in_features) {
          lowbit::cuda::TernaryWeightsDevice w;
          w.rows = out_features;
          w.cols = in_features;
          w.row_bytes = (in_features + 255) / 256 * 64;
          return lowbit::cuda::bitlinear_int8_workspace_bytes(rows, w);
        },
        nb::arg("rows"), nb::arg("out_features"), nb::arg("in_features"));
  m.def("bitlinear_int8",
        [weights](std::uintptr_t x, std::size_t rows, std::uintptr_t packed, std::size_t out_features,
                  std::size_t in_features, std::uintptr_t scales, std::uintptr_t bias, bool per_row,
                  std::uintptr_t y, std::uintptr_t stream, std::uintptr_t workspace) {
          const auto w = weights(packed, out_features, in_features, scales, bias);
          if (rows > 0) {
            require_address(x, "bitlinear x");
            require_address(y, "bitlinear y");
          }
          nb::gil_scoped_release release;
          lowbit::cuda::bitlinear_int8(ptr<const float>(x), rows, w, per_row, ptr<float>(y), stream_of(stream),
                                       ptr<void>(workspace));
        },
        nb::arg("x"), nb::arg("rows"), nb::arg("packed"), nb::arg("out_features"), nb::arg("in_features"),
        nb::arg("weight_scale"), nb::arg("bias"), nb::arg("per_row"), nb::arg("y"), nb::arg("stream"),
        nb::arg("workspace"),
        "W2A8 layer on I2_S256 weights (include/lowbit/cuda/bitlab_gemm.h); bias 0: none; workspace 0: "
        "stream-ordered allocation.");
  m.def("ternary_gemm_int8",
        [](std::uintptr_t xq, std::uintptr_t row_sums, std::size_t rows, std::uintptr_t packed,
                  std::size_t out_features, std::size_t in_features, std::uintptr_t acc, std::uintptr_t stream) {
          require_address(packed, "ternary_gemm_int8 packed");
          lowbit::cuda::TernaryWeightsDevice w;
          w.packed = ptr<const std::uint8_t>(packed);
          w.rows = out_features;
          w.cols = in_features;
          w.row_bytes = (in_features + 255) / 256 * 64;
          w.scales = ptr<const float>(packed);  // not read by the integer product; must be non-null
          nb::gil_scoped_release release;
          lowbit::cuda::ternary_gemm_int8(ptr<const std::int8_t>(xq), ptr<const std::int32_t>(row_sums), rows,
                                          w.row_bytes * 4, w, ptr<std::int32_t>(acc), stream_of(stream));
        },
        nb::arg("x_q"), nb::arg("row_sums"), nb::arg("rows"), nb::arg("packed"), nb::arg("out_features"),
        nb::arg("in_features"), nb::arg("acc"), nb::arg("stream"),
        "Exact int32 x_q @ W^T for int8 x_q padded to row_bytes * 4 columns.");

  // ---- Coset ------------------------------------------------------------------------------
  m.def("coset_encode",
        [](const lowbit::coset::QuantizationConfig& c, std::uintptr_t x, const std::string& dtype, std::size_t n,
           std::uintptr_t codes, std::uintptr_t t, std::uintptr_t stream, std::uintptr_t status,
           std::uintptr_t overloaded) {
          lowbit::require(dtype == "float32" || dtype == "float64", "coset_encode: dtype must be float32 or float64");
          if (n > 0) {
            require_address(x, "coset_encode x");
            require_address(codes, "coset_encode codes");
            require_address(t, "coset_encode T");
          }
          auto* st = ptr<lowbit::cuda::CosetStatus>(status);
          lowbit::coset::EncodeStats s;
          {
            nb::gil_scoped_release release;
            if (dtype == "float32")
              s = lowbit::cuda::coset_encode<float>(c, ptr<const float>(x), n, ptr<std::uint8_t>(codes),
                                                    ptr<std::uint8_t>(t), stream_of(stream), st,
                                                    ptr<std::uint8_t>(overloaded));
            else
              s = lowbit::cuda::coset_encode<double>(c, ptr<const double>(x), n, ptr<std::uint8_t>(codes),
                                                     ptr<std::uint8_t>(t), stream_of(stream), st,
                                                     ptr<std::uint8_t>(overloaded));
          }
          return nb::make_tuple(s.retried, s.overloaded);
        },
        nb::arg("config"), nb::arg("x"), nb::arg("dtype"), nb::arg("n"), nb::arg("codes"), nb::arg("t"),
        nb::arg("stream"), nb::arg("status"), nb::arg("overloaded") = 0,
        "HNLQ encode of n vectors (include/lowbit/cuda/coset_hnlq.h). status 0: synchronous, raises "
        "ValueError as the CPU does and returns (retried, overloaded); else the address of 32 device bytes "
        "(4 x int64: retried, overloaded, first bad index, error) filled asynchronously, returns (0, 0). "
        "overloaded: 0, or n device bytes set to 1 where a vector still overloads.");
  m.def("coset_decode",
        [](const lowbit::coset::QuantizationConfig& c, std::uintptr_t codes, std::uintptr_t t, std::size_t n,
           std::uintptr_t out, const std::string& dtype, std::uintptr_t stream, std::uintptr_t status) {
          lowbit::require(dtype == "float32" || dtype == "float64", "coset_decode: dtype must be float32 or float64");
          if (n > 0) {
            require_address(codes, "coset_decode b");
            require_address(t, "coset_decode T");
            require_address(out, "coset_decode out");
          }
          auto* st = ptr<lowbit::cuda::CosetStatus>(status);
          nb::gil_scoped_release release;
          if (dtype == "float32")
            lowbit::cuda::coset_decode<float>(c, ptr<const std::uint8_t>(codes), ptr<const std::uint8_t>(t), n,
                                              ptr<float>(out), stream_of(stream), st);
          else
            lowbit::cuda::coset_decode<double>(c, ptr<const std::uint8_t>(codes), ptr<const std::uint8_t>(t), n,
                                               ptr<double>(out), stream_of(stream), st);
        },
        nb::arg("config"), nb::arg("codes"), nb::arg("t"), nb::arg("n"), nb::arg("out"), nb::arg("dtype"),
        nb::arg("stream"), nb::arg("status"), "HNLQ decode of n vectors; status as for coset_encode.");
  m.def("coset_check_status",
        [](const lowbit::coset::QuantizationConfig& c, const std::vector<std::int64_t>& words) {
          lowbit::require(words.size() == 4, "coset_check_status: expected the 4 status words");
          lowbit::cuda::CosetStatus s;
          s.retried = static_cast<std::uint64_t>(words[0]);
          s.overloaded = static_cast<std::uint64_t>(words[1]);
          s.first_bad = static_cast<std::uint64_t>(words[2]);
          s.error = static_cast<std::int32_t>(words[3] & 0xffffffff);  // little-endian: error is the low half
          lowbit::cuda::coset_check_status(c, s);
        },
        nb::arg("config"), nb::arg("status"),
        "Raise ValueError with the CPU's message for a status read back as 4 int64 words.");
}

#endif  // LOWBIT_WITH_CUDA
