#include "lowbit/kuat/format.h"

namespace lowbit::kuat::format {

const char* section_name(std::uint32_t kind) noexcept {
  switch (static_cast<SectionKind>(kind)) {
    case SectionKind::Metadata: return "metadata";
    case SectionKind::Codebook: return "codebook";
    case SectionKind::Labels: return "labels";
    case SectionKind::Indices: return "indices";
    case SectionKind::Shapes: return "shapes";
    case SectionKind::Offsets: return "offsets";
    case SectionKind::SourceNames: return "source-names";
  }
  return "unknown";
}

}  // namespace lowbit::kuat::format
