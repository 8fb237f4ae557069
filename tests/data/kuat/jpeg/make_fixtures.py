"""Writes the JPEG fixtures of test_kuat_decode.py::test_jpeg_fixtures_match_pil (kinds PIL's
encoder cannot write: 4:1:1 and other sampling factors, restart intervals, arithmetic coding).
Usage: cc -O2 mkjpeg.c -ljpeg -o /tmp/mkjpeg && python make_fixtures.py /tmp/mkjpeg"""
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLING = {"411": ["4,1", "1,1", "1,1"], "410": ["4,2", "1,1", "1,1"], "440": ["1,2", "1,1", "1,1"],
            "mixed": ["2,1", "1,2", "1,1"], "311": ["3,1", "1,1", "1,1"], "420": ["2,2", "1,1", "1,1"],
            "cmyk22": ["2,2", "1,1", "1,1", "2,2"], "gray22": ["2,2"]}
CASES = [  # (name, sampling, colour space, options)
    ("ycc411", "411", "ycc", []), ("ycc410_restart1", "410", "ycc", ["-r", "1"]),
    ("ycc440_restart_rows", "440", "ycc", ["-R", "1"]), ("ycc_mixed", "mixed", "ycc", []),
    ("ycc311_arith", "311", "ycc", ["-a"]), ("ycc420_arith", "420", "ycc", ["-a"]),
    ("ycc420_arith_progressive", "420", "ycc", ["-a", "-p"]), ("ycc411_arith_restart2", "411", "ycc", ["-a", "-r", "2"]),
    ("ycc420_40scans", "420", "ycc", ["-s", "40"]), ("rgb_mixed_noadobe", "mixed", "rgb", ["-adobe", "0"]),
    ("ycck22_arith", "cmyk22", "ycck", ["-a"]), ("cmyk22_noadobe", "cmyk22", "cmyk", ["-adobe", "0"]),
    ("gray22_arith_progressive", "gray22", "gray", ["-a", "-p"]), ("gray22_restart1", "gray22", "gray", ["-r", "1"]),
]


def pixels(h, w, c, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h), (x * y) % 256], -1)[..., :c]
    return np.clip(base + rng.normal(0, 30, (h, w, c)), 0, 255).astype(np.uint8)


def main(mkjpeg):
    for k, (name, sampling, space, options) in enumerate(CASES):
        for h, w in ((9, 17), (33, 47)):
            samp = SAMPLING[sampling]
            raw = pixels(h, w, len(samp), k * 100 + h)
            out = subprocess.run([mkjpeg, str(w), str(h), str(len(samp)), space, *samp, *options],
                                 input=raw.tobytes(), capture_output=True, check=True).stdout
            (HERE / f"{name}_{h}x{w}.jpg").write_bytes(out)


if __name__ == "__main__":
    main(sys.argv[1])
