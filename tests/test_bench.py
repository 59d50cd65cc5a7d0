"""The benchmark binary's accelerator suite: it skips on CPU and its parts report consistent figures."""
import jax
import pytest

from experiments.benchmarks import accelerator, available_suites, common
from maskgan_jax.models import wavegan


def test_accelerator_suite_is_listed_and_skips_on_cpu():
    assert "accelerator" in available_suites()
    if jax.default_backend() != "cpu":
        pytest.skip("runs the real suite on an accelerator")
    (rec,) = accelerator.accelerator_suite(common.Context(quick=True))
    assert rec["name"] == "skipped" and "cpu" in rec["reason"]


def test_paper_generator_counts_the_layer_tables_flops():
    """The suite charges the generator the layer table's FLOPs (tested in test_wavegan) for its clips."""
    rec = accelerator.paper_generator(dim=2, clips=2, repeats=1)
    assert rec["flops"] == 2 * wavegan.flops_per_clip(2, 32768)["generator"]
    assert rec["seconds"] > 0


def test_failed_part_is_recorded_not_raised():
    rec = accelerator._guard(lambda: 1 / 0)
    assert rec["error"].startswith("ZeroDivisionError")


def test_attackers_bench_step_runs_and_counts_flops():
    """The attackers suite's timed step is the attack's own train step (its signature kept in step)."""
    from experiments.benchmarks import attackers
    from experiments.configs import attack as configs
    cfg = configs.get("tiny", "cnn")
    one, put, flops, _steps = attackers._jax_step(cfg, 8)
    assert one() > 0 and put() > 0 and flops > 0
