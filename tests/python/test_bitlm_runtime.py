"""bitlab-run generate: the C++ runtime runs a BitLM GGUF (export_gguf) and decodes greedily with a KV
cache on the packed kernels, producing the tokens PyTorch's BitLM.generate produces."""

from __future__ import annotations

import subprocess

import pytest
import torch
import torch.nn.functional as F

from deps_helpers import need_module

need_module("gguf")

from bitmodels import BitLM, BitLMConfig, ByteTokenizer, export_gguf  # noqa: E402
from test_bitlab_inference import bitlab_run  # noqa: E402,F401  (the fixture)


def trained(config, seed, steps=20):
    torch.manual_seed(seed)
    model = BitLM(config)
    tok = ByteTokenizer()
    text = "the quick brown fox jumps over the lazy dog. " * 2
    ids = torch.tensor([tok.encode(text)[:config.max_position_embeddings]])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(steps):
        loss = F.cross_entropy(model(ids[:, :-1]).reshape(-1, config.vocab_size), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def run_generate(exe, path, prompt, n, *extra):
    r = subprocess.run([exe, "generate", str(path), "--prompt", prompt, "-n", str(n), "--ids", *extra],
                       capture_output=True)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    lines = r.stdout.rstrip(b"\n").split(b"\n")
    assert lines[-1].startswith(b"ids:")
    ids = [int(x) for x in lines[-1].split()[1:]]
    return ids, b"\n".join(lines[:-1]), r.stderr.decode()


@pytest.mark.parametrize("kw, qtype", [
    (dict(num_kv_heads=2, intermediate_size=256), "TQ2_0"),
    (dict(hidden_act="silu", tie_word_embeddings=False, intermediate_size=512), "TQ1_0"),
    (dict(num_layers=3, num_heads=8, num_kv_heads=2, intermediate_size=256), "TQ2_0"),
])
def test_cli_greedy_tokens_match_pytorch(tmp_path, bitlab_run, kw, qtype):  # noqa: F811
    base = dict(hidden_size=256, num_layers=2, num_heads=4, max_position_embeddings=96)
    config = BitLMConfig(**{**base, **kw})
    model = trained(config, seed=len(kw))
    path = export_gguf(model, tmp_path / "lm.gguf", ternary_type=qtype)
    tok = ByteTokenizer()
    for prompt in ("the quick", "Über naïve"):
        ref = model.generate(torch.tensor([tok.encode(prompt)]), 48, eos_token_id=257)[0].tolist()
        for threads in ("1", "3"):
            ids, text, speed = run_generate(bitlab_run, path, prompt, 48, "--threads", threads)
            assert ids == ref
            assert text == bytes(i for i in ref[len(tok.encode(prompt)):] if i < 256)
            assert "decode" in speed and "tok/s" in speed


def test_cli_and_default_generate_stop_at_the_same_eos(tmp_path, bitlab_run):  # noqa: F811
    """Without an explicit eos_token_id, BitLM.generate stops at the config's EOS as bitlab-run
    stops at the file's tokenizer.ggml.eos_token_id: same tokens by default."""
    config = BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                         max_position_embeddings=64, tie_word_embeddings=False)
    torch.manual_seed(3)
    model = BitLM(config).eval()
    tok = ByteTokenizer()
    prompt = "héllo\nwörld"
    ids = torch.tensor([tok.encode(prompt)])
    free = model.generate(ids, 20, eos_token_id=())[0, ids.shape[1]:].tolist()
    with torch.no_grad():  # make EOS the greedy pick where the third new token was
        model.lm_head.weight[257] = model.lm_head.weight[free[2]] * 1.01
    ref = model.generate(ids, 20)[0].tolist()
    assert ref[-1] == 257 and len(ref) < ids.shape[1] + 20
    got, _, _ = run_generate(bitlab_run, export_gguf(model, tmp_path / "eos.gguf"), prompt, 20, "--threads", "1")
    assert got == ref


