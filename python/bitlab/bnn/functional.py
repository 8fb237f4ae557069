"""``bitlab.bnn.functional`` is not provided: see the error below."""

raise ImportError(
    "bitlab.bnn.functional (the namesake's functional bitlinear / bitconv2d on its own packed layout) is not "
    "provided by lowbit. For a functional ternary linear use bitcore.ops.bitlinear.train_forward(x, weight, bias, "
    "quant_config) (quantization-aware) or bitcore.ops.bitlinear.quantize_weights / eval_forward (packed kernels); "
    "or use the layer bitlab.bnn.BitLinear.")
