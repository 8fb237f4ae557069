"""Kuat: image datasets compressed by vector quantization of pixel patches."""
