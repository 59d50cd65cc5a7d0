"""Host work spread over worker processes: ``python -m MODULE ARGS...``, arrays in and out as .npz files.

Used where the work holds the GIL (pyroomacoustics' image sources, the PESQ C code).
Workers are plain subprocesses, not ``multiprocessing``: nothing is pickled, and the
caller's ``__main__`` is never re-imported (which ``spawn`` does, breaking unguarded
scripts; ``fork`` would copy jax's running threads). Each worker gets one BLAS thread.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_workers(n_tasks: int) -> int:
    """Processes to use for ``n_tasks`` independent tasks: the CPU count, at most n_tasks."""
    return max(1, min(int(n_tasks), os.cpu_count() or 1))


def run(module: str, arg_lists: list[list[str]], what: str) -> None:
    """Runs ``python -m module *args`` once per arg list, all at once; RuntimeError naming ``what`` on failure."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    procs = []
    with tempfile.TemporaryDirectory(prefix="maskgan-workers-") as tmp:
        try:
            for i, args in enumerate(arg_lists):
                err = open(os.path.join(tmp, f"{i}.err"), "w+b")
                procs.append((subprocess.Popen([sys.executable, "-m", module, *args], env=env,
                                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=err), err))
            failed = []
            for p, err in procs:
                if p.wait() != 0:
                    err.seek(0)
                    tail = err.read()[-2000:].decode(errors="replace")
                    failed.append(f"exit {p.returncode}: {tail}")
        finally:
            for p, err in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                err.close()
    if failed:
        raise RuntimeError(f"{what}: {len(failed)} of {len(arg_lists)} worker process(es) failed; "
                           f"first: {failed[0]}")
