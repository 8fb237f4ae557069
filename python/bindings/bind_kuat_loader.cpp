// Bindings of the Kuat batch loader (lowbit._native.kuat_loader). Thin: python/kuat/dataset.py
// adds argument handling; batches cross as zero-copy numpy arrays whose owner keeps the batch
// buffer out of the pool until the last array referring to it is gone.
#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/archive_writer.h"
#include "lowbit/kuat/codebook.h"
#include "lowbit/kuat/codes.h"
#include "lowbit/kuat/loader.h"
#include "registry.h"

namespace nb = nanobind;
using namespace lowbit::kuat;

namespace {

// An archive held in memory, for tests and for building datasets without a file.
struct MemoryArchive {
  ImageGeometry geometry;
  std::uint32_t codebook_size = 0;
  std::vector<std::uint8_t> codebook;
  std::vector<std::uint8_t> indices;
  std::vector<std::int32_t> labels;
  std::size_t stride = 0;
  std::uint64_t hash = 0;

  ArchiveView view() const {
    ArchiveView v;
    v.geometry = geometry;
    v.codebook = codebook.data();
    v.codebook_size = codebook_size;
    v.codebook_hash = hash;
    v.indices = indices.data();
    v.index_stride = stride;
    v.labels = labels.data();
    v.num_samples = labels.size();
    return v;
  }
};

using U8Matrix = nb::ndarray<const std::uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using I32Vector = nb::ndarray<const std::int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using U32Vector = nb::ndarray<const std::uint32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Source = std::variant<std::string, std::shared_ptr<MemoryArchive>>;

std::shared_ptr<MemoryArchive> make_memory_archive(U8Matrix codebook, U8Matrix indices, I32Vector labels,
                                                   std::uint32_t height, std::uint32_t width, std::uint32_t channels,
                                                   std::uint32_t patch) {
  auto a = std::make_shared<MemoryArchive>();
  a->geometry = ImageGeometry{height, width, channels, patch};
  validate(a->geometry);
  lowbit::require(codebook.shape(1) == a->geometry.codeword_bytes(),
                  "codebook rows must hold " + std::to_string(a->geometry.codeword_bytes()) + " bytes (patch*patch*channels)");
  a->codebook_size = static_cast<std::uint32_t>(codebook.shape(0));
  const std::uint32_t bits = index_bits_for(a->codebook_size);
  a->stride = packed_bytes(a->geometry.num_patches(), bits);
  lowbit::require(indices.shape(1) == a->stride, "indices rows must hold " + std::to_string(a->stride) +
                                                     " packed bytes, got " + std::to_string(indices.shape(1)));
  lowbit::require(labels.shape(0) == indices.shape(0), "labels and indices must have one row per sample");
  a->codebook.assign(codebook.data(), codebook.data() + codebook.size());
  a->indices.assign(indices.data(), indices.data() + indices.size());
  a->labels.assign(labels.data(), labels.data() + labels.size());
  a->hash = codebook_identity_hash(a->codebook.data(), a->codebook_size, patch, channels);
  return a;
}

std::unique_ptr<Loader> make_loader(const std::vector<Source>& sources, LoaderOptions options) {
  std::vector<ArchiveView> views;
  std::vector<std::shared_ptr<const void>> keep;
  for (const Source& source : sources) {
    if (const auto* path = std::get_if<std::string>(&source)) {
      auto archive = std::make_shared<const Archive>(*path);
      if (!archive->fixed_shape()) {
        throw lowbit::InvalidArgument("archive '" + *path +
                                      "' holds images of different sizes; the batch loader needs one size "
                                      "(convert with --width/--height)");
      }
      views.push_back(archive->view());
      keep.push_back(archive);
    } else {
      const auto& memory = std::get<std::shared_ptr<MemoryArchive>>(source);
      lowbit::require(memory != nullptr, "archive is None");
      views.push_back(memory->view());
      keep.push_back(memory);
    }
  }
  return std::make_unique<Loader>(std::move(views), std::move(options), std::move(keep));
}

// Wraps the batch in numpy arrays that share it.
nb::tuple batch_to_arrays(std::shared_ptr<Batch> batch) {
  auto* holder = new std::shared_ptr<Batch>(batch);
  nb::capsule owner(holder, [](void* p) noexcept { delete static_cast<std::shared_ptr<Batch>*>(p); });
  const auto& s = batch->shape();
  const std::size_t image_shape[4] = {s[0], s[1], s[2], s[3]};
  const std::size_t label_shape[1] = {batch->size()};
  const nb::dlpack::dtype dtype =
      batch->dtype() == PixelType::UInt8 ? nb::dtype<std::uint8_t>() : nb::dtype<float>();
  nb::ndarray<nb::numpy> images(batch->images(), 4, image_shape, owner, nullptr, dtype);
  nb::ndarray<nb::numpy, std::int32_t> labels(batch->labels(), 1, label_shape, owner);
  return nb::make_tuple(images, labels, batch->index());
}

using ImageBatch = nb::ndarray<const std::uint8_t, nb::ndim<4>, nb::c_contig, nb::device::cpu>;

// Trains a codebook on `images` (N, H, W, C), encodes them and writes a fixed-size archive:
// the loader tests and benchmark use it to make real archive files from arrays.
void write_archive(const std::string& path, ImageBatch images, I32Vector labels, std::uint32_t codebook_size,
                   std::uint32_t patch, std::uint32_t bits, std::size_t training_images) {
  const std::size_t n = images.shape(0);
  const auto h = static_cast<std::uint32_t>(images.shape(1)), w = static_cast<std::uint32_t>(images.shape(2)),
             c = static_cast<std::uint32_t>(images.shape(3));
  lowbit::require(n > 0 && labels.shape(0) == n, "images and labels must hold the same number (> 0) of samples");
  const ImageGeometry g{h, w, c, patch};
  validate(g);
  const std::size_t image_bytes = g.pixel_bytes();
  std::vector<std::uint8_t> patches;
  const std::size_t train_n = std::min(n, std::max<std::size_t>(training_images, 1));
  for (std::size_t i = 0; i < train_n; ++i) {
    extract_patches(images.data() + (i * n / train_n) * image_bytes, h, w, c, patch, patches);
  }
  CodebookOptions options;
  options.codebook_size = codebook_size;
  options.bits = bits;
  const CodebookTraining trained =
      train_codebook(patches.data(), patches.size() / g.codeword_bytes(), g.codeword_bytes(), options);
  const PatchEncoder encoder(trained.codebook.data(), codebook_size, patch, c);
  std::vector<std::vector<std::uint8_t>> packed(n);
  lowbit::parallel_for(0, n, 8, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) packed[i] = encoder.encode(images.data() + i * image_bytes, h, w).packed;
  });
  ArchiveWriter writer(path, patch, c, trained.codebook.data(), codebook_size);
  for (std::size_t i = 0; i < n; ++i) writer.add(packed[i].data(), packed[i].size(), h, w, labels.data()[i]);
  writer.finish(R"({"source":"lowbit._native.kuat_loader.write_archive"})");
}

}  // namespace

