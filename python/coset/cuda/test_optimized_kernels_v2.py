"""The namesake's ``coset.cuda.test_optimized_kernels_v2`` (``create_vectorized_vlut_operations``).

Not provided: importing it raises ``ImportError`` with the mapping to :class:`coset.OneSidedLUT`
and :class:`coset.TwoSidedLUT` (docs/migrating.md, "Lookup tables").
"""

from . import MIGRATION_HINT

raise ImportError(f"coset.cuda.test_optimized_kernels_v2 (create_vectorized_vlut_operations): {MIGRATION_HINT}",
                  name=__name__)
