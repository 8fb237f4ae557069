"""Per-sample augmentation draws of the Kuat loader, ported from src/kuat/loader_order.cpp.

The device path (KuatDataset(device=...)) computes each sample's crop shift and flip on the host
with the very generator the C++ loader uses (splitmix64's finaliser, ``augmentation_for``), so a
sample gets the same crop and flip on every device. numpy uint64 arithmetic wraps modulo 2^64
like C++'s, which is what makes the port exact (tested against the native loader's draws).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

_U64 = np.uint64


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (loader_order.cpp ``mix64``)."""
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def augmentation(seed: int, epoch: int, samples: np.ndarray, crop_padding: int,
                 random_flip: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(shift_y, shift_x, flip)`` of each global sample index in ``samples`` for ``epoch``.

    Returns two (n,) int32 arrays in [-crop_padding, crop_padding] and one (n,) bool array, equal
    to ``Loader::transform_for(epoch, sample)`` for every sample.
    """
    samples = np.asarray(samples, dtype=np.uint64).reshape(-1)
    n = samples.shape[0]
    shift_y = np.zeros(n, dtype=np.int32)
    shift_x = np.zeros(n, dtype=np.int32)
    flip = np.zeros(n, dtype=bool)
    if crop_padding == 0 and not random_flip:
        return shift_y, shift_x, flip
    seed_key = mix64(np.array([int(seed) & (2**64 - 1)], dtype=np.uint64) ^ _U64(0x61756775))
    epoch_key = mix64(np.array([int(epoch) & (2**64 - 1)], dtype=np.uint64))
    with np.errstate(over="ignore"):
        h = mix64(seed_key ^ epoch_key ^ (samples * _U64(0xD1B54A32D192ED03)))
    if crop_padding > 0:
        span = _U64(2 * crop_padding + 1)
        shift_y = ((h & _U64(0xFFFFFF)) % span).astype(np.int64) - crop_padding
        shift_x = (((h >> _U64(24)) & _U64(0xFFFFFF)) % span).astype(np.int64) - crop_padding
        shift_y, shift_x = shift_y.astype(np.int32), shift_x.astype(np.int32)
    if random_flip:
        flip = (h >> _U64(63)) != 0
    return shift_y, shift_x, flip