LOWBIT_BINDING(kuat_loader) {
  nb::class_<MemoryArchive>(m, "MemoryArchive",
                            "A fixed-size Kuat archive held in memory: codebook (K, P*P*C) uint8, packed index "
                            "blocks (N, stride) uint8, labels (N,) int32.")
      .def("__init__",
           [](MemoryArchive* self, U8Matrix codebook, U8Matrix indices, I32Vector labels, std::uint32_t height,
              std::uint32_t width, std::uint32_t channels, std::uint32_t patch) {
             new (self) MemoryArchive(*make_memory_archive(codebook, indices, labels, height, width, channels, patch));
           },
           nb::arg("codebook").noconvert(), nb::arg("indices").noconvert(), nb::arg("labels").noconvert(),
           nb::arg("height"), nb::arg("width"), nb::arg("channels"), nb::arg("patch") = 2)
      .def("__len__", [](const MemoryArchive& a) { return a.labels.size(); })
      .def("packed_indices",
           [](nb::object self) {
             const MemoryArchive& a = nb::cast<const MemoryArchive&>(self);
             const std::size_t shape[2] = {a.labels.size(), a.stride};
             return nb::ndarray<nb::numpy, const std::uint8_t, nb::ndim<2>>(a.indices.data(), 2, shape, self);
           },
           "The packed index blocks as a read-only (N, stride) uint8 view.")
      .def("labels",
           [](nb::object self) {
             const MemoryArchive& a = nb::cast<const MemoryArchive&>(self);
             const std::size_t shape[1] = {a.labels.size()};
             return nb::ndarray<nb::numpy, const std::int32_t, nb::ndim<1>>(a.labels.data(), 1, shape, self);
           },
           "The labels as a read-only (N,) int32 view.")
      .def("codebook",
           [](nb::object self) {
             const MemoryArchive& a = nb::cast<const MemoryArchive&>(self);
             const std::size_t shape[4] = {a.codebook_size, a.geometry.patch, a.geometry.patch, a.geometry.channels};
             return nb::ndarray<nb::numpy, const std::uint8_t, nb::ndim<4>>(a.codebook.data(), 4, shape, self);
           },
           "The codebook as a read-only (K, P, P, C) uint8 view.")
      .def_prop_ro("geometry",
                   [](const MemoryArchive& a) {
                     return nb::make_tuple(a.geometry.height, a.geometry.width, a.geometry.channels, a.geometry.patch);
                   },
                   "(height, width, channels, patch).")
      .def_prop_ro("codebook_hash", [](const MemoryArchive& a) { return a.hash; });

  m.def("pack_indices",
        [](U32Vector indices, std::uint32_t bits) {
          lowbit::require(bits >= 1 && bits <= 16, "bits must be between 1 and 16");
          const std::size_t n = indices.shape(0);
          auto* out = new std::vector<std::uint8_t>(packed_bytes(n, bits));
          pack_indices(indices.data(), n, bits, out->data());
          nb::capsule owner(out, [](void* p) noexcept { delete static_cast<std::vector<std::uint8_t>*>(p); });
          const std::size_t shape[1] = {out->size()};
          return nb::ndarray<nb::numpy, std::uint8_t>(out->data(), 1, shape, owner);
        },
        nb::arg("indices").noconvert(), nb::arg("bits"), "Packs indices LSB-first, `bits` bits each (codes.h).");

  m.def("write_archive",
        [](const std::string& path, ImageBatch images, I32Vector labels, std::uint32_t codebook_size,
           std::uint32_t patch, std::uint32_t bits, std::size_t training_images) {
          nb::gil_scoped_release release;
          write_archive(path, images, labels, codebook_size, patch, bits, training_images);
        },
        nb::arg("path"), nb::arg("images").noconvert(), nb::arg("labels").noconvert(), nb::arg("codebook_size") = 512,
        nb::arg("patch") = 2, nb::arg("bits") = 4, nb::arg("training_images") = 256,
        "Test/benchmark helper: trains a codebook on (N, H, W, C) uint8 images and writes them as a fixed-size "
        "archive (kuat.convert_dataset is the full converter).");

  nb::class_<EpochReader>(m, "EpochReader")
      .def("next",
           [](EpochReader& reader) -> nb::object {
             std::shared_ptr<Batch> batch;
             {
               nb::gil_scoped_release release;
               batch = reader.next();
             }
             if (!batch) return nb::none();
             return batch_to_arrays(std::move(batch));
           },
           "(images, labels, batch_index) of the next batch, or None after the last.")
      .def_prop_ro("epoch", &EpochReader::epoch)
      .def_prop_ro("consumed", &EpochReader::consumed);

  nb::class_<Loader>(m, "Loader")
      .def("__init__",
           [](Loader* self, const std::vector<Source>& sources, std::size_t batch_size, bool shuffle, std::uint64_t seed,
              bool drop_last, const std::string& layout, const std::string& dtype, std::vector<float> mean,
              std::vector<float> std, std::uint32_t crop_padding, bool random_flip, std::uint32_t rank,
              std::uint32_t world_size, std::size_t num_threads, std::size_t prefetch) {
             LoaderOptions o;
             o.batch_size = batch_size;
             o.shuffle = shuffle;
             o.seed = seed;
             o.drop_last = drop_last;
             o.layout = parse_layout(layout);
             o.dtype = parse_pixel_type(dtype);
             o.mean = std::move(mean);
             o.std = std::move(std);
             o.crop_padding = crop_padding;
             o.random_flip = random_flip;
             o.rank = rank;
             o.world_size = world_size;
             o.num_threads = num_threads;
             o.prefetch = prefetch;
             std::unique_ptr<Loader> loader;
             {
               nb::gil_scoped_release release;
               loader = make_loader(sources, std::move(o));
             }
             new (self) Loader(std::move(*loader));
           },
           nb::arg("sources"), nb::arg("batch_size"), nb::arg("shuffle"), nb::arg("seed"), nb::arg("drop_last"),
           nb::arg("layout"), nb::arg("dtype"), nb::arg("mean"), nb::arg("std"), nb::arg("crop_padding"),
           nb::arg("random_flip"), nb::arg("rank"), nb::arg("world_size"), nb::arg("num_threads"), nb::arg("prefetch"))
      .def_prop_ro("num_samples", &Loader::num_samples)
      .def_prop_ro("samples_per_rank", &Loader::samples_per_rank)
      .def_prop_ro("batches_per_epoch", &Loader::batches_per_epoch)
      .def_prop_ro("num_threads", [](const Loader& l) { return l.options().num_threads; })
      .def_prop_ro("prefetch", [](const Loader& l) { return l.options().prefetch; })
      .def_prop_ro("buffers_alive", &Loader::buffers_alive)
      .def_prop_ro("buffer_allocations", &Loader::buffer_allocations)
      .def_prop_ro("sample_shape", [](const Loader& l) {
        const auto s = l.batch_shape();
        return nb::make_tuple(s[1], s[2], s[3]);
      })
      .def("sample_order",
           [](const Loader& l, std::uint64_t epoch) {
             auto* out = new std::vector<std::int64_t>(l.samples_per_rank());
             for (std::size_t q = 0; q < out->size(); ++q) (*out)[q] = static_cast<std::int64_t>(l.sample_at(epoch, q));
             nb::capsule owner(out, [](void* p) noexcept { delete static_cast<std::vector<std::int64_t>*>(p); });
             const std::size_t shape[1] = {out->size()};
             return nb::ndarray<nb::numpy, std::int64_t>(out->data(), 1, shape, owner);
           },
           nb::arg("epoch"), "This rank's sample indices of `epoch`, in order.")
      .def("transform",
           [](const Loader& l, std::uint64_t epoch, std::uint64_t sample) {
             const SampleTransform t = l.transform_for(epoch, sample);
             return nb::make_tuple(t.shift_y, t.shift_x, t.flip);
           },
           nb::arg("epoch"), nb::arg("sample"), "(shift_y, shift_x, flip) that `sample` gets in `epoch`.")
      .def("read_epoch", &Loader::read_epoch, nb::arg("epoch"), nb::arg("first_batch") = 0, nb::arg("batch_step") = 1);
}
