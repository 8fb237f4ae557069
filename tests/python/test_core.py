import os
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from lowbit import _native


def test_all_seed_packages_import():
    import bitcore, bitlayers, bitmodels, coset, kuat  # noqa: F401


def test_build_info_fields():
    info = lowbit.build_info()
    assert info["version"] == lowbit.__version__
    assert info["simd_compiled"][0] == "scalar"
    assert info["simd_selected"] in info["simd_available"]
    assert set(info["simd_available"]) <= set(info["simd_compiled"])
    assert isinstance(info["cuda_compiled"], bool)
    assert isinstance(info["gpu_visible"], bool)
    assert info["num_threads"] >= 1


def test_python_dash_m_lowbit_prints_build_info():
    out = subprocess.run([sys.executable, "-m", "lowbit"], capture_output=True, text=True, check=True)
    assert "simd_selected" in out.stdout
    assert lowbit.__version__ in out.stdout


@pytest.mark.parametrize("level", ["scalar", "avx2", "avx512"])
def test_env_override_selects_the_level_that_runs(level):
    if level not in _native.available_simd_levels():
        pytest.skip(f"{level} is not available on this CPU/build")
    code = (
        "import numpy as np, lowbit; from lowbit import _native; "
        "a = np.ones(33, np.float32); _native._l2sqr_f32(a, a); "
        "print(lowbit.simd_level(), _native.last_dispatched_level())"
    )
    env = dict(os.environ, LOWBIT_SIMD=level)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [level, level]


def test_env_override_with_bad_value_warns_and_falls_back():
    env = dict(os.environ, LOWBIT_SIMD="sse9")
    out = subprocess.run([sys.executable, "-c", "import lowbit; print(lowbit.simd_level())"],
                         env=env, capture_output=True, text=True, check=True)
    assert "LOWBIT_SIMD" in out.stderr
    assert out.stdout.strip() == _native.available_simd_levels()[-1]


def test_num_threads_from_environment():
    env = dict(os.environ, LOWBIT_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", "import lowbit; print(lowbit.num_threads())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_set_simd_level_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown SIMD level 'mmx'"):
        lowbit.set_simd_level("mmx")


@pytest.mark.parametrize("kind,exc", [("invalid_argument", ValueError), ("io", OSError), ("runtime", RuntimeError)])
def test_error_translation_keeps_type_and_message(kind, exc):
    message = f"archive 'x.kuat': {kind} happened"
    with pytest.raises(exc) as info:
        _native._raise_error(kind, message)
    assert str(info.value) == message


def test_l2sqr_every_level_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(1000).astype(np.float32)
    b = rng.standard_normal(1000).astype(np.float32)
    expected = float(((a.astype(np.float64) - b) ** 2).sum())
    saved = lowbit.simd_level()
    try:
        for level in lowbit.available_simd_levels():
            lowbit.set_simd_level(level)
            assert _native._l2sqr_f32(a, b) == pytest.approx(expected, rel=1e-5)
            assert _native.last_dispatched_level() == level
    finally:
        lowbit.set_simd_level(saved)


def test_ndarray_arguments_are_not_silently_converted():
    a = np.ones(4, dtype=np.float64)
    with pytest.raises(TypeError):
        _native._l2sqr_f32(a, a)
