"""The benchmark binary's room suite runs on tiny shapes and reports consistent figures."""
import numpy as np
import pytest

from experiments.benchmarks import available_suites
from experiments.benchmarks import room as room_bench
from maskgan_jax import room


def test_room_suite_is_listed():
    assert "room" in available_suites()


def test_convolution_figures_on_tiny_shapes():
    recs = {r["name"]: r for r in room_bench.convolution(batch=2, length=512, taps=64, rounds=1)}
    conv = recs["fft_convolve_vs_scipy"]
    assert conv["max_rel_error"] < 1e-5
    assert conv["speedup"] == pytest.approx(conv["scipy_seconds"] / conv["seconds"])
    assert conv["fft_size"] == room.fft_size(512 + 64 - 1)
    assert recs["fft_filter_spectrum_vs_scipy"]["max_rel_error"] < 1e-5
    mix = recs["room_mix_vs_scipy_4conv"]
    assert mix["rtf"] == pytest.approx(mix["seconds"] / (2 * 512 / 16000))
    assert "room_mix_responses_vs_scipy_4conv" in recs


def test_bank_build_figure_on_one_tiny_room():
    cfg = room.RoomConfig(dims_min=(3.0, 3.0, 2.4), dims_max=(3.2, 3.2, 2.5), rt60_range=(0.2, 0.2),
                          rir_length=1024)
    rec = room_bench.bank_build(n_rooms=1, config=cfg, workers=1)
    assert rec["n_rooms"] == 1 and rec["seconds"] > 0 and rec["cache_bytes"] > 4 * 1024 * 4
    assert np.isfinite(rec["rt60_rel_error_max"])
