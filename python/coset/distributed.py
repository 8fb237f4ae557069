"""A DDP communication hook that sends HNLQ codes instead of float gradients.

Usage::

    state = HNLQState(config=QuantizationConfig("D4", q=4, M=2))
    model = DistributedDataParallel(net)
    model.register_comm_hook(state, hnlq_hook)

Each rank adds its error-feedback residual to the bucket, quantizes it in blocks of d with one
scale per bucket (rms * optimal_beta), bit-packs the codes and all-gathers them: a sum of codes
is not the code of a sum, so every rank decodes every other rank's codes and averages. The
residual ``g - decode(encode(g))`` is kept for the next step (error feedback), so what is lost
in one step is sent later. ``state.bytes_sent`` / ``state.bytes_dense`` count the payload
handed to the collective per rank and what a float32 all-reduce would have handed.
"""

# No `from __future__ import annotations`: DDP checks the hook's return annotation at run time.
from typing import Dict, Optional

import numpy as np
import torch
import torch.distributed as dist

from .config import QuantizationConfig
from .lattices import lattice_for
from .packing import pack, unpack
from .quant import decode, encode, optimal_beta


class HNLQState:
    """Configuration, error-feedback residuals and byte counters of :func:`hnlq_hook`."""

    def __init__(self, config: Optional[QuantizationConfig] = None, process_group=None,
                 error_feedback: bool = True) -> None:
        if config is None:
            config = QuantizationConfig(lattice_type="D4", q=4, M=2, max_scaling_iterations=15)
        if not isinstance(config, QuantizationConfig):
            raise ValueError(f"config: expected a QuantizationConfig, got {type(config).__name__}")
        if config.with_dither:
            raise ValueError("config: with_dither is not supported by the hook (ranks would need each other's seeds)")
        self.config = config
        self.process_group = process_group
        self.error_feedback = bool(error_feedback)
        self.errors: Dict[int, torch.Tensor] = {}
        self.bytes_sent = 0
        self.bytes_dense = 0
        self.lattice = lattice_for(config.lattice_type)
        self._beta = optimal_beta(config.lattice_type, config.q, config.M)


def _compress(state: HNLQState, flat: torch.Tensor):
    """(packed uint8 tensor, scale, decoded float32 tensor of flat's length)."""
    d = state.config.d
    n = flat.numel()
    pad = (-n) % d
    g = torch.cat([flat, flat.new_zeros(pad)]) if pad else flat
    rms = float(g.pow(2).mean().sqrt()) if n else 0.0
    scale = rms * state._beta * state.config.beta if rms > 0 else 1.0
    cfg = state.config.replace(beta=scale)
    b, t = encode(g.view(-1, d).numpy(), state.lattice, cfg)
    packed = torch.from_numpy(pack(b, t, cfg))
    own = torch.from_numpy(decode(b, state.lattice, cfg, t)).view(-1)[:n]
    return packed, scale, own


def _expand(state: HNLQState, packed: torch.Tensor, scale: float, n: int) -> torch.Tensor:
    d = state.config.d
    vectors = (n + d - 1) // d
    cfg = state.config.replace(beta=scale)
    b, t = unpack(packed.numpy(), vectors, cfg)
    return torch.from_numpy(decode(b, state.lattice, cfg, t)).view(-1)[:n]


def hnlq_hook(state: HNLQState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP comm hook: HNLQ-compressed all-gather with error feedback (see the module doc)."""
    group = state.process_group if state.process_group is not None else dist.group.WORLD
    world = dist.get_world_size(group)
    buffer = bucket.buffer()
    flat = buffer.detach().to(dtype=torch.float32, device="cpu").reshape(-1).clone()
    index = bucket.index()
    if state.error_feedback and index in state.errors and state.errors[index].numel() == flat.numel():
        flat += state.errors[index]
    packed, scale, own = _compress(state, flat)
    if state.error_feedback:
        state.errors[index] = flat - own
    scale_t = torch.tensor([scale], dtype=torch.float64)
    packs = [torch.empty_like(packed) for _ in range(world)]
    scales = [torch.empty_like(scale_t) for _ in range(world)]
    dist.all_gather(packs, packed, group=group)
    dist.all_gather(scales, scale_t, group=group)
    total = torch.zeros_like(flat)
    for p, s in zip(packs, scales):
        total += _expand(state, p, float(s.item()), flat.numel())
    state.bytes_sent += packed.numel() + scale_t.numel() * 8
    state.bytes_dense += flat.numel() * 4
    result = (total / world).to(dtype=buffer.dtype, device=buffer.device).view_as(buffer)
    fut: torch.futures.Future = torch.futures.Future()  # done: the exchange above was synchronous
    fut.set_result(result)
    return fut


def allreduce_hook_counting(state: dict, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """The plain float all-reduce baseline, counting its payload in ``state['bytes_sent']``."""
    group = state.get("process_group") or dist.group.WORLD
    buffer = bucket.buffer()
    state["bytes_sent"] = state.get("bytes_sent", 0) + buffer.numel() * buffer.element_size()
    tensor = buffer / dist.get_world_size(group)
    return dist.all_reduce(tensor, group=group, async_op=True).get_future().then(lambda f: f.value()[0])
