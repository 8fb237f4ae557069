"""convert_dataset: Python entry to the C++ converter (the same engine as `kuat convert`)."""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, Optional, Sequence, Union

from lowbit import _native

from ._index import integer

PathLike = Union[str, "os.PathLike[str]"]


def convert_dataset(
    src: PathLike,
    dst: PathLike,
    format: str = "auto",
    bits: int = 4,
    codebook_size: int = 512,
    width: Optional[int] = None,
    height: Optional[int] = None,
    quiet: bool = True,
    *,
    patch: int = 2,
    resize: str = "crop",
    channels: Optional[int] = None,
    codebook: Optional[PathLike] = None,
    shard: Optional[str] = None,
    split: str = "train",
    labels: Optional[PathLike] = None,
    strict: bool = False,
    iterations: int = 20,
    training_patches: Optional[int] = None,
    seed: int = 1234,
    limit: Optional[int] = None,
    threads: Optional[int] = None,
    classes: Union[Sequence[str], PathLike, None] = None,
    max_pixels: Optional[int] = None,
    background: Optional[Sequence[int]] = None,
    exif_transpose: bool = False,
) -> Dict[str, Any]:
    """Converts a dataset to a Kuat archive and returns statistics.

    ``format``: ``auto``, ``idx``, ``cifar``, ``images`` or ``imagenet``. ``width``/``height``
    (together) resize every image (shorter side then centre crop, or ``resize="stretch"``);
    without them native sizes are kept. ``codebook`` reuses another archive's codebook;
    ``shard="i/N"`` converts every N-th sample starting at i. ``training_patches`` caps the
    codebook's training sample (default: 256 per centroid, at least 65536). ``classes`` stores
    class names in the archive (a list in label order, or a file with one name per line); IDX
    files carry none. Their count must match the source's classes or its label range 0..max.

    Image files are decoded by one rule for JPEG, PNG and WebP (docs/kuat.md, "Image
    pixels"): stored values, transparent pixels composited onto ``background`` (an (R, G, B)
    tuple, black by default), the first frame of an animation. ``max_pixels`` refuses larger
    images before decoding them (default 178956970, PIL's decompression-bomb limit);
    ``exif_transpose=True`` applies the EXIF orientation as ``PIL.ImageOps.exif_transpose``.
    Hidden files and folders are never samples or classes (listed in ``ignored``); warnings
    about the source (e.g. IDX images without labels) are issued as ``UserWarning``.

    Returns a dict with ``samples``, ``skipped`` (of them ``refused``: images over ``max_pixels``), ``ignored``, ``warnings``, ``compression_ratio``, ``psnr`` (mean
    per-sample dB), ``psnr_worst``, ``mse``, ``seconds``, ``training_seconds``,
    ``archive_bytes``, ``raw_bytes`` and more. Raises ``OSError`` for unreadable inputs and
    ``ValueError`` for bad options; no partial output file is ever left behind.
    """
    for arg, value in (("src", src), ("dst", dst)):
        if not isinstance(value, (str, bytes, os.PathLike)):
            hint = (" (arrays in memory: save them as IDX files or an image folder first and convert "
                    "that; format='idx' or 'images')") if arg == "src" else ""
            raise TypeError(f"{arg} must be a path (str or os.PathLike), got {type(value).__name__}{hint}")
    if not isinstance(exif_transpose, bool):
        raise ValueError(f"exif_transpose must be True or False, got {exif_transpose!r}")
    if (width is None) != (height is None):
        raise ValueError("width and height must be given together")
    options = {
        "format": format,
        "bits": bits,
        "codebook_size": codebook_size,
        "width": width,
        "height": height,
        "quiet": quiet,
        "patch": patch,
        "resize": resize,
        "channels": channels,
        "codebook": os.fspath(codebook) if codebook is not None else None,
        "shard": shard,
        "split": split,
        "labels": os.fspath(labels) if labels is not None else None,
        "strict": strict,
        "iterations": iterations,
        "training_patches": training_patches,
        "seed": seed,
        "limit": limit,
        "threads": threads,
        "max_pixels": max_pixels,
        "exif_transpose": exif_transpose,
    }
    if background is not None:
        rgb = list(background)
        ints = [integer(v) for v in rgb]
        if len(rgb) != 3 or not all(v is not None and 0 <= v <= 255 for v in ints):
            raise ValueError(f"background must be three ints 0..255 (R, G, B), got {background!r}")
        options["background"] = ints
    if isinstance(classes, (str, os.PathLike)):
        options["classes_file"] = os.fspath(classes)
    elif classes is not None:
        names = list(classes)
        if not names or not all(isinstance(c, str) for c in names):
            raise ValueError("classes must be a non-empty list of str or a path to a file of names")
        options["classes"] = names
    if max_pixels is not None:
        if integer(max_pixels) is None or integer(max_pixels) < 1:
            raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
        options["max_pixels"] = integer(max_pixels)
    for name in ("bits", "codebook_size", "width", "height", "patch", "channels", "iterations", "limit", "threads",
                 "training_patches"):
        value = options[name]
        if value is not None and (integer(value) is None or integer(value) < 0):
            raise ValueError(f"{name} must be a non-negative int, got {value!r} ({type(value).__name__})")
        options[name] = None if value is None else integer(value)  # numpy / 0-d tensor integers as int
    # The engine's own checks name the CLI's flags (--bits, ...): check the ranges here first, so
    # Python callers read the argument names they wrote.
    ranges = (("bits", 1, 8), ("codebook_size", 2, 65536), ("width", 0, 65535), ("height", 0, 65535),
              ("iterations", 1, None))
    for name, low, high in ranges:
        value = options[name]
        if value is not None and (value < low or (high is not None and value > high)):
            bound = (f"at most {high}" if low == 0 else f"between {low} and {high}") if high is not None \
                else f"at least {low}"
            raise ValueError(f"{name} must be {bound}, got {value}")
    patch = options["patch"]
    if patch not in (2, 4):
        raise ValueError(f"patch must be 2 or 4, got {patch}")
    if shard is not None:
        parts = shard.split("/") if isinstance(shard, str) else []
        if len(parts) != 2 or not all(p.isdigit() for p in parts) or not int(parts[0]) < int(parts[1]):
            raise ValueError(f"shard must look like 'i/N' with 0 <= i < N (e.g. '0/4'), got {shard!r}")
    stats = dict(_native.kuat.convert(os.fspath(src), os.fspath(dst), options))
    for message in stats["warnings"]:
        warnings.warn(message, UserWarning, stacklevel=2)
    return stats
