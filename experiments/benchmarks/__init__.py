"""Benchmark suites for experiments/bench.py: one module per area, each exposing SUITES.

A suite is a function ``(ctx: common.Context) -> list[dict]`` returning JSON records,
one per figure, with the peer's figure and the ratio beside it where there is a peer.
"""
from __future__ import annotations

import importlib

# Modules of this package that expose SUITES (a dict suite name -> function).
MODULES = ("mel", "randomness", "wavegan", "attackers", "accelerator", "room", "invert")


def available_suites() -> dict:
    """All suites from the benchmark modules that import here (a missing optional one is left out)."""
    suites = {}
    for m in MODULES:
        try:
            mod = importlib.import_module(f"experiments.benchmarks.{m}")
        except ModuleNotFoundError as e:
            if e.name != f"experiments.benchmarks.{m}":
                raise
            continue
        suites.update(mod.SUITES)
    return suites
