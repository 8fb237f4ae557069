"""BitLab core: 1.58-bit (ternary) quantization configs, kernels and ops."""
