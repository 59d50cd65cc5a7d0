"""The binaries' command line: the console scripts' help, one-line usage errors, no tracebacks."""
import os
import subprocess
import sys

import pytest

BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _run(args, timeout=120):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=ENV,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("script,module,flag", [("maskgan-attack", "experiments.attack", "--adversary"),
                                                 ("maskgan-study", "experiments.study", "--cells")])
def test_console_script_help_lists_the_binarys_own_flags(script, module, flag):
    path = os.path.join(BIN, script)
    if not os.path.exists(path):
        pytest.fail(f"{path} is not installed: install the package (pip install -e .) to get its console scripts")
    via_script = _run([path, "--help"])
    via_module = _run([sys.executable, "-m", module, "--help"])
    for out in (via_script, via_module):
        assert flag in out.stdout, out.stdout[:500]
    # The same description and flags (only the program name differs).
    assert via_script.stdout.split("flags:", 1)[0] == via_module.stdout.split("flags:", 1)[0]


@pytest.mark.parametrize("args,needle", [
    (["-m", "experiments.study", "--config=gpu"], "--config=gpu"),
    (["-m", "experiments.train_maskgan", "--config=gpu", "--workdir=/tmp/none"], "--config='gpu'"),
    (["-m", "experiments.attack", "--task=sei", "--noise=gan:/nonexistent/run", "--out=/tmp/x.jsonl"],
     "--noise=gan:/nonexistent/run"),
    (["-m", "experiments.study", "--retrain_gan", "--gan_workdir=/tmp/g"], "--retrain_gan"),
    (["-m", "experiments.noise_quality", "stray"], "unexpected arguments: ['stray']"),
    (["-m", "experiments.generate_noise", "--workdir=/nonexistent/run", "--seconds=1", "--out=/tmp/x.wav"],
     "--workdir=/nonexistent/run"),
])
def test_a_users_mistake_is_one_line_and_exit_status_2(args, needle):
    out = _run([sys.executable, *args])
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2, lines
    assert "error:" in lines[0] and needle in lines[0] and "----" not in lines[0]
    assert "--help" in lines[1]
