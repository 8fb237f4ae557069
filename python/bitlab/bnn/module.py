"""``bitlab.bnn.Module``: an ``nn.Module`` whose ``deploy()`` packs every BitLab layer inside it."""

from __future__ import annotations

import torch.nn as nn

from bitlayers.base import BitLayerBase


def deploy_modules(root: nn.Module, include_root: bool) -> None:
    """Deploy every lowbit layer under ``root`` (``BitLayerBase.deploy``: packed 2-bit weights, eval
    mode) and call ``_deploy()`` on any other submodule defining it (the namesake's layer hook)."""
    for module in list(root.modules()):
        if module is root and not include_root:
            continue
        if isinstance(module, BitLayerBase):
            module.deploy()
            continue
        hook = getattr(module, "_deploy", None)
        if callable(hook):
            hook()


class Module(nn.Module):
    """Base class for models of BitLab layers (the namesake's ``bitlab.bnn.Module``).

    ``deploy()`` deploys every :class:`bitlayers.BitLinear` in the model (``bitlab.bnn.BitLinear``
    included): its latent float weights are replaced by packed ternary weights (2 bits per weight
    in memory) and it switches to eval mode, running lowbit's packed kernels from then on. Other
    submodules that define a ``_deploy()`` method (the namesake's layer hook) have it called, the
    model itself included when a subclass defines one. The model's own ``training`` flag is left
    as it is. Returns ``self``, so ``deployed = model.deploy()`` is the same object.
    """

    def deploy(self) -> "Module":
        deploy_modules(self, include_root=True)
        return self
