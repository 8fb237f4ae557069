// Per-ISA entry points of gather.h (internal). Each kernel decodes one whole sample and returns
// the largest index found in its packed block, so the dispatcher can report corrupt data; the
// table is padded to 2^bits codewords, so every read stays inside it whatever the indices are.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/kuat/gather.h"

namespace lowbit::kuat::kernels {

// Per-thread work space. `indices` holds num_patches + kIndexSlack values, `row` one source
// row of pieces plus kRowSlack bytes (wide stores may run past the last piece).
struct GatherScratch {
  std::uint16_t* indices = nullptr;
  std::uint8_t* row = nullptr;
};
inline constexpr std::size_t kIndexSlack = 64;
inline constexpr std::size_t kRowSlack = 128;

using GatherFn = std::uint32_t (*)(const GatherTable& table, const std::uint8_t* packed,
                                   const SampleTransform& transform, std::uint8_t* out,
                                   const GatherScratch& scratch);

std::uint32_t gather_sample_ref(const GatherTable&, const std::uint8_t*, const SampleTransform&, std::uint8_t*,
                                const GatherScratch&);
std::uint32_t gather_sample_avx2(const GatherTable&, const std::uint8_t*, const SampleTransform&, std::uint8_t*,
                                 const GatherScratch&);
std::uint32_t gather_sample_avx512(const GatherTable&, const std::uint8_t*, const SampleTransform&, std::uint8_t*,
                                   const GatherScratch&);

}  // namespace lowbit::kuat::kernels
