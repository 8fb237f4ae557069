"""``coset.cuda``: the namesake's (mlsquare/coset) CUDA vLUT modules have no counterpart here.

The namesake's ``coset.cuda.test_optimized_kernels_v2.create_vectorized_vlut_operations`` (and its
``build_vlut`` / ``dot_product`` operations) map to :class:`coset.OneSidedLUT`,
:class:`coset.TwoSidedLUT` and :class:`coset.QuantizedMatrix`, which run on any device (CUDA
tensors stay on the GPU); docs/migrating.md, "Lookup tables", gives the mapping. Importing a name
from this package raises ``ImportError`` / ``AttributeError`` pointing there.
"""

from __future__ import annotations

MIGRATION_HINT = (
    "the namesake's CUDA vLUT operations are not provided here: use coset.OneSidedLUT(lattice, config, y) "
    "(build_vlut(y) -> lut.table, dot_product(encodings, vlut) -> lut.dot(b, T)), coset.TwoSidedLUT(lattice, "
    "config).dot(bx, Tx, by, Ty) or coset.QuantizedMatrix(lattice, config, A).matvec(y); they run on CUDA "
    "tensors too. See docs/migrating.md, 'Lookup tables'."
)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(f"coset.cuda has no attribute {name!r}: {MIGRATION_HINT}")
