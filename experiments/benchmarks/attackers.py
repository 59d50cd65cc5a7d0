"""Attacker train-step throughput (log-mel on device included) beside the torch peer, and store reads.

Each attacker runs one Adam step on a batch of 64 int16 clips of 32768 samples at the sizes
of the ``cpu`` config, which are the peer's sizes; the peer (../shared/peers/attackers_torch.py)
runs in alternation with ours and both report medians. FLOP/s come from XLA's cost analysis
of the compiled step and are given as a fraction of the same run's best jitted matmul.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np

from experiments.benchmarks import common

PEER = "attackers_torch.py"
BATCH = 64
CLIP = 32768


def _peer_args(cfg, batch: int, steps: int) -> list[str]:
    m = cfg.model
    args = ["--model", m.model, "--batch", str(batch), "--samples", str(CLIP), "--steps", str(steps),
            "--n_mels", str(cfg.mel.n_mels), "--n_fft", str(cfg.mel.n_fft), "--hop", str(cfg.mel.hop_length)]
    if m.model in ("cnn", "crnn"):
        args += ["--channels", ",".join(str(c) for c in m.channels)]
    if m.model in ("rnn", "crnn"):
        args += ["--hidden", str(m.hidden), "--layers", str(m.layers)]
    return args


def _jax_step(cfg, batch: int):
    """A ready-to-time train step of the attack (random int16 clips, 10 classes)."""
    import jax
    from maskgan_jax import attack_loop, attack_steps, parallel
    mesh = parallel.make_mesh()
    steps = attack_steps.get_steps(cfg, [("label", 10)], CLIP, mesh)
    train = steps.train(masked=False, front=False)
    rng = np.random.default_rng(0)
    host = {"audio": (rng.standard_normal((batch, CLIP)) * 3000).astype(np.int16),
            "index": np.arange(batch, dtype=np.int32), "weight": np.ones(batch, np.float32),
            "labels": {"label": rng.integers(0, 10, batch).astype(np.int32)}}
    b = parallel.shard_batch(host, mesh)
    key = jax.random.key(0)
    box = {"state": steps.init(jax.random.key(1))}
    mix_args = attack_loop.CLEAN.args   # the clean hearing: no noise, no room
    compiled = train.lower(box["state"], b, key, mix_args, 1e-3).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0)) if cost else 0.0

    def one() -> float:
        t0 = time.perf_counter()
        box["state"], m = train(box["state"], b, key, mix_args, 1e-3)
        m["loss"].block_until_ready()
        return time.perf_counter() - t0

    # Host side of one batch: the int16 copy onto the devices (what the input costs per step).
    def put() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(parallel.shard_batch(host, mesh))
        return time.perf_counter() - t0

    return one, put, flops, steps


def suite_attackers(ctx: common.Context) -> list[dict]:
    """Train-step clips/s of cnn, rnn and crnn at batch 64 with the torch peer side by side."""
    import jax
    from experiments.configs import attack as configs
    from maskgan_jax.models import attackers
    peak = ctx.matmul_peak()
    batch = 16 if ctx.quick else BATCH
    inner = 2 if ctx.quick else 3
    rounds = 2 if ctx.quick else max(3, ctx.repeats)
    out = []
    for name in ("cnn", "rnn", "crnn"):
        # The peer's exact architecture: its CNN reads out a global average.
        cfg = configs.get("peer", name, cnn_head="global")
        one, put, flops, steps = _jax_step(cfg, batch)
        for _ in range(ctx.warmup):
            one()

        def ours() -> float:
            return statistics.median(one() for _ in range(inner))

        fns = {"jax": ours}
        peer_first = common.run_peer(ctx, PEER, _peer_args(cfg, batch, 1))
        if peer_first is not None:
            def peer() -> float:
                return common.run_peer(ctx, PEER, _peer_args(cfg, batch, inner))["step_s"]
            fns["torch"] = peer
        got = common.alternate(fns, rounds)
        jax_s = got["jax"]["median_s"]
        put_s = statistics.median(put() for _ in range(5))
        rec = common.record(
            "attackers", f"train_step_{name}", model=name, batch=batch, clip_samples=CLIP,
            sizes={"channels": list(cfg.model.channels), "hidden": cfg.model.hidden,
                   "layers": cfg.model.layers, "n_mels": cfg.mel.n_mels},
            params=attackers.count_params(steps.init(jax.random.key(0))["params"]),
            step_s=jax_s, clips_per_s=batch / jax_s, step_flops=flops,
            flops_per_s=flops / jax_s, matmul_peak_flops_per_s=peak["flops_per_s"],
            fraction_of_matmul_peak=flops / jax_s / peak["flops_per_s"],
            input_put_s=put_s, input_fraction=put_s / jax_s, times_s=got["jax"]["times_s"])
        if "torch" in got:
            t = got["torch"]["median_s"]
            rec.update(peer="torch", peer_step_s=t, peer_clips_per_s=batch / t, peer_params=peer_first["params"],
                       peer_torch=peer_first["torch"], peer_threads=peer_first["threads"],
                       speedup_vs_peer=t / jax_s, peer_times_s=got["torch"]["times_s"])
        out.append(rec)
    return out


def read_throughput(st, batch_size: int, epochs: int, seed: int) -> dict:
    """Shuffled epochs of host batches through the attack's reader (`data.batches.host_batches`)."""
    from maskgan_jax.data import batches
    data = batches.as_array_data(st)
    rng = np.random.default_rng(seed)
    count = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for b in batches.host_batches(data, np.arange(len(st)), batch_size, list(data.labels), rng):
            count += int(b["weight"].sum())
    dt = time.perf_counter() - t0
    mb = count * st.length * st.audio.dtype.itemsize / 1e6
    return {"clips": count, "seconds": dt, "clips_per_s": count / dt, "mb_per_s": mb / dt,
            "batch_size": batch_size}


def suite_store(ctx: common.Context) -> list[dict]:
    """Shuffled batch reads from an array store of random clips (the attack's reader): clips/s and MB/s."""
    n = 256 if ctx.quick else 1024
    with tempfile.TemporaryDirectory() as tmp:
        st = _random_store(tmp, n)
        cold = read_throughput(st, BATCH, epochs=1, seed=1)
        warm = read_throughput(st, BATCH, epochs=2, seed=2)
    return [common.record("store", "read_throughput", clips=n, clip_samples=CLIP, batch=BATCH,
                          first_pass=cold, page_cache_warm=warm, clips_per_s=warm["clips_per_s"],
                          mb_per_s=warm["mb_per_s"])]


def _random_store(tmp: str, n: int):
    """An array store of ``n`` random int16 clips written in the store's own format."""
    from maskgan_jax.data import base, store_build
    import soundfile as sf
    root = os.path.join(tmp, "corpus")
    os.makedirs(root)
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        p = os.path.join(root, f"{i:05d}.wav")
        sf.write(p, (rng.standard_normal(CLIP) * 3000).astype(np.int16), 16000, subtype="PCM_16")
        items.append(base.Item(p, {"label": i % 10}, group=f"g{i % 32}", split=""))
    corpus = base.Corpus("bench", "sei", root, items, {"label": [str(c) for c in range(10)]}, [])
    return store_build.open_or_build_store(corpus, os.path.join(tmp, "store"), progress=False)


SUITES = {"attackers": suite_attackers, "store": suite_store}
