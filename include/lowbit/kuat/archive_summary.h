// The facts `kuat info` and KuatArchive.info() report about an archive, as one JSON object:
// path, version, samples, height/width (null when sizes vary), channels, patch, codebook_size,
// index_bits, codebook_hash (hex), file_bytes, raw_bytes, compression_ratio, num_classes,
// classes, metadata (the archive's own metadata object).
#pragma once

#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/json.h"

namespace lowbit::kuat {

Json archive_summary(const Archive& archive);

}  // namespace lowbit::kuat
