#include "lowbit/kuat/archive_summary.h"

#include <cstdio>

namespace lowbit::kuat {

Json archive_summary(const Archive& a) {
  Json j = Json::object();
  j.set("path", a.path());
  j.set("version", std::to_string(a.version_major()) + "." + std::to_string(a.version_minor()));
  j.set("samples", a.size());
  if (a.fixed_shape()) {
    j.set("height", a.geometry().height);
    j.set("width", a.geometry().width);
  } else {
    j.set("height", nullptr);
    j.set("width", nullptr);
  }
  j.set("channels", a.channels());
  j.set("patch", a.patch());
  j.set("codebook_size", a.codebook_size());
  j.set("index_bits", a.index_bits());
  char hex[20];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(a.codebook_hash()));
  j.set("codebook_hash", std::string(hex));
  j.set("file_bytes", a.file_bytes());
  std::uint64_t raw = 0;
  if (a.fixed_shape()) {
    raw = a.size() * a.geometry().pixel_bytes();
  } else {
    for (std::uint64_t i = 0; i < a.size(); ++i) raw += a.sample_geometry(i).pixel_bytes();
  }
  j.set("raw_bytes", raw);
  j.set("compression_ratio", double(raw) / double(a.file_bytes()));
  Json classes = Json::array();
  for (const auto& c : a.class_names()) classes.push(c);
  j.set("num_classes", a.class_names().size());
  j.set("classes", classes);
  j.set("metadata", a.metadata());
  return j;
}

}  // namespace lowbit::kuat