@pytest.mark.parametrize("shape", [
    dict(hidden_size=256, num_heads=4, num_kv_heads=2, intermediate_size=256),
    # off the attention kernels' blocks: head size 8 (a partial 16-lane tile), 3 query heads per
    # KV head (not a whole 4-row tile), a 200-position context; relu2 FFN
    dict(hidden_size=768, num_heads=96, num_kv_heads=32, intermediate_size=256, hidden_act="relu2"),
])
def test_batched_prefill_gives_the_tokens_of_token_by_token(tmp_path, bitlab_run, shape):  # noqa: F811
    """The prompt as one batched GEMM pass, in pieces of 5, or token by token (GEMV): bit-identical
    logits after the prompt and the same tokens, at 1 and 3 threads, and the tokens are PyTorch's."""
    config = BitLMConfig(num_layers=2, max_position_embeddings=128 if shape["hidden_size"] == 256 else 200, **shape)
    model = trained(config, seed=5)
    path = export_gguf(model, tmp_path / "lm.gguf")
    tok = ByteTokenizer()
    prompt = "a prompt long enough for several row tiles of the kernels"
    ref = model.generate(torch.tensor([tok.encode(prompt)]), 32, eos_token_id=257)[0].tolist()
    logits = set()
    for threads in ("1", "3"):
        for batch in (None, "5", "1"):
            extra = ("--threads", threads, "--prompt-logits") + (("--prefill-batch", batch) if batch else ())
            r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", prompt, "-n", "32", "--ids", *extra],
                               capture_output=True, check=True)
            lines = r.stdout.rstrip(b"\n").split(b"\n")
            assert lines[-1].startswith(b"logits:") and lines[-2].startswith(b"ids:")
            assert [int(x) for x in lines[-2].split()[1:]] == ref, (threads, batch)
            values = lines[-1].split()[1:]
            assert len(values) == config.vocab_size
            logits.add(tuple(values))
    assert len(logits) == 1  # bit-identical logits after the prompt, however it was batched or threaded


def test_cli_errors_name_the_file(tmp_path, bitlab_run):  # noqa: F811
    model = trained(BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                                max_position_embeddings=32), seed=0, steps=1)
    path = export_gguf(model, tmp_path / "ok.gguf")
    data = path.read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[: len(data) - 100])
    r = subprocess.run([bitlab_run, "generate", str(bad), "--prompt", "hi", "-n", "4"], capture_output=True, text=True)
    assert r.returncode == 1 and "cut.gguf" in r.stderr and "truncated" in r.stderr
    r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "x" * 30, "-n", "4"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "context length 32" in r.stderr
    r = subprocess.run([bitlab_run, "generate", str(path), "-n", "4"], capture_output=True, text=True)
    assert r.returncode == 2 and "--prompt" in r.stderr
    r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "a", "-n", "-3"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "a", "--prefill-batch", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--prefill-batch" in r.stderr
    r = subprocess.run([bitlab_run, "generate", str(tmp_path), "--prompt", "a"], capture_output=True, text=True)
    assert r.returncode == 1 and f"'{tmp_path}': is a directory, not a GGUF file" in r.stderr
    for args, message in ((["--threads", "100000"], "--threads takes an integer from 1 to 1024"),
                          (["--temperature", "nan"], "--temperature takes a finite number >= 0"),
                          (["--temperature", "-1"], "--temperature takes a finite number >= 0"),
                          (["--seed", "-2"], "--seed takes an integer from 0 to 2^64 - 1 (or -1: random)"),
                          (["--seed", "18446744073709551616"], "--seed takes an integer from 0 to 2^64 - 1")):
        r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "a", *args], capture_output=True, text=True)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)


def test_cli_sampling_follows_the_seed_and_temperature_zero_is_greedy(tmp_path, bitlab_run):  # noqa: F811
    model = trained(BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                                max_position_embeddings=64), seed=0, steps=5)
    path = export_gguf(model, tmp_path / "s.gguf")
    greedy, _, _ = run_generate(bitlab_run, path, "the ", 24)
    assert run_generate(bitlab_run, path, "the ", 24, "--temperature", "0", "--seed", "3")[0] == greedy
    runs = {seed: run_generate(bitlab_run, path, "the ", 24, "--temperature", "1.5", "--seed", seed)[0]
            for seed in ("1", "2")}
    assert run_generate(bitlab_run, path, "the ", 24, "--temperature", "1.5", "--seed", "1")[0] == runs["1"]
    assert runs["1"] != runs["2"] and runs["1"] != greedy  # 24 draws at temperature 1.5 from a 20-step model
    first, _, err = run_generate(bitlab_run, path, "the ", 12, "--temperature", "1.5")
    seed = err.split("--seed ")[1].split()[0]  # an unseeded run prints its seed, which replays it
    assert run_generate(bitlab_run, path, "the ", 12, "--temperature", "1.5", "--seed", seed)[0] == first


