"""Task mixins of the namesake's models: ``predict`` (classification), ``generate`` (causal LM)."""

from __future__ import annotations

from typing import ClassVar, Dict, Optional

import torch
import torch.nn.functional as F

from .tasks import ModelTask


class ImageClassificationMixin:
    """``predict(inputs, *, return_logits=True, return_probabilities=True)`` -> dict with
    ``"predictions"`` (int64 ``[B]``, argmax), ``"logits"`` and ``"probabilities"`` (softmax, ``[B, classes]``).
    Switches the model to eval mode (as upstream) and runs without gradients."""

    task: ClassVar[str] = ModelTask.IMAGE_CLASSIFICATION.value

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, *, return_logits: bool = True,
                return_probabilities: bool = True) -> Dict[str, torch.Tensor]:
        self.eval()
        logits = self.forward(inputs)
        probs = F.softmax(logits, dim=-1)
        out = {"predictions": probs.argmax(dim=-1)}
        if return_logits:
            out["logits"] = logits
        if return_probabilities:
            out["probabilities"] = probs
        return out


class CausalLMMixin:
    """``generate(input_ids, *, max_length=128, temperature=1.0, top_k=None, top_p=None,
    do_sample=True, use_cache=True, eos_token_id=None)`` -> int64 ``[B, <= max_length]``.

    ``max_length`` counts the prompt (``max_length - T`` new tokens at most); decoding runs
    :meth:`bitmodels.BitLM.generate` of the model's ``self.model`` backbone (which must be a
    ``BitLM``). ``eos_token_id=None`` means the config's. As upstream, ``top_k=0`` means no top-k
    filtering and ``temperature=0`` picks the most likely token (greedy, as ``do_sample=False``).

    Raises:
        ValueError: ``input_ids`` not ``[B, T]`` integers, ``max_length`` not an int, negative
        ``temperature`` / ``top_k``, ``top_p`` outside (0, 1] (see ``BitLM.generate``).
    """

    task: ClassVar[str] = ModelTask.CAUSAL_LM.value

    def generate(self, input_ids: torch.Tensor, *, max_length: int = 128, temperature: float = 1.0,
                 top_k: Optional[int] = None, top_p: Optional[float] = None, do_sample: bool = True,
                 use_cache: bool = True, eos_token_id: Optional[int] = None) -> torch.Tensor:
        from bitmodels.lm import BitLM

        backbone = getattr(self, "model", None)
        if not isinstance(backbone, BitLM):
            raise NotImplementedError(f"{type(self).__name__}.generate needs a bitmodels.BitLM backbone in self.model")
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise ValueError("generate: input_ids must be a 2-D integer tensor [batch, tokens]")
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise ValueError(f"generate: max_length must be an int, got {max_length!r}")
        if eos_token_id is None:
            eos_token_id = getattr(getattr(self, "config", None), "eos_token_id", None)
        if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k == 0:
            top_k = None  # the namesake's (and Hugging Face's) "no top-k filtering"
        if do_sample and isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature == 0:
            do_sample = False  # the namesake divides by max(temperature, 1e-5): the argmax token
        new_tokens = max(0, max_length - input_ids.shape[1])
        return backbone.generate(input_ids, new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
                                 top_p=top_p, eos_token_id=() if eos_token_id is None else eos_token_id,
                                 use_cache=use_cache)


class ImageGenerationMixin:
    """Marks a model as an image generator (``task = "image-generation"``); lowbit ships none."""

    task: ClassVar[str] = ModelTask.IMAGE_GENERATION.value
