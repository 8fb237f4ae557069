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

from lowbit._deps import require_torch

require_torch("coset.distributed")

import torch
import torch.distributed as dist

from .config import QuantizationConfig
from .lattices import lattice_for
from .packing import pack, packed_size, unpack
from .quant import _encode_counted, decode, optimal_beta


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
        # The parameters each residual belongs to: DDP rebuilds its buckets after the first step
        # (in the order gradients became ready), so bucket i may then hold other parameters.
        self._error_owners: Dict[int, tuple] = {}
        self.bytes_sent = 0
        self.bytes_dense = 0
        self.lattice = lattice_for(config.lattice_type)
        self._beta = optimal_beta(config.lattice_type, config.q, config.M)
        self._group_dropped = False  # restored from a pickle that had a process group

    def __getstate__(self) -> dict:
        """Checkpoints (``torch.save(state)``, pickling): a process group cannot be pickled, so it is
        left out (as torch's ``PowerSGDState`` does); the restored state refuses to run until
        ``state.process_group`` is set again (None: the world group). Residuals are kept with their
        parameters' shapes and dtypes: a restored residual is added to the bucket of the same index
        whose parameters have the same shapes and dtypes (the parameter objects are new after a resume)."""
        state = self.__dict__.copy()
        state["_group_dropped"] = self.process_group is not None or self._group_dropped
        state["process_group"] = None
        state["_error_owners"] = {i: _Restored(tuple(o[1:] for o in owners))
                                  for i, owners in self._error_owners.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("_group_dropped", False)
        self.__dict__.update(state)

    def __setattr__(self, name, value) -> None:
        if name == "process_group":  # set again after a restore: the state may run
            self.__dict__["_group_dropped"] = False
        super().__setattr__(name, value)


class _Restored(tuple):
    """The owners of a residual restored from a pickle: shapes and dtypes only (see HNLQState.__getstate__)."""


# Rescaling rounds allowed when vectors still overload after the config's T retries: each multiplies
# the bucket's scale by 2**(alpha * (max_t + 1)), capped at a scale where every vector has norm
# below 1/4, inside the Voronoi cell of 0 of every lattice here (packing radius >= 1/2), which never
# overloads: the loop always ends.
MAX_RESCALES = 64


def _compress(state: HNLQState, flat: torch.Tensor):
    """(packed uint8 tensor, scale, decoded float32 tensor of flat's length), all on flat's device;
    ``None`` when no float32 scale fits the bucket (values near the float range): then the hook
    sends the bucket dense.

    Vectors that still overload after the config's retries (an outlier far above the bucket's
    rms) make the whole bucket retry at a coarser scale: the hook never sends wrapped codes and
    never warns about settings (max_scaling_iterations) the user did not choose.
    """
    cfg0 = state.config
    d = cfg0.d
    n = flat.numel()
    pad = (-n) % d
    g = torch.cat([flat, flat.new_zeros(pad)]) if pad else flat
    wide = g.to(torch.float64)  # squares of float32 values may overflow float32
    rms = float(wide.pow(2).mean().sqrt())  # one scalar to the host: the scale is part of the message
    safe = 4.0 * float(wide.view(-1, d).norm(dim=1).max())
    scale = rms * state._beta * cfg0.beta if rms > 0 else 1.0
    vectors = g.view(-1, d)
    for _ in range(MAX_RESCALES):
        try:
            cfg = cfg0.replace(beta=scale)
        except ValueError:  # beta * 2**(alpha * max_t) beyond float32
            return None
        b, t, overloaded = _encode_counted(vectors, state.lattice, cfg)
        if not overloaded:
            break
        scale = max(min(scale * 2.0 ** (cfg0.alpha * (cfg0.max_t() + 1)), safe), scale)
    else:
        return None
    packed = pack(b, t, cfg)
    own = decode(b, state.lattice, cfg, t).reshape(-1)[:n]
    return packed, scale, own


def _expand(state: HNLQState, packed: torch.Tensor, scale: float, n: int) -> torch.Tensor:
    d = state.config.d
    vectors = (n + d - 1) // d
    cfg = state.config.replace(beta=scale)
    b, t = unpack(packed, vectors, cfg)
    return decode(b, state.lattice, cfg, t).reshape(-1)[:n]


def _bucket_owners(bucket) -> tuple:
    """Identity of the parameters in ``bucket`` (empty when the bucket cannot say)."""
    params = getattr(bucket, "parameters", None)
    if not callable(params):
        return ()
    return tuple((id(p), tuple(p.shape), str(p.dtype)) for p in params())


def _residual_fits(state: HNLQState, index: int, owners: tuple) -> bool:
    """Whether the residual kept for bucket ``index`` belongs to the parameters ``owners``."""
    kept = state._error_owners.get(index)
    if isinstance(kept, _Restored):  # from a checkpoint: the same shapes and dtypes; bind to these parameters
        if tuple(kept) != tuple(o[1:] for o in owners):
            return False
        state._error_owners[index] = owners
        return True
    return kept == owners


def hnlq_hook(state: HNLQState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP comm hook: HNLQ-compressed all-gather with error feedback (see the module doc).

    Behaves like DDP's default all-reduce hook for every gradient that one accepts: every rank
    gets the same average (each rank decodes every rank's codes and sums them in rank order),
    on the bucket's device and dtype, with the process group DDP uses (gloo, NCCL). A bucket with
    NaN or Inf on any rank takes the default hook's path on every rank (``buffer / world``,
    all-reduced), so NaN and Inf reach every rank as they would by default and AMP's GradScaler
    skips the step everywhere; no rank raises alone. Empty buckets are returned as they are;
    sparse gradients (``nn.Embedding(sparse=True)``) are all-reduced as the default hook does.
    With DDP on a subgroup (``DistributedDataParallel(..., process_group=g)``) pass the same group
    as ``HNLQState(process_group=g)``: the hook cannot see DDP's group and uses the default
    (world) group otherwise, as torch's own hooks do (``PowerSGDState``, ``allreduce_hook(None, ...)``).
    A residual is added back only to the bucket of the same parameters: after DDP rebuilds its
    buckets (after the first step), a bucket index that now holds other parameters starts afresh.
    """
    if state._group_dropped:
        raise ValueError("HNLQState: this state was restored from a checkpoint taken with a process_group, "
                         "which cannot be saved; set state.process_group again (None: the world group)")
    group = state.process_group if state.process_group is not None else dist.group.WORLD
    world = dist.get_world_size(group)
    buffer = bucket.buffer()
    n = buffer.numel()
    fut: torch.futures.Future = torch.futures.Future()  # done: the exchange below is synchronous
    if n == 0:  # bucket sizes agree across ranks: every rank skips the collectives alike
        fut.set_result(buffer)
        return fut
    if buffer.layout != torch.strided:
        # Sparse gradients (nn.Embedding(sparse=True) gets a bucket of its own): sent as the default
        # hook sends them, a sparse all-reduce of buffer / world (the lattice codes need dense values;
        # reshape() raised on every rank before).
        tensor = buffer / world
        dist.all_reduce(tensor, group=group)
        dense_bytes = tensor._values().numel() * tensor.element_size() + tensor._indices().numel() * 8 \
            if tensor.is_sparse else n * tensor.element_size()
        state.bytes_sent += dense_bytes
        state.bytes_dense += dense_bytes
        fut.set_result(tensor)
        return fut
    flat = buffer.detach().reshape(-1).to(torch.float32)
    index = bucket.index()
    owners = _bucket_owners(bucket)
    residual = state.errors.get(index) if state.error_feedback else None
    if (residual is not None and residual.numel() == n and residual.device == flat.device
            and _residual_fits(state, index, owners)):
        flat = flat + residual
    nonfinite = not bool(torch.isfinite(flat).all())
    compressed = None if nonfinite else _compress(state, flat)
    if compressed is None:
        packed = torch.zeros(packed_size(state.config, (n + state.config.d - 1) // state.config.d),
                             dtype=torch.uint8, device=flat.device)
        scale, own = float("nan"), None
    else:
        packed, scale, own = compressed
    # One float64 per rank: the bucket's scale, or NaN when the bucket holds NaN or Inf (or values
    # no float32 scale fits): then every rank takes the default hook's path.
    meta = torch.tensor([scale], dtype=torch.float64, device=flat.device)
    metas = [torch.empty_like(meta) for _ in range(world)]
    dist.all_gather(metas, meta, group=group)
    state.bytes_dense += n * 4
    if bool(torch.isnan(torch.cat(metas)).any()):  # the default hook's result, on every rank
        # gloo cannot sum bfloat16: reduce those in float32 (the same inf/NaN pattern)
        wide = buffer.dtype == torch.bfloat16 and dist.get_backend(group) == "gloo"
        tensor = (buffer.float() if wide else buffer) / world
        dist.all_reduce(tensor, group=group)
        tensor = tensor.to(buffer.dtype)
        state.bytes_sent += meta.numel() * 8 + tensor.numel() * tensor.element_size()
        fut.set_result(tensor)
        return fut
    if state.error_feedback:
        state.errors[index] = flat - own
        state._error_owners[index] = owners
    packs = [torch.empty_like(packed) for _ in range(world)]
    dist.all_gather(packs, packed, group=group)
    total = torch.zeros_like(flat)
    for p, m in zip(packs, metas):
        total = total + _expand(state, p, float(m[0]), n)
    state.bytes_sent += packed.numel() + meta.numel() * 8
    fut.set_result((total / world).to(dtype=buffer.dtype).view_as(buffer))
    return fut


def allreduce_hook_counting(state: dict, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """The plain float all-reduce baseline, counting its payload in ``state['bytes_sent']``."""
    group = state.get("process_group") or dist.group.WORLD
    buffer = bucket.buffer()
    state["bytes_sent"] = state.get("bytes_sent", 0) + buffer.numel() * buffer.element_size()
    tensor = buffer / dist.get_world_size(group)
    return dist.all_reduce(tensor, group=group, async_op=True).get_future().then(lambda f: f.value()[0])
