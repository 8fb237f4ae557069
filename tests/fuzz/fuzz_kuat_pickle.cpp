// Fuzzes the strict pickle-subset reader and the CIFAR field extraction on top of it.
#include <cstdint>
#include <string>
#include <vector>

#include "kuat/pickle.h"
#include "lowbit/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace pk = lowbit::kuat::pickle;
  try {
    const pk::Document doc = pk::parse(data, size, "fuzz.pkl");
    std::vector<std::int64_t> ints;
    std::vector<std::string> strings;
    for (const char* key : {"data", "labels", "fine_labels", "label_names", "filenames"}) {
      const pk::Value* v = pk::dict_get(doc.root(), key);
      (void)pk::to_int_vector(v, &ints);
      (void)pk::to_string_vector(v, &strings);
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
