// Kuat bindings (lowbit._native.kuat): the archive reader and the converter. Thin: Python's
// kuat package adds the user-facing classes.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/archive_summary.h"
#include "lowbit/kuat/codebook.h"
#include "lowbit/kuat/convert.h"
#include "lowbit/kuat/image.h"
#include "lowbit/kuat/source.h"
#include "registry.h"

namespace nb = nanobind;
using lowbit::kuat::Archive;

namespace {

// File and folder names are bytes on POSIX: ones that are not UTF-8 (Latin-1 names) become str
// as os.fsdecode makes them (surrogateescape), instead of a UnicodeDecodeError.
nb::object fs_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
  if (!o) throw nb::python_error();
  return nb::steal(o);
}

// A path argument (str or bytes) as the bytes the OS uses (os.fsencode: surrogateescape).
std::string fs_path(const nb::handle& h) {
  if (PyBytes_Check(h.ptr())) return std::string(PyBytes_AS_STRING(h.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(h.ptr())));
  if (!PyUnicode_Check(h.ptr())) throw nb::type_error("path must be str or bytes");
  PyObject* b = PyUnicode_EncodeFSDefault(h.ptr());
  if (!b) throw nb::python_error();
  std::string out(PyBytes_AS_STRING(b), static_cast<std::size_t>(PyBytes_GET_SIZE(b)));
  Py_DECREF(b);
  return out;
}

nb::list fs_strs(const std::vector<std::string>& v) {
  nb::list out;
  for (const auto& s : v) out.append(fs_str(s));
  return out;
}

template <class T, std::size_t N>
nb::ndarray<nb::numpy, T> owned_array(std::vector<T>&& data, const std::size_t (&shape)[N]) {
  auto* heap = new std::vector<T>(std::move(data));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(heap->data(), N, shape, owner);
}

nb::ndarray<nb::numpy, std::uint8_t> decode_sample(const Archive& a, std::int64_t i) {
  const auto idx = static_cast<std::uint64_t>(i);
  if (i < 0 || idx >= a.size()) {
    throw lowbit::InvalidArgument("sample index " + std::to_string(i) + " out of range for " + std::to_string(a.size()) + " samples");
  }
  const auto g = a.sample_geometry(idx);
  std::vector<std::uint8_t> px(g.pixel_bytes());
  {
    nb::gil_scoped_release release;
    a.decode(idx, px.data());
  }
  return owned_array(std::move(px), {std::size_t{g.height}, std::size_t{g.width}, std::size_t{g.channels}});
}

lowbit::kuat::ConvertOptions options_from(const nb::dict& d) {
  lowbit::kuat::ConvertOptions o;
  for (auto [key, value] : d) {
    const std::string k = nb::cast<std::string>(key);
    if (value.is_none()) continue;
    if (k == "format") o.source.format = nb::cast<std::string>(value);
    else if (k == "split") o.source.split = nb::cast<std::string>(value);
    else if (k == "labels") o.source.labels_file = nb::cast<std::string>(value);
    else if (k == "channels") o.source.channels = nb::cast<std::uint32_t>(value);
    else if (k == "bits") o.bits = nb::cast<std::uint32_t>(value);
    else if (k == "codebook_size") o.codebook_size = nb::cast<std::uint32_t>(value);
    else if (k == "patch") o.patch = nb::cast<std::uint32_t>(value);
    else if (k == "width") o.target.width = nb::cast<std::uint32_t>(value);
    else if (k == "height") o.target.height = nb::cast<std::uint32_t>(value);
    else if (k == "resize") o.target.mode = lowbit::kuat::parse_resize_mode(nb::cast<std::string>(value));
    else if (k == "codebook") o.codebook_from = nb::cast<std::string>(value);
    else if (k == "shard") lowbit::kuat::parse_shard(nb::cast<std::string>(value), &o.shard_index, &o.shard_count);
    else if (k == "strict") o.strict = nb::cast<bool>(value);
    else if (k == "quiet") o.progress = !nb::cast<bool>(value);
    else if (k == "threads") o.threads = nb::cast<std::uint32_t>(value);
    else if (k == "iterations") o.iterations = nb::cast<std::uint32_t>(value);
    else if (k == "seed") o.seed = nb::cast<std::uint64_t>(value);
    else if (k == "training_patches") o.training_patches = nb::cast<std::uint64_t>(value);
    else if (k == "limit") o.limit = nb::cast<std::uint64_t>(value);
    else if (k == "classes") o.class_names = nb::cast<std::vector<std::string>>(value);
    else if (k == "classes_file") o.classes_file = nb::cast<std::string>(value);
    else if (k == "max_pixels") o.source.decode.max_pixels = nb::cast<std::uint64_t>(value);
    else if (k == "exif_transpose") o.source.decode.exif_transpose = nb::cast<bool>(value);
    else if (k == "background") {
      const auto rgb = nb::cast<std::vector<int>>(value);
      lowbit::require(rgb.size() == 3 && std::all_of(rgb.begin(), rgb.end(), [](int v) { return v >= 0 && v <= 255; }),
                      "background must be three ints 0..255 (R, G, B)");
      o.source.decode.background = {static_cast<std::uint8_t>(rgb[0]), static_cast<std::uint8_t>(rgb[1]),
                                    static_cast<std::uint8_t>(rgb[2])};
    }
    else throw lowbit::InvalidArgument("convert_dataset: unknown option '" + k + "'");
  }
  return o;
}

}  // namespace

