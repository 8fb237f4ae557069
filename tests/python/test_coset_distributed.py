"""The HNLQ DDP hook for real: two processes, gloo on loopback, against plain all-reduce."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

STEPS = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(rank: int, world: int, use_hnlq: bool):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from coset import QuantizationConfig
    from coset.distributed import HNLQState, allreduce_hook_counting, hnlq_hook

    torch.manual_seed(0)  # same init on both ranks
    net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    model = DDP(net)
    if use_hnlq:
        state = HNLQState(QuantizationConfig(lattice_type="D4", q=4, M=2, max_scaling_iterations=15))
        model.register_comm_hook(state, hnlq_hook)
    else:
        state = {}
        model.register_comm_hook(state, allreduce_hook_counting)
    gen = torch.Generator().manual_seed(1)
    teacher = torch.randn(32, 4, generator=gen) / 32**0.5
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    losses = []
    data_gen = torch.Generator().manual_seed(100 + rank)  # each rank its own shard
    for _ in range(STEPS):
        x = torch.randn(64, 32, generator=data_gen)
        y = x @ teacher
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t = loss.detach().clone()
        dist.all_reduce(t)
        losses.append(float(t) / world)
    sent = state.bytes_sent if use_hnlq else state["bytes_sent"]
    # Both ranks must hold identical weights (every rank averaged the same decoded gradients).
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    other = flat.clone()
    dist.broadcast(other, src=0)
    return losses, sent, bool(torch.equal(flat, other))


def _worker(rank: int, world: int, port: int, out_dir: str):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {name: _train(rank, world, name == "hnlq") for name in ("allreduce", "hnlq")}
    finally:
        dist.destroy_process_group()
    if rank == 0:
        Path(out_dir, "result.json").write_text(json.dumps(results))


def test_hnlq_hook_trains_with_fewer_bytes(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = json.loads((tmp_path / "result.json").read_text())
    base_losses, base_bytes, base_same = results["allreduce"]
    losses, sent, same = results["hnlq"]
    print(f"\nall-reduce: loss {base_losses[0]:.3f} -> {base_losses[-1]:.3f}, {base_bytes} bytes/rank")
    print(f"hnlq:       loss {losses[0]:.3f} -> {losses[-1]:.3f}, {sent} bytes/rank ({base_bytes / sent:.1f}x fewer)")
    assert base_same and same
    assert losses[-1] < 0.2 * losses[0], "HNLQ training did not converge"
    assert losses[-1] < 2.0 * base_losses[-1] + 0.05
    assert sent < 0.25 * base_bytes
