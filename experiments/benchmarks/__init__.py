"""Benchmark suites for experiments/bench.py: one module per area, each exposing SUITES.

A suite is a function ``(ctx: common.Context) -> list[dict]`` returning JSON records,
one per figure, with the peer's figure and the ratio beside it where there is a peer.
"""
