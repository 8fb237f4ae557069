"""Fashion-MNIST (Debian's dataset-fashion-mnist) as standardised torch tensors, for the Coset benches."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

FASHION = Path("/usr/share/datasets/fashion-mnist")


def load_fashion():
    """``[x_train (60000, 784) float32, y_train int64, x_test (10000, 784) float32, y_test int64]``,
    pixels scaled to [0, 1] then standardised with the training set's mean and std."""
    def read(name, offset):
        with gzip.open(FASHION / name, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)

    xtr = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255.0
    ytr = read("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    xte = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255.0
    yte = read("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    mean, std = xtr.mean(), xtr.std()
    return [torch.from_numpy((v - mean) / std) if v.dtype == np.float32 else torch.from_numpy(v)
            for v in (xtr, ytr, xte, yte)]
