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


# --- the hook behaves like the default all-reduce (issue 15, kind 7) --------------------------------

class _Bucket:
    """What the hook reads from a dist.GradBucket."""

    def __init__(self, buffer: torch.Tensor, index: int) -> None:
        self._buffer, self._index = buffer, index

    def buffer(self) -> torch.Tensor:
        return self._buffer

    def index(self) -> int:
        return self._index


CASES = [  # (name, dtype, size, poison on rank 1: None, "nan", "inf", "-inf")
    ("f32", torch.float32, 4096, None), ("f16", torch.float16, 1001, None), ("bf16", torch.bfloat16, 333, None),
    ("f64", torch.float64, 7, None), ("one", torch.float32, 1, None), ("empty", torch.float32, 0, None),
    ("nan_rank1", torch.float32, 100, "nan"), ("inf_rank1", torch.float16, 103, "inf"),
    ("neg_inf_rank1", torch.float64, 9, "-inf"), ("outlier", torch.float32, 64, "outlier"),
    ("huge", torch.float32, 50, "huge"),  # every value ~1e35: no float32 scale fits, sent dense (it raised)
]


def _hook_cases(rank: int, world: int):
    from coset.distributed import HNLQState, hnlq_hook

    state = HNLQState()
    out = {}
    for index, (name, dtype, size, poison) in enumerate(CASES):
        g = torch.Generator().manual_seed(1000 * index + rank)
        grad = torch.randn(size, generator=g).to(dtype)
        if poison == "outlier":
            grad[5] = 1e30  # far beyond rms * 2**15: still averaged, no warning, no wrapped codes
        elif poison == "huge":
            grad *= 1e35
        elif poison is not None and rank == 1:
            grad[3] = float(poison)
        # The default hook: buffer / world, all-reduced (gloo has no bfloat16 sum: float32 there).
        default = (grad.float() if dtype == torch.bfloat16 else grad) / world
        if size:  # gloo dies (SIGFPE) on empty collectives; the hook itself never issues one
            dist.all_reduce(default)
        default = default.to(dtype)
        with __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("error")  # no rank may warn (or raise) alone
            result = hnlq_hook(state, _Bucket(grad.clone(), index)).wait()
        wide = result.to(torch.float64)  # exact for every dtype here; gloo gathers no bfloat16
        gathered = [torch.empty_like(wide) for _ in range(world)]
        if size:
            dist.all_gather(gathered, wide)
        else:
            gathered = [wide] * world
        same = all(torch.equal(gathered[0].view(-1).float().nan_to_num(7.0), t.view(-1).float().nan_to_num(7.0))
                   for t in gathered)
        finite_default = torch.isfinite(default.float())
        out[name] = {
            "dtype_ok": result.dtype == dtype and result.shape == grad.shape,
            "same_on_every_rank": same,
            "nonfinite_like_default": bool(torch.equal(torch.isnan(result.float()), torch.isnan(default.float()))
                                           and torch.equal(torch.isposinf(result.float()), torch.isposinf(default.float()))
                                           and torch.equal(torch.isneginf(result.float()), torch.isneginf(default.float()))),
            "rel_err": float(((result.double() - default.double())[finite_default].norm()
                              / default.double()[finite_default].norm().clamp_min(1e-30))) if size else 0.0,
        }
    return out


def _hook_worker(rank: int, world: int, port: int, out_dir: str):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = _hook_cases(rank, world)
    finally:
        dist.destroy_process_group()
    Path(out_dir, f"hook{rank}.json").write_text(json.dumps(result))


def test_hook_matches_default_allreduce_semantics(tmp_path):
    mp.spawn(_hook_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        results = json.loads((tmp_path / f"hook{rank}.json").read_text())
        for name, r in results.items():
            assert r["dtype_ok"], (rank, name)
            assert r["same_on_every_rank"], (rank, name)
            assert r["nonfinite_like_default"], (rank, name)
            limit = 0.25 if name not in ("bf16", "f16", "inf_rank1") else 0.3
            assert r["rel_err"] < limit, (rank, name, r["rel_err"])


class _OwnedBucket(_Bucket):
    """A bucket that names its parameters, as dist.GradBucket.parameters() does."""

    def __init__(self, buffer: torch.Tensor, index: int, params) -> None:
        super().__init__(buffer, index)
        self._params = params

    def parameters(self):
        return list(self._params)


def test_residual_follows_its_parameters_when_buckets_are_rebuilt(tmp_path):
    # Kind 7: DDP rebuilds its buckets after the first step (in gradient-ready order), so bucket 0
    # may then hold other parameters of the same size; their gradient got the other parameters'
    # error-feedback residual added (a wrong average, the same on every rank).
    from coset.distributed import HNLQState, hnlq_hook

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        a, b = torch.nn.Parameter(torch.zeros(8, 8)), torch.nn.Parameter(torch.zeros(8, 8))
        g = torch.Generator().manual_seed(3)
        grad_a, grad_b = torch.randn(64, generator=g), torch.randn(64, generator=g)
        state = HNLQState()
        hnlq_hook(state, _OwnedBucket(grad_a.clone(), 0, [a])).wait()  # step 1: bucket 0 = a
        assert bool(state.errors[0].abs().sum() > 0)  # a's residual is kept
        swapped = hnlq_hook(state, _OwnedBucket(grad_b.clone(), 0, [b])).wait()  # step 2: bucket 0 = b
        fresh = hnlq_hook(HNLQState(), _OwnedBucket(grad_b.clone(), 0, [b])).wait()
        assert torch.equal(swapped, fresh)
        again = hnlq_hook(state, _OwnedBucket(grad_b.clone(), 0, [b])).wait()  # b's own residual applies
        assert not torch.equal(again, fresh)
    finally:
        dist.destroy_process_group()


class _SparseNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(20, 8, sparse=True)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, ids):  # the embedding's gradient does not depend on the dense (quantized) ones
        return self.emb(ids).pow(2).sum() + self.fc(torch.ones(8)).pow(2).sum()


