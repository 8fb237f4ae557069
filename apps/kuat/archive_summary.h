// The facts `kuat info` shows, shared by its table and JSON forms.
#pragma once

#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/json.h"

namespace kuat_cli {

lowbit::kuat::Json archive_summary(const lowbit::kuat::Archive& archive);

}  // namespace kuat_cli
