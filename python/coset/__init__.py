"""Coset: hierarchical nested-lattice quantization (Kaplan & Ordentlich 2025)."""
