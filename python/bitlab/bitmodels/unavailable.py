"""The namesake's models lowbit does not build (ResNet, diffusion UNet): constructing one raises."""

from __future__ import annotations


def _refuse(name: str, what: str):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            f"bitlab.bitmodels.{name} ({what}) is not provided by lowbit, which has no ternary convolution "
            f"kernels. Available models: BitMLPModel ('bitmlp', with BitMLPConfig) and BitNetForCausalLM "
            f"('bitnet', with BitNetConfig); for your own architectures use bitlab.bnn.BitLinear.")

    return type(name, (), {"__init__": __init__, "__doc__": f"Not provided: {what}. Constructing it raises "
                                                              f"NotImplementedError.", "__module__": __name__})


BitResNetConfig = _refuse("BitResNetConfig", "config of the ternary ResNet")
BitResNetModel = _refuse("BitResNetModel", "ternary ResNet image classifier")
BitUNetConfig = _refuse("BitUNetConfig", "config of the ternary diffusion UNet")
BitUNetModel = _refuse("BitUNetModel", "ternary diffusion UNet")