def test_cli_prompt_logits_with_no_new_tokens(tmp_path, bitlab_run):  # noqa: F811
    model = trained(BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                                max_position_embeddings=32), seed=0, steps=1)
    path = export_gguf(model, tmp_path / "p.gguf")
    r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "abc", "-n", "0", "--prompt-logits"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    logits = r.stdout.strip().splitlines()[-1].split()
    assert logits[0] == "logits:" and len(logits) == 1 + model.config.vocab_size
    with torch.no_grad():
        want = model(torch.tensor([ByteTokenizer().encode("abc")]))[0, -1]
    got = torch.tensor([float.fromhex(v) for v in logits[1:]])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "abc", "-n", "0"], capture_output=True, text=True)
    assert r.returncode == 0 and "prefill 0 tokens" in r.stderr


def test_cli_usage_errors_say_what_was_wrong_and_ctx_size_caps_the_cache(tmp_path, bitlab_run):  # noqa: F811
    model = trained(BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                                max_position_embeddings=32), seed=0, steps=1)
    path = export_gguf(model, tmp_path / "ok.gguf")
    cases = [(["generate", str(path), "--prompt", "hi", "--foo"], "unknown option '--foo'"),
             (["generate", str(path), "--prompt", ""], "the prompt is empty"),
             (["generate", str(path), "--prompt", "hi", "-n"], "option -n needs"),
             (["generate"], "generate needs MODEL")]
    for args, want in cases:
        r = subprocess.run([bitlab_run, *args], capture_output=True, text=True)
        assert r.returncode == 2 and f"bitlab-run: {want}" in r.stderr, (args, r.stderr)
    # -c caps the KV cache: the same tokens within it, a clear error past it.
    full = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "hi", "-n", "6", "--ids"], capture_output=True,
                          text=True)
    capped = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "hi", "-n", "6", "--ids", "-c", "8"],
                            capture_output=True, text=True)
    assert full.returncode == 0 and capped.returncode == 0 and full.stdout == capped.stdout
    r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "hi", "-n", "20", "-c", "8"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "exceed -c 8" in r.stderr
    r = subprocess.run([bitlab_run, "generate", "/dev/zero", "--prompt", "hi"], capture_output=True, text=True)
    assert r.returncode == 1 and "'/dev/zero': is not a regular file" in r.stderr


def test_cli_memory_does_not_grow_with_the_declared_context_length(tmp_path, bitlab_run):  # noqa: F811
    # A file may declare up to 2^24 positions (2^20 + 1 here, once refused); with -c the run's memory
    # must not depend on that (rotary tables for every declared position were 2^20 x 32 x 2 floats =
    # 256 MiB here).
    model = trained(BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                                max_position_embeddings=(1 << 20) + 1), seed=0, steps=0)
    path = export_gguf(model, tmp_path / "long.gguf")
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "assert r.returncode == 0, r.stderr\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    import sys
    out = subprocess.run([sys.executable, "-c", probe, bitlab_run, "generate", str(path), "--prompt", "hi",
                          "-n", "4", "-c", "16"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    peak_mib = int(out.stdout.split()[-1]) / 1024
    assert peak_mib < 96, f"bitlab-run -c 16 peaked at {peak_mib:.0f} MiB for a file declaring 2^20 positions"


def _peak_rss_mib(*cmd) -> float:
    """Peak resident memory (MiB) of the command, which must succeed."""
    import sys
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "assert r.returncode == 0, r.stderr\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", probe, *map(str, cmd)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1]) / 1024