def _sparse_worker(rank: int, world: int, port: int, out_dir: str):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from coset.distributed import HNLQState, hnlq_hook

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    result = {}
    try:
        for hook in ("default", "hnlq"):
            torch.manual_seed(0)
            model = DDP(_SparseNet())
            if hook == "hnlq":
                model.register_comm_hook(HNLQState(), hnlq_hook)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            g = torch.Generator().manual_seed(5 + rank)
            for _ in range(3):
                opt.zero_grad()
                model(torch.randint(0, 20, (6,), generator=g)).backward()
                opt.step()
            emb = model.module.emb.weight.detach().clone()
            others = [torch.empty_like(emb) for _ in range(world)]
            dist.all_gather(others, emb)
            result[hook] = {"emb": emb.tolist(), "same": all(torch.equal(o, emb) for o in others)}
    except Exception as e:  # noqa: BLE001 - reported to the test
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        dist.destroy_process_group()
    Path(out_dir, f"sparse{rank}.json").write_text(json.dumps(result))


def test_sparse_gradients_are_all_reduced_as_by_default(tmp_path):
    # Kind 7: DDP gives an nn.Embedding(sparse=True) a bucket holding its sparse gradient; the
    # default all-reduces it, the hook raised "reshape is not implemented for sparse tensors" on
    # every rank.
    mp.spawn(_sparse_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        r = json.loads((tmp_path / f"sparse{rank}.json").read_text())
        assert "error" not in r, r.get("error")
        assert r["default"]["same"] and r["hnlq"]["same"]
        assert r["hnlq"]["emb"] == r["default"]["emb"]  # the sparse bucket is the default's, exactly


def test_hook_state_checkpoints_and_resumes(tmp_path):
    # Kind 7: torch.save(state) raised for a state with a process_group (a ProcessGroup cannot be
    # pickled), and a restored state's residuals were keyed by the dead run's parameter ids, so a
    # resumed run dropped them (or, with a reused id, gave them to any parameter).
    import io

    from coset.distributed import HNLQState, hnlq_hook

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        group = dist.new_group([0])
        a = torch.nn.Parameter(torch.zeros(8, 8))
        g = torch.Generator().manual_seed(4)
        grads = [torch.randn(64, generator=g) for _ in range(3)]
        state = HNLQState(process_group=group)
        hnlq_hook(state, _OwnedBucket(grads[0].clone(), 0, [a])).wait()
        buf = io.BytesIO()
        torch.save(state, buf)
        uninterrupted = [hnlq_hook(state, _OwnedBucket(x.clone(), 0, [a])).wait() for x in grads[1:]]

        def restored():
            buf.seek(0)
            return torch.load(buf)

        resumed = restored()
        with pytest.raises(ValueError, match="set state.process_group again"):
            hnlq_hook(resumed, _OwnedBucket(grads[1].clone(), 0, [a]))
        resumed.process_group = group
        a2 = torch.nn.Parameter(torch.zeros(8, 8))  # the resumed run's own parameter objects
        again = [hnlq_hook(resumed, _OwnedBucket(x.clone(), 0, [a2])).wait() for x in grads[1:]]
        assert all(torch.equal(u, r) for u, r in zip(uninterrupted, again))
        other = restored()
        other.process_group = None
        b = torch.nn.Parameter(torch.zeros(64))  # another shape at that index: starts afresh
        fresh = hnlq_hook(HNLQState(), _OwnedBucket(grads[1].clone(), 0, [b])).wait()
        assert torch.equal(hnlq_hook(other, _OwnedBucket(grads[1].clone(), 0, [b])).wait(), fresh)
    finally:
        dist.destroy_process_group()
