#!/usr/bin/env bash
# make wheel-check: proves the repaired wheel installs and works without system packages.
# A new virtual environment *without* system site packages gets only numpy (from PyPI) and the
# wheel; there `kuat convert` of a folder of JPEG, PNG and WebP files, KuatArchive and KuatDataset
# must work without torch, and coset/bitcore/bitlayers/bitmodels/bitlab must say clearly that they need it.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$(ls dist/lowbit-*manylinux*.whl)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 -m venv "$work/venv"                   # no --system-site-packages
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check numpy "$wheel"

# Input images made with Debian's PIL (outside the new venv): one class folder per format.
/usr/bin/python3 - "$work/images" <<'PY'
import sys, pathlib
import numpy as np
from PIL import Image
root = pathlib.Path(sys.argv[1])
rng = np.random.default_rng(0)
for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")):
    d = root / fmt.lower()
    d.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(d / f"{i}.{ext}", fmt)
PY

cd "$work"   # never import the source tree
export PATH="$work/venv/bin:$PATH"
# The extension and the kuat executable load the image libraries bundled in lowbit.libs/.
site=$(echo "$work"/venv/lib/python3*/site-packages)
for elf in "$site"/lowbit/_native*.so "$site"/lowbit.scripts/kuat; do
  libs=$(ldd "$elf" | grep -E "jpeg|png|webp")
  echo "$libs"
  if grep -v "lowbit.libs" <<<"$libs" | grep -q .; then
    echo "check-wheel: $elf loads an image library from outside the wheel" >&2
    exit 1
  fi
done
kuat convert images out.kuat -f imagenet -W 32 -H 32 --codebook-size 16 -q
venv/bin/python - <<'PY'
import importlib.util
assert importlib.util.find_spec("torch") is None, "torch must not be installed in this check"
import kuat
a = kuat.KuatArchive("out.kuat")
assert len(a) == 12, len(a)
img = a[0]["image"]
assert img.shape == (32, 32, 3), img.shape
print("KuatArchive:", len(a), "images of", img.shape)
ds = kuat.KuatDataset("out.kuat", batch_size=4, shuffle=True, seed=0)
n = sum(len(batch["labels"]) for batch in ds)
assert n == 12, n
print("KuatDataset: one epoch of", n, "samples")
for name in ("coset", "bitcore", "bitlayers", "bitmodels", "bitlab"):
    try:
        importlib.import_module(name)
        raise AssertionError(f"{name} imported without torch")
    except ImportError as e:
        assert "pip install torch" in str(e), f"{name}: unclear error without torch: {e}"
        print(f"{name}: {e}")
print("wheel-check: ok")
PY