LOWBIT_BINDING(kuat) {
  nb::class_<Archive>(m, "Archive", "An open .kuat archive (memory-mapped).")
      .def("__init__", [](Archive* self, const nb::object& path) { new (self) Archive(fs_path(path)); }, nb::arg("path"))
      .def("__len__", [](const Archive& a) { return a.size(); })
      .def_prop_ro("path", [](const Archive& a) { return fs_str(a.path()); })
      .def_prop_ro("fixed_shape", &Archive::fixed_shape)
      .def_prop_ro("channels", &Archive::channels)
      .def_prop_ro("patch", &Archive::patch)
      .def_prop_ro("codebook_size", &Archive::codebook_size)
      .def_prop_ro("codebook_hash", &Archive::codebook_hash)
      .def_prop_ro("index_bits", &Archive::index_bits)
      .def_prop_ro("classes", &Archive::class_names)
      .def_prop_ro("metadata_json", &Archive::metadata_json)
      .def("summary_json", [](const Archive& a) { return lowbit::kuat::archive_summary(a).dump(); })
      .def("shape", [](const Archive& a, std::int64_t i) {
        lowbit::require(i >= 0, "sample index must be non-negative");
        const auto g = a.sample_geometry(static_cast<std::uint64_t>(i));
        return nb::make_tuple(g.height, g.width, g.channels);
      }, nb::arg("index"))
      .def("label", [](const Archive& a, std::int64_t i) {
        lowbit::require(i >= 0, "sample index must be non-negative");
        return a.label(static_cast<std::uint64_t>(i));
      }, nb::arg("index"))
      .def("source_name", [](const Archive& a, std::int64_t i) {
        lowbit::require(i >= 0, "sample index must be non-negative");
        return fs_str(a.source_name(static_cast<std::uint64_t>(i)));
      }, nb::arg("index"))
      .def("decode", &decode_sample, nb::arg("index"), "Sample i as an HxWxC uint8 array.")
      .def("sample_indices", [](const Archive& a, std::int64_t i) {
        lowbit::require(i >= 0, "sample index must be non-negative");
        const auto block = a.sample_indices(static_cast<std::uint64_t>(i));
        return nb::bytes(reinterpret_cast<const char*>(block.data()), block.size());
      }, nb::arg("index"), "Sample i's packed index block (bytes).")
      .def("packed_indices", [](nb::object self) {
        const Archive& a = nb::cast<const Archive&>(self);
        const lowbit::kuat::ArchiveView v = a.view();  // ValueError for variable-size archives
        const std::size_t shape[2] = {static_cast<std::size_t>(v.num_samples), v.index_stride};
        return nb::ndarray<nb::numpy, const std::uint8_t, nb::ndim<2>>(v.indices, 2, shape, self);
      }, "Every sample's packed index block as a read-only (N, stride) uint8 view of the memory map "
         "(fixed-shape archives; the view keeps the archive open).")
      .def_prop_ro("geometry", [](const Archive& a) {
        const auto& g = a.geometry();  // ValueError for variable-size archives
        return nb::make_tuple(g.height, g.width, g.channels, g.patch);
      }, "(height, width, channels, patch) of every sample of a fixed-shape archive.")
      .def("labels", [](const Archive& a) {
        const auto l = a.labels();
        return owned_array(std::vector<std::int32_t>(l.begin(), l.end()), {l.size()});
      })
      .def("codebook", [](const Archive& a) {
        std::vector<std::uint8_t> cb(a.codebook(), a.codebook() + std::size_t{a.codebook_size()} * a.codeword_bytes());
        return owned_array(std::move(cb), {std::size_t{a.codebook_size()}, std::size_t{a.patch()}, std::size_t{a.patch()},
                                           std::size_t{a.channels()}});
      }, "The codebook as a (K, P, P, C) uint8 array.")
      .def("get_batch", [](const Archive& a, nb::ndarray<const std::int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> indices) {
        const auto& g = a.geometry();  // ValueError for variable-size archives
        const std::size_t n = indices.shape(0);
        std::vector<std::uint64_t> idx(n);
        for (std::size_t j = 0; j < n; ++j) {
          const std::int64_t v = indices.data()[j];
          if (v < 0 || static_cast<std::uint64_t>(v) >= a.size()) {
            throw lowbit::InvalidArgument("get_batch: index " + std::to_string(v) + " out of range for " + std::to_string(a.size()) + " samples");
          }
          idx[j] = static_cast<std::uint64_t>(v);
        }
        std::vector<std::uint8_t> images(n * g.pixel_bytes());
        std::vector<std::int32_t> labels(n);
        {
          nb::gil_scoped_release release;
          lowbit::parallel_for(0, n, 8, [&](std::size_t b, std::size_t e) {
            for (std::size_t j = b; j < e; ++j) {
              a.decode(idx[j], images.data() + j * g.pixel_bytes());
              labels[j] = a.label(idx[j]);
            }
          });
        }
        nb::dict out;
        out["images"] = owned_array(std::move(images), {n, std::size_t{g.height}, std::size_t{g.width}, std::size_t{g.channels}});
        out["labels"] = owned_array(std::move(labels), {n});
        return out;
      }, nb::arg("indices").noconvert(), "Decodes a batch of a fixed-shape archive: {'images': (B,H,W,C) uint8, 'labels': (B,) int32}.")
      .def("verify", [](const Archive& a) {
        nb::gil_scoped_release release;
        a.verify();
      }, "Checks every checksum and decodes every sample; OSError describes the first problem.");

  // Building blocks for benchmarks and experiments: the images exactly as the converter encodes
  // them, codebook training on given patches, and PSNR of a codebook on given images.
  m.def("load_images", [](const std::string& src, const std::string& format, std::uint32_t width, std::uint32_t height,
                          std::uint32_t channels, std::uint64_t limit) {
    lowbit::kuat::SourceOptions so;
    so.format = format;
    so.channels = channels;
    auto source = lowbit::kuat::open_source(src, so);
    const lowbit::kuat::TargetSize target{width, height, lowbit::kuat::ResizeMode::CenterCrop};
    const std::size_t n = limit ? std::min<std::size_t>(limit, source->size()) : source->size();
    std::vector<lowbit::kuat::Image> images(n);
    {
      nb::gil_scoped_release release;
      lowbit::parallel_for(0, n, 1, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) images[i] = source->load(i, channels ? channels : source->default_channels(), target);
      });
    }
    nb::list out;
    for (auto& img : images) {
      const std::size_t h = img.height, w = img.width, c = img.channels;
      out.append(owned_array(std::move(img.pixels), {h, w, c}));
    }
    return out;
  }, nb::arg("src"), nb::arg("format") = "auto", nb::arg("width") = 0, nb::arg("height") = 0, nb::arg("channels") = 0,
     nb::arg("limit") = 0);

  m.def("train_codebook", [](nb::ndarray<const std::uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> patches,
                             std::uint32_t codebook_size, std::uint32_t bits, std::uint32_t iterations, std::uint64_t seed) {
    lowbit::kuat::CodebookOptions o;
    o.codebook_size = codebook_size;
    o.bits = bits;
    o.iterations = iterations;
    o.seed = seed;
    const std::size_t n = patches.shape(0), dim = patches.shape(1);
    lowbit::kuat::CodebookTraining t;
    {
      nb::gil_scoped_release release;
      t = lowbit::kuat::train_codebook(patches.data(), n, static_cast<std::uint32_t>(dim), o);
    }
    nb::dict d;
    d["codebook"] = owned_array(std::move(t.codebook), {std::size_t{codebook_size}, dim});
    d["seconds"] = t.seconds;
    d["coreset_points"] = t.coreset_points;
    d["iterations_run"] = t.iterations_run;
    return d;
  }, nb::arg("patches").noconvert(), nb::arg("codebook_size"), nb::arg("bits") = 8, nb::arg("iterations") = 20,
     nb::arg("seed") = 1234, "Trains a uint8 codebook on (n, P*P*C) uint8 patches.");

  m.def("encode_psnr", [](const nb::list& images, nb::ndarray<const std::uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> codebook,
                          std::uint32_t patch) {
    std::vector<nb::ndarray<const std::uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu>> imgs;
    for (auto h : images) imgs.push_back(nb::cast<nb::ndarray<const std::uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu>>(h));
    lowbit::require(!imgs.empty(), "encode_psnr: no images");
    const std::uint32_t channels = static_cast<std::uint32_t>(imgs[0].shape(2));
    lowbit::require(codebook.shape(1) == std::size_t{patch} * patch * channels, "encode_psnr: codebook rows do not match patch and channels");
    std::vector<double> psnr(imgs.size());
    {
      nb::gil_scoped_release release;
      const lowbit::kuat::PatchEncoder enc(codebook.data(), static_cast<std::uint32_t>(codebook.shape(0)), patch, channels);
      lowbit::parallel_for(0, imgs.size(), 1, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) {
          const auto& im = imgs[i];
          const auto r = enc.encode(im.data(), static_cast<std::uint32_t>(im.shape(0)), static_cast<std::uint32_t>(im.shape(1)));
          psnr[i] = lowbit::kuat::psnr_from_mse(r.squared_error / double(im.shape(0) * im.shape(1) * im.shape(2)));
        }
      });
    }
    return owned_array(std::move(psnr), {imgs.size()});
  }, nb::arg("images"), nb::arg("codebook"), nb::arg("patch") = 2, "Per-image PSNR of encoding with a uint8 codebook (K, P*P*C).");

  m.def("decode_image", [](nb::bytes data, std::uint32_t channels, std::uint64_t max_pixels, std::vector<int> background,
                           bool exif_transpose) {
    lowbit::require(background.size() == 3 && std::all_of(background.begin(), background.end(), [](int v) { return v >= 0 && v <= 255; }),
                    "background must be three ints 0..255 (R, G, B)");
    lowbit::kuat::DecodeOptions o;
    o.max_pixels = max_pixels;
    o.background = {static_cast<std::uint8_t>(background[0]), static_cast<std::uint8_t>(background[1]),
                    static_cast<std::uint8_t>(background[2])};
    o.exif_transpose = exif_transpose;
    const auto* p = reinterpret_cast<const std::uint8_t*>(data.c_str());
    const std::size_t n = data.size();
    lowbit::kuat::Image img;
    {
      nb::gil_scoped_release release;
      img = lowbit::kuat::decode_image(p, n, channels, {}, "<bytes>", o);
    }
    return owned_array(std::move(img.pixels), {std::size_t{img.height}, std::size_t{img.width}, std::size_t{img.channels}});
  }, nb::arg("data"), nb::arg("channels") = 3, nb::arg("max_pixels") = lowbit::kuat::kDefaultMaxPixels,
     nb::arg("background") = std::vector<int>{0, 0, 0}, nb::arg("exif_transpose") = false,
     "Decodes JPEG/PNG/WebP bytes as kuat convert does (native size): an HxWxC uint8 array.");
  m.def("convert", [](const nb::object& src_path, const nb::object& dst_path, const nb::dict& options) {
    const std::string src = fs_path(src_path), dst = fs_path(dst_path);
    lowbit::kuat::ConvertOptions o = options_from(options);
    lowbit::kuat::ConvertStats s;
    // The conversion runs on its own thread while this one (Python's) waits for it and checks for
    // signals every 50 ms: Ctrl-C (KeyboardInterrupt, or whatever a Python signal handler raises)
    // stops the converter, which removes its temporary file, and the exception is raised here.
    std::atomic<bool> interrupt{false};
    o.interrupt = &interrupt;
    std::exception_ptr failure;
    std::mutex mutex;
    std::condition_variable finished;
    bool done = false, python_error = false;
    std::thread worker([&] {
      try {
        s = lowbit::kuat::convert_dataset(src, dst, o);
      } catch (...) {
        failure = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex);
      done = true;
      finished.notify_all();
    });
    for (;;) {
      {
        nb::gil_scoped_release release;
        std::unique_lock<std::mutex> lock(mutex);
        if (finished.wait_for(lock, std::chrono::milliseconds(50), [&] { return done; })) break;
      }
      if (!python_error && PyErr_CheckSignals() != 0) {
        python_error = true;  // the exception stays pending until the converter has cleaned up
        interrupt.store(true);
      }
    }
    worker.join();
    if (python_error) throw nb::python_error();
    if (failure) std::rethrow_exception(failure);
    nb::dict d;
    d["samples"] = s.samples;
    d["skipped"] = s.skipped;
    d["refused"] = s.refused;
    d["skipped_reasons"] = fs_strs(s.skipped_reasons);
    d["ignored"] = fs_strs(s.ignored);
    d["warnings"] = fs_strs(s.warnings);
    d["psnr"] = s.psnr;
    d["psnr_worst"] = s.psnr_worst;
    d["mse"] = s.mse;
    d["raw_bytes"] = s.raw_bytes;
    d["archive_bytes"] = s.archive_bytes;
    d["compression_ratio"] = s.compression_ratio;
    d["seconds"] = s.seconds;
    d["training_seconds"] = s.training_seconds;
    d["encoding_seconds"] = s.encoding_seconds;
    d["training_patches"] = s.training_patches;
    d["coreset_points"] = s.coreset_points;
    d["iterations_run"] = s.iterations_run;
    d["format"] = s.format;
    d["codebook_hash"] = s.codebook_hash;
    return d;
  }, nb::arg("src"), nb::arg("dst"), nb::arg("options"), "Converts a dataset; options as in kuat.convert_dataset.");
}
