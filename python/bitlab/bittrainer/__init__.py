"""``bitlab.bittrainer`` is not provided: see the error below."""

raise ImportError(
    "bitlab.bittrainer (the namesake's PyTorch Lightning trainers and callbacks: BitImageClassificationTrainer, "
    "BitDDPMTrainer, ...) is not provided by lowbit. Train bitlab models with a plain PyTorch loop "
    "(model.train(); loss.backward(); optimizer.step(): BitLinear layers train with quantization-aware "
    "straight-through gradients), or wrap the model in a LightningModule of your own; then model.deploy() "
    "for packed inference. See docs/migrating.md, 'From BitLab (the bitlab package)'.")