def test_cli_default_cache_holds_only_what_the_run_uses(tmp_path, bitlab_run):  # noqa: F811
    """Without -c the KV cache held the file's whole context_length: a 1-layer model declaring 2^17
    positions took 256 MiB to generate 4 tokens (2^20 positions, 4 layers: 9.4 GB). Now the cache is
    the prompt plus -n (llama.cpp's default -c is 4096, not the model's context), with the same
    tokens and bit-identical logits as a full-context cache (-c 0: the context length, as llama.cpp)."""
    model = trained(BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                                max_position_embeddings=1 << 17), seed=0, steps=3)
    path = export_gguf(model, tmp_path / "long.gguf")
    peak = _peak_rss_mib(bitlab_run, "generate", path, "--prompt", "hi", "-n", "4", "--threads", "1")
    assert peak < 96, f"bitlab-run without -c peaked at {peak:.0f} MiB for a file declaring 2^17 positions"
    runs = [subprocess.run([bitlab_run, "generate", str(path), "--prompt", "the quick", "-n", "12", "--ids",
                            "--prompt-logits", "--threads", "1", *extra], capture_output=True, check=True).stdout
            for extra in ((), ("-c", "0"), ("-c", "40"))]
    assert runs[0] == runs[1] == runs[2]
    ref = model.generate(torch.tensor([ByteTokenizer().encode("the quick")]), 12)[0].tolist()
    assert [int(x) for x in runs[0].split(b"\n")[-3].split()[1:]] == ref


def test_cli_llama_cpp_options_prompt_file_unbounded_n_random_seed(tmp_path, bitlab_run):  # noqa: F811
    """llama.cpp's -f FILE (one trailing newline dropped), -n -1 (until EOS or the cache is full),
    -s -1 (a random seed), and the error cases."""
    config = BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                         max_position_embeddings=32, eos_token_id=None)
    model = trained(config, seed=1, steps=3)
    path = export_gguf(model, tmp_path / "f.gguf")
    tok = ByteTokenizer()
    prompt = "line one\nline two"
    (tmp_path / "p.txt").write_bytes((prompt + "\n").encode())
    (tmp_path / "p2.txt").write_bytes((prompt + "\n\n").encode())
    by_text, _, _ = run_generate(bitlab_run, path, prompt, 8)
    r = subprocess.run([bitlab_run, "generate", str(path), "-f", str(tmp_path / "p.txt"), "-n", "8", "--ids"],
                       capture_output=True, check=True)
    assert [int(x) for x in r.stdout.rstrip(b"\n").split(b"\n")[-1].split()[1:]] == by_text
    r = subprocess.run([bitlab_run, "generate", str(path), "--file", str(tmp_path / "p2.txt"), "-n", "8", "--ids"],
                       capture_output=True, check=True)
    assert [int(x) for x in r.stdout.rstrip(b"\n").split(b"\n")[-1].split()[1:]][:len(prompt) + 1] == \
        tok.encode(prompt + "\n")  # only one newline is dropped
    # -n -1: the model's context (32) or -c fills up; no EOS in this config
    for extra, total in (((), 32), (("-c", "20"), 20)):
        r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "abc", "-n", "-1", "--ids", *extra],
                           capture_output=True, check=True)
        ids = [int(x) for x in r.stdout.rstrip(b"\n").split(b"\n")[-1].split()[1:]]
        assert ids == model.generate(torch.tensor([tok.encode("abc")]), total - 3)[0].tolist()
    r = subprocess.run([bitlab_run, "generate", str(path), "--prompt", "abc", "--temp", "1", "-s", "-1", "-n", "2"],
                       capture_output=True)  # stdout: raw bytes
    assert r.returncode == 0 and b"--seed " in r.stderr  # a random seed, printed to replay the run
    for args, code, message in (
            (["-f", str(tmp_path / "missing.txt")], 1, "missing.txt"),
            (["-f", str(tmp_path / "p.txt"), "--prompt", "x"], 2, "--prompt or -f, not both"),
            (["-f", str(tmp_path)], 1, str(tmp_path)),
            (["--prompt", "x" * 32, "-n", "-1"], 1, "leave no room for -n -1"),
            (["--prompt", "x", "-n", "-2"], 2, "-n takes a non-negative integer, or -1"),
            (["--prompt", "x", "-c", "-1"], 2, "-c takes a non-negative integer")):
        r = subprocess.run([bitlab_run, "generate", str(path), *args], capture_output=True)
        assert r.returncode == code and message in r.stderr.decode(), (args, r.stderr)
    (tmp_path / "empty.txt").write_bytes(b"\n")
    r = subprocess.run([bitlab_run, "generate", str(path), "-f", str(tmp_path / "empty.txt")], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "the prompt file is empty" in r.stderr
